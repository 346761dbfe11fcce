//! The enroller's configuration, read once from environment variables with clear errors.

use std::time::Duration;

use crate::agent_config::ConfigPolicy;
use crate::alarms::AlarmThresholds;
use crate::command_outcome::RetryPolicy;
use crate::commands::{AGENT_PARAMETER_PREFIX, AgentDocument, DEFAULT_DOCUMENT_VERSION};
use crate::log_groups::RetentionDays;
use crate::readiness::ReadinessPolicy;
use crate::tags::ManagementTag;

/// Every variable the enroller reads, with its default (`None`: required). Kept in one table so the
/// docs, infra/ and the tests can check against it.
pub const ENROLLER_VARIABLES: &[(&str, Option<&str>)] = &[
    ("FLEETLOG_MANAGEMENT_TAG_KEY", Some("fleetlog:managed")),
    ("FLEETLOG_MANAGEMENT_TAG_VALUE", Some("true")),
    ("FLEETLOG_PROFILE_TAG_KEY", Some("fleetlog:profile")),
    // The tags whose values the enrollment record keeps, for the ETL's `application` (exact case).
    ("FLEETLOG_APPLICATION_TAG_KEY", Some("Application")),
    ("FLEETLOG_OWNER_TAG_KEY", Some("Owner")),
    ("FLEETLOG_CONFIG_PARAMETER_PREFIX", Some("AmazonCloudWatch-fleetlog")),
    ("FLEETLOG_ENROLLMENT_TABLE", None),
    ("FLEETLOG_AGENT_DOCUMENT", None),
    ("FLEETLOG_AGENT_DOCUMENT_VERSION", Some(DEFAULT_DOCUMENT_VERSION)),
    ("FLEETLOG_LOG_GROUP_PREFIX", None),
    ("FLEETLOG_ALLOWED_LOG_PATHS", Some("")),
    ("FLEETLOG_LOG_RETENTION_DAYS", Some("3")),
    ("FLEETLOG_LOG_GROUP_KMS_KEY_ARN", Some("")),
    ("FLEETLOG_SUBSCRIPTION_DESTINATION_ARN", None),
    ("FLEETLOG_SUBSCRIPTION_ROLE_ARN", Some("")),
    ("FLEETLOG_SUBSCRIPTION_FILTER_NAME", Some("fleetlog")),
    ("FLEETLOG_SUBSCRIPTION_FILTER_PATTERN", Some("")),
    // filters: one per log group; account-policy: the account's subscription policy delivers.
    ("FLEETLOG_SUBSCRIPTION_MODE", Some("filters")),
    ("FLEETLOG_ALARM_TOPIC_ARN", Some("")),
    ("FLEETLOG_CPU_ALARM_PERCENT", Some("90")),
    ("FLEETLOG_MEMORY_ALARM_PERCENT", Some("90")),
    ("FLEETLOG_DISK_ALARM_PERCENT", Some("90")),
    ("FLEETLOG_READINESS_TIMEOUT_SECONDS", Some("900")),
    ("FLEETLOG_COMMAND_ATTEMPTS", Some("3")),
    ("FLEETLOG_COMMAND_OVERDUE_SECONDS", Some("900")),
    ("FLEETLOG_FRESHNESS_WINDOW_SECONDS", Some(FRESHNESS_WINDOW_SECONDS)),
    ("FLEETLOG_DEAD_LETTER_QUEUE_URL", Some("")),
    ("FLEETLOG_ENROLL_QUEUE_URL", Some("")),
];

/// Every variable the log ETL reads, with its default, like [`ENROLLER_VARIABLES`].
pub const ETL_VARIABLES: &[(&str, Option<&str>)] = &[
    // The subscription-target entry shape puts records here; the Firehose shape needs none.
    ("FLEETLOG_DELIVERY_STREAM", Some("")),
    // Where whose logs arrived is reported (the enroll queue); empty: nowhere.
    ("FLEETLOG_ENROLL_QUEUE_URL", Some("")),
    ("FLEETLOG_FRESHNESS_WINDOW_SECONDS", Some(FRESHNESS_WINDOW_SECONDS)),
    // A central stack's own account, and whether other accounts' sightings go to their buses.
    ("FLEETLOG_ACCOUNT_ID", Some("")),
    ("FLEETLOG_REPORT_TO_MEMBERS", Some("false")),
    // The records' shape: `table` (the Glue table's JSON, for S3 and Athena) or `splunk-hec`.
    ("FLEETLOG_RECORD_FORMAT", Some("table")),
    // The Splunk index of every HEC event; empty: the HEC token's default index.
    ("FLEETLOG_SPLUNK_INDEX", Some("")),
    // A fan-out stack's Splunk delivery stream: the batches it hands the ETL are answered with HEC
    // events, every other stream's in FLEETLOG_RECORD_FORMAT. Empty: none.
    ("FLEETLOG_SPLUNK_DELIVERY_STREAM", Some("")),
    // A fan-out stack's Kinesis stream (ARN), where log objects' HEC events go for the Splunk stream,
    // which takes no direct puts. Empty: log objects reach the archive only.
    ("FLEETLOG_FAN_OUT_STREAM_ARN", Some("")),
    // Access-log windows as embedded metrics and contributor lines: `true` or `false`.
    ("FLEETLOG_ACCESS_METRICS", Some("true")),
    // The enrollment table, where instances' Application tags are read; empty: none (a central stack).
    ("FLEETLOG_ENROLLMENT_TABLE", Some("")),
    // The reference file (`s3://bucket/key`) mapping addresses and hosts to applications; empty: none.
    ("FLEETLOG_REFERENCE_OBJECT", Some("")),
];

/// Which destination's records the ETL writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RecordFormatSetting {
    /// The Glue table's JSON objects (S3, Athena).
    #[default]
    Table,
    /// Splunk HTTP Event Collector events, into [`EtlSettings::splunk_index`].
    SplunkHec,
}

/// Whether `name` can be a Splunk index: lower-case letters, digits, `_` and `-`, not starting with
/// `_` or `-` (Splunk's rule for index names), at most 80 characters.
pub fn is_splunk_index(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && !name.starts_with(['_', '-'])
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `name` can name a Firehose stream: 1 to 64 letters, digits, `_`, `-` and `.` (the
/// CreateDeliveryStream API reference's pattern).
fn is_delivery_stream_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// The freshness window's default (seconds), shared by the enroller, the ETL and the CLI.
pub const FRESHNESS_WINDOW_SECONDS: &str = "1800";
const FRESHNESS_WINDOW_RANGE: std::ops::RangeInclusive<u64> = 1..=604_800;

/// The default of one of [`ENROLLER_VARIABLES`], empty for required or unknown ones. The CLI's flags of
/// the same meaning default to it, so the CLI and the Lambda agree.
pub fn enroller_default(name: &str) -> &'static str {
    ENROLLER_VARIABLES.iter().find(|(n, _)| *n == name).and_then(|(_, d)| *d).unwrap_or_default()
}

/// One variable of `table` through `lookup`: its value (trimmed), else its default.
fn read(
    table: &[(&str, Option<&'static str>)],
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, SettingsError> {
    let default = table.iter().find(|(n, _)| *n == name).and_then(|(_, d)| *d);
    match (lookup(name).filter(|v| !v.trim().is_empty()), default) {
        (Some(v), _) => Ok(v.trim().to_owned()),
        (None, Some(d)) => Ok(d.to_owned()),
        (None, None) => Err(SettingsError::Missing(name)),
    }
}

/// The error for variable `name`, set to `value`, and why it cannot be used.
fn invalid(name: &'static str, value: &str, reason: String) -> SettingsError {
    SettingsError::Invalid { name, value: value.to_owned(), reason }
}

/// A whole number within `range`, or an error that names the variable and the range.
fn whole(value: &str, name: &'static str, range: std::ops::RangeInclusive<u64>) -> Result<u64, SettingsError> {
    value.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or_else(|| SettingsError::Invalid {
        name,
        value: value.to_owned(),
        reason: format!("expected a whole number from {} to {}", range.start(), range.end()),
    })
}

/// The log ETL's configuration, read once from environment variables with clear errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtlSettings {
    pub delivery_stream: Option<String>,
    pub enroll_queue_url: Option<String>,
    pub freshness_window: Duration,
    /// A central stack's account: other accounts' sightings go to their own default buses.
    pub reports_members_of: Option<String>,
    pub record_format: RecordFormatSetting,
    /// The delivery stream whose batches are answered with Splunk HEC events (into
    /// `FLEETLOG_SPLUNK_INDEX`), whatever `record_format` says.
    pub splunk_stream: Option<String>,
    /// The index of every HEC event (`None`: the HEC token's default index).
    pub splunk_index: Option<String>,
    /// The Kinesis stream both delivery streams of a fan-out stack read (ARN).
    pub fan_out_stream_arn: Option<String>,
    /// Whether access requests are folded into windows published as metrics.
    pub access_metrics: bool,
    /// Where instances' application tags are read.
    pub enrollment_table: Option<String>,
    /// The reference file: bucket and key.
    pub reference_object: Option<(String, String)>,
}

impl EtlSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &'static str| read(ETL_VARIABLES, &lookup, name);
        let optional = |name: &'static str| get(name).map(|v| Some(v).filter(|v| !v.is_empty()));
        let window = get("FLEETLOG_FRESHNESS_WINDOW_SECONDS")?;
        let to_members = get("FLEETLOG_REPORT_TO_MEMBERS")?;
        let reports_members_of = match to_members.as_str() {
            "false" => None,
            "true" => {
                let account = get("FLEETLOG_ACCOUNT_ID")?;
                if !crate::schema::is_account_id(&account) {
                    return Err(invalid(
                        "FLEETLOG_ACCOUNT_ID",
                        &account,
                        "a central stack's ETL needs its account ID (twelve digits) to tell members' logs from its own"
                            .into(),
                    ));
                }
                Some(account)
            }
            other => return Err(invalid("FLEETLOG_REPORT_TO_MEMBERS", other, "expected true or false".into())),
        };
        let splunk_index = optional("FLEETLOG_SPLUNK_INDEX")?;
        if let Some(bad) = splunk_index.as_deref().filter(|i| !is_splunk_index(i)) {
            return Err(invalid(
                "FLEETLOG_SPLUNK_INDEX",
                bad,
                "a Splunk index name is lower-case letters, digits, _ and -, not starting with _ or -".into(),
            ));
        }
        let record_format = match get("FLEETLOG_RECORD_FORMAT")?.as_str() {
            "table" => RecordFormatSetting::Table,
            "splunk-hec" => RecordFormatSetting::SplunkHec,
            other => return Err(invalid("FLEETLOG_RECORD_FORMAT", other, "expected table or splunk-hec".into())),
        };
        let splunk_stream = optional("FLEETLOG_SPLUNK_DELIVERY_STREAM")?;
        if let Some(bad) = splunk_stream.as_deref().filter(|s| !is_delivery_stream_name(s)) {
            return Err(invalid(
                "FLEETLOG_SPLUNK_DELIVERY_STREAM",
                bad,
                "a Firehose stream name is 1 to 64 letters, digits, _, - and .".into(),
            ));
        }
        let fan_out_stream_arn = optional("FLEETLOG_FAN_OUT_STREAM_ARN")?;
        if let Some(bad) = fan_out_stream_arn.as_deref().filter(|a| !(a.starts_with("arn:") && a.contains(":stream/")))
        {
            return Err(invalid("FLEETLOG_FAN_OUT_STREAM_ARN", bad, "expected a Kinesis stream ARN".into()));
        }
        let access_metrics = match get("FLEETLOG_ACCESS_METRICS")?.as_str() {
            "true" => true,
            "false" => false,
            other => return Err(invalid("FLEETLOG_ACCESS_METRICS", other, "expected true or false".into())),
        };
        let reference_object = match optional("FLEETLOG_REFERENCE_OBJECT")? {
            None => None,
            Some(url) => Some(
                url.strip_prefix("s3://")
                    .and_then(|rest| rest.split_once('/'))
                    .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
                    .map(|(bucket, key)| (bucket.to_owned(), key.to_owned()))
                    .ok_or_else(|| invalid("FLEETLOG_REFERENCE_OBJECT", &url, "expected s3://bucket/key".into()))?,
            ),
        };
        Ok(Self {
            record_format,
            splunk_stream,
            splunk_index,
            fan_out_stream_arn,
            access_metrics,
            enrollment_table: optional("FLEETLOG_ENROLLMENT_TABLE")?,
            reference_object,
            delivery_stream: optional("FLEETLOG_DELIVERY_STREAM")?,
            enroll_queue_url: optional("FLEETLOG_ENROLL_QUEUE_URL")?,
            freshness_window: Duration::from_secs(whole(
                &window,
                "FLEETLOG_FRESHNESS_WINDOW_SECONDS",
                FRESHNESS_WINDOW_RANGE,
            )?),
            reports_members_of,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid { name: &'static str, value: String, reason: String },
}

/// What subscribes fleetlog's log groups to the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionMode {
    /// fleetlog's own subscription filter on each group it manages.
    #[default]
    Filters,
    /// The account's subscription filter policy (`crate::account_policy`): no filter of fleetlog's.
    AccountPolicy,
}

impl std::str::FromStr for SubscriptionMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "filters" => Ok(Self::Filters),
            "account-policy" => Ok(Self::AccountPolicy),
            other => Err(format!("{other:?} is neither filters nor account-policy")),
        }
    }
}

/// Where subscription filters send log events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionDestination {
    pub mode: SubscriptionMode,
    pub filter_name: String,
    pub filter_pattern: String,
    pub destination_arn: String,
    /// Needed for Firehose and Kinesis destinations; not for Lambda. For a Logs destination, the
    /// sending account's role that CloudWatch Logs assumes to check it may send, which a
    /// destination admitting an organisation requires.
    pub role_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnrollerSettings {
    pub management_tag: ManagementTag,
    pub profile_tag_key: String,
    /// The tags an enrollment record keeps the values of (see [`crate::tags::Ownership`]).
    pub ownership_tags: crate::tags::OwnershipTags,
    pub config_parameter_prefix: String,
    pub enrollment_table: String,
    /// fleetlog's SSM Command document (the stack's `AgentDocument`), and the version commands run.
    pub agent_document: AgentDocument,
    /// What an agent config may name: groups under the stack's prefix, files in the allowed paths.
    pub config_policy: ConfigPolicy,
    pub retention: RetentionDays,
    pub kms_key_arn: Option<String>,
    pub subscription: SubscriptionDestination,
    pub alarm_topic_arn: Option<String>,
    pub thresholds: AlarmThresholds,
    pub readiness: ReadinessPolicy,
    /// How often a failed agent command is sent again.
    pub command_retry: RetryPolicy,
    /// A command still without an outcome this long after it was sent is asked about by the sweep.
    pub command_overdue: Duration,
    /// An enrolled instance whose logs have not reached fleetlog for this long is `silent`.
    pub freshness_window: Duration,
    /// Permanent failures are sent here with their reason. Without it they go back to the queue and
    /// reach the redrive DLQ after the queue's maxReceiveCount.
    pub dead_letter_queue_url: Option<String>,
    /// The enroller's own queue: a large sweep sends per-instance requests to it.
    pub enroll_queue_url: Option<String>,
}

impl EnrollerSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &'static str| read(ENROLLER_VARIABLES, &lookup, name);
        let optional = |name: &'static str| get(name).map(|v| Some(v).filter(|v| !v.is_empty()));
        let number = |name: &'static str| -> Result<f64, SettingsError> {
            let v = get(name)?;
            v.parse::<f64>()
                .ok()
                .filter(|n| (0.0..=100.0).contains(n))
                .ok_or_else(|| invalid(name, &v, "expected a percentage from 0 to 100".into()))
        };

        let prefix = get("FLEETLOG_CONFIG_PARAMETER_PREFIX")?;
        if !prefix.starts_with(AGENT_PARAMETER_PREFIX) || prefix.len() == AGENT_PARAMETER_PREFIX.len() {
            return Err(invalid(
                "FLEETLOG_CONFIG_PARAMETER_PREFIX",
                &prefix,
                format!(
                    "must start with {AGENT_PARAMETER_PREFIX:?} (CloudWatchAgentServerPolicy lets the agent read only those)"
                ),
            ));
        }
        let days = get("FLEETLOG_LOG_RETENTION_DAYS")?;
        let retention =
            days.parse::<u32>().map_err(|e| invalid("FLEETLOG_LOG_RETENTION_DAYS", &days, e.to_string())).and_then(
                |d| RetentionDays::new(d).map_err(|e| invalid("FLEETLOG_LOG_RETENTION_DAYS", &days, e.to_string())),
            )?;
        let destination_arn = get("FLEETLOG_SUBSCRIPTION_DESTINATION_ARN")?;
        let service = destination_arn.split(':').nth(2).unwrap_or_default();
        let role_arn = optional("FLEETLOG_SUBSCRIPTION_ROLE_ARN")?;
        // CloudWatch Logs API reference, PutSubscriptionFilter, roleArn: a role grants CloudWatch Logs
        // delivery to a stream; "you don't need to provide the ARN when you are working with a logical
        // destination for cross-account delivery". Unless the destination's policy admits an
        // organisation: then the sending account's role (logs:PutLogEvents on the destination) is
        // named in the filter (CloudWatch Logs User Guide, "Step 2: (Only if using an organization)
        // Create an IAM role"). So a Logs destination takes a role or none.
        match (service, &role_arn) {
            ("lambda" | "logs", _) => {}
            ("firehose" | "kinesis", Some(_)) => {}
            ("firehose" | "kinesis", None) => {
                return Err(SettingsError::Missing("FLEETLOG_SUBSCRIPTION_ROLE_ARN"));
            }
            _ => {
                return Err(invalid(
                    "FLEETLOG_SUBSCRIPTION_DESTINATION_ARN",
                    &destination_arn,
                    "expected the ARN of a Firehose stream, Kinesis stream, Logs destination or Lambda function".into(),
                ));
            }
        }
        let timeout = get("FLEETLOG_READINESS_TIMEOUT_SECONDS")?;
        let give_up_after =
            timeout.parse::<u64>().ok().filter(|s| (60..=43_200).contains(s)).map(Duration::from_secs).ok_or_else(
                || {
                    invalid(
                        "FLEETLOG_READINESS_TIMEOUT_SECONDS",
                        &timeout,
                        "expected seconds from 60 to 43200 (SQS's 12-hour limit)".into(),
                    )
                },
            )?;
        let whole = |name: &'static str, range: std::ops::RangeInclusive<u64>| whole(&get(name)?, name, range);
        let command_attempts = u32::try_from(whole("FLEETLOG_COMMAND_ATTEMPTS", 1..=10)?).unwrap_or(1);
        let command_overdue = Duration::from_secs(whole("FLEETLOG_COMMAND_OVERDUE_SECONDS", 60..=86_400)?);
        let freshness_window = Duration::from_secs(whole("FLEETLOG_FRESHNESS_WINDOW_SECONDS", FRESHNESS_WINDOW_RANGE)?);
        let tag_key = get("FLEETLOG_MANAGEMENT_TAG_KEY")?;
        if tag_key.len() > 128 {
            return Err(invalid(
                "FLEETLOG_MANAGEMENT_TAG_KEY",
                &tag_key,
                "EC2 tag keys are at most 128 characters".into(),
            ));
        }

        let version = get("FLEETLOG_AGENT_DOCUMENT_VERSION")?;
        if version != DEFAULT_DOCUMENT_VERSION && version.parse::<u32>().map_or(true, |v| v == 0) {
            return Err(invalid(
                "FLEETLOG_AGENT_DOCUMENT_VERSION",
                &version,
                format!("expected {DEFAULT_DOCUMENT_VERSION} or a document version number"),
            ));
        }
        let extra_paths: Vec<String> = get("FLEETLOG_ALLOWED_LOG_PATHS")?.split(',').map(str::to_owned).collect();
        let log_group_prefix = get("FLEETLOG_LOG_GROUP_PREFIX")?;
        crate::log_groups::LogGroupName::new(format!("{log_group_prefix}/x"))
            .map_err(|e| invalid("FLEETLOG_LOG_GROUP_PREFIX", &log_group_prefix, e.to_string()))?;

        Ok(Self {
            agent_document: AgentDocument { name: get("FLEETLOG_AGENT_DOCUMENT")?, version },
            config_policy: ConfigPolicy::new(log_group_prefix, &extra_paths),
            management_tag: ManagementTag { key: tag_key, value: get("FLEETLOG_MANAGEMENT_TAG_VALUE")? },
            profile_tag_key: get("FLEETLOG_PROFILE_TAG_KEY")?,
            ownership_tags: crate::tags::OwnershipTags {
                application: get("FLEETLOG_APPLICATION_TAG_KEY")?,
                owner: get("FLEETLOG_OWNER_TAG_KEY")?,
            },
            config_parameter_prefix: prefix,
            enrollment_table: get("FLEETLOG_ENROLLMENT_TABLE")?,
            retention,
            kms_key_arn: optional("FLEETLOG_LOG_GROUP_KMS_KEY_ARN")?,
            subscription: SubscriptionDestination {
                mode: {
                    let mode = get("FLEETLOG_SUBSCRIPTION_MODE")?;
                    mode.parse().map_err(|reason| invalid("FLEETLOG_SUBSCRIPTION_MODE", &mode, reason))?
                },
                filter_name: get("FLEETLOG_SUBSCRIPTION_FILTER_NAME")?,
                filter_pattern: lookup("FLEETLOG_SUBSCRIPTION_FILTER_PATTERN").unwrap_or_default(),
                destination_arn,
                role_arn,
            },
            alarm_topic_arn: optional("FLEETLOG_ALARM_TOPIC_ARN")?,
            thresholds: AlarmThresholds {
                cpu_percent: number("FLEETLOG_CPU_ALARM_PERCENT")?,
                memory_percent: number("FLEETLOG_MEMORY_ALARM_PERCENT")?,
                disk_used_percent: number("FLEETLOG_DISK_ALARM_PERCENT")?,
            },
            readiness: ReadinessPolicy { give_up_after, ..ReadinessPolicy::default() },
            command_retry: RetryPolicy { max_attempts: command_attempts, ..RetryPolicy::default() },
            command_overdue,
            freshness_window,
            dead_letter_queue_url: optional("FLEETLOG_DEAD_LETTER_QUEUE_URL")?,
            enroll_queue_url: optional("FLEETLOG_ENROLL_QUEUE_URL")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent_config::DEFAULT_ALLOWED_PATHS;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("FLEETLOG_ENROLLMENT_TABLE", "fleetlog-enrollments"),
        ("FLEETLOG_AGENT_DOCUMENT", "fleetlog-agent"),
        ("FLEETLOG_LOG_GROUP_PREFIX", "CCP-logs-acme-123456789012-us-east-1"),
        ("FLEETLOG_SUBSCRIPTION_DESTINATION_ARN", "arn:aws:firehose:us-east-1:123456789012:deliverystream/raw"),
        ("FLEETLOG_SUBSCRIPTION_ROLE_ARN", "arn:aws:iam::123456789012:role/logs-to-firehose"),
    ];

    #[test]
    fn defaults_fill_everything_optional() {
        let s = EnrollerSettings::from_lookup(env(MINIMAL)).unwrap();
        assert_eq!(s.management_tag, ManagementTag { key: "fleetlog:managed".into(), value: "true".into() });
        assert_eq!(s.retention.days(), 3);
        assert_eq!(s.config_parameter_prefix, "AmazonCloudWatch-fleetlog");
        assert_eq!(s.readiness.give_up_after, Duration::from_secs(900));
        assert_eq!(s.subscription.filter_name, "fleetlog");
        assert_eq!(s.kms_key_arn, None);
        assert_eq!(s.dead_letter_queue_url, None);
        assert_eq!(s.agent_document, AgentDocument { name: "fleetlog-agent".into(), version: "$DEFAULT".into() });
        assert_eq!(s.config_policy.allowed_paths, DEFAULT_ALLOWED_PATHS);
        assert_eq!(s.command_retry, RetryPolicy::default());
        assert_eq!(s.command_overdue, Duration::from_secs(900));
        assert_eq!(s.freshness_window, crate::freshness::DEFAULT_FRESHNESS_WINDOW);
    }

    #[test]
    fn every_variable_read_is_declared() {
        // from_lookup panics-free path: a lookup that records names proves no undeclared name is read.
        let seen = std::cell::RefCell::new(Vec::new());
        let base = env(MINIMAL);
        let _ = EnrollerSettings::from_lookup(|k| {
            seen.borrow_mut().push(k.to_owned());
            base(k)
        });
        for name in seen.borrow().iter() {
            assert!(ENROLLER_VARIABLES.iter().any(|(n, _)| n == name), "{name} is read but not declared");
        }
    }

    #[test]
    fn missing_and_malformed_values_name_the_variable() {
        let err = EnrollerSettings::from_lookup(env(&[])).unwrap_err();
        assert_eq!(err, SettingsError::Missing("FLEETLOG_SUBSCRIPTION_DESTINATION_ARN"));
        for required in ["FLEETLOG_ENROLLMENT_TABLE", "FLEETLOG_AGENT_DOCUMENT", "FLEETLOG_LOG_GROUP_PREFIX"] {
            let without: Vec<(&str, &str)> = MINIMAL.iter().copied().filter(|(k, _)| *k != required).collect();
            assert_eq!(EnrollerSettings::from_lookup(env(&without)), Err(SettingsError::Missing(required)));
        }

        let with = |extra: (&'static str, &'static str)| {
            let mut pairs = MINIMAL.to_vec();
            pairs.retain(|(k, _)| *k != extra.0);
            pairs.push(extra);
            EnrollerSettings::from_lookup(env(&pairs)).unwrap_err().to_string()
        };
        assert!(with(("FLEETLOG_LOG_RETENTION_DAYS", "2")).contains("nearest at or above is Some(3)"));
        assert!(with(("FLEETLOG_LOG_RETENTION_DAYS", "two")).contains("FLEETLOG_LOG_RETENTION_DAYS"));
        assert!(with(("FLEETLOG_CONFIG_PARAMETER_PREFIX", "fleetlog")).contains("AmazonCloudWatch-"));
        assert!(with(("FLEETLOG_CPU_ALARM_PERCENT", "150")).contains("percentage"));
        assert!(with(("FLEETLOG_READINESS_TIMEOUT_SECONDS", "5")).contains("60 to 43200"));
        assert!(with(("FLEETLOG_COMMAND_ATTEMPTS", "0")).contains("from 1 to 10"));
        assert!(with(("FLEETLOG_COMMAND_OVERDUE_SECONDS", "soon")).contains("FLEETLOG_COMMAND_OVERDUE_SECONDS"));
        assert!(with(("FLEETLOG_SUBSCRIPTION_DESTINATION_ARN", "nope")).contains("expected the ARN"));
        assert!(with(("FLEETLOG_SUBSCRIPTION_ROLE_ARN", "")).contains("FLEETLOG_SUBSCRIPTION_ROLE_ARN"));
        assert!(with(("FLEETLOG_AGENT_DOCUMENT_VERSION", "latest")).contains("document version number"));
        assert!(with(("FLEETLOG_LOG_GROUP_PREFIX", "bad prefix")).contains("FLEETLOG_LOG_GROUP_PREFIX"));
    }

    #[test]
    fn the_etls_settings_are_declared_and_checked_like_the_enrollers() {
        let defaults = EtlSettings::from_lookup(|_| None).unwrap();
        assert_eq!(
            defaults,
            EtlSettings {
                delivery_stream: None,
                enroll_queue_url: None,
                freshness_window: crate::freshness::DEFAULT_FRESHNESS_WINDOW,
                reports_members_of: None,
                record_format: RecordFormatSetting::Table,
                splunk_stream: None,
                splunk_index: None,
                fan_out_stream_arn: None,
                access_metrics: true,
                enrollment_table: None,
                reference_object: None,
            }
        );
        let analytics = EtlSettings::from_lookup(env(&[
            ("FLEETLOG_ACCESS_METRICS", "false"),
            ("FLEETLOG_ENROLLMENT_TABLE", "fleetlog-enrollments"),
            ("FLEETLOG_REFERENCE_OBJECT", "s3://fleetlog-logs/reference/applications.json"),
        ]))
        .unwrap();
        assert!(!analytics.access_metrics);
        assert_eq!(analytics.enrollment_table.as_deref(), Some("fleetlog-enrollments"));
        assert_eq!(analytics.reference_object, Some(("fleetlog-logs".into(), "reference/applications.json".into())));
        for bad in [("FLEETLOG_ACCESS_METRICS", "yes"), ("FLEETLOG_REFERENCE_OBJECT", "s3://bucket-only")] {
            let err = EtlSettings::from_lookup(env(&[bad])).unwrap_err();
            assert!(err.to_string().contains(bad.0), "{err}");
        }
        let fan_out = EtlSettings::from_lookup(env(&[
            ("FLEETLOG_SPLUNK_DELIVERY_STREAM", "fleetlog-splunk"),
            ("FLEETLOG_SPLUNK_INDEX", "aws"),
        ]))
        .unwrap();
        assert_eq!(fan_out.splunk_stream.as_deref(), Some("fleetlog-splunk"));
        assert_eq!(fan_out.record_format, RecordFormatSetting::Table, "the other streams' format");
        let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/fleetlog-logs";
        let with_stream = EtlSettings::from_lookup(env(&[("FLEETLOG_FAN_OUT_STREAM_ARN", arn)])).unwrap();
        assert_eq!(with_stream.fan_out_stream_arn.as_deref(), Some(arn));
        let err = EtlSettings::from_lookup(env(&[("FLEETLOG_FAN_OUT_STREAM_ARN", "fleetlog-logs")])).unwrap_err();
        assert!(err.to_string().contains("FLEETLOG_FAN_OUT_STREAM_ARN"), "{err}");
        let err = EtlSettings::from_lookup(env(&[("FLEETLOG_SPLUNK_DELIVERY_STREAM", "no/slash")])).unwrap_err();
        assert!(err.to_string().contains("FLEETLOG_SPLUNK_DELIVERY_STREAM"), "{err}");
        let err = EtlSettings::from_lookup(env(&[("FLEETLOG_SPLUNK_INDEX", "Main")])).unwrap_err();
        assert!(err.to_string().contains("FLEETLOG_SPLUNK_INDEX"), "checked whichever stream uses it: {err}");
        let hec =
            |pairs: &[(&str, &str)]| EtlSettings::from_lookup(env(pairs)).map(|s| (s.record_format, s.splunk_index));
        assert_eq!(
            hec(&[("FLEETLOG_RECORD_FORMAT", "splunk-hec"), ("FLEETLOG_SPLUNK_INDEX", "aws-logs_1")]),
            Ok((RecordFormatSetting::SplunkHec, Some("aws-logs_1".into())))
        );
        assert_eq!(hec(&[("FLEETLOG_RECORD_FORMAT", "splunk-hec")]), Ok((RecordFormatSetting::SplunkHec, None)));
        for bad in ["Main", "_internal", "-x", "a b"] {
            let err = hec(&[("FLEETLOG_RECORD_FORMAT", "splunk-hec"), ("FLEETLOG_SPLUNK_INDEX", bad)]).unwrap_err();
            assert!(err.to_string().contains("FLEETLOG_SPLUNK_INDEX"), "{bad}: {err}");
        }
        assert!(hec(&[("FLEETLOG_RECORD_FORMAT", "splunk")]).unwrap_err().to_string().contains("table or splunk-hec"));
        let central = |account: &str| {
            let pairs = [("FLEETLOG_REPORT_TO_MEMBERS", "true"), ("FLEETLOG_ACCOUNT_ID", account)];
            EtlSettings::from_lookup(env(&pairs))
        };
        assert_eq!(central("210987654321").unwrap().reports_members_of.as_deref(), Some("210987654321"));
        assert!(central("").unwrap_err().to_string().contains("FLEETLOG_ACCOUNT_ID"));
        assert!(central("unknown").unwrap_err().to_string().contains("FLEETLOG_ACCOUNT_ID"), "a partition, not an ID");
        let yes = EtlSettings::from_lookup(env(&[("FLEETLOG_REPORT_TO_MEMBERS", "yes")])).unwrap_err();
        assert!(yes.to_string().contains("expected true or false"), "{yes}");
        let err = EtlSettings::from_lookup(|k| (k == "FLEETLOG_FRESHNESS_WINDOW_SECONDS").then(|| "0".into()));
        assert!(err.unwrap_err().to_string().contains("FLEETLOG_FRESHNESS_WINDOW_SECONDS"));
        let seen = std::cell::RefCell::new(Vec::new());
        let _ = EtlSettings::from_lookup(|k| {
            seen.borrow_mut().push(k.to_owned());
            None
        });
        for name in seen.borrow().iter() {
            assert!(ETL_VARIABLES.iter().any(|(n, _)| n == name), "{name} is read but not declared");
        }
        let window = "FLEETLOG_FRESHNESS_WINDOW_SECONDS";
        let etl = ETL_VARIABLES.iter().find(|(n, _)| *n == window).and_then(|(_, d)| *d);
        assert_eq!(etl, Some(enroller_default(window)), "one window for both");
        assert_eq!(
            enroller_default("FLEETLOG_LOG_RETENTION_DAYS"),
            crate::log_groups::DEFAULT_RETENTION_DAYS.to_string(),
            "the CLI's retention default is the enroller's"
        );
        assert_eq!(enroller_default("FLEETLOG_ENROLLMENT_TABLE"), "", "required: no default");
    }

    #[test]
    fn allowed_paths_extend_the_defaults() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("FLEETLOG_ALLOWED_LOG_PATHS", " /srv/app/ , /opt/web/logs/ "));
        let s = EnrollerSettings::from_lookup(env(&pairs)).unwrap();
        assert_eq!(&s.config_policy.allowed_paths[DEFAULT_ALLOWED_PATHS.len()..], ["/srv/app/", "/opt/web/logs/"]);
        pairs.push(("FLEETLOG_AGENT_DOCUMENT_VERSION", "3"));
        assert_eq!(EnrollerSettings::from_lookup(env(&pairs)).unwrap().agent_document.version, "3");
    }

    #[test]
    fn a_logs_destination_takes_a_sender_role_or_none_and_streams_need_one() {
        const DESTINATION: &str = "arn:aws:logs:us-east-1:210987654321:destination:fleetlog-central";
        const SENDER: &str = "arn:aws:iam::123456789012:role/fleetlog-central-sender";
        let base = [
            ("FLEETLOG_ENROLLMENT_TABLE", "t"),
            ("FLEETLOG_AGENT_DOCUMENT", "d"),
            ("FLEETLOG_LOG_GROUP_PREFIX", "p"),
            ("FLEETLOG_SUBSCRIPTION_DESTINATION_ARN", DESTINATION),
        ];
        let s = EnrollerSettings::from_lookup(env(&base)).unwrap();
        assert_eq!(s.subscription.role_arn, None);
        assert_eq!(s.subscription.destination_arn, DESTINATION);
        let mut with_role = base.to_vec();
        with_role.push(("FLEETLOG_SUBSCRIPTION_ROLE_ARN", SENDER));
        let s = EnrollerSettings::from_lookup(env(&with_role)).unwrap();
        assert_eq!(
            s.subscription.role_arn.as_deref(),
            Some(SENDER),
            "a destination admitting an organisation needs it"
        );
        for stream in [
            "arn:aws:firehose:us-east-1:123456789012:deliverystream/fleetlog",
            "arn:aws:kinesis:us-east-1:123456789012:stream/fleetlog",
        ] {
            let mut pairs = base.to_vec();
            pairs[3].1 = stream;
            let missing = EnrollerSettings::from_lookup(env(&pairs)).unwrap_err();
            assert_eq!(missing, SettingsError::Missing("FLEETLOG_SUBSCRIPTION_ROLE_ARN"), "{stream}");
        }
    }

    #[test]
    fn lambda_destinations_need_no_role() {
        let s = EnrollerSettings::from_lookup(env(&[
            ("FLEETLOG_ENROLLMENT_TABLE", "t"),
            ("FLEETLOG_AGENT_DOCUMENT", "d"),
            ("FLEETLOG_LOG_GROUP_PREFIX", "p"),
            ("FLEETLOG_SUBSCRIPTION_DESTINATION_ARN", "arn:aws:lambda:us-east-1:123456789012:function:fleetlog-etl"),
        ]))
        .unwrap();
        assert_eq!(s.subscription.role_arn, None);
    }
}
