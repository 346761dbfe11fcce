//! What fleetlog remembers about an instance it enrolled: one item of the enrollment table, and what
//! it says about the instance's configuration.

use serde::{Deserialize, Serialize};

use crate::command_outcome::CommandFailure;

/// What fleetlog remembers about an instance it enrolled (one item in the enrollment table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentRecord {
    pub instance_id: String,
    pub status: EnrollmentStatus,
    pub platform: String,
    pub config_parameter: String,
    pub config_version: i64,
    #[serde(default)]
    pub command_ids: Vec<String>,
    #[serde(default)]
    pub log_groups: Vec<String>,
    #[serde(default)]
    pub alarm_names: Vec<String>,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// Configure commands sent for this config version, the current one included.
    #[serde(default)]
    pub attempts: u32,
    /// When the current command was sent (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<i64>,
    /// When a failed command is sent again (epoch seconds); `None` once the attempts are used up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<i64>,
    /// Why the last command failed (status `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<CommandFailure>,
    /// The newest log event time fleetlog's pipeline has carried for the instance (epoch
    /// milliseconds; see [`crate::freshness`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_log_at: Option<i64>,
    /// The instance's application and owner, as its tags said at enrollment or their last change (see
    /// [`crate::tags::Ownership`]): the ETL's `application` of its logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    /// Log groups and alarms are in place and the configure command was sent; its outcome is pending.
    Enrolling,
    /// The configure command succeeded on the instance.
    Enrolled,
    /// The configure command failed (see the record's `failure`); it is sent again at `retry_at`.
    Failed,
    Offboarded,
}

impl EnrollmentStatus {
    pub const ALL: [EnrollmentStatus; 4] = [Self::Enrolling, Self::Enrolled, Self::Failed, Self::Offboarded];

    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentStatus::Enrolling => "enrolling",
            EnrollmentStatus::Enrolled => "enrolled",
            EnrollmentStatus::Failed => "failed",
            EnrollmentStatus::Offboarded => "offboarded",
        }
    }
}

impl EnrollmentRecord {
    /// fleetlog has enrolled the instance (or is enrolling it) and has not offboarded it: its log
    /// groups and alarms are fleetlog's to keep or remove.
    pub fn is_active(&self) -> bool {
        self.status != EnrollmentStatus::Offboarded
    }

    /// Nothing to do for this configuration at `now` (epoch seconds): sent and pending, succeeded,
    /// or failed with its retry not due yet (or no attempts left).
    pub fn is_current(&self, parameter: &str, version: i64, now: i64) -> bool {
        let settled = match self.status {
            EnrollmentStatus::Enrolling | EnrollmentStatus::Enrolled => true,
            EnrollmentStatus::Failed => self.retry_at.is_none_or(|at| at > now),
            EnrollmentStatus::Offboarded => false,
        };
        settled && self.config_parameter == parameter && self.config_version == version
    }

    /// Whether the record names the application and owner the instance's tags name now (a retagged
    /// instance's record is brought up to date without a new command).
    pub fn holds_ownership(&self, ownership: &crate::tags::Ownership) -> bool {
        self.application == ownership.application && self.owner == ownership.owner
    }

    /// Still `enrolling` `after` seconds after its command was sent: the sweep asks SSM, in case the
    /// status-change event was lost.
    pub fn outcome_overdue(&self, now: i64, after: i64) -> bool {
        self.status == EnrollmentStatus::Enrolling && self.sent_at.is_some_and(|sent| now - sent >= after)
    }

    /// The attempt number of a command sent now for this configuration.
    pub fn next_attempt(record: Option<&Self>, parameter: &str, version: i64) -> u32 {
        match record {
            Some(r)
                if r.status == EnrollmentStatus::Failed
                    && r.config_parameter == parameter
                    && r.config_version == version =>
            {
                r.attempts.saturating_add(1)
            }
            _ => 1,
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
impl EnrollmentRecord {
    /// A Linux instance's record, for tests: config version 1, command `cmd-1` sent at 1,000 s, one
    /// attempt.
    pub fn sample(status: EnrollmentStatus) -> Self {
        Self {
            instance_id: "i-01234567".into(),
            status,
            platform: "linux".into(),
            config_parameter: "AmazonCloudWatch-fleetlog-linux".into(),
            config_version: 1,
            command_ids: vec!["cmd-1".into()],
            log_groups: vec![],
            alarm_names: vec![],
            updated_at: "2026-12-01T00:00:00Z".into(),
            attempts: 1,
            sent_at: Some(1_000),
            retry_at: None,
            failure: None,
            last_log_at: None,
            application: None,
            owner: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: EnrollmentStatus) -> EnrollmentRecord {
        EnrollmentRecord { config_version: 2, sent_at: Some(100), ..EnrollmentRecord::sample(status) }
    }

    #[test]
    fn a_record_is_current_only_for_the_same_parameter_and_version() {
        const P: &str = "AmazonCloudWatch-fleetlog-linux";
        for status in [EnrollmentStatus::Enrolling, EnrollmentStatus::Enrolled] {
            let r = record(status);
            assert!(r.is_current(P, 2, 0));
            assert!(!r.is_current(P, 3, 0));
            assert!(!r.is_current("AmazonCloudWatch-fleetlog-linux-web", 2, 0));
        }
        assert!(!record(EnrollmentStatus::Offboarded).is_current(P, 2, 0));
    }

    #[test]
    fn a_failed_record_is_current_until_its_retry_is_due() {
        const P: &str = "AmazonCloudWatch-fleetlog-linux";
        let waiting = EnrollmentRecord { retry_at: Some(500), ..record(EnrollmentStatus::Failed) };
        assert!(waiting.is_current(P, 2, 499));
        assert!(!waiting.is_current(P, 2, 500));
        assert!(record(EnrollmentStatus::Failed).is_current(P, 2, i64::MAX), "no attempts left: left failed");
        assert!(!record(EnrollmentStatus::Failed).is_current(P, 3, 0), "a new config version is tried afresh");
        assert!(record(EnrollmentStatus::Failed).is_active(), "a failed instance is offboarded like others");
    }

    #[test]
    fn attempts_count_per_configuration_and_overdue_outcomes_are_noticed() {
        const P: &str = "AmazonCloudWatch-fleetlog-linux";
        let failed = EnrollmentRecord { attempts: 2, ..record(EnrollmentStatus::Failed) };
        assert_eq!(EnrollmentRecord::next_attempt(Some(&failed), P, 2), 3);
        assert_eq!(EnrollmentRecord::next_attempt(Some(&failed), P, 3), 1);
        assert_eq!(EnrollmentRecord::next_attempt(Some(&record(EnrollmentStatus::Enrolled)), P, 2), 1);
        assert_eq!(EnrollmentRecord::next_attempt(None, P, 2), 1);
        let enrolling = record(EnrollmentStatus::Enrolling);
        assert!(!enrolling.outcome_overdue(699, 600));
        assert!(enrolling.outcome_overdue(700, 600));
        assert!(!record(EnrollmentStatus::Enrolled).outcome_overdue(10_000, 600));
    }
}
