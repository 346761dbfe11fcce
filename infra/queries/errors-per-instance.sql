-- Error-or-worse log lines per instance over the last day.
SELECT instance_id, source, count(*) AS errors
FROM logs
WHERE dt >= CAST(current_date - INTERVAL '1' DAY AS varchar)
  AND severity IN ('EMERGENCY', 'ALERT', 'CRITICAL', 'ERROR', 'FATAL')
GROUP BY instance_id, source
ORDER BY errors DESC
LIMIT 100
