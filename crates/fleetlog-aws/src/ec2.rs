//! Reading instances (one DescribeInstances per 200 IDs, or a paginated sweep by tag) and setting or
//! removing one tag on them.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, Instance as Ec2Instance, Tag};
use fleetlog_core::tags::ManagementTag;
use fleetlog_core::{Instance, InstanceState, Platform};

use crate::error::{AwsError, classify};

/// EC2 accepts at most 200 values per filter.
const MAX_FILTER_VALUES: usize = 200;

/// Reads the given instances. Unknown IDs are simply absent (an `instance-id` filter, unlike
/// `InstanceIds`, does not fail the whole call for one terminated-and-gone instance).
pub async fn describe_instances(client: &aws_sdk_ec2::Client, ids: &[String]) -> Result<Vec<Instance>, AwsError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_FILTER_VALUES) {
        let filter = Filter::builder().name("instance-id").set_values(Some(chunk.to_vec())).build();
        out.extend(paginate(client, vec![filter]).await?);
    }
    Ok(out)
}

/// Every instance that carries the management tag exactly (EC2 tag filters are case-sensitive).
pub async fn list_managed_instances(
    client: &aws_sdk_ec2::Client,
    tag: &ManagementTag,
) -> Result<Vec<Instance>, AwsError> {
    list_tagged(client, &tag.key, &tag.value).await
}

/// Every instance with the tag `key=value` (exact case).
pub async fn list_tagged(client: &aws_sdk_ec2::Client, key: &str, value: &str) -> Result<Vec<Instance>, AwsError> {
    let filter = Filter::builder().name(format!("tag:{key}")).values(value).build();
    paginate(client, vec![filter]).await
}

/// Every instance in the region (what `fleetlog status` surveys).
pub async fn list_instances(client: &aws_sdk_ec2::Client) -> Result<Vec<Instance>, AwsError> {
    paginate(client, Vec::new()).await
}

/// Sets `key=value` on the instances (CreateTags: all of them or none).
pub async fn set_tag(client: &aws_sdk_ec2::Client, ids: &[String], key: &str, value: &str) -> Result<(), AwsError> {
    client
        .create_tags()
        .set_resources(Some(ids.to_vec()))
        .tags(Tag::builder().key(key).value(value).build())
        .send()
        .await
        .map_err(|e| classify("ec2:CreateTags", e))?;
    Ok(())
}

/// Removes the tag `key`, whatever its value, from the instances.
pub async fn remove_tag(client: &aws_sdk_ec2::Client, ids: &[String], key: &str) -> Result<(), AwsError> {
    client
        .delete_tags()
        .set_resources(Some(ids.to_vec()))
        .tags(Tag::builder().key(key).build())
        .send()
        .await
        .map_err(|e| classify("ec2:DeleteTags", e))?;
    Ok(())
}

async fn paginate(client: &aws_sdk_ec2::Client, filters: Vec<Filter>) -> Result<Vec<Instance>, AwsError> {
    let mut pages = client
        .describe_instances()
        .set_filters((!filters.is_empty()).then_some(filters))
        .max_results(1000)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify("ec2:DescribeInstances", e))?;
        for reservation in page.reservations() {
            out.extend(reservation.instances().iter().filter_map(to_instance));
        }
    }
    Ok(out)
}

fn to_instance(i: &Ec2Instance) -> Option<Instance> {
    Some(Instance {
        id: i.instance_id()?.to_owned(),
        state: InstanceState::parse(i.state().and_then(|s| s.name()).map(|n| n.as_str()).unwrap_or("unknown")),
        platform: Platform::from_ec2(i.platform().map(|p| p.as_str())),
        architecture: i.architecture().map(|a| a.as_str().to_owned()).unwrap_or_default(),
        tags: i
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
            .collect::<BTreeMap<_, _>>(),
    })
}
