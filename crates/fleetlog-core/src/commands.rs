//! The SSM Run Command requests enrollment sends, and the Command document they run.
//!
//! fleetlog runs one document of its own (the stack creates it from [`agent_document`]): install the
//! agent package, then, per platform, install collectd where the config needs it and fetch the config.
//! Its inputs are fenced by `allowedValues` and `allowedPattern`, so the role that may send it can
//! do exactly that and nothing else on an instance, whatever the sender puts in the parameters.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};

use crate::instance::Platform;

pub const AGENT_PACKAGE: &str = "AmazonCloudWatchAgent";
/// The agent's managed policy lets it read only parameters named like this.
pub const AGENT_PARAMETER_PREFIX: &str = "AmazonCloudWatch-";
/// The document's `configParameter` must match this: [`ConfigParameterName`]'s rule, as SSM checks it.
pub const CONFIG_PARAMETER_PATTERN: &str = "^AmazonCloudWatch-[A-Za-z0-9_.-]{1,994}$";
/// The version of fleetlog's document a command runs unless the settings pin one.
pub const DEFAULT_DOCUMENT_VERSION: &str = "$DEFAULT";
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

/// What a command asks of the agent on an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AgentAction {
    /// Install (or update) the agent, load the config and (re)start it.
    Configure,
    /// Stop the agent, so the instance ships no more logs (it stays installed).
    Stop,
}

impl AgentAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Configure => "configure",
            Self::Stop => "stop",
        }
    }
}

/// One SendCommand request, minus its targets. Equal specs can share one call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandSpec {
    pub document: String,
    pub document_version: String,
    pub parameters: BTreeMap<String, Vec<String>>,
    pub comment: String,
}

/// fleetlog's document, by name and version (a version number, or `$DEFAULT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDocument {
    pub name: String,
    pub version: String,
}

impl AgentDocument {
    /// Installs the agent, installs collectd when the config needs it (Linux), fetches the config
    /// from Parameter Store and (re)starts the agent: one command, its steps in order on the instance.
    pub fn configure(
        &self,
        platform: Platform,
        parameter: &ConfigParameterName,
        install_collectd: bool,
    ) -> CommandSpec {
        let collectd = if install_collectd && platform == Platform::Linux { "install" } else { "skip" };
        self.spec(
            AgentAction::Configure,
            parameter,
            collectd,
            format!("fleetlog: configure CloudWatch agent ({platform})"),
        )
    }

    /// Stops the agent (offboarding). The parameter is the one it was configured with.
    pub fn stop(&self, parameter: &ConfigParameterName) -> CommandSpec {
        self.spec(AgentAction::Stop, parameter, "skip", "fleetlog: stop CloudWatch agent".to_owned())
    }

    fn spec(
        &self,
        action: AgentAction,
        parameter: &ConfigParameterName,
        collectd: &str,
        comment: String,
    ) -> CommandSpec {
        CommandSpec {
            document: self.name.clone(),
            document_version: self.version.clone(),
            parameters: BTreeMap::from([
                ("action".to_owned(), vec![action.as_str().to_owned()]),
                ("configParameter".to_owned(), vec![parameter.to_string()]),
                ("collectd".to_owned(), vec![collectd.to_owned()]),
            ]),
            comment,
        }
    }
}

// collectd comes from EPEL on Amazon Linux 2 / RHEL, from the base repositories elsewhere.
const LINUX_SCRIPT: &[&str] = &[
    "set -eu",
    "CTL=/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl",
    "if [ '{{ action }}' = stop ]; then",
    "  if [ -x \"$CTL\" ]; then \"$CTL\" -a stop; else echo 'CloudWatch agent not installed; nothing to stop'; fi",
    "  exit 0",
    "fi",
    "if [ '{{ collectd }}' = install ] && ! command -v collectd >/dev/null 2>&1; then",
    "  if command -v amazon-linux-extras >/dev/null 2>&1; then amazon-linux-extras install -y epel; fi",
    "  if command -v dnf >/dev/null 2>&1; then dnf install -y collectd || { dnf install -y epel-release && dnf install -y collectd; }",
    "  elif command -v yum >/dev/null 2>&1; then yum install -y collectd || { yum install -y epel-release && yum install -y collectd; }",
    "  elif command -v apt-get >/dev/null 2>&1; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q collectd-core; fi",
    "fi",
    "if [ '{{ collectd }}' = install ]; then mkdir -p /usr/share/collectd && touch /usr/share/collectd/types.db; fi",
    "\"$CTL\" -a fetch-config -m ec2 -s -c 'ssm:{{ configParameter }}'",
];

const WINDOWS_SCRIPT: &[&str] = &[
    "$ErrorActionPreference = 'Stop'",
    "$ctl = 'C:\\Program Files\\Amazon\\AmazonCloudWatchAgent\\amazon-cloudwatch-agent-ctl.ps1'",
    "if ('{{ action }}' -eq 'stop') {",
    "  if (Test-Path $ctl) { & $ctl -a stop } else { 'CloudWatch agent not installed; nothing to stop' }",
    "  exit 0",
    "}",
    "& $ctl -a fetch-config -m ec2 -s -c 'ssm:{{ configParameter }}'",
];

/// The SSM Command document (schema 2.2) fleetlog's commands run; the stack's `AgentDocument` resource
/// holds exactly this (tests/integration/infra.rs checks), and `fleetlog local` creates it.
///
/// Steps run in order on the instance, so the agent is installed before it is configured. The
/// install step is skipped when stopping (a precondition on the `action` parameter).
pub fn agent_document() -> Value {
    let lines = |script: &[&str]| script.iter().map(|l| Value::String((*l).to_owned())).collect::<Vec<_>>();
    json!({
        "schemaVersion": "2.2",
        "description": "fleetlog: install, configure or stop the CloudWatch agent with a config from Parameter Store.",
        "parameters": {
            "action": {
                "type": "String",
                "description": "configure: install the agent, load the config and (re)start it. stop: stop the agent.",
                "allowedValues": [AgentAction::Configure.as_str(), AgentAction::Stop.as_str()],
                "default": AgentAction::Configure.as_str()
            },
            "configParameter": {
                "type": "String",
                "description": "The Parameter Store name of the agent config (AmazonCloudWatch-...).",
                "allowedPattern": CONFIG_PARAMETER_PATTERN
            },
            "collectd": {
                "type": "String",
                "description": "install: the config reads collectd metrics, so install collectd first (Linux).",
                "allowedValues": ["install", "skip"],
                "default": "skip"
            }
        },
        "mainSteps": [
            {
                "action": "aws:configurePackage",
                "name": "installAgent",
                "precondition": { "StringEquals": ["{{ action }}", AgentAction::Configure.as_str()] },
                "inputs": { "name": AGENT_PACKAGE, "action": "Install" }
            },
            {
                "action": "aws:runShellScript",
                "name": "agentLinux",
                "precondition": { "StringEquals": ["platformType", "Linux"] },
                "inputs": { "runCommand": lines(LINUX_SCRIPT), "timeoutSeconds": "900" }
            },
            {
                "action": "aws:runPowerShellScript",
                "name": "agentWindows",
                "precondition": { "StringEquals": ["platformType", "Windows"] },
                "inputs": { "runCommand": lines(WINDOWS_SCRIPT), "timeoutSeconds": "900" }
            }
        ]
    })
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

    fn document() -> AgentDocument {
        AgentDocument { name: "fleetlog-agent".into(), version: DEFAULT_DOCUMENT_VERSION.into() }
    }

    #[test]
    fn configure_and_stop_send_fleetlogs_document_with_fenced_parameters() {
        let name = ConfigParameterName::new("AmazonCloudWatch-fleetlog-linux").unwrap();
        let linux = document().configure(Platform::Linux, &name, true);
        assert_eq!((linux.document.as_str(), linux.document_version.as_str()), ("fleetlog-agent", "$DEFAULT"));
        assert_eq!(linux.parameters["action"], ["configure"]);
        assert_eq!(linux.parameters["configParameter"], ["AmazonCloudWatch-fleetlog-linux"]);
        assert_eq!(linux.parameters["collectd"], ["install"]);
        // collectd is a Linux package; Windows never installs it.
        assert_eq!(document().configure(Platform::Windows, &name, true).parameters["collectd"], ["skip"]);
        assert_eq!(document().configure(Platform::Linux, &name, false).parameters["collectd"], ["skip"]);
        let stop = document().stop(&name);
        assert_eq!(stop.parameters["action"], ["stop"]);
        // Every value sent is one the document admits.
        let doc = agent_document();
        for spec in [linux, stop] {
            for (key, values) in &spec.parameters {
                let declared = &doc["parameters"][key];
                assert!(!declared.is_null(), "{key} is not a parameter of the document");
                if let Some(allowed) = declared["allowedValues"].as_array() {
                    assert!(allowed.iter().any(|a| a == &values[0]), "{key}={values:?}");
                }
            }
        }
    }

    /// SSM checks `allowedPattern` (the emulator does not): this is that check, and it admits exactly
    /// the names [`ConfigParameterName`] admits, so nothing a shell could read as code reaches the script.
    fn matches_parameter_pattern(value: &str) -> bool {
        assert_eq!(CONFIG_PARAMETER_PATTERN, "^AmazonCloudWatch-[A-Za-z0-9_.-]{1,994}$");
        value.strip_prefix("AmazonCloudWatch-").is_some_and(|rest| {
            (1..=994).contains(&rest.len())
                && rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        })
    }

    #[test]
    fn the_documents_pattern_admits_what_parameter_names_admit() {
        for name in ["AmazonCloudWatch-fleetlog-linux", "AmazonCloudWatch-a.b_c-1"] {
            assert!(ConfigParameterName::new(name).is_ok() && matches_parameter_pattern(name), "{name}");
        }
        for bad in [
            "AmazonCloudWatch-x';reboot;'",
            "AmazonCloudWatch-$(id)",
            "fleetlog-linux",
            "AmazonCloudWatch-",
            "AmazonCloudWatch-a b",
        ] {
            assert!(ConfigParameterName::new(bad).is_err() && !matches_parameter_pattern(bad), "{bad}");
        }
        let longest = format!("AmazonCloudWatch-{}", "a".repeat(994));
        assert!(ConfigParameterName::new(longest.as_str()).is_ok() && matches_parameter_pattern(&longest));
    }

    #[test]
    fn the_document_installs_before_it_configures_and_quotes_its_inputs() {
        let doc = agent_document();
        let steps = doc["mainSteps"].as_array().unwrap();
        let actions: Vec<&str> = steps.iter().map(|s| s["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["aws:configurePackage", "aws:runShellScript", "aws:runPowerShellScript"]);
        assert_eq!(steps[0]["inputs"]["name"], AGENT_PACKAGE);
        for step in &steps[1..] {
            let script = step["inputs"]["runCommand"].as_array().unwrap();
            let text: Vec<&str> = script.iter().map(|l| l.as_str().unwrap()).collect();
            let text = text.join("\n");
            assert!(text.contains("fetch-config -m ec2 -s -c 'ssm:{{ configParameter }}'"), "{text}");
            // The old wait for a separately sent install command is gone: the steps are ordered.
            assert!(!text.contains("sleep") && !text.contains("Start-Sleep"), "{text}");
            // Every input appears inside single quotes only.
            for input in ["{{ action }}", "{{ collectd }}", "{{ configParameter }}"] {
                for (i, _) in text.match_indices(input) {
                    let before = &text[..i];
                    assert!(before.ends_with('\'') || before.ends_with("'ssm:"), "{input} unquoted in {text}");
                }
            }
        }
    }
}
