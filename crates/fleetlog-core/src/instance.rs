//! The facts about an EC2 instance that enrollment decisions depend on.

use std::collections::BTreeMap;
use std::fmt;

/// Operating-system family, which selects the SSM document and the agent configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Platform {
    Linux,
    Windows,
}

impl Platform {
    /// EC2 reports `platform = "windows"` for Windows and nothing for everything else.
    pub fn from_ec2(platform: Option<&str>) -> Self {
        match platform {
            Some(p) if p.eq_ignore_ascii_case("windows") => Platform::Windows,
            _ => Platform::Linux,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Windows => "windows",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// EC2 instance lifecycle state, as named by EC2 and by its state-change events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
    Other(String),
}

impl InstanceState {
    pub fn parse(state: &str) -> Self {
        match state {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            "shutting-down" => Self::ShuttingDown,
            "terminated" => Self::Terminated,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Other(other) => other,
        }
    }

    /// The instance is gone or going for good: its enrollment ends.
    pub fn is_ending(&self) -> bool {
        matches!(self, Self::ShuttingDown | Self::Terminated)
    }
}

/// One DescribeInstances read of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub state: InstanceState,
    pub platform: Platform,
    pub architecture: String,
    pub tags: BTreeMap<String, String>,
}

/// EC2 instance IDs are `i-` followed by 8 or 17 lowercase hex digits.
pub fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_recognised() {
        assert!(is_instance_id("i-0123456789abcdef0"));
        assert!(is_instance_id("i-01234567"));
        assert!(!is_instance_id("i-0123456789ABCDEF0"));
        assert!(!is_instance_id("i-123"));
        assert!(!is_instance_id("vol-0123456789abcdef0"));
        assert!(!is_instance_id("i-0123456789abcdef0; rm -rf /"));
    }

    #[test]
    fn platform_comes_from_the_ec2_platform_field() {
        assert_eq!(Platform::from_ec2(Some("windows")), Platform::Windows);
        assert_eq!(Platform::from_ec2(Some("Windows")), Platform::Windows);
        assert_eq!(Platform::from_ec2(None), Platform::Linux);
    }

    #[test]
    fn states_parse_and_ending_states_are_known() {
        assert_eq!(InstanceState::parse("running"), InstanceState::Running);
        assert!(InstanceState::parse("terminated").is_ending());
        assert!(InstanceState::parse("shutting-down").is_ending());
        assert!(!InstanceState::parse("stopped").is_ending());
        assert_eq!(InstanceState::parse("weird"), InstanceState::Other("weird".into()));
    }
}
