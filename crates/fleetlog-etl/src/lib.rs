//! The log ETL: CloudWatch Logs subscription payloads → one JSON record per log event → Firehose.
//!
//! One core ([`transform::write_records`]) and two entry shapes: Firehose's data-transformation Lambda
//! ([`firehose::transform`]) and a subscription-filter target that puts records itself ([`handle_awslogs`]).

pub mod corpus;
pub mod decode;
pub mod firehose;
mod json;
pub mod parse;
pub mod put;
pub mod schema;
pub mod transform;

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord};

use serde_json::value::RawValue;

use decode::{MessageType, gunzip_into, parse_envelope};
use put::{PutError, RetryPolicy, put_all};

#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    #[error("payload is neither a Firehose transformation event nor a CloudWatch Logs (awslogs) event")]
    UnknownPayload,
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error("{0}")]
    Decode(#[from] decode::DecodeError),
    #[error("{0}")]
    Put(#[from] PutError),
    #[error("FLEETLOG_DELIVERY_STREAM must name the Firehose stream to put records into")]
    NoDeliveryStream,
}

/// Every environment variable the ETL Lambda reads (infra/ sets exactly these).
pub const ENV_VARIABLES: &[&str] = &["FLEETLOG_DELIVERY_STREAM"];

/// Built once per process.
#[derive(Debug, Clone)]
pub struct EtlState {
    pub firehose: aws_sdk_firehose::Client,
    pub region: String,
    /// Where the subscription-target shape puts records (`FLEETLOG_DELIVERY_STREAM`).
    pub delivery_stream: Option<String>,
    pub retry: RetryPolicy,
}

/// What the Lambda is invoked with, read in one pass (the runtime deserialises it): a CloudWatch Logs
/// subscription (`awslogs`) event or a Firehose transformation event, whose fields are those of
/// `KinesisFirehoseEvent`. Which one it is shows in which keys are present.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    awslogs: Option<AwsLogsPayload>,
    invocation_id: Option<String>,
    delivery_stream_arn: Option<String>,
    source_kinesis_stream_arn: Option<String>,
    region: Option<String>,
    records: Option<Vec<KinesisFirehoseEventRecord>>,
}

#[derive(Debug, serde::Deserialize)]
struct AwsLogsPayload {
    data: String,
}

impl Payload {
    /// The Firehose transformation event, when that is what this is.
    pub fn into_firehose_event(self) -> Option<KinesisFirehoseEvent> {
        let mut event = KinesisFirehoseEvent::default();
        event.records = self.records?;
        event.invocation_id = self.invocation_id;
        event.delivery_stream_arn = self.delivery_stream_arn;
        event.source_kinesis_stream_arn = self.source_kinesis_stream_arn;
        event.region = self.region;
        Some(event)
    }
}

/// One invocation, whichever its shape. The answer is JSON text as Lambda returns it.
pub async fn handle(state: &EtlState, payload: Payload) -> Result<Box<RawValue>, EtlError> {
    let malformed = |e: serde_json::Error| EtlError::Malformed(e.to_string());
    if let Some(awslogs) = &payload.awslogs {
        let delivered = handle_awslogs(state, &awslogs.data).await?;
        return serde_json::value::to_raw_value(&serde_json::json!({ "delivered": delivered })).map_err(malformed);
    }
    let event = payload.into_firehose_event().ok_or(EtlError::UnknownPayload)?;
    RawValue::from_string(handle_firehose(state, &event).await?).map_err(malformed)
}

/// Firehose transformation: answer per record; re-ingest what does not fit before answering, so a
/// failed re-ingest fails the invocation (Firehose retries it) instead of losing data. The answer is
/// the response JSON.
pub async fn handle_firehose(state: &EtlState, event: &KinesisFirehoseEvent) -> Result<String, EtlError> {
    let out = firehose::transform(event, &state.region);
    tracing::info!(stats = ?out.stats, "Firehose batch transformed");
    if !out.reingest.is_empty() {
        let stream = event
            .delivery_stream_arn
            .as_deref()
            .and_then(|arn| arn.rsplit_once("deliverystream/").map(|(_, name)| name.to_owned()))
            .ok_or_else(|| {
                EtlError::Malformed("records must be re-ingested but deliveryStreamArn is missing".into())
            })?;
        put_all(&state.firehose, &stream, out.reingest, state.retry).await?;
    }
    Ok(out.response)
}

/// Subscription-filter target: decode, transform, PutRecordBatch one record per log event.
/// Returns the number of records delivered.
pub async fn handle_awslogs(state: &EtlState, data_base64: &str) -> Result<usize, EtlError> {
    let stream = state.delivery_stream.as_deref().ok_or(EtlError::NoDeliveryStream)?;
    let compressed = decode::base64_decode(data_base64)?;
    let mut plain = Vec::new();
    gunzip_into(&compressed, &mut plain)?;
    let envelope = parse_envelope(&plain)?;
    if envelope.kind()? == MessageType::Control {
        return Ok(0);
    }
    let mut lines = Vec::new();
    transform::write_records(&envelope, &envelope.log_events, &state.region, &mut lines);
    let records: Vec<Vec<u8>> = lines.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let count = records.len();
    put_all(&state.firehose, stream, records, state.retry).await?;
    Ok(count)
}
