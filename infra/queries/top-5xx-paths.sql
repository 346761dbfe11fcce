-- The five request paths with the most 5xx responses in access logs over the last day.
SELECT http_path, count(*) AS responses_5xx
FROM logs
WHERE dt >= CAST(current_date - INTERVAL '1' DAY AS varchar)
  AND format = 'access'
  AND http_status >= 500
GROUP BY http_path
ORDER BY responses_5xx DESC
LIMIT 5
