//! The Firehose data-transformation entry shape: a batch of records in, one result per record out,
//! within Lambda's 6 MB synchronous response limit. What does not fit is handed back for re-ingestion.

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use fleetlog_core::freshness::Sighting;
use fleetlog_core::instance::is_instance_id;
use fleetlog_core::metrics::Counter;
use serde_json::value::RawValue;

use crate::decode::{Envelope, MessageType, clear_with_room, gunzip_into, gzip_claimed_size, parse_envelope};
use crate::json::write_str;
use crate::transform::{output_floor, shared_fields, write_records_measured};

/// Lambda's synchronous response limit is 6 MB; the whole response stays within this.
pub const RESPONSE_BUDGET: usize = 6 * 1000 * 1000 - 64 * 1024;
/// The JSON of one answer besides its record id and data, at most:
/// `{"recordId":"","result":"ProcessingFailed","data":"","metadata":{"partitionKeys":{"dt":"YYYY-MM-DD","hour":"HH"}}},`
const ANSWER_FRAME: usize = 128;
/// `{"records":[` and `]}`.
const RESPONSE_FRAME: usize = 14;

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
}

impl Transformed {
    /// The answer as the `aws_lambda_events` type (read back from [`Self::response`]).
    pub fn typed_response(&self) -> Result<KinesisFirehoseResponse, serde_json::Error> {
        serde_json::from_str(self.response.get())
    }
}

/// What a batch hands back and counts while its response is written.
#[derive(Debug, Default)]
struct Tally {
    reingest: Vec<Vec<u8>>,
    stats: Stats,
    seen: Vec<Sighting>,
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

fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// The response JSON, written record by record exactly as serde writes `KinesisFirehoseResponse`
/// (fields in declaration order), and what it may still take of its budget. A record's lines, written
/// into one buffer reused by every record, are base64-encoded straight into it by a vectorised
/// encoder: the encoded data gets no string of its own, and the response is never copied as it grows.
struct ResponseWriter {
    json: String,
    records: usize,
    /// What the response is counted to take: its frame, every record's answer frame (reserved up
    /// front) and the data of the answers written so far.
    used: usize,
    budget: usize,
    /// The most records' data may take of this response: data needing more cannot fit it even alone.
    room: usize,
}

impl ResponseWriter {
    fn new(event: &KinesisFirehoseEvent, budget: usize) -> Self {
        // Untouched capacity costs no memory; the budget keeps the response within it.
        let mut json = String::with_capacity(budget + 128 * 1024);
        json.push_str("{\"records\":[");
        // Every record gets an answer, so each answer's frame is reserved up front: answers without
        // data (Dropped) never push the response over. Capped at half the budget, reached only by
        // batches of over 20,000 records, which Firehose's buffers (at most 3 MB) do not hold.
        let frames: usize =
            event.records.iter().map(|r| ANSWER_FRAME + r.record_id.as_deref().map_or(4, str::len)).sum();
        let used = RESPONSE_FRAME + frames.min(budget / 2);
        Self { json, records: 0, used, budget, room: budget.saturating_sub(used) }
    }

    /// Whether an answer carrying `cost` bytes of (base64) data fits what is left.
    fn fits(&self, cost: usize) -> bool {
        self.used + cost <= self.budget
    }

    /// Whether an answer carrying `cost` bytes of data could fit this response if it were alone.
    fn fits_alone(&self, cost: usize) -> bool {
        cost <= self.room
    }

    fn record(&mut self, id: Option<&str>, result: &str, data: &[u8], keys: &PartitionKeys) {
        self.used += base64_len(data.len());
        let json = &mut self.json;
        if self.records > 0 {
            json.push(',');
        }
        self.records += 1;
        json.push_str("{\"recordId\":");
        match id {
            Some(id) => write_str(json, id),
            None => json.push_str("null"),
        }
        json.push_str(",\"result\":");
        write_str(json, result);
        json.push_str(",\"data\":\"");
        base64_simd::STANDARD.encode_append(data, json);
        json.push_str("\",\"metadata\":{\"partitionKeys\":{");
        if let Some((dt, hour)) = keys {
            json.push_str("\"dt\":");
            write_str(json, dt);
            json.push_str(",\"hour\":");
            write_str(json, hour);
        }
        json.push_str("}}}");
    }

    /// The response as Lambda's runtime sends it, verbatim. Checking it as `RawValue::from_string`
    /// does would parse all of it again: a fifth of the cost of a batch that fits one response.
    #[allow(unsafe_code)]
    fn finish(mut self) -> Box<RawValue> {
        self.json.push_str("]}");
        // SAFETY: the response is one JSON object with no surrounding whitespace by construction: fixed
        // keys and punctuation, strings through `write_str` (which escapes what JSON requires), and
        // base64, whose alphabet needs no escaping. Debug builds, so every test, re-parse it here.
        debug_assert!(
            serde_json::from_str::<&RawValue>(&self.json).is_ok(),
            "the response writer wrote something that is not JSON"
        );
        unsafe { RawValue::from_string_unchecked(self.json) }
    }
}

/// Dynamic-partitioning keys `dt` (YYYY-MM-DD) and `hour` (HH), UTC, from the first event's time.
type PartitionKeys = Option<(String, String)>;

fn partition_keys(envelope: &Envelope<'_>) -> PartitionKeys {
    let t = envelope.log_events.first().and_then(|e| chrono::DateTime::from_timestamp_millis(e.timestamp))?;
    Some((t.format("%Y-%m-%d").to_string(), t.format("%H").to_string()))
}

pub fn transform(event: &KinesisFirehoseEvent, region: &str) -> Transformed {
    transform_within(event, region, RESPONSE_BUDGET)
}

/// [`transform`] with a response budget of `budget` bytes (tests use small ones).
fn transform_within(event: &KinesisFirehoseEvent, region: &str, budget: usize) -> Transformed {
    let mut out = Tally::default();
    let mut response = ResponseWriter::new(event, budget);
    let mut plain = Vec::new();
    let mut lines = Vec::new();
    let mut yielded = Yield::default();
    for record in &event.records {
        out.stats.records_in += 1;
        let id = record.record_id.as_deref();
        let data: &[u8] = &record.data.0;
        let claimed = gzip_claimed_size(data);
        let least_by_trailer = claimed.map(least_output);
        let expected = claimed.and_then(|claimed| yielded.expected(claimed));
        let not_now = |size: usize| !response.fits(size) && response.fits_alone(size);
        if least_by_trailer.is_some_and(not_now) || expected.is_some_and(not_now) {
            // Cannot fit what is left of the response (or, going by what this batch's records took,
            // will not), so handed back before it is even inflated. A record that could not fit the
            // response alone either is decoded (to be split or refused) instead, so whatever its
            // trailer says, it is read once it comes back first. Expectations start with the
            // batch's first answered record, so every batch answers one at least.
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
        // Records that cannot fit are not built: their output is at least its floor.
        let shared = shared_fields(&envelope, region);
        let floors: Vec<usize> = envelope.log_events.iter().map(|e| output_floor(e, &shared)).collect();
        let floor: usize = floors.iter().sum();
        let least = base64_len(floor);
        let mut event_sizes = floors;
        let cost = if response.fits(least) {
            // Parsed fields seldom add half the floor: one allocation, where growing from empty would
            // copy the lines a dozen times per batch.
            clear_with_room(&mut lines, floor + floor / 2);
            let (mut written, mut previous_end) = (0, 0);
            let count = write_records_measured(&envelope, &shared, &mut lines, |end| {
                // Exact sizes from here on, so a record too large once written is split on them.
                event_sizes[written] = end - previous_end;
                (written, previous_end) = (written + 1, end);
            });
            let cost = base64_len(lines.len());
            if response.fits(cost) {
                yielded.add(plain.len(), cost);
                out.stats.events_out += count;
                response.record(id, OK, &lines, &partition_keys(&envelope));
                out.seen.extend(sighting(&envelope));
                continue;
            }
            cost
        } else {
            least
        };
        if !response.fits_alone(cost) && envelope.log_events.len() == 1 {
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
        let payloads = if !response.fits_alone(cost) && envelope.log_events.len() > 1 {
            split_envelope(&envelope, &event_sizes, budget)
        } else {
            vec![data.to_vec()]
        };
        hand_back(&mut out, &mut response, id, payloads);
    }
    Transformed { response: response.finish(), reingest: out.reingest, stats: out.stats, seen: out.seen }
}

/// The instance a record's stream is named after (fleetlog's agent configs name streams so), with
/// the record's newest event time.
pub fn sighting(envelope: &Envelope<'_>) -> Option<Sighting> {
    if !is_instance_id(&envelope.log_stream) {
        return None;
    }
    let newest_ms = envelope.log_events.iter().map(|e| e.timestamp).max()?;
    Some(Sighting { instance_id: envelope.log_stream.to_string(), newest_ms })
}

/// Envelope bytes that need not reappear in its records: the envelope's keys, message type and
/// subscription filters, and the group, stream and owner once (each record repeats them).
const ENVELOPE_HEAD: usize = 4096;

/// The least response space a payload's records can take, from the size its gzip trailer claims
/// (`claimed`): an event's record (frame, shared fields, id and message as spelled) is longer than
/// the event in the envelope as CloudWatch Logs writes it. For envelopes spelled otherwise
/// (whitespace between tokens) it may say too much; such a record is only deferred sooner, never lost.
fn least_output(claimed: usize) -> usize {
    base64_len(claimed.saturating_sub(ENVELOPE_HEAD))
}

/// What the records answered so far took of the response per byte of their payloads (records are
/// about twice their log text, and base64 adds a third): the batch's own measure of what the next
/// record will take. A batch bigger than a response (Firehose's buffer above the stack's 0.2 MB)
/// would otherwise inflate and read records that their least output lets through, only to hand
/// them back.
#[derive(Debug, Default)]
struct Yield {
    payload_bytes: u64,
    response_bytes: u64,
}

impl Yield {
    fn add(&mut self, payload_bytes: usize, response_bytes: usize) {
        self.payload_bytes += u64::try_from(payload_bytes).unwrap_or(u64::MAX);
        self.response_bytes += u64::try_from(response_bytes).unwrap_or(u64::MAX);
    }

    /// The response space a payload of `claimed` bytes is expected to take: a tenth under this
    /// batch's yield, erring towards reading a record, since one handed back that would have fit is
    /// put into the stream (and paid for) again. `None` until a record was answered.
    fn expected(&self, claimed: usize) -> Option<usize> {
        if self.payload_bytes == 0 {
            return None;
        }
        let claimed = u128::try_from(claimed).ok()?;
        let expected = claimed * u128::from(self.response_bytes) * 9 / 10 / u128::from(self.payload_bytes);
        Some(usize::try_from(expected).unwrap_or(usize::MAX))
    }
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
    let cost = base64_len(data.len());
    if !response.fits(cost) && response.fits_alone(cost) {
        hand_back(out, response, id, vec![data.to_vec()]);
        return false;
    }
    out.stats.failed += 1;
    response.record(id, PROCESSING_FAILED, data, &None);
    true
}

/// Splits an envelope's events into gzip envelopes whose transformed output stays under a quarter of
/// the budget, given what each event's records take (measured, or their floor when not written: actual
/// records are seldom more than twice their floor, so such pieces still fit alone).
fn split_envelope(envelope: &Envelope<'_>, event_sizes: &[usize], budget: usize) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, &event_size) in event_sizes.iter().enumerate() {
        if i > start && base64_len(size + event_size) > budget / 4 {
            pieces.push(envelope_gzip(envelope, start..i));
            start = i;
            size = 0;
        }
        size += event_size;
    }
    pieces.push(envelope_gzip(envelope, start..envelope.log_events.len()));
    pieces
}

/// Some of an envelope's events as an envelope of their own, gzipped. Ids and messages keep their
/// literals.
fn envelope_gzip(envelope: &Envelope<'_>, events: std::ops::Range<usize>) -> Vec<u8> {
    let events = &envelope.log_events[events];
    let mut json =
        Vec::with_capacity(events.iter().map(|e| e.id_literal().len() + e.message_literal().len() + 64).sum());
    json.extend_from_slice(b"{\"messageType\":\"DATA_MESSAGE\",\"owner\":");
    write_str(&mut json, &envelope.owner);
    json.extend_from_slice(b",\"logGroup\":");
    write_str(&mut json, &envelope.log_group);
    json.extend_from_slice(b",\"logStream\":");
    write_str(&mut json, &envelope.log_stream);
    json.extend_from_slice(b",\"subscriptionFilters\":[");
    for (i, filter) in envelope.subscription_filters.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        write_str(&mut json, filter);
    }
    json.extend_from_slice(b"],\"logEvents\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(b"{\"id\":\"");
        json.extend_from_slice(event.id_literal().as_bytes());
        json.extend_from_slice(b"\",\"timestamp\":");
        json.extend_from_slice(itoa::Buffer::new().format(event.timestamp).as_bytes());
        json.extend_from_slice(b",\"message\":\"");
        json.extend_from_slice(event.message_literal().as_bytes());
        json.extend_from_slice(b"\"}");
    }
    json.extend_from_slice(b"]}");
    crate::decode::gzip(&json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::gzip;
    use crate::transform::write_records;

    /// What a payload's records really take in the response.
    fn response_cost(payload: &[u8]) -> usize {
        let mut plain = Vec::new();
        gunzip_into(payload, &mut plain).unwrap();
        let envelope = parse_envelope(&plain).unwrap();
        let mut lines = Vec::new();
        write_records(&envelope, "", &mut lines);
        base64_len(lines.len())
    }

    #[test]
    fn the_least_output_of_a_payload_is_never_more_than_its_records_take() {
        let name = "n".repeat(512);
        let event = |id: &str, timestamp: i64, message: &str| {
            format!(r#"{{"id":"{id}","timestamp":{timestamp},"message":"{message}"}}"#)
        };
        let envelope = |owner: &str, group: &str, stream: &str, filters: &str, events: &[String]| {
            format!(
                r#"{{"messageType":"DATA_MESSAGE","owner":"{owner}","logGroup":"{group}","logStream":"{stream}","subscriptionFilters":[{filters}],"logEvents":[{}]}}"#,
                events.join(",")
            )
        };
        let filters = format!(r#""{name}","{name}""#);
        // The tightest envelopes CloudWatch Logs could write: empty names, ids and messages, the
        // longest timestamps; and the longest head with no events at all.
        let tight: Vec<String> = (0..5000).map(|_| event("", i64::MIN, "")).collect();
        let cases = [
            envelope("", "", "", "", &tight),
            envelope("", "", "", "", &(0..5000).map(|_| event("1", 1, "\\u0041")).collect::<Vec<_>>()),
            envelope("123456789012", &name, &name, &filters, &[]),
            envelope("123456789012", &name, &name, &filters, &[event("", 1, "")]),
        ];
        let corpus = crate::corpus::firehose_event(300_000, 5).event.records.into_iter().map(|r| r.data.0);
        for payload in cases.iter().map(|json| gzip(json.as_bytes())).chain(corpus) {
            let least = least_output(gzip_claimed_size(&payload).unwrap());
            assert!(least <= response_cost(&payload), "{least} > {}", response_cost(&payload));
        }
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
                let out = transform_within(&event, "", BUDGET);
                proptest::prop_assert!(out.response.get().len() <= BUDGET, "response of {} bytes", out.response.get().len());
                for answered_record in out.typed_response().unwrap().records {
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
