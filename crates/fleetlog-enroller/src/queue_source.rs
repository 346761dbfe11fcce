//! What Lambda's SQS event source mapping does, for places with no Lambda service (the local run, the
//! emulator tests): receive messages, hand them to the same [`handle_sqs`] entry point, delete the ones
//! not reported as failures.

use std::collections::{BTreeSet, HashMap};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use fleetlog_aws::AwsError;
use fleetlog_aws::error::classify;

use crate::{State, handle_sqs};

/// Messages per handler invocation; the stack's event source mapping uses the same.
pub const DEFAULT_BATCH_SIZE: usize = 100;

/// What one drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub invocations: usize,
    pub messages: usize,
    /// Messages the handler asked to retry (left on the queue, as Lambda would).
    pub retried: usize,
}

/// Delivers every message currently visible on the queue to the handler, in batches.
pub async fn drain_queue(
    state: &State,
    queue_url: &str,
    queue_arn: &str,
    region: &str,
    batch_size: usize,
) -> Result<DrainReport, AwsError> {
    let sqs = &state.enroller.clients.sqs;
    let mut report = DrainReport::default();
    loop {
        let batch = receive_batch(sqs, queue_url, queue_arn, region, batch_size.max(1)).await?;
        if batch.is_empty() {
            return Ok(report);
        }
        let receipts: HashMap<String, String> =
            batch.iter().filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?))).collect();
        report.invocations += 1;
        report.messages += batch.len();
        let mut event = SqsEvent::default();
        event.records = batch;
        let response = handle_sqs(state, event, None).await;
        let failed: BTreeSet<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        report.retried += failed.len();
        let done: Vec<(&String, &String)> = receipts.iter().filter(|(id, _)| !failed.contains(id.as_str())).collect();
        for chunk in done.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (_, receipt))| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt.as_str())
                        .build()
                        .map_err(|e| {
                            AwsError::new("sqs:DeleteMessageBatch", fleetlog_aws::ErrorKind::Permanent, e.to_string())
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            sqs.delete_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("sqs:DeleteMessageBatch", e))?;
        }
        if !failed.is_empty() {
            // Retried messages stay invisible until their timeout, as with Lambda; stop here.
            return Ok(report);
        }
    }
}

async fn receive_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    queue_arn: &str,
    region: &str,
    batch_size: usize,
) -> Result<Vec<SqsMessage>, AwsError> {
    let mut batch = Vec::new();
    while batch.len() < batch_size {
        let want = i32::try_from((batch_size - batch.len()).min(10)).unwrap_or(10);
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(want)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| classify("sqs:ReceiveMessage", e))?;
        let messages = received.messages();
        if messages.is_empty() {
            break;
        }
        batch.extend(messages.iter().map(|m| {
            let mut message = SqsMessage::default();
            message.message_id = m.message_id().map(str::to_owned);
            message.receipt_handle = m.receipt_handle().map(str::to_owned);
            message.body = m.body().map(str::to_owned);
            message.md5_of_body = m.md5_of_body().map(str::to_owned);
            message.attributes = m
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
                .unwrap_or_default();
            message.event_source = Some("aws:sqs".to_owned());
            message.event_source_arn = Some(queue_arn.to_owned());
            message.aws_region = Some(region.to_owned());
            message
        }));
    }
    Ok(batch)
}
