//! Run Command and Parameter Store.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ssm::operation::send_command::SendCommandError;
use aws_sdk_ssm::types::InstanceInformationStringFilter;
use fleetlog_core::agent_config::ParameterTier;
use fleetlog_core::batching::{MAX_SEND_COMMAND_TARGETS, group_in_chunks};
use fleetlog_core::command_outcome::{CommandFailure, InvocationStatus, excerpt};
use fleetlog_core::commands::CommandSpec;

use crate::error::{AwsError, ErrorKind, classify};

/// GetParameters accepts at most 10 names per call.
const MAX_GET_PARAMETERS: usize = 10;
/// DescribeInstanceInformation takes at most 50 instance IDs per filter.
const MAX_INFORMATION_IDS: usize = 50;

/// Sends one command to at most 50 instances and returns its command id.
///
/// `InvalidInstanceId` means at least one target is not (yet) SSM-managed; it comes back as
/// [`ErrorKind::NotReady`], and the caller finds which one by sending to each alone.
pub async fn send_command(
    client: &aws_sdk_ssm::Client,
    spec: &CommandSpec,
    instance_ids: &[String],
) -> Result<String, AwsError> {
    if instance_ids.is_empty() || instance_ids.len() > MAX_SEND_COMMAND_TARGETS {
        return Err(AwsError::new(
            "ssm:SendCommand",
            ErrorKind::Permanent,
            format!("{} targets; SendCommand takes 1 to {MAX_SEND_COMMAND_TARGETS}", instance_ids.len()),
        ));
    }
    let parameters: HashMap<String, Vec<String>> = spec.parameters.clone().into_iter().collect();
    let output = client
        .send_command()
        .document_name(&spec.document)
        .document_version(&spec.document_version)
        .set_instance_ids(Some(instance_ids.to_vec()))
        .set_parameters(Some(parameters))
        .comment(spec.comment.clone())
        .send()
        .await
        .map_err(|e| {
            let not_ready = matches!(e.as_service_error(), Some(SendCommandError::InvalidInstanceId(_)));
            let mut err = classify("ssm:SendCommand", e);
            if not_ready {
                err.kind = ErrorKind::NotReady;
            }
            err
        })?;
    output
        .command()
        .and_then(|c| c.command_id())
        .map(str::to_owned)
        .ok_or_else(|| AwsError::new("ssm:SendCommand", ErrorKind::Transient, "response carried no command id"))
}

/// Sends each instance its spec: one call per distinct spec for up to 50 instances. When a call fails
/// because some instance is not SSM-managed yet, each instance of it is sent alone to find which.
/// Returns, per instance, its command id or why it was not sent.
pub async fn send_commands(
    client: &aws_sdk_ssm::Client,
    targets: impl IntoIterator<Item = (CommandSpec, String)>,
) -> Vec<(String, Result<String, AwsError>)> {
    let mut results = Vec::new();
    for (spec, ids) in group_in_chunks(targets, MAX_SEND_COMMAND_TARGETS) {
        match send_command(client, &spec, &ids).await {
            Err(e) if e.kind == ErrorKind::NotReady && ids.len() > 1 => {
                for id in ids {
                    let result = send_command(client, &spec, std::slice::from_ref(&id)).await;
                    results.push((id, result));
                }
            }
            other => results.extend(ids.into_iter().map(|id| (id, other.clone()))),
        }
    }
    results
}

/// A stored agent configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredParameter {
    pub name: String,
    pub version: i64,
    pub value: String,
}

/// Reads one parameter; `None` when it does not exist.
pub async fn get_parameter(client: &aws_sdk_ssm::Client, name: &str) -> Result<Option<StoredParameter>, AwsError> {
    match client.get_parameter().name(name).send().await {
        Ok(out) => Ok(out.parameter().map(|p| StoredParameter {
            name: name.to_owned(),
            version: p.version(),
            value: p.value().unwrap_or_default().to_owned(),
        })),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_parameter_not_found()) => Ok(None),
        Err(e) => Err(classify("ssm:GetParameter", e)),
    }
}

/// Reads parameters by name; names that do not exist map to `None`.
pub async fn get_parameters(
    client: &aws_sdk_ssm::Client,
    names: &[String],
) -> Result<BTreeMap<String, Option<StoredParameter>>, AwsError> {
    let mut out: BTreeMap<String, Option<StoredParameter>> = names.iter().map(|n| (n.clone(), None)).collect();
    for chunk in names.chunks(MAX_GET_PARAMETERS) {
        let resp = client
            .get_parameters()
            .set_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| classify("ssm:GetParameters", e))?;
        for p in resp.parameters() {
            if let (Some(name), Some(value)) = (p.name(), p.value()) {
                out.insert(
                    name.to_owned(),
                    Some(StoredParameter { name: name.to_owned(), version: p.version(), value: value.to_owned() }),
                );
            }
        }
    }
    Ok(out)
}

/// Stores an agent config as a String parameter (a new version when it exists) and returns the
/// version Parameter Store gave it.
pub async fn put_config_parameter(
    client: &aws_sdk_ssm::Client,
    name: &str,
    value: &str,
    tier: ParameterTier,
    description: &str,
) -> Result<i64, AwsError> {
    let out = client
        .put_parameter()
        .name(name)
        .description(description)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .tier(match tier {
            ParameterTier::Standard => aws_sdk_ssm::types::ParameterTier::Standard,
            ParameterTier::Advanced => aws_sdk_ssm::types::ParameterTier::Advanced,
        })
        .overwrite(true)
        .send()
        .await
        .map_err(|e| classify("ssm:PutParameter", e))?;
    Ok(out.version())
}

/// SSM's ping status (`Online`, `ConnectionLost`, …) of each instance that has registered with it;
/// instances that never registered are absent.
pub async fn ping_statuses(client: &aws_sdk_ssm::Client, ids: &[String]) -> Result<HashMap<String, String>, AwsError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(MAX_INFORMATION_IDS) {
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .set_values(Some(chunk.to_vec()))
            .build()
            .map_err(|e| AwsError::new("ssm:DescribeInstanceInformation", ErrorKind::Permanent, e.to_string()))?;
        let mut pages = client.describe_instance_information().filters(filter).max_results(50).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("ssm:DescribeInstanceInformation", e))?;
            for info in page.instance_information_list() {
                if let (Some(id), Some(ping)) = (info.instance_id(), info.ping_status()) {
                    out.insert(id.to_owned(), ping.as_str().to_owned());
                }
            }
        }
    }
    Ok(out)
}

/// One command's run on one instance, as ListCommandInvocations reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command_id: String,
    pub instance_id: String,
    pub document: String,
    /// `Pending`, `InProgress`, `Success`, `Failed`, …
    pub status: String,
}

/// Every invocation of one command (`Some`), or of every command SSM still keeps (`None`).
pub async fn list_invocations(
    client: &aws_sdk_ssm::Client,
    command_id: Option<&str>,
) -> Result<Vec<Invocation>, AwsError> {
    let mut pages =
        client.list_command_invocations().set_command_id(command_id.map(str::to_owned)).into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify("ssm:ListCommandInvocations", e))?;
        out.extend(page.command_invocations().iter().filter_map(|i| {
            Some(Invocation {
                command_id: i.command_id()?.to_owned(),
                instance_id: i.instance_id()?.to_owned(),
                document: i.document_name().unwrap_or_default().to_owned(),
                status: i.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            })
        }));
    }
    Ok(out)
}

/// What SSM says of one command on one instance now: its status and, when it failed, the first step
/// that failed with the end of that step's output (ListCommandInvocations with details). `None` when
/// SSM no longer knows the invocation (Run Command keeps 30 days of history).
pub async fn invocation_outcome(
    client: &aws_sdk_ssm::Client,
    command_id: &str,
    instance_id: &str,
) -> Result<Option<(InvocationStatus, Option<CommandFailure>)>, AwsError> {
    let out = client
        .list_command_invocations()
        .command_id(command_id)
        .instance_id(instance_id)
        .details(true)
        .send()
        .await
        .map_err(|e| classify("ssm:ListCommandInvocations", e))?;
    let Some(invocation) = out.command_invocations().first() else { return Ok(None) };
    let status = InvocationStatus::parse(invocation.status().map_or("Pending", |s| s.as_str()));
    let InvocationStatus::Failed(failed) = &status else { return Ok(Some((status, None))) };
    let step = invocation
        .command_plugins()
        .iter()
        // A step its precondition skips (the other platform's) reports Success.
        .find(|p| {
            p.status().is_some_and(|s| matches!(InvocationStatus::parse(s.as_str()), InvocationStatus::Failed(_)))
        })
        .or_else(|| invocation.command_plugins().last());
    let failure = CommandFailure {
        command_id: command_id.to_owned(),
        status: failed.clone(),
        step: step.and_then(|p| p.name()).map(str::to_owned),
        output: excerpt(step.and_then(|p| p.output()).unwrap_or_default()),
    };
    Ok(Some((status, Some(failure))))
}
