-- CloudFront requests, 5xx responses and bytes served per edge location over the last day.
SELECT edge_location, count(*) AS requests,
  sum(CASE WHEN http_status >= 500 THEN 1 ELSE 0 END) AS responses_5xx,
  sum(http_bytes) AS bytes
FROM logs
WHERE dt >= CAST(current_date - INTERVAL '1' DAY AS varchar)
  AND format = 'cloudfront'
GROUP BY edge_location
ORDER BY responses_5xx DESC, requests DESC
LIMIT 100
