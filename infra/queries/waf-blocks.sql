-- WAF requests blocked over the last day, by terminating rule and client address.
SELECT waf_rule, client_ip, country, count(*) AS blocked
FROM logs
WHERE dt >= CAST(current_date - INTERVAL '1' DAY AS varchar)
  AND format = 'waf'
  AND waf_action = 'BLOCK'
GROUP BY waf_rule, client_ip, country
ORDER BY blocked DESC
LIMIT 100
