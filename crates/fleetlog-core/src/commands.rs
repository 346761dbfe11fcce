//! The SSM Run Command requests enrollment sends. Scripts are fixed text; the only value placed in
//! them is a Parameter Store name that has passed [`ConfigParameterName::new`].

use std::collections::BTreeMap;
use std::fmt;

use crate::instance::Platform;

pub const CONFIGURE_PACKAGE_DOCUMENT: &str = "AWS-ConfigureAWSPackage";
pub const SHELL_DOCUMENT: &str = "AWS-RunShellScript";
pub const POWERSHELL_DOCUMENT: &str = "AWS-RunPowerShellScript";
pub const AGENT_PACKAGE: &str = "AmazonCloudWatchAgent";
/// The agent's managed policy lets it read only parameters named like this.
pub const AGENT_PARAMETER_PREFIX: &str = "AmazonCloudWatch-";
const MAX_PARAMETER_NAME: usize = 1011;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(
        "parameter name {0:?} must start with {AGENT_PARAMETER_PREFIX:?} and use only letters, digits, '-', '_' and '.'"
    )]
    BadParameterName(String),
    #[error("profile tag value {0:?} must be 1-40 characters of lowercase letters, digits and '-'")]
    BadProfile(String),
    #[error("agent config file {0:?} must be named linux[-PROFILE].json or windows[-PROFILE].json")]
    BadConfigFileName(String),
}

/// A Parameter Store name the CloudWatch agent may read, and that is safe to place in a script.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigParameterName(String);

impl ConfigParameterName {
    pub fn new(name: impl Into<String>) -> Result<Self, CommandError> {
        let name = name.into();
        let ok = name.len() <= MAX_PARAMETER_NAME
            && name.strip_prefix(AGENT_PARAMETER_PREFIX).is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            });
        if ok { Ok(Self(name)) } else { Err(CommandError::BadParameterName(name)) }
    }

    /// `{prefix}-{platform}` or, for instances with a profile tag, `{prefix}-{platform}-{profile}`.
    pub fn for_instance(prefix: &str, platform: Platform, profile: Option<&str>) -> Result<Self, CommandError> {
        match profile {
            None => Self::new(format!("{prefix}-{platform}")),
            Some(p) if is_profile(p) => Self::new(format!("{prefix}-{platform}-{p}")),
            Some(p) => Err(CommandError::BadProfile(p.to_owned())),
        }
    }

    /// The parameter an `agent-configs/` file is published as: the file stem is `{platform}` or
    /// `{platform}-{profile}` (`linux.json`, `windows-iis.json`).
    pub fn for_config_file(prefix: &str, stem: &str) -> Result<(Platform, Option<String>, Self), CommandError> {
        let (platform, profile) = stem.split_once('-').map_or((stem, None), |(p, rest)| (p, Some(rest)));
        let platform = match platform {
            "linux" => Platform::Linux,
            "windows" => Platform::Windows,
            _ => return Err(CommandError::BadConfigFileName(stem.to_owned())),
        };
        let name = Self::for_instance(prefix, platform, profile)?;
        Ok((platform, profile.map(str::to_owned), name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConfigParameterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_profile(p: &str) -> bool {
    (1..=40).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// One SendCommand request, minus its targets. Equal specs can share one call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandSpec {
    pub document: &'static str,
    pub parameters: BTreeMap<String, Vec<String>>,
    pub comment: String,
}

/// Installs or updates the CloudWatch agent package (a no-op when it is current).
pub fn install_agent() -> CommandSpec {
    CommandSpec {
        document: CONFIGURE_PACKAGE_DOCUMENT,
        parameters: BTreeMap::from([
            ("action".to_owned(), vec!["Install".to_owned()]),
            ("name".to_owned(), vec![AGENT_PACKAGE.to_owned()]),
        ]),
        comment: "fleetlog: install CloudWatch agent".to_owned(),
    }
}

/// Fetches the agent config from Parameter Store and (re)starts the agent.
///
/// It is sent right after [`install_agent`]; Run Command does not order the two, so the script waits
/// on the instance (never in the Lambda) for the agent to be present.
pub fn configure_agent(platform: Platform, parameter: &ConfigParameterName, install_collectd: bool) -> CommandSpec {
    let (document, commands) = match platform {
        Platform::Linux => (SHELL_DOCUMENT, linux_script(parameter, install_collectd)),
        Platform::Windows => (POWERSHELL_DOCUMENT, windows_script(parameter)),
    };
    CommandSpec {
        document,
        parameters: BTreeMap::from([
            ("commands".to_owned(), commands),
            ("executionTimeout".to_owned(), vec!["900".to_owned()]),
        ]),
        comment: format!("fleetlog: configure CloudWatch agent ({platform})"),
    }
}

const LINUX_WAIT: [&str; 4] = [
    "set -eu",
    "CTL=/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl",
    "for i in $(seq 1 60); do [ -x \"$CTL\" ] && break; sleep 10; done",
    "[ -x \"$CTL\" ] || { echo 'CloudWatch agent not installed after 10 minutes' >&2; exit 1; }",
];

// collectd comes from EPEL on Amazon Linux 2 / RHEL, from the base repositories elsewhere.
const LINUX_COLLECTD: [&str; 7] = [
    "if ! command -v collectd >/dev/null 2>&1; then",
    "  if command -v amazon-linux-extras >/dev/null 2>&1; then amazon-linux-extras install -y epel; fi",
    "  if command -v dnf >/dev/null 2>&1; then dnf install -y collectd || { dnf install -y epel-release && dnf install -y collectd; }",
    "  elif command -v yum >/dev/null 2>&1; then yum install -y collectd || { yum install -y epel-release && yum install -y collectd; }",
    "  elif command -v apt-get >/dev/null 2>&1; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q collectd-core; fi",
    "fi",
    "mkdir -p /usr/share/collectd && touch /usr/share/collectd/types.db",
];

fn linux_script(parameter: &ConfigParameterName, install_collectd: bool) -> Vec<String> {
    let mut lines: Vec<String> = LINUX_WAIT.iter().map(|s| (*s).to_owned()).collect();
    if install_collectd {
        lines.extend(LINUX_COLLECTD.iter().map(|s| (*s).to_owned()));
    }
    lines.push(format!("\"$CTL\" -a fetch-config -m ec2 -s -c ssm:{parameter}"));
    lines
}

fn windows_script(parameter: &ConfigParameterName) -> Vec<String> {
    vec![
        "$ErrorActionPreference = 'Stop'".to_owned(),
        "$ctl = 'C:\\Program Files\\Amazon\\AmazonCloudWatchAgent\\amazon-cloudwatch-agent-ctl.ps1'".to_owned(),
        "for ($i = 0; $i -lt 60 -and -not (Test-Path $ctl); $i++) { Start-Sleep -Seconds 10 }".to_owned(),
        "if (-not (Test-Path $ctl)) { throw 'CloudWatch agent not installed after 10 minutes' }".to_owned(),
        format!("& $ctl -a fetch-config -m ec2 -s -c ssm:{parameter}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_map_to_parameters() {
        let (platform, profile, name) =
            ConfigParameterName::for_config_file("AmazonCloudWatch-fleetlog", "linux").unwrap();
        assert_eq!((platform, profile, name.as_str()), (Platform::Linux, None, "AmazonCloudWatch-fleetlog-linux"));
        let (platform, profile, name) =
            ConfigParameterName::for_config_file("AmazonCloudWatch-fleetlog", "windows-iis").unwrap();
        assert_eq!(platform, Platform::Windows);
        assert_eq!(profile.as_deref(), Some("iis"));
        assert_eq!(name.as_str(), "AmazonCloudWatch-fleetlog-windows-iis");
        assert!(matches!(
            ConfigParameterName::for_config_file("AmazonCloudWatch-fleetlog", "macos"),
            Err(CommandError::BadConfigFileName(_))
        ));
        assert!(matches!(
            ConfigParameterName::for_config_file("AmazonCloudWatch-fleetlog", "linux-Web"),
            Err(CommandError::BadProfile(_))
        ));
    }

    #[test]
    fn parameter_names_are_restricted_to_what_the_agent_may_read() {
        assert!(ConfigParameterName::new("AmazonCloudWatch-fleetlog-linux").is_ok());
        for bad in [
            "fleetlog-linux",
            "AmazonCloudWatch-",
            "AmazonCloudWatch-a b",
            "AmazonCloudWatch-x;reboot",
            "AmazonCloudWatch-$(id)",
            "AmazonCloudWatch-a/b",
        ] {
            assert!(ConfigParameterName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parameter_name_comes_from_platform_and_profile() {
        let p =
            ConfigParameterName::for_instance("AmazonCloudWatch-fleetlog", Platform::Windows, Some("web-1")).unwrap();
        assert_eq!(p.as_str(), "AmazonCloudWatch-fleetlog-windows-web-1");
        let p = ConfigParameterName::for_instance("AmazonCloudWatch-fleetlog", Platform::Linux, None).unwrap();
        assert_eq!(p.as_str(), "AmazonCloudWatch-fleetlog-linux");
        for bad in ["Web", "a;b", "", "$(x)", &"a".repeat(41)] {
            assert_eq!(
                ConfigParameterName::for_instance("AmazonCloudWatch-fleetlog", Platform::Linux, Some(bad)),
                Err(CommandError::BadProfile(bad.to_owned()))
            );
        }
    }

    #[test]
    fn install_uses_configure_package() {
        let spec = install_agent();
        assert_eq!(spec.document, "AWS-ConfigureAWSPackage");
        assert_eq!(spec.parameters["action"], ["Install"]);
        assert_eq!(spec.parameters["name"], ["AmazonCloudWatchAgent"]);
    }

    #[test]
    fn configure_scripts_are_fixed_text_plus_the_checked_name() {
        let name = ConfigParameterName::new("AmazonCloudWatch-fleetlog-linux").unwrap();
        let with = configure_agent(Platform::Linux, &name, true);
        let without = configure_agent(Platform::Linux, &name, false);
        assert_eq!(with.document, "AWS-RunShellScript");
        let script = with.parameters["commands"].join("\n");
        assert!(script.contains("collectd"));
        assert!(script.ends_with("fetch-config -m ec2 -s -c ssm:AmazonCloudWatch-fleetlog-linux"));
        assert!(!without.parameters["commands"].join("\n").contains("collectd"));
        let win = configure_agent(Platform::Windows, &name, true);
        assert_eq!(win.document, "AWS-RunPowerShellScript");
        assert!(!win.parameters["commands"].join("\n").contains("collectd"));
    }
}
