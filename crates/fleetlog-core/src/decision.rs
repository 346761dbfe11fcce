//! The enrollment decision for one instance, from its current facts and its enrollment record.

use crate::instance::{Instance, InstanceState};
use crate::record::EnrollmentRecord;
use crate::tags::{ManagementTag, TagVerdict};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Managed and running: make sure it is enrolled with the current config.
    Enroll,
    /// Enrolled but no longer managed, or gone: remove its alarms and end the record. Logs stay.
    Offboard,
    Skip(SkipReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    NotManaged,
    /// Tagged with the right key and value in the wrong case: reported, never enrolled.
    TagCaseMismatch {
        key: String,
        value: String,
    },
    /// Managed but not running (pending, stopped…): a later `running` event or reconcile enrolls it.
    NotRunning(InstanceState),
    /// Not found in EC2 and never enrolled.
    Unknown,
}

/// Decides from a fresh read of the instance (`None`: EC2 no longer knows it).
pub fn decide(instance: Option<&Instance>, tag: &ManagementTag, record: Option<&EnrollmentRecord>) -> Decision {
    let enrolled = record.is_some_and(EnrollmentRecord::is_active);
    let Some(instance) = instance else {
        return if enrolled { Decision::Offboard } else { Decision::Skip(SkipReason::Unknown) };
    };
    if instance.state.is_ending() {
        return if enrolled {
            Decision::Offboard
        } else {
            Decision::Skip(SkipReason::NotRunning(instance.state.clone()))
        };
    }
    match tag.verdict(&instance.tags) {
        TagVerdict::Managed if instance.state == InstanceState::Running => Decision::Enroll,
        TagVerdict::Managed => Decision::Skip(SkipReason::NotRunning(instance.state.clone())),
        _ if enrolled => Decision::Offboard,
        TagVerdict::CaseMismatch { key, value } => Decision::Skip(SkipReason::TagCaseMismatch { key, value }),
        TagVerdict::NotManaged => Decision::Skip(SkipReason::NotManaged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::Platform;
    use crate::record::EnrollmentStatus;
    use std::collections::BTreeMap;

    fn tag() -> ManagementTag {
        ManagementTag { key: "fleetlog:managed".into(), value: "true".into() }
    }

    fn instance(state: &str, tags: &[(&str, &str)]) -> Instance {
        Instance {
            id: "i-01234567".into(),
            state: InstanceState::parse(state),
            platform: Platform::Linux,
            architecture: "x86_64".into(),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }
    }

    fn record(status: EnrollmentStatus) -> EnrollmentRecord {
        EnrollmentRecord { config_version: 2, sent_at: Some(100), ..EnrollmentRecord::sample(status) }
    }

    const MANAGED: &[(&str, &str)] = &[("fleetlog:managed", "true")];

    #[test]
    fn tagged_running_instances_enroll() {
        assert_eq!(decide(Some(&instance("running", MANAGED)), &tag(), None), Decision::Enroll);
        let enrolled = record(EnrollmentStatus::Enrolled);
        assert_eq!(decide(Some(&instance("running", MANAGED)), &tag(), Some(&enrolled)), Decision::Enroll);
    }

    #[test]
    fn untagged_and_wrong_case_instances_are_skipped() {
        assert_eq!(decide(Some(&instance("running", &[])), &tag(), None), Decision::Skip(SkipReason::NotManaged));
        assert_eq!(
            decide(Some(&instance("running", &[("Fleetlog:Managed", "true")])), &tag(), None),
            Decision::Skip(SkipReason::TagCaseMismatch { key: "Fleetlog:Managed".into(), value: "true".into() })
        );
    }

    #[test]
    fn managed_but_not_running_waits() {
        assert_eq!(
            decide(Some(&instance("pending", MANAGED)), &tag(), None),
            Decision::Skip(SkipReason::NotRunning(InstanceState::Pending))
        );
        let enrolled = record(EnrollmentStatus::Enrolled);
        assert_eq!(
            decide(Some(&instance("stopped", MANAGED)), &tag(), Some(&enrolled)),
            Decision::Skip(SkipReason::NotRunning(InstanceState::Stopped))
        );
    }

    #[test]
    fn tag_removal_termination_and_disappearance_offboard_enrolled_instances() {
        let enrolled = record(EnrollmentStatus::Enrolled);
        assert_eq!(decide(Some(&instance("running", &[])), &tag(), Some(&enrolled)), Decision::Offboard);
        assert_eq!(decide(Some(&instance("terminated", MANAGED)), &tag(), Some(&enrolled)), Decision::Offboard);
        assert_eq!(decide(Some(&instance("shutting-down", MANAGED)), &tag(), Some(&enrolled)), Decision::Offboard);
        assert_eq!(decide(None, &tag(), Some(&enrolled)), Decision::Offboard);
        assert_eq!(
            decide(Some(&instance("running", &[("fleetlog:managed", "TRUE")])), &tag(), Some(&enrolled)),
            Decision::Offboard
        );
    }

    #[test]
    fn offboarded_or_unknown_instances_are_left_alone() {
        let ended = record(EnrollmentStatus::Offboarded);
        assert_eq!(
            decide(Some(&instance("terminated", MANAGED)), &tag(), Some(&ended)),
            Decision::Skip(SkipReason::NotRunning(InstanceState::Terminated))
        );
        assert_eq!(decide(None, &tag(), Some(&ended)), Decision::Skip(SkipReason::Unknown));
        assert_eq!(decide(None, &tag(), None), Decision::Skip(SkipReason::Unknown));
    }
}
