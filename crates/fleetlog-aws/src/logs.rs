//! Log groups: exist, keep logs for the configured retention, and stream to fleetlog's destination.

use aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError;
use aws_sdk_cloudwatchlogs::types::{LogGroup, SubscriptionFilter};
use fleetlog_core::drift::{Drift, FilterState, GroupSpec, GroupState, filter_room, group_drift};
use fleetlog_core::log_groups::LogGroupName;

use aws_smithy_types::error::metadata::ProvideErrorMetadata;

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

/// One log event as FilterLogEvents or a Live Tail session returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub log_group: String,
    pub log_stream: String,
    /// Event time, epoch milliseconds.
    pub timestamp: i64,
    pub message: String,
    /// FilterLogEvents' event id; Live Tail sends none.
    pub event_id: Option<String>,
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
                event_id: e.event_id().map(str::to_owned),
            }));
        }
    }
    Ok(out)
}

/// A Live Tail session names at most this many streams (StartLiveTail `logStreamNames`), and names
/// streams only when it tails one log group.
pub const MAX_LIVE_TAIL_STREAMS: usize = 100;

/// One Live Tail session: the lines of some streams of one log group, pushed as CloudWatch Logs
/// ingests them (an update a second). A session ends after three hours.
#[derive(Debug)]
pub struct LiveTail {
    group: String,
    session: aws_sdk_cloudwatchlogs::operation::start_live_tail::StartLiveTailOutput,
}

/// What a Live Tail session says next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveTailUpdate {
    /// The lines of the last second. `sampled`: more matched than a session sends (500 a second),
    /// so some are missing here.
    Lines { events: Vec<LogEvent>, sampled: bool },
    /// The session is over (its three hours are up, or the server or connection failed), and why.
    Ended(String),
}

/// Starts a Live Tail session on `streams` (at most [`MAX_LIVE_TAIL_STREAMS`]) of `group`, matching
/// `pattern`, and waits for the session's start: an endpoint that cannot stream (an emulator, a
/// proxy) fails here, not later. Not retried: the caller falls back to polling.
pub async fn start_live_tail(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    streams: &[String],
    pattern: Option<&str>,
) -> Result<LiveTail, AwsError> {
    use aws_sdk_cloudwatchlogs::types::StartLiveTailResponseStream as Stream;
    const OP: &str = "logs:StartLiveTail";
    let Some(arn) = find_log_group(client, group).await?.as_ref().and_then(log_group_arn) else {
        return Err(AwsError::new(OP, ErrorKind::Permanent, format!("log group {group} does not exist")));
    };
    let output = client
        .start_live_tail()
        .log_group_identifiers(arn)
        .set_log_stream_names(Some(streams.to_vec()))
        .set_log_event_filter_pattern(pattern.map(str::to_owned))
        .customize()
        .config_override(
            aws_sdk_cloudwatchlogs::config::Builder::default()
                .retry_config(aws_smithy_types::retry::RetryConfig::disabled()),
        )
        .send()
        .await
        .map_err(|e| classify(OP, e))?;
    let mut session = output;
    match session.response_stream.recv().await {
        Ok(Some(Stream::SessionStart(_))) => Ok(LiveTail { group: group.to_owned(), session }),
        Ok(other) => Err(AwsError::new(OP, ErrorKind::Permanent, format!("expected a session start, got {other:?}"))),
        Err(e) => Err(AwsError::new(OP, ErrorKind::Permanent, stream_error(&e))),
    }
}

impl LiveTail {
    /// The log group this session tails.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The session's next update.
    pub async fn next(&mut self) -> LiveTailUpdate {
        use aws_sdk_cloudwatchlogs::types::StartLiveTailResponseStream as Stream;
        loop {
            match self.session.response_stream.recv().await {
                Ok(Some(Stream::SessionUpdate(update))) => {
                    let sampled = update.session_metadata().is_some_and(|m| m.sampled());
                    let events = update
                        .session_results()
                        .iter()
                        .map(|e| LogEvent {
                            log_group: self.group.clone(),
                            log_stream: e.log_stream_name().unwrap_or_default().to_owned(),
                            timestamp: e.timestamp().unwrap_or_default(),
                            message: e.message().unwrap_or_default().to_owned(),
                            event_id: None,
                        })
                        .collect();
                    return LiveTailUpdate::Lines { events, sampled };
                }
                // A second start, or an event kind newer than this SDK: nothing to show.
                Ok(Some(_)) => {}
                Ok(None) => return LiveTailUpdate::Ended("the session's stream closed".to_owned()),
                Err(e) => return LiveTailUpdate::Ended(stream_error(&e)),
            }
        }
    }
}

/// A log group's ARN as StartLiveTail takes it: without the `:*` DescribeLogGroups' `arn` ends in.
fn log_group_arn(group: &LogGroup) -> Option<String> {
    group.log_group_arn().map(str::to_owned).or_else(|| group.arn().map(|arn| arn.trim_end_matches(":*").to_owned()))
}

fn stream_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> String {
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_smithy_types::error::display::DisplayErrorContext(err).to_string(),
    }
}
