//! Per-instance CloudWatch alarms.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
use fleetlog_core::alarms::{ALARM_NAME_PREFIX, AlarmSpec, Comparison, alarm_instance, alarm_prefix};

use crate::error::{AwsError, classify};

/// DeleteAlarms accepts at most 100 names.
const MAX_DELETE_ALARMS: usize = 100;

/// Creates or updates one alarm (PutMetricAlarm is an upsert).
pub async fn put_alarm(
    client: &aws_sdk_cloudwatch::Client,
    spec: &AlarmSpec,
    topic_arn: Option<&str>,
) -> Result<(), AwsError> {
    let comparison = match spec.comparison {
        Comparison::GreaterThanOrEqual => ComparisonOperator::GreaterThanOrEqualToThreshold,
        Comparison::LessThanOrEqual => ComparisonOperator::LessThanOrEqualToThreshold,
    };
    let actions = topic_arn.map(|t| vec![t.to_owned()]);
    client
        .put_metric_alarm()
        .alarm_name(&spec.name)
        .alarm_description(&spec.description)
        .namespace(&spec.namespace)
        .metric_name(&spec.metric)
        .dimensions(Dimension::builder().name("InstanceId").value(&spec.instance_id).build())
        .statistic(Statistic::from(spec.statistic))
        .comparison_operator(comparison)
        .threshold(spec.threshold)
        .period(spec.period_seconds)
        .evaluation_periods(spec.evaluation_periods)
        .treat_missing_data("missing")
        .set_alarm_actions(actions.clone())
        .set_ok_actions(actions)
        .send()
        .await
        .map_err(|e| classify("cloudwatch:PutMetricAlarm", e))?;
    Ok(())
}

/// Names of every alarm fleetlog created for the instance.
pub async fn list_instance_alarms(
    client: &aws_sdk_cloudwatch::Client,
    instance_id: &str,
) -> Result<Vec<String>, AwsError> {
    alarm_names(client, &alarm_prefix(instance_id)).await
}

/// Names of every alarm fleetlog created, by instance: one listing for a whole fleet.
pub async fn list_alarms_by_instance(
    client: &aws_sdk_cloudwatch::Client,
) -> Result<BTreeMap<String, Vec<String>>, AwsError> {
    let mut by_instance: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in alarm_names(client, ALARM_NAME_PREFIX).await? {
        if let Some(instance_id) = alarm_instance(&name) {
            by_instance.entry(instance_id.to_owned()).or_default().push(name);
        }
    }
    Ok(by_instance)
}

async fn alarm_names(client: &aws_sdk_cloudwatch::Client, prefix: &str) -> Result<Vec<String>, AwsError> {
    let mut pages = client.describe_alarms().alarm_name_prefix(prefix).into_paginator().send();
    let mut names = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify("cloudwatch:DescribeAlarms", e))?;
        names.extend(page.metric_alarms().iter().filter_map(|a| a.alarm_name().map(str::to_owned)));
    }
    Ok(names)
}

/// Deletes the named alarms.
pub async fn delete_alarms(client: &aws_sdk_cloudwatch::Client, names: &[String]) -> Result<(), AwsError> {
    for chunk in names.chunks(MAX_DELETE_ALARMS) {
        client
            .delete_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| classify("cloudwatch:DeleteAlarms", e))?;
    }
    Ok(())
}

/// Deletes every alarm fleetlog created for the instance; returns their names.
pub async fn delete_instance_alarms(
    client: &aws_sdk_cloudwatch::Client,
    instance_id: &str,
) -> Result<Vec<String>, AwsError> {
    let names = list_instance_alarms(client, instance_id).await?;
    delete_alarms(client, &names).await?;
    Ok(names)
}
