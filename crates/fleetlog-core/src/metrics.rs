//! Counters as CloudWatch Embedded Metric Format lines: one log line, no API call. Built here;
//! written by `fleetlog_sdk::metrics`.

use serde_json::json;

pub const NAMESPACE: &str = "fleetlog";

/// Declares [`Counter`] with its variants listed once: the metric name is the variant's name, and
/// [`Counter::ALL`] holds every variant (the template's alarms are checked against it).
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $variant:ident,)+) => {
        /// Things the enroller and the log ETL count.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Counter {
            $($(#[doc = $doc])* $variant,)+
        }

        impl Counter {
            pub const ALL: &[Counter] = &[$(Counter::$variant,)+];

            /// The CloudWatch metric name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => stringify!($variant),)+
                }
            }
        }
    };
}

counters! {
    Enrolled,
    Offboarded,
    AlreadyEnrolled,
    TagCaseMismatch,
    NotReady,
    EnrollmentFailed,
    /// Another enrollment run was enrolling the instance: retried later, not a failure.
    EnrollmentDeferred,
    DeadLettered,
    /// An agent command succeeded on an instance.
    AgentConfigured,
    /// An agent command failed on an instance (each attempt; `EnrollmentFailed` counts the last).
    AgentCommandFailed,
    /// A sweep put an instance's log groups or alarms back as fleetlog set them.
    InstancesRepaired,
    /// Per sweep: enrolled instances whose logs have not reached fleetlog within the window.
    InstancesSilent,
    /// Per sweep: instances whose agent command failed.
    InstancesFailed,
    /// ETL: log events written as JSON records.
    LogEventsTransformed,
    /// ETL: Firehose records handed back to the stream because they did not fit the response.
    RecordsReingested,
    /// ETL: Firehose records sent to the error output (undecodable, or an event too large).
    RecordsFailed,
    /// ETL: notifications of log objects already read (S3 notifies at least once); they add nothing.
    LogObjectsRedelivered,
    /// ETL: access requests timed too far in the past or future for CloudWatch to take as metrics
    /// (their records are kept; see [`crate::traffic`]).
    AccessRequestsUnmetered,
}

/// One EMF document with the given counts (zero counts are left out); `None` when all are zero.
pub fn emf_line(counts: &[(Counter, u64)], timestamp_ms: i64) -> Option<String> {
    let nonzero: Vec<(Counter, u64)> = counts.iter().copied().filter(|(_, n)| *n > 0).collect();
    if nonzero.is_empty() {
        return None;
    }
    Some(emf_document(&nonzero, timestamp_ms).to_string())
}

/// One EMF document with the given levels, zeros included: an alarm on a level must see it fall back
/// to zero.
pub fn emf_gauges_line(levels: &[(Counter, u64)], timestamp_ms: i64) -> String {
    emf_document(levels, timestamp_ms).to_string()
}

fn emf_document(counts: &[(Counter, u64)], timestamp_ms: i64) -> serde_json::Value {
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[]],
                "Metrics": counts.iter().map(|(c, _)| json!({"Name": c.name(), "Unit": "Count"})).collect::<Vec<_>>()
            }]
        }
    });
    for (counter, n) in counts {
        doc[counter.name()] = json!(n);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_names_each_counted_metric() {
        let line =
            emf_line(&[(Counter::Enrolled, 3), (Counter::NotReady, 0), (Counter::TagCaseMismatch, 1)], 42).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["Enrolled"], 3);
        assert_eq!(v["TagCaseMismatch"], 1);
        assert!(v.get("NotReady").is_none());
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len(), 2);
        assert_eq!(v["_aws"]["Timestamp"], 42);
        assert_eq!(emf_line(&[(Counter::Enrolled, 0)], 1), None);
    }
}
