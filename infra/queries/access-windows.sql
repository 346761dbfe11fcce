-- Requests, 5xx responses and bytes per application in five-minute windows of event time over the last day.
SELECT application,
  from_unixtime(("timestamp" - "timestamp" % 300000) / 1000) AS window_start,
  count(*) AS requests,
  sum(CASE WHEN http_status >= 500 THEN 1 ELSE 0 END) AS responses_5xx,
  sum(http_bytes) AS bytes
FROM logs
WHERE dt >= CAST(current_date - INTERVAL '1' DAY AS varchar)
  AND format IN ('access', 'cloudfront')
GROUP BY application, from_unixtime(("timestamp" - "timestamp" % 300000) / 1000)
ORDER BY window_start DESC, requests DESC
LIMIT 100
