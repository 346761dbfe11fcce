//! What Lambda's SQS event source mapping does, for places with no Lambda service (the local run, the
//! emulator tests): receive messages, hand them to the enroller's own [`handle_sqs`] entry point, and
//! delete the ones it did not report as failures.

use std::collections::BTreeSet;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use fleetlog_aws::{AwsError, queue};
use fleetlog_enroller::{State, handle_sqs};

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

/// Delivers every message currently visible on the queue to the handler, in batches, until the queue
/// is empty or a batch has messages to retry (those stay invisible until their timeout, as with
/// Lambda).
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
        let received = queue::receive(sqs, queue_url, batch_size.max(1)).await?;
        if received.is_empty() {
            return Ok(report);
        }
        let mut event = SqsEvent::default();
        event.records = received.iter().map(|m| lambda_message(m, queue_arn, region)).collect();
        report.invocations += 1;
        report.messages += received.len();
        let response = handle_sqs(state, event, None).await;
        let failed: BTreeSet<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        report.retried += failed.len();
        let done: Vec<&str> = received
            .iter()
            .filter(|m| m.message_id().is_some_and(|id| !failed.contains(id)))
            .filter_map(|m| m.receipt_handle())
            .collect();
        queue::delete_all(sqs, queue_url, &done).await?;
        if !failed.is_empty() {
            return Ok(report);
        }
    }
}

/// A received message as Lambda's event source mapping hands it to a function.
fn lambda_message(m: &aws_sdk_sqs::types::Message, queue_arn: &str, region: &str) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = m.message_id().map(str::to_owned);
    message.receipt_handle = m.receipt_handle().map(str::to_owned);
    message.body = m.body().map(str::to_owned);
    message.md5_of_body = m.md5_of_body().map(str::to_owned);
    message.attributes =
        m.attributes().map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect()).unwrap_or_default();
    message.event_source = Some("aws:sqs".to_owned());
    message.event_source_arn = Some(queue_arn.to_owned());
    message.aws_region = Some(region.to_owned());
    message
}
