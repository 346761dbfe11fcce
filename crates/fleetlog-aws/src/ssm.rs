//! Run Command and Parameter Store.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ssm::operation::send_command::SendCommandError;
use fleetlog_core::batching::{MAX_SEND_COMMAND_TARGETS, group_in_chunks};
use fleetlog_core::command_outcome::{CommandFailure, InvocationStatus, excerpt};
use fleetlog_core::commands::CommandSpec;

use crate::error::{AwsError, ErrorKind, classify};

/// GetParameters accepts at most 10 names per call.
const MAX_GET_PARAMETERS: usize = 10;

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
