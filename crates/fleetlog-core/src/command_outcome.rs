//! What an agent command's result means for an enrollment: SSM's invocation statuses, the step that
//! failed and its output, and when a failed configure command is sent again.
//!
//! Results arrive as EventBridge "EC2 Command Invocation Status-change Notification" events, or from
//! asking SSM when a sweep finds a command whose outcome is overdue (events can be lost). Either way
//! the enroller turns them into a [`CommandReport`] and asks [`transition`] what to record.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::record::{EnrollmentRecord, EnrollmentStatus};

/// Longest excerpt of a failed step's output kept in the record (bytes, on a character boundary).
pub const MAX_OUTPUT_EXCERPT: usize = 1024;

/// An invocation's status, as SSM names it in events and in ListCommandInvocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvocationStatus {
    /// Pending, InProgress, Delayed, Cancelling: no outcome yet.
    Running(String),
    Success,
    /// Failed, TimedOut, Cancelled, Undeliverable, Terminated…: the command did not configure the agent.
    Failed(String),
}

impl InvocationStatus {
    pub fn parse(status: &str) -> Self {
        match status {
            "Success" => Self::Success,
            "Pending" | "InProgress" | "Delayed" | "Cancelling" => Self::Running(status.to_owned()),
            other => Self::Failed(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Success => "Success",
            Self::Running(s) | Self::Failed(s) => s,
        }
    }
}

/// One command's status on one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandReport {
    pub instance_id: String,
    pub command_id: String,
    pub status: InvocationStatus,
}

/// Why an instance's configure command failed, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandFailure {
    pub command_id: String,
    /// The invocation's status (Failed, TimedOut, …).
    pub status: String,
    /// The document step that failed (`installAgent`, `agentLinux`, …), when SSM names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The end of that step's output (see [`excerpt`]).
    #[serde(default)]
    pub output: String,
}

impl CommandFailure {
    /// One line for logs, DLQ reasons and `status`.
    pub fn describe(&self) -> String {
        let step = self.step.as_deref().map_or(String::new(), |s| format!(" in step {s}"));
        let output = self.output.trim();
        let output = if output.is_empty() { String::new() } else { format!(": {output}") };
        format!("agent command {} {}{step}{output}", self.command_id, self.status)
    }
}

/// The last [`MAX_OUTPUT_EXCERPT`] bytes of a step's output: scripts print the error they die of
/// last.
pub fn excerpt(output: &str) -> String {
    if output.len() <= MAX_OUTPUT_EXCERPT {
        return output.to_owned();
    }
    let mut start = output.len() - MAX_OUTPUT_EXCERPT;
    while !output.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &output[start..])
}

/// How often a failed configure command is sent again, and how long apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Commands sent in all for one config version before the instance is left `failed`.
    pub max_attempts: u32,
    /// Wait before the second attempt; each next wait is four times longer.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 3, first_delay: Duration::from_secs(120), max_delay: Duration::from_secs(900) }
    }
}

impl RetryPolicy {
    /// The wait after attempt number `attempt` (1-based) failed, or `None` when it was the last.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let exponent = attempt.saturating_sub(1).min(8);
        Some(self.first_delay.saturating_mul(4u32.saturating_pow(exponent)).min(self.max_delay))
    }
}

/// What a report means for the instance's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Not about the command the record is waiting for (an older command, a duplicate, no record).
    Ignore(&'static str),
    /// The command is still running.
    Pending,
    /// The agent is configured: record `enrolled`.
    Succeeded,
    /// Record the failure; `retry_at` (epoch seconds) is when the command is sent again, `None`
    /// when the attempts are used up.
    Failed { retry_at: Option<i64> },
    /// The failure is already recorded and its retry is due now: enroll the instance again.
    RetryDue,
    /// The failure is already recorded; its retry is due in this many seconds.
    RetryLater { seconds: i64 },
}

/// Decides what a report changes, from the record as it is now. Duplicate and out-of-order reports
/// change nothing, so deliveries can repeat.
pub fn transition(
    record: Option<&EnrollmentRecord>,
    report: &CommandReport,
    now: i64,
    policy: &RetryPolicy,
) -> Transition {
    let Some(record) = record else { return Transition::Ignore("no enrollment record") };
    if !record.command_ids.contains(&report.command_id) {
        return Transition::Ignore("not the instance's current command");
    }
    match (record.status, &report.status) {
        (EnrollmentStatus::Enrolling, InvocationStatus::Running(_)) => Transition::Pending,
        (EnrollmentStatus::Enrolling, InvocationStatus::Success) => Transition::Succeeded,
        (EnrollmentStatus::Enrolling, InvocationStatus::Failed(_)) => {
            let retry_at = policy
                .delay_after(record.attempts.max(1))
                .map(|d| now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
            Transition::Failed { retry_at }
        }
        (EnrollmentStatus::Failed, InvocationStatus::Failed(_)) => match record.retry_at {
            Some(at) if at <= now => Transition::RetryDue,
            Some(at) => Transition::RetryLater { seconds: at - now },
            None => Transition::Ignore("failure already recorded; no attempts left"),
        },
        _ => Transition::Ignore("already recorded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: EnrollmentStatus, attempts: u32, retry_at: Option<i64>) -> EnrollmentRecord {
        EnrollmentRecord { command_ids: vec!["cmd-2".into()], attempts, retry_at, ..EnrollmentRecord::sample(status) }
    }

    fn report(command_id: &str, status: &str) -> CommandReport {
        CommandReport {
            instance_id: "i-01234567".into(),
            command_id: command_id.into(),
            status: InvocationStatus::parse(status),
        }
    }

    #[test]
    fn statuses_parse_into_running_success_and_failure() {
        assert_eq!(InvocationStatus::parse("InProgress"), InvocationStatus::Running("InProgress".into()));
        assert_eq!(InvocationStatus::parse("Delayed"), InvocationStatus::Running("Delayed".into()));
        assert_eq!(InvocationStatus::parse("Success"), InvocationStatus::Success);
        for failed in ["Failed", "TimedOut", "Cancelled", "Undeliverable", "Terminated", "DeliveryTimedOut"] {
            assert_eq!(InvocationStatus::parse(failed), InvocationStatus::Failed(failed.into()), "{failed}");
        }
    }

    #[test]
    fn failed_attempts_are_retried_with_growing_waits_then_left_failed() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_after(1), Some(Duration::from_secs(120)));
        assert_eq!(p.delay_after(2), Some(Duration::from_secs(480)));
        assert_eq!(p.delay_after(3), None, "three attempts in all");
        let long = RetryPolicy { max_attempts: u32::MAX, ..p };
        assert_eq!(long.delay_after(5), Some(Duration::from_secs(900)), "capped");
        assert_eq!(long.delay_after(u32::MAX - 1), Some(Duration::from_secs(900)), "no overflow");
    }

    #[test]
    fn success_and_failure_of_the_current_command_are_recorded() {
        let p = RetryPolicy::default();
        let enrolling = record(EnrollmentStatus::Enrolling, 1, None);
        assert_eq!(transition(Some(&enrolling), &report("cmd-2", "Success"), 5_000, &p), Transition::Succeeded);
        assert_eq!(transition(Some(&enrolling), &report("cmd-2", "InProgress"), 5_000, &p), Transition::Pending);
        assert_eq!(
            transition(Some(&enrolling), &report("cmd-2", "Failed"), 5_000, &p),
            Transition::Failed { retry_at: Some(5_120) }
        );
        let last = record(EnrollmentStatus::Enrolling, 3, None);
        assert_eq!(
            transition(Some(&last), &report("cmd-2", "TimedOut"), 5_000, &p),
            Transition::Failed { retry_at: None }
        );
    }

    #[test]
    fn stale_duplicate_and_unrecorded_reports_change_nothing() {
        let p = RetryPolicy::default();
        let enrolling = record(EnrollmentStatus::Enrolling, 1, None);
        assert!(matches!(transition(Some(&enrolling), &report("cmd-1", "Failed"), 0, &p), Transition::Ignore(_)));
        assert!(matches!(transition(None, &report("cmd-2", "Success"), 0, &p), Transition::Ignore(_)));
        let enrolled = record(EnrollmentStatus::Enrolled, 1, None);
        assert!(matches!(transition(Some(&enrolled), &report("cmd-2", "Success"), 0, &p), Transition::Ignore(_)));
        assert!(matches!(transition(Some(&enrolled), &report("cmd-2", "InProgress"), 0, &p), Transition::Ignore(_)));
        let offboarded = record(EnrollmentStatus::Offboarded, 1, None);
        assert!(matches!(transition(Some(&offboarded), &report("cmd-2", "Failed"), 0, &p), Transition::Ignore(_)));
    }

    #[test]
    fn a_recorded_failure_is_retried_once_its_wait_is_over() {
        let p = RetryPolicy::default();
        let failed = record(EnrollmentStatus::Failed, 1, Some(5_120));
        assert_eq!(
            transition(Some(&failed), &report("cmd-2", "Failed"), 5_000, &p),
            Transition::RetryLater { seconds: 120 }
        );
        assert_eq!(transition(Some(&failed), &report("cmd-2", "Failed"), 5_120, &p), Transition::RetryDue);
        let given_up = record(EnrollmentStatus::Failed, 3, None);
        assert!(matches!(transition(Some(&given_up), &report("cmd-2", "Failed"), 9_999, &p), Transition::Ignore(_)));
    }

    #[test]
    fn excerpts_keep_the_end_of_the_output_on_a_character_boundary() {
        assert_eq!(excerpt("short"), "short");
        let long = format!("{}é{}", "a".repeat(2000), "error: no such file");
        let cut = excerpt(&long);
        assert!(cut.ends_with("error: no such file"));
        assert!(cut.len() <= MAX_OUTPUT_EXCERPT + '…'.len_utf8());
        let multibyte = "é".repeat(MAX_OUTPUT_EXCERPT);
        assert!(excerpt(&multibyte).starts_with('…'));
    }

    #[test]
    fn failures_describe_the_command_step_and_output() {
        let f = CommandFailure {
            command_id: "c1".into(),
            status: "Failed".into(),
            step: Some("installAgent".into()),
            output: "package not found\n".into(),
        };
        assert_eq!(f.describe(), "agent command c1 Failed in step installAgent: package not found");
        let bare = CommandFailure { step: None, output: String::new(), ..f };
        assert_eq!(bare.describe(), "agent command c1 Failed");
    }
}
