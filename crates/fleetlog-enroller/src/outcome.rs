//! What happened to each instance in one run, and how that maps onto an SQS message's fate.

use std::time::Duration;

use fleetlog_aws::{AwsError, ErrorKind};
use fleetlog_core::decision::SkipReason;
use fleetlog_core::metrics::Counter;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Enrolled {
        config_parameter: String,
        config_version: i64,
        command_ids: Vec<String>,
    },
    AlreadyEnrolled {
        config_parameter: String,
        config_version: i64,
    },
    /// The agent command succeeded: the instance is `enrolled`.
    Configured {
        command_id: String,
    },
    /// The agent command failed and the failure is recorded; it is sent again in
    /// `retry_in_seconds`, or (`None`) the attempts are used up and the instance stays `failed`.
    CommandFailed {
        reason: String,
        retry_in_seconds: Option<u64>,
    },
    /// A failure recorded earlier, whose retry is not due yet (a repeated report).
    RetryPending {
        reason: String,
        retry_in_seconds: u64,
    },
    Offboarded {
        alarms_deleted: Vec<String>,
    },
    /// A large sweep sent the instance a request of its own on the enroll queue.
    FannedOut,
    /// Enrolled with the current config, but its log groups or alarms had drifted: repaired.
    Repaired {
        repairs: Vec<String>,
    },
    Skipped {
        reason: String,
    },
    /// Tagged with the right key and value in the wrong case: reported, never enrolled.
    TagCaseMismatch {
        key: String,
        value: String,
    },
    /// SSM has not registered the instance yet.
    NotReady {
        reason: String,
    },
    /// Another run is enrolling the instance right now (duplicate deliveries): retried later, when
    /// its record is there. Not a failure.
    Deferred {
        reason: String,
    },
    Failed {
        transient: bool,
        reason: String,
    },
}

impl Outcome {
    pub fn skipped(reason: &SkipReason) -> Self {
        let reason = match reason {
            SkipReason::NotManaged => "not tagged for management".to_owned(),
            SkipReason::TagCaseMismatch { key, value } => {
                return Outcome::TagCaseMismatch { key: key.clone(), value: value.clone() };
            }
            SkipReason::NotRunning(state) => format!("not running ({state:?})"),
            SkipReason::Unknown => "not found in EC2 and not enrolled".to_owned(),
        };
        Outcome::Skipped { reason }
    }

    pub fn from_error(err: &AwsError) -> Self {
        match err.kind {
            ErrorKind::NotReady => Outcome::NotReady { reason: err.to_string() },
            ErrorKind::Transient => Outcome::Failed { transient: true, reason: err.to_string() },
            ErrorKind::Permanent => Outcome::Failed { transient: false, reason: err.to_string() },
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Outcome::Failed { transient: false, reason: reason.into() }
    }
}

/// The fate of one delivered event, from the outcomes of the instances it named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// Retry the whole event later (transient failure).
    Retry(String),
    /// Retry with readiness backoff.
    NotReady(String),
    /// Deliver the message again after this long (a failed command's retry).
    Backoff(Duration),
    /// Retrying cannot help: dead-letter with this reason.
    DeadLetter(String),
}

/// What an outcome means for the message that brought it, and what it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    pub verdict: Verdict,
    pub counters: &'static [Counter],
}

impl Outcome {
    /// The outcome's [`Effect`]: one match for both, so no outcome gets a fate but no count.
    pub fn effect(&self) -> Effect {
        use Counter as C;
        let (verdict, counters): (Verdict, &'static [Counter]) = match self {
            Outcome::Enrolled { .. } => (Verdict::Done, &[C::Enrolled]),
            Outcome::AlreadyEnrolled { .. } => (Verdict::Done, &[C::AlreadyEnrolled]),
            Outcome::Configured { .. } => (Verdict::Done, &[C::AgentConfigured]),
            Outcome::Offboarded { .. } => (Verdict::Done, &[C::Offboarded]),
            Outcome::Repaired { .. } => (Verdict::Done, &[C::InstancesRepaired]),
            Outcome::TagCaseMismatch { .. } => (Verdict::Done, &[C::TagCaseMismatch]),
            Outcome::Skipped { .. } | Outcome::FannedOut => (Verdict::Done, &[]),
            Outcome::Failed { transient: true, reason } => (Verdict::Retry(reason.clone()), &[C::EnrollmentFailed]),
            Outcome::Failed { transient: false, reason } => {
                (Verdict::DeadLetter(reason.clone()), &[C::EnrollmentFailed])
            }
            Outcome::NotReady { reason } => (Verdict::NotReady(reason.clone()), &[C::NotReady]),
            Outcome::Deferred { reason } => (Verdict::Retry(reason.clone()), &[C::EnrollmentDeferred]),
            // A second past the retry time, so the redelivered message finds the retry due.
            Outcome::CommandFailed { retry_in_seconds: Some(s), .. } => {
                (Verdict::Backoff(Duration::from_secs(s.saturating_add(1))), &[C::AgentCommandFailed])
            }
            Outcome::RetryPending { retry_in_seconds: s, .. } => {
                (Verdict::Backoff(Duration::from_secs(s.saturating_add(1))), &[])
            }
            Outcome::CommandFailed { retry_in_seconds: None, reason } => (
                Verdict::DeadLetter(format!("agent command failed on every attempt: {reason}")),
                &[C::AgentCommandFailed, C::EnrollmentFailed],
            ),
        };
        Effect { verdict, counters }
    }
}

pub fn verdict(outcome: &Outcome) -> Verdict {
    outcome.effect().verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_command_backs_off_until_its_last_attempt_then_dead_letters_and_counts_as_failed() {
        let retried = Outcome::CommandFailed { reason: "r".into(), retry_in_seconds: Some(120) };
        assert_eq!(
            retried.effect(),
            Effect { verdict: Verdict::Backoff(Duration::from_secs(121)), counters: &[Counter::AgentCommandFailed] }
        );
        let last = Outcome::CommandFailed { reason: "step agentLinux".into(), retry_in_seconds: None };
        let effect = last.effect();
        assert!(
            matches!(&effect.verdict, Verdict::DeadLetter(r) if r.contains("every attempt") && r.contains("agentLinux"))
        );
        assert_eq!(effect.counters, [Counter::AgentCommandFailed, Counter::EnrollmentFailed]);
        let repeat = Outcome::RetryPending { reason: "r".into(), retry_in_seconds: 5 };
        assert_eq!(repeat.effect().counters, [], "a repeated report is not counted again");
    }
}
