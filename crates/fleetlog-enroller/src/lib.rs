//! The enroller Lambda: EventBridge events in (through SQS, or directly), enrollment out.
//!
//! `main.rs` only wires; [`handle`] is the entry point, tested with JSON payloads like any Lambda's.

pub mod enroll;
pub mod outcome;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use fleetlog_aws::queue::{self, QueueUrls};
use fleetlog_core::events::{Trigger, parse_trigger, trigger_from_event};
use fleetlog_core::metrics::Counter;
use fleetlog_core::readiness::ReadinessStep;
pub use fleetlog_sdk::metrics::MetricsOutput;
use serde_json::{Value, json};
use tracing::{error, info, warn};

pub use enroll::{Enroller, Outcomes, Plan, Work, plan};
use outcome::{Verdict, verdict};

/// Errors that fail a whole invocation (so Lambda retries it).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("payload is neither an SQS batch nor an EventBridge event: {0}")]
    UnknownPayload(String),
    #[error("{0}")]
    Event(#[from] fleetlog_core::events::EventError),
    #[error("{0}")]
    Aws(#[from] fleetlog_aws::AwsError),
    #[error("retry later: {0}")]
    Retry(String),
}

/// The process-wide state: settings, clients and caches, built once.
#[derive(Debug)]
pub struct State {
    pub enroller: Enroller,
    pub queue_urls: QueueUrls,
}

impl State {
    pub fn new(enroller: Enroller) -> Self {
        Self { enroller, queue_urls: QueueUrls::default() }
    }
}

/// Entry point: an SQS batch (event source mapping) or an EventBridge event (direct target).
/// `deadline`: when the invocation times out; work not started before it nears is retried.
pub async fn handle(state: &State, payload: Value, deadline: Option<Instant>) -> Result<Value, HandlerError> {
    let is_sqs = payload
        .get("Records")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().all(|m| m.get("eventSource").and_then(Value::as_str) == Some("aws:sqs")));
    if is_sqs {
        let event: SqsEvent =
            serde_json::from_value(payload).map_err(|e| HandlerError::UnknownPayload(e.to_string()))?;
        let response = handle_sqs(state, event, deadline).await;
        return serde_json::to_value(response).map_err(|e| HandlerError::UnknownPayload(e.to_string()));
    }
    if payload.get("detail-type").is_some() {
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(payload).map_err(|e| HandlerError::UnknownPayload(e.to_string()))?;
        return handle_event(state, event, deadline).await;
    }
    Err(HandlerError::UnknownPayload("expected \"Records\" from aws:sqs or an EventBridge \"detail-type\"".into()))
}

/// A direct EventBridge invocation. Transient and not-ready outcomes fail the invocation so Lambda's
/// asynchronous retries try again; permanent ones are logged and reported.
pub async fn handle_event(
    state: &State,
    event: EventBridgeEvent<Value>,
    deadline: Option<Instant>,
) -> Result<Value, HandlerError> {
    let trigger = trigger_from_event(event)?;
    let outcomes = state.enroller.run_until(&work_for([&trigger]), deadline).await?;
    emit_metrics(state.enroller.metrics, &outcomes, 0);
    for outcome in outcomes.values() {
        match verdict(outcome) {
            Verdict::Retry(reason) | Verdict::NotReady(reason) => return Err(HandlerError::Retry(reason)),
            Verdict::Backoff(delay) => {
                return Err(HandlerError::Retry(format!("agent command failed; retried in {} s", delay.as_secs())));
            }
            Verdict::DeadLetter(reason) => error!(%reason, "Enrollment failed permanently"),
            Verdict::Done => {}
        }
    }
    Ok(json!({ "outcomes": outcomes }))
}

/// An SQS batch, answered with partial batch failures: only messages that must be retried are
/// reported; everything else is deleted by Lambda.
pub async fn handle_sqs(state: &State, event: SqsEvent, deadline: Option<Instant>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    if enroll::deadline_near(deadline) {
        warn!(messages = event.records.len(), "The invocation's deadline is near; the whole batch is retried");
        for message in &event.records {
            response.add_failure(message.message_id.clone().unwrap_or_default());
        }
        return response;
    }
    let mut parsed: Vec<(&SqsMessage, Trigger)> = Vec::new();
    let mut dead_lettered = 0;
    for message in &event.records {
        match parse_trigger(message.body.as_deref().unwrap_or_default()) {
            Ok(trigger) => parsed.push((message, trigger)),
            Err(e) => {
                warn!(message_id = message.message_id.as_deref(), error = %e, "Event cannot be processed");
                if !dead_letter(state, message, &e.to_string(), &mut dead_lettered).await {
                    response.add_failure(message.message_id.clone().unwrap_or_default());
                }
            }
        }
    }
    let outcomes = match state.enroller.run_until(&work_for(parsed.iter().map(|(_, t)| t)), deadline).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            error!(error = %e, "Enrollment run failed; the whole batch will be retried");
            for (message, _) in &parsed {
                response.add_failure(message.message_id.clone().unwrap_or_default());
            }
            return response;
        }
    };
    for (message, trigger) in &parsed {
        let message_verdict = message_verdict(trigger, &outcomes);
        let retry = match message_verdict {
            Verdict::Done => false,
            Verdict::Retry(reason) => {
                warn!(message_id = message.message_id.as_deref(), %reason, "Transient failure; the message will be retried");
                true
            }
            Verdict::NotReady(reason) => !back_off_or_give_up(state, message, &reason, &mut dead_lettered).await,
            Verdict::Backoff(delay) => {
                info!(
                    message_id = message.message_id.as_deref(),
                    delay_s = delay.as_secs(),
                    "Agent command failed; it is sent again after the wait"
                );
                if let Err(e) = change_visibility(state, message, delay).await {
                    warn!(error = %e, "Could not set the retry delay; the queue's visibility timeout applies");
                }
                true
            }
            Verdict::DeadLetter(reason) => {
                error!(message_id = message.message_id.as_deref(), %reason, "Enrollment failed permanently");
                !dead_letter(state, message, &reason, &mut dead_lettered).await
            }
        };
        if retry {
            response.add_failure(message.message_id.clone().unwrap_or_default());
        }
    }
    emit_metrics(state.enroller.metrics, &outcomes, dead_lettered);
    info!(messages = event.records.len(), retried = response.batch_item_failures.len(), "Batch processed");
    response
}

/// Gathers the instances and sweeps a batch of triggers asks for (duplicates collapse here).
pub fn work_for<'a>(triggers: impl IntoIterator<Item = &'a Trigger>) -> Work {
    let mut work = Work::default();
    for trigger in triggers {
        match trigger {
            Trigger::CommandStatus(report) => work.reports.push(report.clone()),
            Trigger::LogsSeen(sightings) => work.sightings.extend(sightings.iter().cloned()),
            Trigger::Reconcile => work.reconcile = true,
            Trigger::Check { instance_id, asked } => {
                work.instance_ids.insert(instance_id.clone());
                if *asked {
                    work.asked.insert(instance_id.clone());
                }
            }
            other => work.instance_ids.extend(other.instance_id().map(str::to_owned)),
        }
    }
    work
}

/// A message about one instance shares that instance's fate. A reconcile sweep is retried only when
/// the sweep itself failed (that is `run`'s `Err`); one instance's trouble waits for the next sweep.
fn message_verdict(trigger: &Trigger, outcomes: &Outcomes) -> Verdict {
    match trigger.instance_id() {
        Some(id) => outcomes.get(id).map_or(Verdict::Done, verdict),
        // Best effort: a lost report only delays `delivering` until the next one.
        None if matches!(trigger, Trigger::LogsSeen(_)) => Verdict::Done,
        None => {
            for (id, outcome) in outcomes {
                if let Verdict::Retry(reason) | Verdict::DeadLetter(reason) = verdict(outcome) {
                    warn!(instance_id = %id, %reason, "Reconcile could not enroll instance; the next sweep retries");
                }
            }
            Verdict::Done
        }
    }
}

/// Returns true when the message is settled (dead-lettered) and false when it must be retried.
async fn back_off_or_give_up(state: &State, message: &SqsMessage, reason: &str, dead_lettered: &mut u64) -> bool {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let first_ms = attribute_number(message, "ApproximateFirstReceiveTimestamp").unwrap_or(now_ms);
    let receives = attribute_number(message, "ApproximateReceiveCount").unwrap_or(1);
    let waited = Duration::from_millis(u64::try_from(now_ms - first_ms).unwrap_or(0));
    let policy = state.enroller.settings.readiness;
    match policy.next_step(waited, u32::try_from(receives).unwrap_or(u32::MAX)) {
        ReadinessStep::RetryAfter(delay) => {
            info!(message_id = message.message_id.as_deref(), delay_s = delay.as_secs(), %reason, "Instance not SSM-managed yet; retrying later");
            if let Err(e) = change_visibility(state, message, delay).await {
                warn!(error = %e, "Could not set the retry delay; the queue's visibility timeout applies");
            }
            false
        }
        ReadinessStep::GiveUp { waited } => {
            let reason = format!(
                "instance never became SSM-managed within {} s (check the SSM agent, its instance profile and network path to SSM): {reason}",
                waited.as_secs()
            );
            error!(message_id = message.message_id.as_deref(), %reason, "Giving up on instance");
            dead_letter(state, message, &reason, dead_lettered).await
        }
    }
}

async fn change_visibility(state: &State, message: &SqsMessage, delay: Duration) -> Result<(), fleetlog_aws::AwsError> {
    let (Some(arn), Some(receipt)) = (message.event_source_arn.as_deref(), message.receipt_handle.as_deref()) else {
        return Ok(());
    };
    let sqs = &state.enroller.clients.sqs;
    let url = state.queue_urls.url_for_arn(sqs, arn).await?;
    queue::retry_after(sqs, &url, receipt, delay).await
}

/// Sends the message to the DLQ with its reason, counting it in `dead_lettered`. Returns false when it
/// could not (the message must then be retried, so nothing is lost); without a configured DLQ the
/// redrive policy takes it there.
async fn dead_letter(state: &State, message: &SqsMessage, reason: &str, dead_lettered: &mut u64) -> bool {
    let Some(dlq) = state.enroller.settings.dead_letter_queue_url.as_deref() else {
        return false;
    };
    let body = message.body.as_deref().unwrap_or_default();
    match queue::dead_letter(&state.enroller.clients.sqs, dlq, body, reason).await {
        Ok(()) => {
            *dead_lettered += 1;
            true
        }
        Err(e) => {
            error!(error = %e, "Could not dead-letter the message; it will be retried");
            false
        }
    }
}

fn attribute_number(message: &SqsMessage, name: &str) -> Option<i64> {
    message.attributes.get(name).and_then(|v| v.parse().ok())
}

fn emit_metrics(output: MetricsOutput, outcomes: &Outcomes, dead_lettered: u64) {
    let mut counts: BTreeMap<Counter, u64> = BTreeMap::new();
    let mut count = |c: Counter| *counts.entry(c).or_default() += 1;
    for outcome in outcomes.values() {
        for counter in outcome.effect().counters {
            count(*counter);
        }
    }
    let mut all: Vec<(Counter, u64)> = counts.into_iter().collect();
    all.push((Counter::DeadLettered, dead_lettered));
    output.emit(&all);
}
