-- CloudTrail calls refused for want of permission over the last day, by principal and call.
SELECT principal_arn, event_source, event_name, error_code, count(*) AS refused
FROM logs
WHERE dt >= CAST(current_date - INTERVAL '1' DAY AS varchar)
  AND format = 'cloudtrail'
  AND (error_code LIKE '%AccessDenied%' OR error_code LIKE '%UnauthorizedOperation%')
GROUP BY principal_arn, event_source, event_name, error_code
ORDER BY refused DESC
LIMIT 100
