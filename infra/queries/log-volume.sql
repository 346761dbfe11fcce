-- Log lines and bytes per instance and source over the last day.
SELECT instance_id, source, count(*) AS lines, sum(length(message)) AS bytes
FROM logs
WHERE dt >= CAST(current_date - INTERVAL '1' DAY AS varchar)
GROUP BY instance_id, source
ORDER BY instance_id, source
