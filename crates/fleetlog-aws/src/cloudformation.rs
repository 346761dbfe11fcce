//! CloudFormation: a stack's status and outputs, creating or updating it from a template URL, and the
//! reason its first failed resource gives.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};

use crate::error::{AwsError, classify};

/// A stack as DescribeStacks reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stack {
    /// `CREATE_COMPLETE`, `UPDATE_ROLLBACK_COMPLETE`, …
    pub status: String,
    pub outputs: BTreeMap<String, String>,
}

/// CloudFormation answers "no such stack" and "nothing to update" with a ValidationError the SDK
/// does not model as a type, so its message is what tells them apart.
fn message_contains<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(error: Option<&E>, text: &str) -> bool {
    error.is_some_and(|e| e.meta().message().is_some_and(|m| m.contains(text)))
}

/// The stack named `name`; `None` when there is none (or only a deleted one).
pub async fn describe_stack(client: &aws_sdk_cloudformation::Client, name: &str) -> Result<Option<Stack>, AwsError> {
    let out = match client.describe_stacks().stack_name(name).send().await {
        Ok(out) => out,
        Err(e) if message_contains(e.as_service_error(), "does not exist") => return Ok(None),
        Err(e) => return Err(classify("cloudformation:DescribeStacks", e)),
    };
    let Some(found) = out.stacks().first().filter(|s| s.stack_status() != Some(&StackStatus::DeleteComplete)) else {
        return Ok(None);
    };
    Ok(Some(Stack {
        status: found.stack_status().map_or("", |s| s.as_str()).to_owned(),
        outputs: found
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect(),
    }))
}

fn parameters(values: &BTreeMap<String, String>) -> Vec<Parameter> {
    values.iter().map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build()).collect()
}

/// Creates the stack (it creates IAM roles: CAPABILITY_IAM).
pub async fn create_stack(
    client: &aws_sdk_cloudformation::Client,
    name: &str,
    template_url: &str,
    values: &BTreeMap<String, String>,
) -> Result<(), AwsError> {
    client
        .create_stack()
        .stack_name(name)
        .template_url(template_url)
        .set_parameters(Some(parameters(values)))
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .map_err(|e| classify("cloudformation:CreateStack", e))?;
    Ok(())
}

/// Updates the stack; `false` when CloudFormation found nothing to update.
pub async fn update_stack(
    client: &aws_sdk_cloudformation::Client,
    name: &str,
    template_url: &str,
    values: &BTreeMap<String, String>,
) -> Result<bool, AwsError> {
    let updated = client
        .update_stack()
        .stack_name(name)
        .template_url(template_url)
        .set_parameters(Some(parameters(values)))
        .capabilities(Capability::CapabilityIam)
        .send()
        .await;
    match updated {
        Ok(_) => Ok(true),
        Err(e) if message_contains(e.as_service_error(), "No updates") => Ok(false),
        Err(e) => Err(classify("cloudformation:UpdateStack", e)),
    }
}

/// `resource: reason` of the most recent failed resource event, if any.
pub async fn failure_reason(client: &aws_sdk_cloudformation::Client, name: &str) -> Result<Option<String>, AwsError> {
    let events = client
        .describe_stack_events()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| classify("cloudformation:DescribeStackEvents", e))?;
    Ok(events.stack_events().iter().find(|e| e.resource_status().is_some_and(|s| s.as_str().ends_with("FAILED"))).map(
        |e| {
            format!(
                "{}: {}",
                e.logical_resource_id().unwrap_or_default(),
                e.resource_status_reason().unwrap_or_default()
            )
        },
    ))
}
