-- Windows Security log events over the last day, by instance and event id (4625: failed logon).
SELECT instance_id, win_event_id, win_provider, count(*) AS events
FROM logs
WHERE dt >= CAST(current_date - INTERVAL '1' DAY AS varchar)
  AND source = 'windows-security'
GROUP BY instance_id, win_event_id, win_provider
ORDER BY events DESC
LIMIT 100
