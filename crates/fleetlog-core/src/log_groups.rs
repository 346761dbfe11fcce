//! CloudWatch Logs naming and retention rules, as AWS enforces them.

use std::fmt;

/// The only retention periods CloudWatch Logs accepts, in days.
pub const LEGAL_RETENTION_DAYS: [u32; 23] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653, 4018];

/// The seed keeps logs "two days"; 2 is not legal, so the default is 3, the nearest legal value that
/// keeps at least two days.
pub const DEFAULT_RETENTION_DAYS: u32 = 3;

const MAX_LOG_GROUP_NAME: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "retention of {days} days is not accepted by CloudWatch Logs; use one of {LEGAL_RETENTION_DAYS:?} (the nearest at or above is {nearest:?})"
    )]
    IllegalRetention { days: u32, nearest: Option<u32> },
    #[error("log group name {name:?} is invalid: {reason}")]
    InvalidLogGroupName { name: String, reason: &'static str },
}

/// A retention period CloudWatch Logs accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionDays(u32);

impl RetentionDays {
    pub fn new(days: u32) -> Result<Self, NameError> {
        if LEGAL_RETENTION_DAYS.contains(&days) {
            Ok(Self(days))
        } else {
            let nearest = LEGAL_RETENTION_DAYS.iter().copied().find(|d| *d >= days);
            Err(NameError::IllegalRetention { days, nearest })
        }
    }

    pub fn days(self) -> u32 {
        self.0
    }
}

impl Default for RetentionDays {
    fn default() -> Self {
        Self(DEFAULT_RETENTION_DAYS)
    }
}

/// A log group name CloudWatch Logs accepts: `[.\-_/#A-Za-z0-9]+`, at most 512 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogGroupName(String);

impl LogGroupName {
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_LOG_GROUP_NAME {
            Some("it is longer than 512 characters")
        } else if !name.bytes().all(is_log_group_byte) {
            Some("only letters, digits and . - _ / # are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(NameError::InvalidLogGroupName { name, reason }),
            None => Ok(Self(name)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogGroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_log_group_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/' | b'#')
}

/// Makes free text (an account name) safe inside a log group name: every run of other characters
/// becomes one `-`, and leading/trailing dashes go.
pub fn sanitize_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// The seed's naming convention, `CCP-logs-${AccountName}-${AccountId}-${Region}`, made legal.
pub fn default_log_group_prefix(account_name: &str, account_id: &str, region: &str) -> String {
    let name = sanitize_component(account_name);
    let name = if name.is_empty() { "account".to_owned() } else { name };
    format!("CCP-logs-{name}-{}-{}", sanitize_component(account_id), sanitize_component(region))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_days_is_refused_and_three_is_suggested() {
        assert_eq!(RetentionDays::new(2), Err(NameError::IllegalRetention { days: 2, nearest: Some(3) }));
        assert_eq!(RetentionDays::default().days(), 3);
        assert_eq!(RetentionDays::new(30).map(RetentionDays::days), Ok(30));
        assert!(RetentionDays::new(5000).is_err());
    }

    #[test]
    fn log_group_names_follow_aws_rules() {
        assert!(LogGroupName::new("CCP-logs-acme-123456789012-eu-west-1/system").is_ok());
        assert!(LogGroupName::new("a#b.c_d").is_ok());
        assert!(LogGroupName::new("").is_err());
        assert!(LogGroupName::new("has space").is_err());
        assert!(LogGroupName::new("x".repeat(513)).is_err());
        assert!(LogGroupName::new("x".repeat(512)).is_ok());
    }

    #[test]
    fn account_names_are_sanitised_into_the_seed_convention() {
        assert_eq!(
            default_log_group_prefix("ACME Corp (prod)!", "123456789012", "eu-west-1"),
            "CCP-logs-ACME-Corp-prod-123456789012-eu-west-1"
        );
        assert_eq!(default_log_group_prefix("日本", "1", "r"), "CCP-logs-account-1-r");
        let prefix = default_log_group_prefix("Ünïcödé & ünsafe/\\name", "123456789012", "us-east-1");
        assert!(LogGroupName::new(prefix).is_ok());
    }
}
