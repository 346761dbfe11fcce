//! SQS: what the enroller does itself (backoff for not-ready instances, dead-lettering with a reason,
//! the per-instance requests a large sweep fans out into), and receiving and deleting, for the
//! stand-in of Lambda's event source mapping where there is no Lambda service.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;

use crate::error::{AwsError, ErrorKind, classify};

/// The message attribute that carries why a message was dead-lettered.
pub const REASON_ATTRIBUTE: &str = "fleetlog-reason";

/// Resolves queue ARNs (as SQS events name them) to URLs, once per queue per process.
#[derive(Debug, Default)]
pub struct QueueUrls {
    cache: Mutex<HashMap<String, String>>,
}

impl QueueUrls {
    pub async fn url_for_arn(&self, client: &aws_sdk_sqs::Client, arn: &str) -> Result<String, AwsError> {
        if let Some(url) = self.cache.lock().ok().and_then(|c| c.get(arn).cloned()) {
            return Ok(url);
        }
        let mut parts = arn.split(':');
        let (account, name) = match (parts.nth(4), parts.next()) {
            (Some(account), Some(name)) if !name.is_empty() => (account, name),
            _ => {
                return Err(AwsError::new(
                    "sqs:GetQueueUrl",
                    ErrorKind::Permanent,
                    format!("{arn:?} is not an SQS queue ARN"),
                ));
            }
        };
        let url = client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| classify("sqs:GetQueueUrl", e))?
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| AwsError::new("sqs:GetQueueUrl", ErrorKind::Transient, "no queue URL in response"))?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(arn.to_owned(), url.clone());
        }
        Ok(url)
    }
}

/// Makes a received message visible again after `delay` (SQS allows up to 12 hours).
pub async fn retry_after(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipt_handle: &str,
    delay: Duration,
) -> Result<(), AwsError> {
    let seconds = i32::try_from(delay.as_secs().min(43_200)).unwrap_or(43_200);
    client
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt_handle)
        .visibility_timeout(seconds)
        .send()
        .await
        .map_err(|e| classify("sqs:ChangeMessageVisibility", e))?;
    Ok(())
}

/// Sends a message body to the dead-letter queue with the reason it could not be processed.
pub async fn dead_letter(
    client: &aws_sdk_sqs::Client,
    dlq_url: &str,
    body: &str,
    reason: &str,
) -> Result<(), AwsError> {
    // SQS message attribute values are limited to the message size; keep the reason short and useful.
    let reason: String = reason.chars().take(1024).collect();
    let attribute = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(reason)
        .build()
        .map_err(|e| AwsError::new("sqs:SendMessage", ErrorKind::Permanent, e.to_string()))?;
    client
        .send_message()
        .queue_url(dlq_url)
        .message_body(body)
        .message_attributes(REASON_ATTRIBUTE, attribute)
        .send()
        .await
        .map_err(|e| classify("sqs:SendMessage", e))?;
    Ok(())
}

/// SendMessageBatch takes at most 10 entries.
const MAX_BATCH_SEND: usize = 10;

/// Sends each body as its own message (ten per call). Returns the bodies SQS did not take, each with
/// its error; a failed call fails all of its entries.
pub async fn send_all(client: &aws_sdk_sqs::Client, queue_url: &str, bodies: &[String]) -> Vec<(String, AwsError)> {
    let mut refused = Vec::new();
    for chunk in bodies.chunks(MAX_BATCH_SEND) {
        let entries: Result<Vec<_>, _> = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(body).build()
            })
            .collect();
        let sent = match entries {
            Ok(entries) => client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("sqs:SendMessageBatch", e)),
            Err(e) => Err(AwsError::new("sqs:SendMessageBatch", ErrorKind::Permanent, e.to_string())),
        };
        match sent {
            Ok(out) => {
                for failed in out.failed() {
                    let body = failed.id().parse::<usize>().ok().and_then(|i| chunk.get(i));
                    let message = failed.message().unwrap_or("refused").to_owned();
                    let kind = if failed.sender_fault() { ErrorKind::Permanent } else { ErrorKind::Transient };
                    refused.extend(body.map(|b| (b.clone(), AwsError::new("sqs:SendMessageBatch", kind, message))));
                }
            }
            Err(e) => refused.extend(chunk.iter().map(|b| (b.clone(), e.clone()))),
        }
    }
    refused
}

/// ReceiveMessage returns at most 10 messages a call.
const MAX_RECEIVE: usize = 10;

/// Up to `max` messages visible now (no long polling), with their system attributes, as Lambda's
/// event source mapping receives them.
pub async fn receive(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: usize,
) -> Result<Vec<aws_sdk_sqs::types::Message>, AwsError> {
    let mut batch = Vec::new();
    while batch.len() < max {
        let want = i32::try_from((max - batch.len()).min(MAX_RECEIVE)).unwrap_or(10);
        let received = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(want)
            .wait_time_seconds(0)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| classify("sqs:ReceiveMessage", e))?;
        let Some(messages) = received.messages.filter(|m| !m.is_empty()) else { break };
        batch.extend(messages);
    }
    Ok(batch)
}

/// Deletes received messages by their receipt handles (ten per call).
pub async fn delete_all(client: &aws_sdk_sqs::Client, queue_url: &str, receipts: &[&str]) -> Result<(), AwsError> {
    for chunk in receipts.chunks(MAX_BATCH_SEND) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*receipt)
                    .build()
                    .map_err(|e| AwsError::new("sqs:DeleteMessageBatch", ErrorKind::Permanent, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        client
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify("sqs:DeleteMessageBatch", e))?;
    }
    Ok(())
}
