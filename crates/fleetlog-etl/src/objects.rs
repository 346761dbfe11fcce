//! The third entry shape: log objects an AWS service delivers to S3 (CloudFront standard logs),
//! named by S3 event notifications that reach the ETL through an SQS queue. Each object is read
//! once (claimed and marked as `fleetlog_core::ingest` says), streamed line by line in bounded
//! memory (gzip inflated as it arrives), and its records put to the delivery stream in batches,
//! with PutRecordBatch's limits and retries. Messages that fail are answered as partial batch
//! failures, so only they come back (and, past the queue's receive count, go to its DLQ).

use std::io::Write;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use aws_smithy_types::error::display::DisplayErrorContext;
use fleetlog_core::ingest::{Existing, Marker, NotificationError, ObjectRef, created_objects, on_existing};
use fleetlog_core::metrics::Counter;

use crate::envelope::Envelope;
use crate::firehose::made_partition_key;
use crate::json::write_str;
use crate::parse::{Format, W3cHeader};
use crate::put::{PutError, RECORD_LIMITS, Sink, put_all};
use crate::records::{Destination, Event, EventWriter, Origin, RecordFormat, SplunkHec, TableJson};
use crate::{DecodeError, EtlState};
use fleetlog_core::traffic::{SourceWindows, Windows};

/// How much inflated text one write into the decoder may produce at most is bounded by the slice
/// written: deflate expands at most ~1032:1, so an 8 KiB slice inflates to under 9 MB.
const INFLATE_SLICE: usize = 8 * 1024;
/// A line longer than this is recorded as it stands (in parts, as any long message): a line that
/// never ends must not hold the object in memory.
const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Records are put once this many bytes of them are waiting, so an object of any size is read in
/// bounded memory.
const FLUSH_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{0}")]
    Notification(#[from] NotificationError),
    #[error("{call} on s3://{bucket}/{key} failed: {message}")]
    S3 { call: &'static str, bucket: String, key: String, message: String },
    #[error("s3://{bucket}/{key} cannot be read: {error}")]
    Unreadable { bucket: String, key: String, error: DecodeError },
    #[error("{0}")]
    Put(#[from] PutError),
    #[error("FLEETLOG_DELIVERY_STREAM must name the Firehose stream to put records into")]
    NoDeliveryStream,
    #[error("another run is reading s3://{bucket}/{key}; retried later")]
    Busy { bucket: String, key: String },
}

/// What became of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Read: this many records were delivered.
    Read { records: usize },
    /// A redelivered notification: the object was read before.
    AlreadyRead,
    /// The object was overwritten or deleted since it was notified; the newer one has its own
    /// notification.
    Superseded,
}

/// Answers an SQS batch of S3 notifications: every object each one names is read once, and the
/// messages that could not be handled are the batch's item failures.
pub async fn handle_sqs(state: &EtlState, messages: &[SqsMessage]) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let (mut records, mut redelivered) = (0u64, 0u64);
    for message in messages {
        match handle_message(state, message).await {
            Ok(outcomes) => {
                for outcome in outcomes {
                    match outcome {
                        Outcome::Read { records: n } => records += u64::try_from(n).unwrap_or(u64::MAX),
                        Outcome::AlreadyRead => redelivered += 1,
                        Outcome::Superseded => {}
                    }
                }
            }
            Err(error) => {
                tracing::warn!(message_id = message.message_id.as_deref(), %error, "Log object notification retried");
                response.add_failure(message.message_id.clone().unwrap_or_default());
            }
        }
    }
    state.metrics.emit(&[(Counter::LogEventsTransformed, records), (Counter::LogObjectsRedelivered, redelivered)]);
    response
}

/// Reads each object `message` names, in order; the first failure fails the message (objects read
/// before it are marked, so its retry skips them).
async fn handle_message(state: &EtlState, message: &SqsMessage) -> Result<Vec<Outcome>, ObjectError> {
    let objects = created_objects(message.body.as_deref().unwrap_or_default())?;
    // The queue is the stack's, in the account that owns the bucket: its ARN names the account.
    let account = message.event_source_arn.as_deref().and_then(|arn| arn.split(':').nth(4)).unwrap_or_default();
    let mut outcomes = Vec::with_capacity(objects.len());
    for object in &objects {
        let outcome = read_once(state, object, account).await?;
        tracing::info!(bucket = object.bucket, key = object.key, ?outcome, "Log object handled");
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Claims `object`, reads it, and marks it done; a failed read releases the claim.
async fn read_once(state: &EtlState, object: &ObjectRef, account: &str) -> Result<Outcome, ObjectError> {
    let markers = Markers { s3: &state.s3, bucket: &object.bucket, key: object.marker_key() };
    match markers.claim().await? {
        Claim::Granted => {}
        Claim::AlreadyRead => return Ok(Outcome::AlreadyRead),
        Claim::Busy => return Err(ObjectError::Busy { bucket: object.bucket.clone(), key: object.key.clone() }),
    }
    match read_object(state, object, account).await {
        Ok(Outcome::Read { records }) => {
            let done = Marker::Done { at: now(), records: u64::try_from(records).unwrap_or(u64::MAX) };
            match markers.put(&done, None).await {
                Ok(_) => Ok(Outcome::Read { records }),
                // The records are delivered; a retry delivers them again, so say so loudly.
                Err(error) => {
                    tracing::error!(%error, "Records delivered but the object not marked read; a redelivery reads it again");
                    Err(error)
                }
            }
        }
        Ok(other) => {
            markers.release().await;
            Ok(other)
        }
        Err(error) => {
            markers.release().await;
            Err(error)
        }
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The answer to [`Markers::claim`].
enum Claim {
    Granted,
    AlreadyRead,
    Busy,
}

/// One object's marker, in the object's own bucket.
struct Markers<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    key: String,
}

/// Whether S3 refused a conditional request because its condition did not hold (412), or because
/// another conditional write to the key was under way (409).
fn condition_failed<E>(error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    error.raw_response().is_some_and(|r| matches!(r.status().as_u16(), 409 | 412))
}

impl ObjectError {
    /// `call` on `s3://bucket/key` failed with `error`.
    fn s3(call: &'static str, bucket: &str, key: &str, error: &dyn std::error::Error) -> Self {
        ObjectError::S3 {
            call,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message: DisplayErrorContext(error).to_string(),
        }
    }
}

impl Markers<'_> {
    fn failed(&self, call: &'static str, error: &dyn std::error::Error) -> ObjectError {
        ObjectError::s3(call, self.bucket, &self.key, error)
    }

    /// Creates the marker as claimed, or finds out why another run's stands.
    async fn claim(&self) -> Result<Claim, ObjectError> {
        let claimed = Marker::Claimed { at: now() };
        if self.put(&claimed, Some(Condition::Absent)).await? {
            return Ok(Claim::Granted);
        }
        let existing = self.s3.get_object().bucket(self.bucket).key(&self.key).send().await;
        let existing = existing.map_err(|e| self.failed("s3:GetObject", &e))?;
        let etag = existing.e_tag().map(str::to_owned);
        let body = existing.body.collect().await.map_err(|e| self.failed("s3:GetObject", &e))?.into_bytes();
        match on_existing(serde_json::from_slice(&body).ok(), now()) {
            Existing::AlreadyRead => Ok(Claim::AlreadyRead),
            Existing::Busy => Ok(Claim::Busy),
            Existing::TakeOver => {
                let taken = self.put(&claimed, etag.map(Condition::Matches)).await?;
                Ok(if taken { Claim::Granted } else { Claim::Busy })
            }
        }
    }

    /// Writes the marker if `condition` holds; returns whether it did.
    async fn put(&self, marker: &Marker, condition: Option<Condition>) -> Result<bool, ObjectError> {
        let body = serde_json::to_vec(marker).unwrap_or_default();
        let mut put = self.s3.put_object().bucket(self.bucket).key(&self.key).body(body.into());
        let conditional = condition.is_some();
        put = match condition {
            Some(Condition::Absent) => put.if_none_match("*"),
            Some(Condition::Matches(etag)) => put.if_match(etag),
            None => put,
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if conditional && condition_failed(&e) => Ok(false),
            Err(e) => Err(self.failed("s3:PutObject", &e)),
        }
    }

    /// Gives the claim up so a retry reads the object at once; if this fails, the claim lapses.
    async fn release(&self) {
        if let Err(e) = self.s3.delete_object().bucket(self.bucket).key(&self.key).send().await {
            tracing::warn!(key = self.key, error = %DisplayErrorContext(&e), "A claim could not be released; it lapses");
        }
    }
}

enum Condition {
    /// `If-None-Match: *`.
    Absent,
    /// `If-Match` this ETag.
    Matches(String),
}

/// Streams the object (the version notified: `If-Match` its ETag) and puts its records.
async fn read_object(state: &EtlState, object: &ObjectRef, account: &str) -> Result<Outcome, ObjectError> {
    let stream = state.delivery_stream.as_deref().ok_or(ObjectError::NoDeliveryStream)?;
    let got = state
        .s3
        .get_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .if_match(format!("\"{}\"", object.etag))
        .send()
        .await;
    let got = match got {
        Ok(got) => got,
        Err(e) if condition_failed(&e) || e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
            return Ok(Outcome::Superseded);
        }
        Err(e) => return Err(ObjectError::s3("s3:GetObject", &object.bucket, &object.key, &e)),
    };
    let distribution = fleetlog_core::ingest::cloudfront_distribution(&object.key);
    let source = Envelope::of_source(account.to_owned(), format!("cloudfront/{distribution}"), object.key.clone());
    let fallback = got.last_modified().and_then(|t| t.to_millis().ok()).unwrap_or_else(|| now() * 1000);
    let sink = Sink::Firehose { client: &state.firehose, stream };
    let mut body = got.body;
    let mut reader = LineReader::default();
    // A distribution is one source: the reference file may name its id.
    let applications = state.applications.for_instances(None).await;
    let origin = Origin { region: &state.region, application: applications.of(None, Some(distribution)) };
    let counting = state.access_metrics;
    let outcome = match (&state.destination, splunk_copy(state)) {
        (Destination::Table, None) => {
            let mut table =
                ObjectRecords::new(TableJson, &source, &origin, &object.etag, fallback).counting_requests(counting);
            stream_lines(&mut body, &mut reader, &mut [(&mut table, &sink)], state, object).await
        }
        // A fan-out stack's Splunk stream takes no puts: its HEC events go through the Kinesis stream,
        // keyed for it; the archive's records go to the records stream as ever.
        (Destination::Table, Some((hec, stream_arn, key))) => {
            let mut table =
                ObjectRecords::new(TableJson, &source, &origin, &object.etag, fallback).counting_requests(counting);
            let mut events =
                ObjectRecords::new(hec.clone(), &source, &origin, &object.etag, fallback).counting_requests(false);
            let splunk = Sink::Kinesis { client: &state.kinesis, stream_arn, partition_key: &key };
            stream_lines(&mut body, &mut reader, &mut [(&mut table, &sink), (&mut events, &splunk)], state, object)
                .await
        }
        (Destination::Splunk(hec), _) => {
            let mut events =
                ObjectRecords::new(hec.clone(), &source, &origin, &object.etag, fallback).counting_requests(counting);
            stream_lines(&mut body, &mut reader, &mut [(&mut events, &sink)], state, object).await
        }
    };
    // Counted once the whole object is delivered: a read that fails is read again, whole.
    let (outcome, mut windows) = outcome?;
    state.publish(&mut windows, &applications);
    Ok(outcome)
}

/// The HEC writer, Kinesis stream and partition key a fan-out stack's log objects reach its Splunk
/// stream by; `None` elsewhere.
fn splunk_copy(state: &EtlState) -> Option<(&SplunkHec, &str, String)> {
    match (&state.splunk_stream, state.fan_out_stream.as_deref()) {
        (Some((stream, Destination::Splunk(hec))), Some(arn)) => Some((hec, arn, made_partition_key(stream))),
        _ => None,
    }
}

/// Feeds the body through the reader into each target's records, putting each one's whenever
/// [`FLUSH_BYTES`] of them wait. The records delivered are the first target's (the others carry the
/// same lines elsewhere); the windows are those of the targets that count requests.
async fn stream_lines(
    body: &mut aws_sdk_s3::primitives::ByteStream,
    reader: &mut LineReader,
    targets: &mut [(&mut dyn ObjectLines, &Sink<'_>)],
    state: &EtlState,
    object: &ObjectRef,
) -> Result<(Outcome, Windows), ObjectError> {
    let unreadable = |error| ObjectError::Unreadable { bucket: object.bucket.clone(), key: object.key.clone(), error };
    let mut delivered = 0;
    while let Some(chunk) =
        body.try_next().await.map_err(|e| ObjectError::s3("s3:GetObject", &object.bucket, &object.key, &e))?
    {
        reader.push(&chunk, &mut |line| feed(targets, line)).map_err(unreadable)?;
        for (i, (lines, sink)) in targets.iter_mut().enumerate() {
            if lines.waiting_bytes() >= FLUSH_BYTES {
                let put = put_records(sink.records_of(&lines.take()), sink, state).await?;
                delivered += if i == 0 { put } else { 0 };
            }
        }
    }
    std::mem::take(reader).finish(&mut |line| feed(targets, line)).map_err(unreadable)?;
    let mut windows = Windows::default();
    for (i, (lines, sink)) in targets.iter_mut().enumerate() {
        let put = put_records(sink.records_of(&lines.take()), sink, state).await?;
        delivered += if i == 0 { put } else { 0 };
        lines.requests_into(&mut windows);
    }
    Ok((Outcome::Read { records: delivered }, windows))
}

fn feed(targets: &mut [(&mut dyn ObjectLines, &Sink<'_>)], line: &str) {
    for (lines, _) in targets.iter_mut() {
        lines.line(line);
    }
}

/// Puts records; returns how many.
async fn put_records(records: Vec<Vec<u8>>, sink: &Sink<'_>, state: &EtlState) -> Result<usize, ObjectError> {
    let count = records.len();
    if count > 0 {
        put_all(sink, records, state.retry).await?;
    }
    Ok(count)
}

/// An object's lines made records: W3C lines by the latest `#Fields:` header, lines before any
/// header as text. Each record's id is the object's ETag and the line's number, the same on every
/// reading.
#[derive(Debug)]
pub struct ObjectRecords<F: RecordFormat> {
    writer: EventWriter<F>,
    header: Option<W3cHeader>,
    etag: String,
    /// When a line's own time cannot be read: the object's.
    fallback_ms: i64,
    line_number: u64,
    /// Scratch: a line as JSON string content, and its id.
    message: String,
    id: String,
    /// Records waiting to be put, each with its newline.
    out: Vec<u8>,
    /// The object's requests (when counted), and the application of its source.
    application: String,
    requests: SourceWindows,
    counts_requests: bool,
}

impl<F: RecordFormat> ObjectRecords<F> {
    /// The records of the object `etag` names, sharing what `source` says; a line without a time of
    /// its own gets `fallback_ms` (the object's).
    pub fn new(format: F, source: &Envelope<'_>, origin: &Origin<'_>, etag: &str, fallback_ms: i64) -> Self {
        Self {
            writer: EventWriter::new(format, source, origin, RECORD_LIMITS),
            application: origin.application.to_owned(),
            requests: SourceWindows::default(),
            counts_requests: true,
            header: None,
            etag: etag.to_owned(),
            fallback_ms,
            line_number: 0,
            message: String::new(),
            id: String::new(),
            out: Vec::new(),
        }
    }

    /// Whether the lines' access requests are folded into windows (`FLEETLOG_ACCESS_METRICS`); they
    /// are unless told otherwise.
    #[must_use]
    pub fn counting_requests(mut self, counts: bool) -> Self {
        self.counts_requests = counts;
        self
    }

    /// Makes the next line of the object (a directive, a log line, or empty) its records.
    pub fn line(&mut self, line: &str) {
        self.line_number += 1;
        if line.is_empty() {
            return;
        }
        if line.starts_with('#') {
            if let Some(header) = W3cHeader::from_directive(line) {
                self.header = Some(header);
            }
            return;
        }
        self.message.clear();
        write_str(&mut self.message, line);
        let message = &self.message[1..self.message.len() - 1];
        self.id.clear();
        self.id.push_str(&self.etag);
        self.id.push(':');
        self.id.push_str(itoa::Buffer::new().format(self.line_number));
        let (format, timestamp, read) = match &self.header {
            Some(header) => {
                let read = header.read(line);
                (Format::CloudFront, read.timestamp().unwrap_or(self.fallback_ms), Some(read))
            }
            None => (Format::Text, self.fallback_ms, None),
        };
        let fields = read.as_ref().map(|r| r.fields()).unwrap_or_default();
        let event = Event { id: &self.id, timestamp, format, message, fields: &fields };
        self.writer.write(&mut self.out, &event);
        if self.counts_requests
            && let Some(request) = event.request()
        {
            self.requests.add(&request);
        }
    }

    /// How many bytes of records wait to be taken.
    pub fn waiting_bytes(&self) -> usize {
        self.out.len()
    }

    /// The waiting records, each with its newline (the next ones get a buffer of the same room).
    pub fn take(&mut self) -> Vec<u8> {
        let room = self.out.capacity();
        std::mem::replace(&mut self.out, Vec::with_capacity(room))
    }
}

/// What [`stream_lines`] drives: [`ObjectRecords`] in any format.
trait ObjectLines: Send {
    fn line(&mut self, line: &str);
    fn waiting_bytes(&self) -> usize;
    fn take(&mut self) -> Vec<u8>;
    /// Moves the requests counted into `windows`.
    fn requests_into(&mut self, windows: &mut Windows);
}

impl<F: RecordFormat + Send> ObjectLines for ObjectRecords<F>
where
    F::Shared: Send,
{
    fn line(&mut self, line: &str) {
        ObjectRecords::line(self, line);
    }

    fn waiting_bytes(&self) -> usize {
        ObjectRecords::waiting_bytes(self)
    }

    fn take(&mut self) -> Vec<u8> {
        ObjectRecords::take(self)
    }

    fn requests_into(&mut self, windows: &mut Windows) {
        if self.counts_requests {
            windows.absorb(&self.application, std::mem::take(&mut self.requests));
        }
    }
}

/// An object's lines as its bytes arrive: gzip (one member or several) inflated as it streams,
/// anything else read as text. Holds one unfinished line and what one [`INFLATE_SLICE`] inflates to.
#[derive(Debug, Default)]
pub struct LineReader {
    reading: Reading,
}

#[derive(Debug, Default)]
enum Reading {
    /// The first bytes, until there are enough to tell gzip by its magic.
    #[default]
    Start,
    Head(Vec<u8>),
    Plain(Vec<u8>),
    /// Boxed: the decoder's state is large, and one per object.
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
}

impl LineReader {
    /// Reads `chunk`, handing each line it completes to `each` (without its `\n` or `\r\n`).
    pub fn push(&mut self, chunk: &[u8], each: &mut impl FnMut(&str)) -> Result<(), DecodeError> {
        match &mut self.reading {
            Reading::Start | Reading::Head(_) => {
                let mut head = match std::mem::take(&mut self.reading) {
                    Reading::Head(head) => head,
                    _ => Vec::new(),
                };
                head.extend_from_slice(chunk);
                if head.len() < fleetlog_core::schema::GZIP_MAGIC.len() {
                    self.reading = Reading::Head(head);
                    return Ok(());
                }
                self.reading = if head.starts_with(&fleetlog_core::schema::GZIP_MAGIC) {
                    Reading::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new())))
                } else {
                    Reading::Plain(Vec::new())
                };
                self.push(&head, each)
            }
            Reading::Plain(text) => {
                text.extend_from_slice(chunk);
                complete_lines(text, each);
                Ok(())
            }
            Reading::Gzip(decoder) => {
                for slice in chunk.chunks(INFLATE_SLICE) {
                    decoder.write_all(slice).map_err(|e| DecodeError::BadGzip(e.to_string()))?;
                    complete_lines(decoder.get_mut(), each);
                }
                Ok(())
            }
        }
    }

    /// Ends the object: its last line, if it has no newline; an error if its gzip is cut short.
    pub fn finish(self, each: &mut impl FnMut(&str)) -> Result<(), DecodeError> {
        let rest = match self.reading {
            Reading::Start => Vec::new(),
            Reading::Head(text) | Reading::Plain(text) => text,
            Reading::Gzip(decoder) => decoder.finish().map_err(|e| DecodeError::BadGzip(e.to_string()))?,
        };
        let mut rest = rest;
        complete_lines(&mut rest, each);
        if !rest.is_empty() {
            each(trimmed(&String::from_utf8_lossy(&rest)));
        }
        Ok(())
    }
}

/// Hands each complete line of `text` to `each` and keeps the unfinished rest; an unfinished line
/// longer than [`MAX_LINE_BYTES`] is handed on as it stands.
fn complete_lines(text: &mut Vec<u8>, each: &mut impl FnMut(&str)) {
    let end = match memchr::memrchr(b'\n', text) {
        Some(last) => last + 1,
        None if text.len() > MAX_LINE_BYTES => text.len(),
        None => return,
    };
    for line in text[..end].split_inclusive(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        match std::str::from_utf8(line) {
            Ok(line) => each(trimmed(line)),
            Err(_) => each(trimmed(&String::from_utf8_lossy(line))),
        }
    }
    text.drain(..end);
}

fn trimmed(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]]) -> Result<Vec<String>, DecodeError> {
        let mut reader = LineReader::default();
        let mut lines = Vec::new();
        for chunk in chunks {
            reader.push(chunk, &mut |l| lines.push(l.to_owned()))?;
        }
        reader.finish(&mut |l| lines.push(l.to_owned()))?;
        Ok(lines)
    }

    #[test]
    fn plain_and_gzip_objects_are_read_line_by_line_in_any_chunks() {
        let text = b"#Version: 1.0\r\nline one\n\nline two";
        let expected = ["#Version: 1.0", "line one", "", "line two"];
        assert_eq!(lines_of(&[text]).unwrap(), expected);
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(lines_of(&bytes).unwrap(), expected);
        // Two gzip members, as a concatenated object holds them, fed a byte at a time.
        let mut gz = crate::gzip::gzip(b"#Version: 1.0\r\nline one\n");
        gz.extend(crate::gzip::gzip(b"\nline two"));
        let bytes: Vec<&[u8]> = gz.chunks(1).collect();
        assert_eq!(lines_of(&bytes).unwrap(), expected);
        assert_eq!(lines_of(&[]).unwrap(), Vec::<String>::new());
        assert_eq!(lines_of(&[b"x"]).unwrap(), ["x"]);
    }

    #[test]
    fn cut_gzip_is_an_error_and_endless_lines_are_handed_on() {
        let gz = crate::gzip::gzip(b"line one\nline two\n");
        assert!(matches!(lines_of(&[&gz[..gz.len() - 4]]), Err(DecodeError::BadGzip(_))));
        let long = vec![b'a'; MAX_LINE_BYTES + 10];
        let lines = lines_of(&[&long[..MAX_LINE_BYTES / 2], &long[MAX_LINE_BYTES / 2..], b"\nend"]).unwrap();
        assert_eq!(lines.iter().map(String::len).collect::<Vec<_>>(), [MAX_LINE_BYTES + 10, 0, 3]);
    }
}
