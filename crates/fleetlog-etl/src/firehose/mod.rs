//! The Firehose data-transformation entry shape: a batch of records in, one result per record out,
//! within Lambda's 6 MB synchronous response limit. What does not fit is handed back for
//! re-ingestion. Which records to read, defer or split is decided by `budget`; `response` writes the
//! answer.

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord};
use fleetlog_core::freshness::Sighting;
use fleetlog_core::instance::is_instance_id;
use fleetlog_core::metrics::Counter;
use serde_json::value::RawValue;

use crate::applications::Applications;
use crate::envelope::{Envelope, MessageType, parse_envelope};
use crate::gzip::{clear_with_room, gunzip_into, gzip, gzip_claimed_size};
use crate::put::RECORD_LIMITS;
use crate::records::{Destination, Origin, RecordFormat, RecordLimits, TableJson, instance_id_of, write_as};
use budget::{Yield, base64_len, pieces};
use fleetlog_core::traffic::{PendingRequests, Windows};
use response::{PartitionKeys, ResponseWriter};

mod budget;
mod response;

/// Lambda's synchronous response limit is 6 MB; the whole response stays within this.
pub const RESPONSE_BUDGET: usize = 6 * 1000 * 1000 - 64 * 1024;

pub const OK: &str = "Ok";
pub const DROPPED: &str = "Dropped";
pub const PROCESSING_FAILED: &str = "ProcessingFailed";

/// The response, plus payloads (gzip CloudWatch Logs envelopes) that must be put back into the
/// delivery stream because they did not fit. The caller must re-ingest them before answering.
#[derive(Debug)]
pub struct Transformed {
    /// The answer as Lambda returns it: the JSON of a `KinesisFirehoseResponse`.
    pub response: Box<RawValue>,
    pub reingest: Vec<Vec<u8>>,
    pub stats: Stats,
    /// The instances whose logs this batch answered, with the newest event time of each record.
    pub seen: Vec<Sighting>,
    /// The access requests of the records answered `Ok` (none unless [`Context::access_metrics`]).
    pub windows: Windows,
}

/// What a batch hands back and counts while its response is written.
#[derive(Debug, Default)]
struct Tally {
    reingest: Vec<Vec<u8>>,
    stats: Stats,
    seen: Vec<Sighting>,
    windows: Windows,
}

/// What a transformation knows beside its batch.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The region the ETL runs in.
    pub region: &'a str,
    /// The applications of the batch's sources.
    pub applications: &'a Applications,
    /// Whether access requests are folded into [`Transformed::windows`].
    pub access_metrics: bool,
}

impl<'a> Context<'a> {
    /// In `region`, every source's application unknown, access requests folded.
    pub fn unknown(region: &'a str) -> Self {
        static NONE: std::sync::LazyLock<Applications> = std::sync::LazyLock::new(Applications::default);
        Context { region, applications: &NONE, access_metrics: true }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub records_in: usize,
    pub events_out: usize,
    pub dropped_control: usize,
    pub failed: usize,
    pub reingested: usize,
    /// Of the re-ingested, those handed back without being inflated (they could not fit).
    pub deferred_unread: usize,
    /// Of the records read: those handed back unread are not inflated, so not counted.
    pub decompressed_bytes: usize,
    /// Records another consumer of the same Kinesis stream re-ingested for itself (dropped here).
    pub left_for_others: usize,
}

impl Stats {
    /// The batch's counts for the ETL's embedded metrics.
    pub fn counters(&self) -> [(Counter, u64); 3] {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        [
            (Counter::LogEventsTransformed, count(self.events_out)),
            (Counter::RecordsReingested, count(self.reingested)),
            (Counter::RecordsFailed, count(self.failed)),
        ]
    }
}

/// The partition keys of records re-ingested into a fan-out stack's Kinesis stream start so. Every
/// Firehose stream reading it sees them; only the one a key names answers them.
const REINGEST_KEY_PREFIX: &str = "fleetlog-reingest/";

/// The partition key (less the index [`crate::put::Sink::Kinesis`] appends) of records that
/// `delivery_stream` re-ingests into the Kinesis stream it reads.
pub fn reingest_partition_key(delivery_stream: &str) -> String {
    format!("{REINGEST_KEY_PREFIX}{delivery_stream}/")
}

/// The partition key prefix of records made elsewhere for one delivery stream (a log object's HEC
/// events, which a Kinesis-fed Splunk stream takes through the Kinesis stream only): that stream
/// answers them as they are, the other drops them (it delivers the object's records its own way).
const MADE_KEY_PREFIX: &str = "fleetlog-made/";

/// The partition key (less the index) of records made for `delivery_stream`.
pub fn made_partition_key(delivery_stream: &str) -> String {
    format!("{MADE_KEY_PREFIX}{delivery_stream}/")
}

fn partition_key(record: &KinesisFirehoseEventRecord) -> Option<&str> {
    record.kinesis_firehose_record_metadata.as_ref().and_then(|m| m.partition_key.as_deref())
}

/// Whether `record` was made elsewhere, for one stream, and so is not an envelope to transform.
fn is_made(record: &KinesisFirehoseEventRecord) -> bool {
    partition_key(record).is_some_and(|key| key.starts_with(MADE_KEY_PREFIX))
}

/// The name of the delivery stream that invoked the transformation.
pub fn delivery_stream_name(event: &KinesisFirehoseEvent) -> Option<&str> {
    event.delivery_stream_arn.as_deref()?.rsplit_once(":deliverystream/").map(|(_, name)| name)
}

/// Whether `record` carries a key of `prefix` (re-ingested, or made elsewhere) for another consumer
/// of the Kinesis stream than the one whose key of that kind is `own_key`. A stream that does not know
/// its own name answers every record rather than lose one.
fn keyed_for_another(record: &KinesisFirehoseEventRecord, prefix: &str, own_key: Option<&str>) -> bool {
    match (partition_key(record), own_key) {
        (Some(key), Some(own)) => key.starts_with(prefix) && !key.starts_with(own),
        _ => false,
    }
}

/// The source account, and `dt` (YYYY-MM-DD) and `hour` (HH), UTC, of the first event's time.
fn partition_keys(envelope: &Envelope<'_>) -> PartitionKeys {
    let t = envelope.log_events.first().and_then(|e| chrono::DateTime::from_timestamp_millis(e.timestamp))?;
    let account = fleetlog_core::schema::account_partition(&envelope.owner).to_owned();
    Some([account, t.format("%Y-%m-%d").to_string(), t.format("%H").to_string()])
}

/// Answers a batch: [`TableJson`] records within [`RESPONSE_BUDGET`] and Firehose's record limits,
/// every source's application unknown, access requests folded into windows.
pub fn transform(event: &KinesisFirehoseEvent, region: &str) -> Transformed {
    transform_for(&Destination::Table, event, &Context::unknown(region))
}

/// Answers a batch with `destination`'s records.
pub fn transform_for(destination: &Destination, event: &KinesisFirehoseEvent, context: &Context<'_>) -> Transformed {
    match destination {
        Destination::Table => transform_within(&TableJson, event, context, RESPONSE_BUDGET, RECORD_LIMITS),
        Destination::Splunk(hec) => transform_within(hec, event, context, RESPONSE_BUDGET, RECORD_LIMITS),
    }
}

/// The instances a batch's records come from, read from the start of each record's envelope (its
/// `logStream`, before the events), without inflating the rest.
pub fn instance_ids(event: &KinesisFirehoseEvent) -> Vec<String> {
    let mut ids: Vec<String> = event
        .records
        .iter()
        .filter_map(|r| crate::envelope::peek_log_stream(&r.data.0))
        .filter_map(|stream| instance_id_of(&stream).map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// [`transform`] in `format`, with a response budget of `budget` bytes (tests use small ones).
fn transform_within<F: RecordFormat>(
    format: &F,
    event: &KinesisFirehoseEvent,
    context: &Context<'_>,
    budget: usize,
    limits: RecordLimits,
) -> Transformed {
    let region = context.region;
    let mut out = Tally::default();
    let mut pending = PendingRequests::default();
    let mut response = ResponseWriter::new(event, budget);
    let mut plain = Vec::new();
    let mut lines = Vec::new();
    let mut yielded = Yield::default();
    let own_key = delivery_stream_name(event).map(reingest_partition_key);
    // Made records first: they are answered as they came, so they fit the response they came in
    // (its budget is the invocation's payload limit), whatever the envelopes after them grow to.
    let made_for_me = delivery_stream_name(event).map(made_partition_key);
    for record in event.records.iter().filter(|r| is_made(r)) {
        out.stats.records_in += 1;
        let id = record.record_id.as_deref();
        let data: &[u8] = &record.data.0;
        if keyed_for_another(record, MADE_KEY_PREFIX, made_for_me.as_deref()) {
            out.stats.left_for_others += 1;
            response.record(id, DROPPED, &[], &None);
        } else if response.budget().fits(base64_len(data.len())) {
            out.stats.events_out += memchr::memchr_iter(b'\n', data).count();
            response.record(id, OK, data, &None);
        } else {
            // Not possible within the invocation's limit; Firehose's error output keeps it.
            answer_failed(&mut out, &mut response, id, data);
        }
    }
    for record in event.records.iter().filter(|r| !is_made(r)) {
        out.stats.records_in += 1;
        let id = record.record_id.as_deref();
        if keyed_for_another(record, REINGEST_KEY_PREFIX, own_key.as_deref()) {
            out.stats.left_for_others += 1;
            response.record(id, DROPPED, &[], &None);
            continue;
        }
        let data: &[u8] = &record.data.0;
        if response.budget().defers_unread(gzip_claimed_size(data), &yielded) {
            out.stats.deferred_unread += 1;
            hand_back(&mut out, &mut response, id, vec![data.to_vec()]);
            continue;
        }
        let envelope = gunzip_into(data, &mut plain).and_then(|()| parse_envelope(&plain));
        let envelope = match envelope {
            Ok(e) => e,
            Err(err) => {
                if answer_failed(&mut out, &mut response, id, data) {
                    tracing::warn!(record_id = id, error = %err, "Record cannot be decoded; sent to the error output");
                }
                continue;
            }
        };
        out.stats.decompressed_bytes += plain.len();
        if envelope.kind() == Ok(MessageType::Control) {
            out.stats.dropped_control += 1;
            response.record(id, DROPPED, &[], &None);
            continue;
        }
        let application = context.applications.of(instance_id_of(&envelope.log_stream), None);
        let shared = format.shared(&envelope, &Origin { region, application });
        // Records that cannot fit are not built: their output is at least its floor.
        let mut event_sizes: Vec<usize> = envelope.log_events.iter().map(|e| format.floor(e, &shared)).collect();
        let floor: usize = event_sizes.iter().sum();
        let least = base64_len(floor);
        let cost = if response.budget().fits(least) {
            // Parsed fields seldom add half the floor: one allocation, where growing from empty would
            // copy the lines a dozen times per batch.
            clear_with_room(&mut lines, floor + floor / 2);
            let (mut written, mut previous_end) = (0, 0);
            pending.clear();
            let count = write_as(format, &envelope, &shared, limits, &mut lines, |end, event| {
                // Exact sizes from here on, so a record too large once written is split on them.
                event_sizes[written] = end - previous_end;
                (written, previous_end) = (written + 1, end);
                if context.access_metrics
                    && let Some(request) = event.request()
                {
                    pending.push(&request);
                }
            });
            let cost = base64_len(lines.len());
            if response.budget().fits(cost) {
                yielded.add(plain.len(), cost);
                out.stats.events_out += count;
                let keys = if format.partitioned() { partition_keys(&envelope) } else { None };
                response.record(id, OK, &lines, &keys);
                out.seen.extend(sighting(&envelope));
                // Counted where answered: a record handed back is counted when it comes back.
                if !pending.is_empty() {
                    out.windows.of(application).add_pending(&pending);
                }
                continue;
            }
            cost
        } else {
            least
        };
        let alone = response.budget().fits_alone(cost);
        if !alone && envelope.log_events.len() == 1 {
            // One event whose records cannot fit a response even alone (only possible for a message
            // of megabytes, which CloudWatch Logs does not send): Firehose's error output keeps it.
            if answer_failed(&mut out, &mut response, id, data) {
                tracing::warn!(
                    record_id = id,
                    bytes = cost,
                    "A single log event is too large for any response; sent to the error output"
                );
            }
            continue;
        }
        // Does not fit: hand it back. Only a record that cannot fit a response even alone is split by
        // events (recompressing costs more than the rest of the record's work); one that may fit goes
        // back as it came, and is measured when it comes back with room. No loop: pieces are sized to
        // fit any response's room, and one sized on floors is measured exactly when it comes back and
        // split again on those sizes if it must be.
        let payloads = if !alone && envelope.log_events.len() > 1 {
            let pieces = pieces(&event_sizes, response.budget().limit());
            pieces.into_iter().map(|events| gzip(&envelope.encode(events))).collect()
        } else {
            vec![data.to_vec()]
        };
        hand_back(&mut out, &mut response, id, payloads);
    }
    Transformed {
        response: response.finish(),
        reingest: out.reingest,
        stats: out.stats,
        seen: out.seen,
        windows: out.windows,
    }
}

/// The instance a record's stream is named after (fleetlog's agent configs name streams so), with
/// the record's newest event time.
pub(crate) fn sighting(envelope: &Envelope<'_>) -> Option<Sighting> {
    if !is_instance_id(&envelope.log_stream) {
        return None;
    }
    let newest_ms = envelope.log_events.iter().map(|e| e.timestamp).max()?;
    Some(Sighting { instance_id: envelope.log_stream.to_string(), newest_ms, account: envelope.owner.to_string() })
}

/// Drops a record from this response and hands its payloads (itself, or the pieces it was split
/// into) back for re-ingestion.
fn hand_back(out: &mut Tally, response: &mut ResponseWriter, id: Option<&str>, payloads: Vec<Vec<u8>>) {
    out.reingest.extend(payloads);
    out.stats.reingested += 1;
    response.record(id, DROPPED, &[], &None);
}

/// Answers a record for Firehose's error output: its original data goes back in the response, so it
/// counts against the budget. When the data cannot fit what is left, the record is handed back
/// instead, to be answered when it comes back with room (any Firehose record, at most 1,000 KiB,
/// fits a response alone). Returns whether it was answered.
fn answer_failed(out: &mut Tally, response: &mut ResponseWriter, id: Option<&str>, data: &[u8]) -> bool {
    if response.budget().not_now(base64_len(data.len())) {
        hand_back(out, response, id, vec![data.to_vec()]);
        return false;
    }
    out.stats.failed += 1;
    response.record(id, PROCESSING_FAILED, data, &None);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_records_another_stream_reingested_are_left_to_it() {
        let keyed = |key: Option<&str>| {
            let mut record = KinesisFirehoseEventRecord::default();
            let mut metadata = aws_lambda_events::firehose::KinesisFirehoseRecordMetadata::default();
            metadata.partition_key = key.map(str::to_owned);
            record.kinesis_firehose_record_metadata = Some(metadata);
            record
        };
        let reingested_for_another =
            |record: &KinesisFirehoseEventRecord, own| keyed_for_another(record, REINGEST_KEY_PREFIX, own);
        let own = reingest_partition_key("fleetlog-logs");
        let other = format!("{}12", reingest_partition_key("fleetlog-logs-splunk"));
        assert!(reingested_for_another(&keyed(Some(&other)), Some(&own)), "a name this stream's starts");
        assert!(!reingested_for_another(&keyed(Some(&format!("{own}3"))), Some(&own)));
        // CloudWatch Logs' own keys, no key, or no name of its own: answered here.
        assert!(!reingested_for_another(&keyed(Some("a1b2c3")), Some(&own)));
        assert!(!reingested_for_another(&keyed(None), Some(&own)));
        assert!(!reingested_for_another(&KinesisFirehoseEventRecord::default(), Some(&own)));
        assert!(!reingested_for_another(&keyed(Some(&other)), None));
        let mut event = KinesisFirehoseEvent::default();
        event.delivery_stream_arn = Some("arn:aws:firehose:eu-west-1:123456789012:deliverystream/fleetlog-logs".into());
        assert_eq!(delivery_stream_name(&event), Some("fleetlog-logs"));
    }

    /// Access requests count where they are answered: across the rounds a small budget forces
    /// (records handed back, and pieces of records split), each answered access line once, and
    /// nothing for other lines or for a line sent to the error output.
    #[test]
    fn records_made_for_a_stream_are_answered_as_they_came_even_when_envelopes_fill_the_response() {
        let keyed = |id: &str, key: Option<String>, data: Vec<u8>| {
            let mut record = KinesisFirehoseEventRecord::default();
            let mut metadata = aws_lambda_events::firehose::KinesisFirehoseRecordMetadata::default();
            metadata.partition_key = key;
            record.kinesis_firehose_record_metadata = Some(metadata);
            record.record_id = Some(id.to_owned());
            record.data.0 = data;
            record
        };
        let events: Vec<_> = (0..20)
            .map(|e| serde_json::json!({"id": format!("{e}"), "timestamp": 1_763_805_600_000i64, "message": "x".repeat(500)}))
            .collect();
        let envelope = serde_json::json!({"messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "g", "logStream": "s", "subscriptionFilters": [], "logEvents": events});
        let mut event = KinesisFirehoseEvent::default();
        event.delivery_stream_arn =
            Some("arn:aws:firehose:us-east-1:123456789012:deliverystream/fleetlog-splunk".into());
        // Envelopes first, more than one response holds; the made records last.
        for i in 0..4 {
            event.records.push(keyed(&format!("e{i}"), Some("a1b2c3".into()), gzip(envelope.to_string().as_bytes())));
        }
        // As large as an envelope's records: answered after two envelopes, it would not fit.
        let hec: Vec<u8> = (0..60)
            .flat_map(|i| format!("{{\"time\":{i}.0,\"event\":\"{}\"}}\n", "y".repeat(220)).into_bytes())
            .collect();
        event.records.push(keyed("mine", Some(format!("{}0", made_partition_key("fleetlog-splunk"))), hec.clone()));
        event.records.push(keyed("theirs", Some(format!("{}1", made_partition_key("fleetlog-other"))), hec.clone()));
        let out = transform_within(&TableJson, &event, &Context::unknown(""), 40_000, RECORD_LIMITS);
        let response: aws_lambda_events::firehose::KinesisFirehoseResponse =
            serde_json::from_str(out.response.get()).unwrap();
        let answer = |id: &str| response.records.iter().find(|r| r.record_id.as_deref() == Some(id)).unwrap();
        assert_eq!(answer("mine").result.as_deref(), Some(OK));
        assert_eq!(answer("mine").data.0, hec, "answered exactly as made");
        assert_eq!(answer("theirs").result.as_deref(), Some(DROPPED));
        assert_eq!(response.records.len(), 6, "every record answered");
        assert!(!out.reingest.is_empty(), "the envelopes filled the response: some were handed back");
        assert_eq!(out.stats.records_in, 6);
    }

    #[test]
    fn each_answered_access_request_is_counted_once_across_reingestion() {
        const BUDGET: usize = 24_000;
        let access = |i: usize, agent: usize| {
            format!(
                r#"10.0.0.{} - - [22/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" {} 5 "-" "{}""#,
                i % 250,
                [200, 503][i % 2],
                "a".repeat(agent)
            )
        };
        let mut records = Vec::new();
        let mut expected = 0;
        for r in 0..8 {
            let mut events = Vec::new();
            for e in 0..12 {
                let (message, counted) = match (r + e) % 4 {
                    0 => ("plain text".to_owned(), false),
                    // Larger than any response of this budget: the error output, not counted.
                    1 if r == 3 && e == 2 => (access(e, 40_000), false),
                    _ => (access(r * 12 + e, 300 * (r + 1)), true),
                };
                expected += usize::from(counted);
                events.push(serde_json::json!({"id": format!("{r}-{e}"), "timestamp": 1_763_805_600_000i64 + i64::try_from(e).unwrap(), "message": message}));
            }
            let envelope = serde_json::json!({"messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "g", "logStream": "i-0123456789abcdef0", "subscriptionFilters": [], "logEvents": events});
            let mut record = KinesisFirehoseEventRecord::default();
            record.record_id = Some(format!("{r}"));
            record.data.0 = gzip(envelope.to_string().as_bytes());
            records.push(record);
        }
        let (mut counted, mut rounds) = (0, 0);
        while !records.is_empty() {
            rounds += 1;
            assert!(rounds < 100, "re-ingestion converges");
            let mut event = KinesisFirehoseEvent::default();
            event.records = std::mem::take(&mut records);
            let out = transform_within(&TableJson, &event, &Context::unknown(""), BUDGET, RECORD_LIMITS);
            counted += out.windows.requests();
            records = out
                .reingest
                .into_iter()
                .map(|data| {
                    let mut record = KinesisFirehoseEventRecord::default();
                    record.data.0 = data;
                    record
                })
                .collect();
        }
        assert!(rounds > 2, "the budget forces re-ingestion ({rounds} rounds)");
        assert_eq!(counted, u64::try_from(expected).unwrap());
        // Off: nothing folded.
        let mut event = KinesisFirehoseEvent::default();
        let mut record = KinesisFirehoseEventRecord::default();
        record.data.0 = gzip(br#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[{"id":"1","timestamp":1,"message":"::1 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\""}]}"#);
        event.records = vec![record];
        let off = Context { access_metrics: false, ..Context::unknown("") };
        assert!(transform_for(&Destination::Table, &event, &off).windows.is_empty());
        assert_eq!(transform_for(&Destination::Table, &event, &Context::unknown("")).windows.requests(), 1);
    }

    /// One generated record: its events' message lengths and whether they are JSON, or corrupt data.
    #[derive(Debug, Clone)]
    enum Generated {
        Envelope(Vec<(usize, bool)>),
        Corrupt(u32),
    }

    fn generated() -> impl proptest::strategy::Strategy<Value = Generated> {
        use proptest::prelude::*;
        // Mostly small events, some too large for any response of the test's budget.
        let length = prop_oneof![8 => 0usize..2_000, 1 => 20_000usize..30_000];
        prop_oneof![
            6 => proptest::collection::vec((length, any::<bool>()), 0..24).prop_map(Generated::Envelope),
            1 => any::<u32>().prop_map(Generated::Corrupt),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
            ..proptest::prelude::ProptestConfig::default()
        })]
        /// Within a small response budget, any batch run to completion answers every event exactly
        /// once: delivered, or in a record for the error output (an event too large for any
        /// response, corrupt data). It converges, and every response stays within the budget.
        #[test]
        fn any_batch_ends_with_every_event_answered_once(batch in proptest::collection::vec(generated(), 1..8)) {
            const BUDGET: usize = 24_000;
            let mut expected = std::collections::BTreeMap::new();
            let mut corrupt = Vec::new();
            let mut records = Vec::new();
            for (r, generated) in batch.iter().enumerate() {
                let data = match generated {
                    Generated::Envelope(events) => {
                        let events: Vec<String> = events.iter().enumerate().map(|(e, &(length, json))| {
                            let id = format!("r{r}e{e}");
                            let message = if json {
                                serde_json::json!({"level": "info", "text": "j".repeat(length)}).to_string()
                            } else {
                                "x".repeat(length)
                            };
                            let event = serde_json::json!({"id": id, "timestamp": 1_763_800_000_000i64, "message": message}).to_string();
                            expected.insert(id, message);
                            event
                        }).collect();
                        gzip(format!(r#"{{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[{}]}}"#, events.join(",")).as_bytes())
                    }
                    Generated::Corrupt(claimed) => {
                        let mut data = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
                        data.extend(std::iter::repeat_n(0xa5, 40));
                        data.extend(claimed.to_le_bytes());
                        corrupt.push(data.clone());
                        data
                    }
                };
                let mut record = aws_lambda_events::firehose::KinesisFirehoseEventRecord::default();
                record.record_id = Some(format!("{r}"));
                record.data.0 = data;
                records.push(record);
            }
            let (mut answered, mut failed_corrupt) = (std::collections::BTreeMap::new(), Vec::new());
            let mut answer = |id: String, message: String| {
                proptest::prop_assert!(answered.insert(id.clone(), message).is_none(), "{} answered twice", id);
                Ok(())
            };
            let mut round = 0;
            while !records.is_empty() {
                round += 1;
                proptest::prop_assert!(round <= 500, "re-ingestion does not converge");
                let mut event = KinesisFirehoseEvent::default();
                event.records = std::mem::take(&mut records);
                let out = transform_within(&TableJson, &event, &Context::unknown(""), BUDGET, RECORD_LIMITS);
                proptest::prop_assert!(out.response.get().len() <= BUDGET, "response of {} bytes", out.response.get().len());
                let response: aws_lambda_events::firehose::KinesisFirehoseResponse = serde_json::from_str(out.response.get()).unwrap();
                for answered_record in response.records {
                    let data = answered_record.data.0;
                    match answered_record.result.as_deref() {
                        Some(OK) => {
                            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                                let record: serde_json::Value = serde_json::from_slice(line).unwrap();
                                answer(record["event_id"].as_str().unwrap().to_owned(), record["message"].as_str().unwrap().to_owned())?;
                            }
                        }
                        Some(PROCESSING_FAILED) => {
                            let mut plain = Vec::new();
                            match gunzip_into(&data, &mut plain).ok().and_then(|()| parse_envelope(&plain).ok()) {
                                Some(envelope) => {
                                    for e in &envelope.log_events {
                                        let mut text = String::new();
                                        answer(e.id_literal().to_owned(), e.text(&mut text).unwrap().to_owned())?;
                                    }
                                }
                                None => failed_corrupt.push(data),
                            }
                        }
                        other => proptest::prop_assert_eq!(other, Some(DROPPED)),
                    }
                }
                records = out.reingest.into_iter().enumerate().map(|(i, data)| {
                    let mut record = aws_lambda_events::firehose::KinesisFirehoseEventRecord::default();
                    record.record_id = Some(format!("re{round}-{i}"));
                    record.data.0 = data;
                    record
                }).collect();
            }
            proptest::prop_assert_eq!(answered, expected);
            corrupt.sort();
            failed_corrupt.sort();
            proptest::prop_assert_eq!(failed_corrupt, corrupt);
        }
    }
}
