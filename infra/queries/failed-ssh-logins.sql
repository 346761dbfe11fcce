-- Failed SSH logins over the last day, by instance and source address.
SELECT instance_id, client, count(*) AS attempts
FROM (
  SELECT instance_id, split_part(split_part(message, ' from ', 2), ' ', 1) AS client
  FROM logs
  WHERE dt >= CAST(current_date - INTERVAL '1' DAY AS varchar)
    AND program = 'sshd'
    AND (message LIKE '%Failed password%' OR message LIKE '%Invalid user%')
) AS failures
GROUP BY instance_id, client
ORDER BY attempts DESC
LIMIT 100
