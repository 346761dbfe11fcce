//! What enrolling one managed instance takes, decided from facts already read: which config
//! parameter it gets, whether the stored config may be used, and whether a command must be sent (and
//! as which attempt) or the instance is already where it should be.

use crate::agent_config::{self, AgentConfigSummary, ConfigPolicy};
use crate::commands::{CommandError, ConfigParameterName};
use crate::instance::Instance;
use crate::log_groups::LogGroupName;
use crate::record::{EnrollmentRecord, EnrollmentStatus};

/// The parameter an instance's config is read from: by platform and its profile tag.
pub fn config_parameter(
    instance: &Instance,
    profile_tag_key: &str,
    parameter_prefix: &str,
) -> Result<ConfigParameterName, CommandError> {
    let profile = instance.tags.get(profile_tag_key).map(String::as_str);
    ConfigParameterName::for_instance(parameter_prefix, instance.platform, profile)
}

/// A stored config (`None`: the parameter does not exist), parsed and held to the policy; the error
/// says why it cannot be used, in words for the DLQ.
pub fn usable_config(
    name: &str,
    stored: Option<(i64, &str)>,
    policy: &ConfigPolicy,
) -> Result<(i64, AgentConfigSummary), String> {
    let Some((version, text)) = stored else {
        return Err(format!(
            "agent config parameter {name} does not exist; publish it with `fleetlog configs publish`"
        ));
    };
    agent_config::summarize(text)
        .and_then(|summary| policy.check(&summary).map(|()| summary))
        .map(|summary| (version, summary))
        .map_err(|e| format!("parameter {name} (version {version}): {e}"))
}

/// What to do for one instance with its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to send: enrolled (or enrolling, or failed and waiting) with this config version.
    Current,
    /// Send the configure command, as this attempt, to set up these groups.
    Configure { log_groups: Vec<LogGroupName>, attempt: u32, retry_asked: bool },
}

/// Whether the instance needs its command (see [`EnrollmentRecord::is_current`]). `asked`: an
/// operator asked about it, which tries a failed instance again with a fresh set of attempts.
pub fn next_step(
    instance_id: &str,
    record: Option<&EnrollmentRecord>,
    parameter: &ConfigParameterName,
    version: i64,
    config: &AgentConfigSummary,
    now: i64,
    asked: bool,
) -> Result<Step, String> {
    let retry_asked = asked && record.is_some_and(|r| r.status == EnrollmentStatus::Failed);
    if !retry_asked && record.is_some_and(|r| r.is_current(parameter.as_str(), version, now)) {
        return Ok(Step::Current);
    }
    let log_groups = config.log_groups.iter().map(|g| g.for_instance(instance_id)).collect::<Result<Vec<_>, _>>();
    let attempt = if retry_asked { 1 } else { EnrollmentRecord::next_attempt(record, parameter.as_str(), version) };
    Ok(Step::Configure { log_groups: log_groups.map_err(|e| e.to_string())?, attempt, retry_asked })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::instance::{InstanceState, Platform};

    fn instance(tags: &[(&str, &str)]) -> Instance {
        Instance {
            id: "i-01234567".into(),
            state: InstanceState::Running,
            platform: Platform::Linux,
            architecture: "x86_64".into(),
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        }
    }

    const CONFIG: &str = r#"{"logs": {"logs_collected": {"files": {"collect_list": [
        {"file_path": "/var/log/x", "log_group_name": "G/{instance_id}"}]}}}}"#;

    #[test]
    fn the_profile_tag_picks_the_parameter() {
        let p = |tags| config_parameter(&instance(tags), "fleetlog:profile", "AmazonCloudWatch-fleetlog");
        assert_eq!(p(&[]).unwrap().as_str(), "AmazonCloudWatch-fleetlog-linux");
        assert_eq!(p(&[("fleetlog:profile", "web")]).unwrap().as_str(), "AmazonCloudWatch-fleetlog-linux-web");
        assert!(p(&[("fleetlog:profile", "Web Servers")]).is_err());
    }

    #[test]
    fn a_missing_or_refused_config_says_why() {
        let policy = ConfigPolicy::new("G", &[]);
        assert!(usable_config("P", None, &policy).unwrap_err().contains("P does not exist"));
        let outside = CONFIG.replace("G/", "H/");
        assert!(usable_config("P", Some((4, &outside)), &policy).unwrap_err().contains("parameter P (version 4)"));
        assert_eq!(usable_config("P", Some((4, CONFIG)), &policy).unwrap().0, 4);
    }

    #[test]
    fn a_command_is_sent_unless_the_record_is_current_or_an_operator_asks_again() {
        let policy = ConfigPolicy::new("G", &[]);
        let (_, config) = usable_config("P", Some((1, CONFIG)), &policy).unwrap();
        let parameter = ConfigParameterName::new("AmazonCloudWatch-fleetlog-linux").unwrap();
        let step = |record: Option<&EnrollmentRecord>, asked| {
            next_step("i-01234567", record, &parameter, 1, &config, 0, asked)
        };
        let group = LogGroupName::new("G/i-01234567").unwrap();
        assert_eq!(
            step(None, false),
            Ok(Step::Configure { log_groups: vec![group.clone()], attempt: 1, retry_asked: false })
        );
        let enrolled = EnrollmentRecord::sample(EnrollmentStatus::Enrolled);
        assert_eq!(step(Some(&enrolled), false), Ok(Step::Current));
        assert_eq!(step(Some(&enrolled), true), Ok(Step::Current), "asking again changes nothing for a healthy one");
        let given_up = EnrollmentRecord { attempts: 3, ..EnrollmentRecord::sample(EnrollmentStatus::Failed) };
        assert_eq!(step(Some(&given_up), false), Ok(Step::Current));
        assert_eq!(
            step(Some(&given_up), true),
            Ok(Step::Configure { log_groups: vec![group], attempt: 1, retry_asked: true })
        );
    }
}
