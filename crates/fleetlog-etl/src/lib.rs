//! The log ETL: CloudWatch Logs subscription payloads → one JSON record per log event → Firehose.
//!
//! One core and three entry shapes: Firehose's data-transformation Lambda ([`firehose::transform`]),
//! a subscription-filter target that puts records itself ([`handle_awslogs`]), and log objects in
//! S3 named by notifications through SQS ([`objects::handle_sqs`]: CloudFront standard logs). The core, in the
//! order a record meets it:
//!
//! - [`gzip`]: the payload inflated (capped), and re-ingested envelopes deflated;
//! - [`envelope`]: the CloudWatch Logs envelope read (`envelope::common_form` for the form CloudWatch
//!   Logs writes, serde_json otherwise) and written again for a split record's pieces;
//! - [`parse`]: a message's format and fields, one module per format (`fields`, `json`, `syslog`,
//!   `access`, `windows`);
//! - [`records`]: one record per event, framed by a [`records::RecordFormat`] (the destination's
//!   record shape; [`records::TableJson`] is the Glue table's), within [`records::RecordLimits`] the
//!   caller passes;
//! - [`json`]: JSON strings both ways — escaping, unescaping, lone surrogates, escape-safe cuts — and
//!   [`json::Str`], which says whether a string is text or already JSON string content;
//! - [`firehose`]: the batch answered within Lambda's response limit (`firehose::budget` decides what
//!   is read, deferred or split; `firehose::response` writes the answer);
//! - [`put`]: PutRecordBatch with Firehose's limits and retries; [`lambda`]: the runtime wiring;
//! - [`objects`]: log objects read once each, streamed line by line (`parse::W3cHeader` for CloudFront's);
//! - [`applications`]: whose a source is (instance tags from the enrollment table, the reference file),
//!   for the records' `application` and the access windows ([`window_lines`], `fleetlog_core::traffic`).

pub mod applications;
pub mod envelope;
pub mod firehose;
pub mod gzip;
pub mod json;
pub mod lambda;
pub mod objects;
pub mod parse;
pub mod put;
pub mod records;
mod scan;

use aws_lambda_events::encodings::MillisecondTimestamp;
use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord, KinesisFirehoseRecordMetadata};

use fleetlog_core::freshness::{LOGS_SEEN, ReportTo, Sighting, SightingThrottle, logs_seen_request};
use fleetlog_core::metrics::Counter;
pub use fleetlog_sdk::metrics::MetricsOutput;
use serde_json::value::RawValue;

use envelope::{MessageType, parse_envelope};
use gzip::gunzip_into;
use put::{PutError, RECORD_LIMITS, RetryPolicy, Sink, put_all};

#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    #[error("payload is neither a Firehose transformation event, a CloudWatch Logs (awslogs) event nor an SQS event")]
    UnknownPayload,
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Put(#[from] PutError),
    #[error("FLEETLOG_DELIVERY_STREAM must name the Firehose stream to put records into")]
    NoDeliveryStream,
}

/// Why a payload (base64, gzip, envelope) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not gzip data (no gzip magic bytes)")]
    NotGzip,
    #[error("corrupt gzip data: {0}")]
    BadGzip(String),
    #[error("decompresses to more than {0} bytes")]
    TooLarge(u64),
    #[error("no memory left to inflate the payload")]
    OutOfMemory,
    #[error("not a CloudWatch Logs subscription envelope: {0}")]
    BadJson(String),
    #[error("unknown messageType {0:?}")]
    UnknownMessageType(String),
    #[error("not valid base64: {0}")]
    BadBase64(String),
}

/// Decodes a base64 string (a Firehose record's data, `awslogs.data`) into bytes.
fn base64_decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    base64_simd::STANDARD.decode_to_vec(text).map_err(|e| DecodeError::BadBase64(e.to_string()))
}

/// Built once per process.
#[derive(Debug, Clone)]
pub struct EtlState {
    pub firehose: aws_sdk_firehose::Client,
    /// Where a fan-out stack's transformations re-ingest: the Kinesis stream their Firehose streams read.
    pub kinesis: aws_sdk_kinesis::Client,
    /// Reads log objects, and marks them read in their bucket.
    pub s3: aws_sdk_s3::Client,
    pub region: String,
    /// Where the subscription-target shape puts records (`FLEETLOG_DELIVERY_STREAM`).
    pub delivery_stream: Option<String>,
    pub retry: RetryPolicy,
    /// Where the embedded-metric line of each invocation goes.
    pub metrics: MetricsOutput,
    /// Whose records the ETL writes (`FLEETLOG_RECORD_FORMAT`).
    pub destination: records::Destination,
    /// A fan-out stack's Splunk stream, and the destination its batches are answered for
    /// (`FLEETLOG_SPLUNK_DELIVERY_STREAM`).
    pub splunk_stream: Option<(String, records::Destination)>,
    /// A fan-out stack's Kinesis stream (`FLEETLOG_FAN_OUT_STREAM_ARN`): log objects' records for the
    /// Splunk stream go there, keyed for it ([`firehose::made_partition_key`]).
    pub fan_out_stream: Option<String>,
    /// Where whose logs were carried is reported (`FLEETLOG_ENROLL_QUEUE_URL`); `None`: nowhere.
    pub sightings: Option<std::sync::Arc<SightingReports>>,
    /// Where the applications of sources are read (`FLEETLOG_ENROLLMENT_TABLE`,
    /// `FLEETLOG_REFERENCE_OBJECT`).
    pub applications: std::sync::Arc<applications::ApplicationSource>,
    /// Whether access requests are published as windows (`FLEETLOG_ACCESS_METRICS`).
    pub access_metrics: bool,
}

impl EtlState {
    /// The Splunk stream's destination, when the batch is that stream's (else the batch is answered
    /// with [`Self::destination`]).
    fn splunk_batch(&self, event: &KinesisFirehoseEvent) -> Option<&records::Destination> {
        match (&self.splunk_stream, firehose::delivery_stream_name(event)) {
            (Some((splunk, destination)), Some(stream)) if splunk == stream => Some(destination),
            _ => None,
        }
    }

    /// Publishes a batch's access windows ([`window_lines`]), beside the counters.
    fn publish(&self, windows: &mut fleetlog_core::traffic::Windows, applications: &applications::Applications) {
        if windows.is_empty() {
            return;
        }
        self.metrics.emit_lines(&window_lines(windows, applications, chrono::Utc::now().timestamp_millis()));
        if windows.outside > 0 {
            self.metrics.emit(&[(Counter::AccessRequestsUnmetered, windows.outside)]);
        }
    }
}

/// What a batch's access windows are published as, at `now_ms`: EMF lines of the aggregates, and
/// contributor lines of each application's heaviest clients (with the application the reference file
/// names for them) and paths.
pub fn window_lines(
    windows: &mut fleetlog_core::traffic::Windows,
    applications: &applications::Applications,
    now_ms: i64,
) -> Vec<String> {
    let mut lines = windows.emf_lines(now_ms);
    lines.extend(windows.contributor_lines(|ip| applications.of_client(ip)));
    lines
}

/// Tells the enroller, through its queue, which instances' logs the ETL carried (see
/// [`fleetlog_core::freshness`]): each instance at most once per interval per container, a thousand
/// to a message. A central stack tells each member's enroller of its own instances, through the
/// member's default event bus ([`SightingReports::to_members`]). A report that cannot be sent is
/// logged and skipped; it never fails a batch.
#[derive(Debug)]
pub struct SightingReports {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    throttle: std::sync::Mutex<SightingThrottle>,
    members: Option<MemberBuses>,
}

/// Where a central stack reports its members' sightings.
#[derive(Debug)]
struct MemberBuses {
    events: aws_sdk_eventbridge::Client,
    region: String,
    own_account: String,
}

impl SightingReports {
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: String, window: std::time::Duration) -> Self {
        Self { sqs, queue_url, throttle: std::sync::Mutex::new(SightingThrottle::new(window)), members: None }
    }

    /// Other accounts' sightings (a central stack's members) go to the default bus of their account
    /// in `region`; `own_account`'s stay on the queue.
    #[must_use]
    pub fn to_members(mut self, events: aws_sdk_eventbridge::Client, region: String, own_account: String) -> Self {
        self.members = Some(MemberBuses { events, region, own_account });
        self
    }

    pub async fn report(&self, seen: Vec<Sighting>) {
        let due = match self.throttle.lock() {
            Ok(mut throttle) => throttle.admit(seen),
            Err(_) => return,
        };
        let own_account = self.members.as_ref().map(|m| m.own_account.as_str());
        for (to, sightings) in fleetlog_core::freshness::reports(due, own_account) {
            let body = logs_seen_request(&sightings);
            let sent = match (&to, &self.members) {
                (ReportTo::MemberBus { account }, Some(members)) => {
                    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                        .event_bus_name(fleetlog_core::freshness::default_bus_arn(&members.region, account))
                        .source(body["source"].as_str().unwrap_or_default())
                        .detail_type(LOGS_SEEN)
                        .detail(body["detail"].to_string())
                        .build();
                    // One entry per call: PutEvents takes 256 KiB per request, about what one report holds.
                    match members.events.put_events().entries(entry).send().await {
                        Ok(out) if out.failed_entry_count() == 0 => Ok(()),
                        Ok(out) => Err(out
                            .entries()
                            .iter()
                            .filter_map(|e| e.error_message().or(e.error_code()))
                            .collect::<Vec<_>>()
                            .join("; ")),
                        Err(e) => Err(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string()),
                    }
                }
                _ => self
                    .sqs
                    .send_message()
                    .queue_url(&self.queue_url)
                    .message_body(body.to_string())
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| aws_smithy_types::error::display::DisplayErrorContext(&e).to_string()),
            };
            if let Err(error) = sent {
                tracing::warn!(
                    %error,
                    to = ?to,
                    instances = sightings.len(),
                    "Could not report whose logs arrived; reported again after the interval"
                );
            }
        }
    }
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
    records: Option<Vec<FirehoseRecord>>,
    /// An SQS event's messages (S3 notifications of log objects).
    #[serde(rename = "Records")]
    sqs_records: Option<Vec<aws_lambda_events::sqs::SqsMessage>>,
}

/// `KinesisFirehoseEventRecord`'s fields, its data decoded by a vectorised base64 decoder: the derived
/// one decodes a byte at a time, a large share of a big event's time.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct FirehoseRecord {
    #[serde(default)]
    record_id: Option<String>,
    approximate_arrival_timestamp: MillisecondTimestamp,
    #[serde(deserialize_with = "base64_data")]
    data: RecordData,
    kinesis_record_metadata: Option<KinesisFirehoseRecordMetadata>,
}

/// A record's data: decoded, or text that is not base64. One such record is answered
/// `ProcessingFailed` like any other undecodable record; it does not fail the invocation.
#[derive(Debug)]
enum RecordData {
    Decoded(Vec<u8>),
    NotBase64 { text: String, error: DecodeError },
}

impl From<FirehoseRecord> for KinesisFirehoseEventRecord {
    fn from(read: FirehoseRecord) -> Self {
        let mut record = KinesisFirehoseEventRecord::default();
        record.data.0 = match read.data {
            RecordData::Decoded(bytes) => bytes,
            RecordData::NotBase64 { text, error } => {
                tracing::warn!(record_id = read.record_id, %error, "Record data is not base64; it is answered ProcessingFailed");
                // Text is never gzip (a gzip header's second byte cannot follow its first in UTF-8),
                // so the transform answers ProcessingFailed, echoing the text as data.
                text.into_bytes()
            }
        };
        record.record_id = read.record_id;
        record.approximate_arrival_timestamp = read.approximate_arrival_timestamp;
        record.kinesis_firehose_record_metadata = read.kinesis_record_metadata;
        record
    }
}

fn base64_data<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<RecordData, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = RecordData;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("base64 text")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RecordData, E> {
            Ok(match base64_decode(text) {
                Ok(bytes) => RecordData::Decoded(bytes),
                Err(error) => RecordData::NotBase64 { text: text.to_owned(), error },
            })
        }
    }
    deserializer.deserialize_str(Visitor)
}

#[derive(Debug, serde::Deserialize)]
struct AwsLogsPayload {
    data: String,
}

impl Payload {
    /// The Firehose transformation event, when that is what this is.
    pub fn into_firehose_event(self) -> Option<KinesisFirehoseEvent> {
        let mut event = KinesisFirehoseEvent::default();
        event.records = self.records?.into_iter().map(KinesisFirehoseEventRecord::from).collect();
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
    if let Some(messages) = &payload.sqs_records {
        return serde_json::value::to_raw_value(&objects::handle_sqs(state, messages).await).map_err(malformed);
    }
    let event = payload.into_firehose_event().ok_or(EtlError::UnknownPayload)?;
    handle_firehose(state, &event).await
}

/// Firehose transformation: answer per record; re-ingest what does not fit before answering, so a
/// failed re-ingest fails the invocation (Firehose retries it) instead of losing data. The answer is
/// the response JSON.
pub async fn handle_firehose(state: &EtlState, event: &KinesisFirehoseEvent) -> Result<Box<RawValue>, EtlError> {
    let applications = state.applications.for_instances(firehose::instance_ids(event)).await;
    let splunk = state.splunk_batch(event);
    // A fan-out stack's two streams transform the same records: only the primary one counts them.
    let access_metrics = state.access_metrics && splunk.is_none();
    let context = firehose::Context { region: &state.region, applications: &applications, access_metrics };
    let mut out = firehose::transform_for(splunk.unwrap_or(&state.destination), event, &context);
    tracing::info!(stats = ?out.stats, "Firehose batch transformed");
    if !out.reingest.is_empty() {
        let stream = firehose::delivery_stream_name(event).ok_or_else(|| {
            EtlError::Malformed("records must be re-ingested but deliveryStreamArn is missing".into())
        })?;
        // A stream that reads a Kinesis stream takes no puts: its records go back into the Kinesis
        // stream, keyed for this stream alone (the other consumers drop them).
        match event.source_kinesis_stream_arn.as_deref() {
            Some(source) => {
                let partition_key = firehose::reingest_partition_key(stream);
                let sink = Sink::Kinesis { client: &state.kinesis, stream_arn: source, partition_key: &partition_key };
                put_all(&sink, out.reingest, state.retry).await?
            }
            None => put_all(&Sink::Firehose { client: &state.firehose, stream }, out.reingest, state.retry).await?,
        };
    }
    // Counted once the batch is settled: a failed re-ingest fails the invocation, and Firehose's
    // retry counts it.
    state.metrics.emit(&out.stats.counters());
    state.publish(&mut out.windows, &applications);
    if let Some(reports) = &state.sightings {
        reports.report(out.seen).await;
    }
    Ok(out.response)
}

/// Subscription-filter target: decode, transform, PutRecordBatch one record per log event.
/// Returns the number of records delivered.
pub async fn handle_awslogs(state: &EtlState, data_base64: &str) -> Result<usize, EtlError> {
    let stream = state.delivery_stream.as_deref().ok_or(EtlError::NoDeliveryStream)?;
    let compressed = base64_decode(data_base64)?;
    let mut plain = Vec::new();
    gunzip_into(&compressed, &mut plain)?;
    let envelope = parse_envelope(&plain)?;
    if envelope.kind()? == MessageType::Control {
        return Ok(0);
    }
    let instance = records::instance_id_of(&envelope.log_stream);
    let applications = state.applications.for_instances(instance.map(str::to_owned)).await;
    let application = applications.of(instance, None);
    let origin = records::Origin { region: &state.region, application };
    let mut lines = Vec::new();
    let mut windows = fleetlog_core::traffic::Windows::default();
    let mut requests = state.access_metrics.then(|| windows.of(application));
    records::write_for(&state.destination, &envelope, &origin, RECORD_LIMITS, &mut lines, |_, event| {
        if let Some(requests) = requests.as_deref_mut()
            && let Some(request) = event.request()
        {
            requests.add(&request);
        }
    });
    let records = put::one_per_line(&lines);
    let count = records.len();
    put_all(&Sink::Firehose { client: &state.firehose, stream }, records, state.retry).await?;
    if let Some(reports) = &state.sightings {
        reports.report(firehose::sighting(&envelope).into_iter().collect()).await;
    }
    let counts = [(Counter::LogEventsTransformed, u64::try_from(count).unwrap_or(u64::MAX))];
    state.metrics.emit(&counts);
    state.publish(&mut windows, &applications);
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firehose_events_read_as_aws_lambda_events_reads_them() {
        let event = serde_json::json!({
            "invocationId": "inv-1",
            "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/raw",
            "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/src",
            "region": "us-east-1",
            "records": [
                {"recordId": "a", "approximateArrivalTimestamp": 1_763_800_000_123i64, "data": "aGVsbG8gd29ybGQ=",
                 "kinesisRecordMetadata": {"shardId": "shardId-0", "partitionKey": "k", "approximateArrivalTimestamp": 1_763_800_000_000i64,
                                           "sequenceNumber": "49", "subsequenceNumber": 0}},
                {"approximateArrivalTimestamp": 1, "data": ""},
            ],
        })
        .to_string();
        // A JSON writer may escape `/`; base64 holds it.
        let event = event.replace("\"data\":\"\"", "\"data\":\"P\\/8=\"");
        let expected: KinesisFirehoseEvent = serde_json::from_str(&event).unwrap();
        let read: Payload = serde_json::from_str(&event).unwrap();
        assert_eq!(read.into_firehose_event(), Some(expected));
        // Text that is not base64 is kept as it is, for the transform to answer ProcessingFailed.
        let bad: Payload =
            serde_json::from_str(r#"{"records":[{"approximateArrivalTimestamp":1,"data":"a$"}]}"#).unwrap();
        assert_eq!(bad.into_firehose_event().unwrap().records[0].data.0, b"a$");
    }
}
