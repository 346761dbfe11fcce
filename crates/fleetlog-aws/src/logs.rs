//! Log groups: exist, keep logs for the configured retention, and stream to fleetlog's destination.

use aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError;
use aws_sdk_cloudwatchlogs::types::{LogGroup, SubscriptionFilter};
use fleetlog_core::drift::{Drift, FilterState, GroupSpec, GroupState, filter_room, group_drift};
use fleetlog_core::log_groups::LogGroupName;

use crate::error::{AwsError, ErrorKind, classify};

/// The log group named exactly `name`, if it exists.
async fn find_log_group(client: &aws_sdk_cloudwatchlogs::Client, name: &str) -> Result<Option<LogGroup>, AwsError> {
    let found = client
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await
        .map_err(|e| classify("logs:DescribeLogGroups", e))?;
    Ok(found.log_groups.unwrap_or_default().into_iter().find(|g| g.log_group_name() == Some(name)))
}

/// The subscription filters on a log group (at most [`fleetlog_core::drift::MAX_SUBSCRIPTION_FILTERS`]).
async fn subscription_filters(
    client: &aws_sdk_cloudwatchlogs::Client,
    name: &str,
) -> Result<Vec<SubscriptionFilter>, AwsError> {
    Ok(client
        .describe_subscription_filters()
        .log_group_name(name)
        .send()
        .await
        .map_err(|e| classify("logs:DescribeSubscriptionFilters", e))?
        .subscription_filters
        .unwrap_or_default())
}

/// The log group as it stands (`None`: it does not exist), with fleetlog's filter found by name.
pub async fn observe_log_group(
    client: &aws_sdk_cloudwatchlogs::Client,
    name: &str,
    filter_name: &str,
) -> Result<Option<GroupState>, AwsError> {
    let Some(existing) = find_log_group(client, name).await? else { return Ok(None) };
    let filters = subscription_filters(client, name).await?;
    let (ours, others): (Vec<_>, Vec<_>) = filters.iter().partition(|f| f.filter_name() == Some(filter_name));
    Ok(Some(GroupState {
        retention_days: existing.retention_in_days(),
        kms_key_id: existing.kms_key_id,
        filter: ours.first().map(|f| FilterState {
            destination_arn: f.destination_arn().unwrap_or_default().to_owned(),
            pattern: f.filter_pattern().unwrap_or_default().to_owned(),
            role_arn: f.role_arn().map(str::to_owned),
        }),
        other_filters: others.iter().filter_map(|f| f.filter_name().map(str::to_owned)).collect(),
    }))
}

/// Makes a log group match the desired state, changing only what differs (idempotent), and returns
/// what it changed ([`group_drift`]). Filters fleetlog did not create are never touched.
pub async fn ensure_log_group(
    client: &aws_sdk_cloudwatchlogs::Client,
    name: &LogGroupName,
    spec: &GroupSpec<'_>,
) -> Result<Vec<Drift>, AwsError> {
    let subscription = spec.subscription;
    let state = observe_log_group(client, name.as_str(), &subscription.filter_name).await?;
    let drift = group_drift(state.as_ref(), spec);
    filter_room(name.as_str(), state.as_ref(), &drift)
        .map_err(|e| AwsError::new("logs:PutSubscriptionFilter", ErrorKind::Permanent, e.to_string()))?;
    for change in &drift {
        match change {
            Drift::GroupMissing => {
                let created = client
                    .create_log_group()
                    .log_group_name(name.as_str())
                    .set_kms_key_id(spec.kms_key_arn.map(str::to_owned))
                    .tags("managed-by", "fleetlog")
                    .send()
                    .await;
                match created {
                    Ok(_) => {}
                    // Another invocation created it between our read and write: fine.
                    Err(e)
                        if matches!(
                            e.as_service_error(),
                            Some(CreateLogGroupError::ResourceAlreadyExistsException(_))
                        ) => {}
                    Err(e) => return Err(classify("logs:CreateLogGroup", e)),
                }
            }
            Drift::Retention { to, .. } => {
                client
                    .put_retention_policy()
                    .log_group_name(name.as_str())
                    .retention_in_days(i32::try_from(*to).unwrap_or(i32::MAX))
                    .send()
                    .await
                    .map_err(|e| classify("logs:PutRetentionPolicy", e))?;
            }
            Drift::KmsKey { to } => {
                client
                    .associate_kms_key()
                    .log_group_name(name.as_str())
                    .kms_key_id(to)
                    .send()
                    .await
                    .map_err(|e| classify("logs:AssociateKmsKey", e))?;
            }
            Drift::FilterMissing | Drift::FilterAltered => {
                client
                    .put_subscription_filter()
                    .log_group_name(name.as_str())
                    .filter_name(&subscription.filter_name)
                    .filter_pattern(&subscription.filter_pattern)
                    .destination_arn(&subscription.destination_arn)
                    .set_role_arn(subscription.role_arn.clone())
                    .send()
                    .await
                    .map_err(|e| classify("logs:PutSubscriptionFilter", e))?;
            }
            Drift::FilterLeftOver => {
                client
                    .delete_subscription_filter()
                    .log_group_name(name.as_str())
                    .filter_name(&subscription.filter_name)
                    .send()
                    .await
                    .map_err(|e| classify("logs:DeleteSubscriptionFilter", e))?;
            }
            Drift::AlarmMissing(_) | Drift::AlarmStale(_) => {}
        }
    }
    Ok(drift)
}

/// The account's subscription filter policy in this Region (at most one), as CloudWatch Logs
/// describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionPolicy {
    pub name: String,
    /// `LogGroupName NOT IN [...]`, or empty: every group.
    pub selection_criteria: String,
    pub destination_arn: String,
}

pub async fn subscription_policy(
    client: &aws_sdk_cloudwatchlogs::Client,
) -> Result<Option<SubscriptionPolicy>, AwsError> {
    let out = client
        .describe_account_policies()
        .policy_type(aws_sdk_cloudwatchlogs::types::PolicyType::SubscriptionFilterPolicy)
        .send()
        .await
        .map_err(|e| classify("logs:DescribeAccountPolicies", e))?;
    Ok(out.account_policies().first().map(|policy| {
        let document: serde_json::Value =
            policy.policy_document().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
        SubscriptionPolicy {
            name: policy.policy_name().unwrap_or_default().to_owned(),
            selection_criteria: policy.selection_criteria().unwrap_or_default().to_owned(),
            destination_arn: document["DestinationArn"].as_str().unwrap_or_default().to_owned(),
        }
    }))
}

/// One log event as FilterLogEvents returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub log_group: String,
    pub log_stream: String,
    /// Event time, epoch milliseconds.
    pub timestamp: i64,
    pub message: String,
    pub event_id: String,
}

/// FilterLogEvents takes at most 100 stream names per call.
const MAX_FILTER_STREAMS: usize = 100;

/// The events of `streams` in `group` from `start_ms` on that match `pattern` (CloudWatch Logs
/// filter-pattern syntax; `None`: every event), every page. A group that does not exist has none.
pub async fn filter_events(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    streams: &[String],
    start_ms: i64,
    pattern: Option<&str>,
) -> Result<Vec<LogEvent>, AwsError> {
    let mut out = Vec::new();
    for chunk in streams.chunks(MAX_FILTER_STREAMS) {
        let mut pages = client
            .filter_log_events()
            .log_group_name(group)
            .set_log_stream_names(Some(chunk.to_vec()))
            .start_time(start_ms)
            .set_filter_pattern(pattern.map(str::to_owned))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => return Ok(out),
                Err(e) => return Err(classify("logs:FilterLogEvents", e)),
            };
            out.extend(page.events().iter().map(|e| LogEvent {
                log_group: group.to_owned(),
                log_stream: e.log_stream_name().unwrap_or_default().to_owned(),
                timestamp: e.timestamp().unwrap_or_default(),
                message: e.message().unwrap_or_default().to_owned(),
                event_id: e.event_id().unwrap_or_default().to_owned(),
            }));
        }
    }
    Ok(out)
}
