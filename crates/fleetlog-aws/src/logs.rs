//! Log groups: exist, keep logs for the configured retention, and stream to fleetlog's destination.

use aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError;
use aws_sdk_cloudwatchlogs::types::SubscriptionFilter;
use fleetlog_core::log_groups::{LogGroupName, RetentionDays};
use fleetlog_core::settings::SubscriptionDestination;

use crate::error::{AwsError, ErrorKind, classify};

/// CloudWatch Logs allows two subscription filters per log group.
pub const MAX_SUBSCRIPTION_FILTERS: usize = 2;

/// What [`ensure_log_group`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogGroupChanges {
    pub created: bool,
    pub retention_set: bool,
    pub filter_set: bool,
}

/// A log group that exists, as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExistingLogGroup {
    /// `None`: logs never expire.
    pub retention_days: Option<i32>,
}

/// The log group named exactly `name`, if it exists.
pub async fn find_log_group(
    client: &aws_sdk_cloudwatchlogs::Client,
    name: &str,
) -> Result<Option<ExistingLogGroup>, AwsError> {
    Ok(client
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await
        .map_err(|e| classify("logs:DescribeLogGroups", e))?
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name))
        .map(|g| ExistingLogGroup { retention_days: g.retention_in_days() }))
}

/// The subscription filters on a log group (at most [`MAX_SUBSCRIPTION_FILTERS`]).
pub async fn subscription_filters(
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

/// Makes a log group match the desired state, changing only what differs (idempotent).
/// Filters fleetlog did not create are never touched.
pub async fn ensure_log_group(
    client: &aws_sdk_cloudwatchlogs::Client,
    name: &LogGroupName,
    retention: RetentionDays,
    kms_key_arn: Option<&str>,
    subscription: &SubscriptionDestination,
) -> Result<LogGroupChanges, AwsError> {
    let mut changes = LogGroupChanges::default();
    let current_retention = match find_log_group(client, name.as_str()).await? {
        Some(existing) => existing.retention_days,
        None => {
            let created = client
                .create_log_group()
                .log_group_name(name.as_str())
                .set_kms_key_id(kms_key_arn.map(str::to_owned))
                .tags("managed-by", "fleetlog")
                .send()
                .await;
            match created {
                Ok(_) => changes.created = true,
                // Another invocation created it between our read and write: fine.
                Err(e)
                    if matches!(e.as_service_error(), Some(CreateLogGroupError::ResourceAlreadyExistsException(_))) => {
                }
                Err(e) => return Err(classify("logs:CreateLogGroup", e)),
            }
            None
        }
    };
    let days = i32::try_from(retention.days()).unwrap_or(i32::MAX);
    if current_retention != Some(days) {
        client
            .put_retention_policy()
            .log_group_name(name.as_str())
            .retention_in_days(days)
            .send()
            .await
            .map_err(|e| classify("logs:PutRetentionPolicy", e))?;
        changes.retention_set = true;
    }

    let filters = subscription_filters(client, name.as_str()).await?;
    let ours = filters.iter().find(|f| f.filter_name() == Some(subscription.filter_name.as_str()));
    let up_to_date = ours.is_some_and(|f| {
        f.destination_arn() == Some(subscription.destination_arn.as_str())
            && f.filter_pattern().unwrap_or_default() == subscription.filter_pattern
            && f.role_arn() == subscription.role_arn.as_deref()
    });
    if !up_to_date {
        if ours.is_none() && filters.len() >= MAX_SUBSCRIPTION_FILTERS {
            let others: Vec<_> = filters.iter().filter_map(|f| f.filter_name()).collect();
            return Err(AwsError::new(
                "logs:PutSubscriptionFilter",
                ErrorKind::Permanent,
                format!(
                    "log group {name} already has {MAX_SUBSCRIPTION_FILTERS} subscription filters ({others:?}), the most CloudWatch Logs allows; fleetlog never removes filters it did not create, so remove one or exclude this group"
                ),
            ));
        }
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
        changes.filter_set = true;
    }
    Ok(changes)
}
