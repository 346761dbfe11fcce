//! What differs between what fleetlog set up for an instance and what is there now: log groups whose
//! retention, KMS key or subscription filter were changed by hand, and alarms deleted or left over
//! from a config that no longer collects their metric. The enroller repairs it; `reconcile --dry-run`
//! lists it.

use std::collections::BTreeSet;
use std::fmt;

use crate::log_groups::RetentionDays;
use crate::settings::{SubscriptionDestination, SubscriptionMode};

/// A log group as CloudWatch Logs describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupState {
    /// `None`: logs never expire.
    pub retention_days: Option<i32>,
    pub kms_key_id: Option<String>,
    /// fleetlog's filter (by its name), if there is one.
    pub filter: Option<FilterState>,
    /// Filters with other names.
    pub other_filters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterState {
    pub destination_arn: String,
    pub pattern: String,
    pub role_arn: Option<String>,
}

/// What a log group fleetlog manages must be.
#[derive(Debug, Clone, Copy)]
pub struct GroupSpec<'a> {
    pub retention: RetentionDays,
    pub kms_key_arn: Option<&'a str>,
    pub subscription: &'a SubscriptionDestination,
}

/// One difference, and so one repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    GroupMissing,
    Retention {
        from: Option<i32>,
        to: u32,
    },
    KmsKey {
        to: String,
    },
    FilterMissing,
    FilterAltered,
    /// fleetlog's filter on a group the account policy delivers: each event would arrive twice.
    FilterLeftOver,
    AlarmMissing(String),
    AlarmStale(String),
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::GroupMissing => f.write_str("log group missing"),
            Drift::Retention { from: Some(days), to } => write!(f, "retention {days} → {to}"),
            Drift::Retention { from: None, to } => write!(f, "retention never expires → {to}"),
            Drift::KmsKey { to } => write!(f, "KMS key not applied ({to})"),
            Drift::FilterMissing => f.write_str("filter missing"),
            Drift::FilterAltered => f.write_str("filter altered"),
            Drift::FilterLeftOver => f.write_str("filter left over (the account policy delivers)"),
            Drift::AlarmMissing(name) => write!(f, "alarm missing: {name}"),
            Drift::AlarmStale(name) => write!(f, "alarm stale: {name}"),
        }
    }
}

/// Subscription filters CloudWatch Logs allows on one log group.
pub const MAX_SUBSCRIPTION_FILTERS: usize = 2;

/// fleetlog's filter cannot be added: the group already holds as many filters as CloudWatch Logs
/// allows, none of them fleetlog's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "log group {group} already has {MAX_SUBSCRIPTION_FILTERS} subscription filters ({others:?}), the most CloudWatch Logs allows; fleetlog never removes filters it did not create, so remove one or exclude this group"
)]
pub struct FilterLimitReached {
    pub group: String,
    pub others: Vec<String>,
}

/// Whether repairing `drift` would add a filter to a group with no room for one.
pub fn filter_room(group: &str, state: Option<&GroupState>, drift: &[Drift]) -> Result<(), FilterLimitReached> {
    let others = state.map(|s| s.other_filters.as_slice()).unwrap_or_default();
    if drift.contains(&Drift::FilterMissing) && others.len() >= MAX_SUBSCRIPTION_FILTERS {
        return Err(FilterLimitReached { group: group.to_owned(), others: others.to_vec() });
    }
    Ok(())
}

/// The drift of one log group (`None`: it does not exist), in the order repairs are made.
pub fn group_drift(state: Option<&GroupState>, spec: &GroupSpec<'_>) -> Vec<Drift> {
    let days = spec.retention.days();
    let by_policy = spec.subscription.mode == SubscriptionMode::AccountPolicy;
    let Some(state) = state else {
        // Created with its key; retention and filter follow.
        let created = [Drift::GroupMissing, Drift::Retention { from: None, to: days }];
        return created.into_iter().chain((!by_policy).then_some(Drift::FilterMissing)).collect();
    };
    let mut drift: Vec<Drift> = retention_drift(state, spec.retention).into_iter().collect();
    if let Some(key) = spec.kms_key_arn
        && state.kms_key_id.as_deref() != Some(key)
    {
        drift.push(Drift::KmsKey { to: key.to_owned() });
    }
    let wanted = FilterState {
        destination_arn: spec.subscription.destination_arn.clone(),
        pattern: spec.subscription.filter_pattern.clone(),
        role_arn: spec.subscription.role_arn.clone(),
    };
    match &state.filter {
        Some(_) if by_policy => drift.push(Drift::FilterLeftOver),
        None if by_policy => {}
        None => drift.push(Drift::FilterMissing),
        Some(filter) if *filter != wanted => drift.push(Drift::FilterAltered),
        Some(_) => {}
    }
    drift
}

/// The group's retention, when it is not `retention`.
pub fn retention_drift(state: &GroupState, retention: RetentionDays) -> Option<Drift> {
    let days = retention.days();
    (state.retention_days != i32::try_from(days).ok())
        .then_some(Drift::Retention { from: state.retention_days, to: days })
}

/// Alarms to create (expected, not there) and to delete (there, no longer expected), by name.
pub fn alarm_drift<'a>(
    expected: impl IntoIterator<Item = &'a str>,
    existing: impl IntoIterator<Item = &'a str>,
) -> Vec<Drift> {
    let (expected, existing): (BTreeSet<&str>, BTreeSet<&str>) =
        (expected.into_iter().collect(), existing.into_iter().collect());
    let missing = expected.difference(&existing).map(|n| Drift::AlarmMissing((*n).to_owned()));
    let stale = existing.difference(&expected).map(|n| Drift::AlarmStale((*n).to_owned()));
    missing.chain(stale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription() -> SubscriptionDestination {
        SubscriptionDestination {
            mode: SubscriptionMode::Filters,
            filter_name: "fleetlog".into(),
            filter_pattern: String::new(),
            destination_arn: "arn:aws:firehose:us-east-1:1:deliverystream/raw".into(),
            role_arn: Some("arn:aws:iam::1:role/r".into()),
        }
    }

    fn healthy(s: &SubscriptionDestination) -> GroupState {
        GroupState {
            retention_days: Some(3),
            kms_key_id: Some("k".into()),
            filter: Some(FilterState {
                destination_arn: s.destination_arn.clone(),
                pattern: String::new(),
                role_arn: s.role_arn.clone(),
            }),
            other_filters: vec![],
        }
    }

    #[test]
    fn a_group_as_fleetlog_left_it_has_no_drift_and_each_change_is_named() {
        let s = subscription();
        let spec = GroupSpec { retention: RetentionDays::default(), kms_key_arn: Some("k"), subscription: &s };
        assert_eq!(group_drift(Some(&healthy(&s)), &spec), []);
        let changed = GroupState { retention_days: Some(7), ..healthy(&s) };
        let drift = group_drift(Some(&changed), &spec);
        assert_eq!(drift, [Drift::Retention { from: Some(7), to: 3 }]);
        assert_eq!(drift[0].to_string(), "retention 7 → 3");
        let forever = GroupState { retention_days: None, ..healthy(&s) };
        assert_eq!(group_drift(Some(&forever), &spec)[0].to_string(), "retention never expires → 3");
        let unkeyed = GroupState { kms_key_id: None, ..healthy(&s) };
        assert_eq!(group_drift(Some(&unkeyed), &spec), [Drift::KmsKey { to: "k".into() }]);
        let unfiltered = GroupState { filter: None, ..healthy(&s) };
        assert_eq!(group_drift(Some(&unfiltered), &spec), [Drift::FilterMissing]);
        let mut altered = healthy(&s);
        altered.filter.as_mut().unwrap().pattern = "ERROR".into();
        assert_eq!(group_drift(Some(&altered), &spec), [Drift::FilterAltered]);
        assert_eq!(group_drift(None, &spec)[0], Drift::GroupMissing);
        let no_key = GroupSpec { kms_key_arn: None, ..spec };
        assert_eq!(group_drift(Some(&unkeyed), &no_key), [], "no key wanted, none checked");
    }

    /// With the account's policy delivering, fleetlog's groups need no filter, and one left from
    /// filter mode would deliver each event a second time.
    #[test]
    fn under_the_account_policy_a_group_wants_no_filter_of_fleetlogs() {
        let s = SubscriptionDestination { mode: SubscriptionMode::AccountPolicy, ..subscription() };
        let spec = GroupSpec { retention: RetentionDays::default(), kms_key_arn: None, subscription: &s };
        let unfiltered = GroupState { filter: None, ..healthy(&s) };
        assert_eq!(group_drift(Some(&unfiltered), &spec), []);
        let left_over = group_drift(Some(&healthy(&s)), &spec);
        assert_eq!(left_over, [Drift::FilterLeftOver]);
        assert_eq!(left_over[0].to_string(), "filter left over (the account policy delivers)");
        assert_eq!(group_drift(None, &spec), [Drift::GroupMissing, Drift::Retention { from: None, to: 3 }]);
        let others = GroupState { filter: None, other_filters: vec!["a".into(), "b".into()], ..healthy(&s) };
        let drift = group_drift(Some(&others), &spec);
        assert_eq!(filter_room("g", Some(&others), &drift), Ok(()), "another's two filters leave the policy be");
    }

    #[test]
    fn alarms_missing_and_left_over_are_both_drift() {
        let drift = alarm_drift(["a-cpu", "a-status"], ["a-status", "a-disk"]);
        assert_eq!(drift, [Drift::AlarmMissing("a-cpu".into()), Drift::AlarmStale("a-disk".into())]);
        assert_eq!(drift[1].to_string(), "alarm stale: a-disk");
        assert!(alarm_drift(["x"], ["x"]).is_empty());
    }

    #[test]
    fn a_full_group_has_no_room_for_fleetlogs_filter() {
        let full = GroupState { other_filters: vec!["a".into(), "b".into()], ..GroupState::default() };
        let refused = filter_room("g", Some(&full), &[Drift::FilterMissing]).unwrap_err();
        assert!(refused.to_string().contains("already has 2 subscription filters"), "{refused}");
        assert_eq!(
            filter_room("g", Some(&full), &[Drift::FilterAltered]),
            Ok(()),
            "its own filter is replaced in place"
        );
        let one = GroupState { other_filters: vec!["a".into()], ..GroupState::default() };
        assert_eq!(filter_room("g", Some(&one), &[Drift::FilterMissing]), Ok(()));
        assert_eq!(filter_room("g", None, &[Drift::GroupMissing, Drift::FilterMissing]), Ok(()));
    }
}
