//! The response JSON, written record by record exactly as serde writes `KinesisFirehoseResponse`
//! (fields in declaration order), with the [`Budget`] it spends.

use aws_lambda_events::firehose::KinesisFirehoseEvent;
use serde_json::value::RawValue;

use fleetlog_core::schema::{PARTITION_KEYS, Partition};

use super::budget::Budget;
use crate::json::write_str;

/// A record's dynamic-partitioning keys ([`PARTITION_KEYS`]), if it has events to date it by.
pub(super) type PartitionKeys = Option<Partition>;

/// A record's lines, written into one buffer reused by every record, are base64-encoded straight
/// into the response by a vectorised encoder: the encoded data gets no string of its own, and the
/// response is never copied as it grows.
pub(super) struct ResponseWriter {
    json: String,
    records: usize,
    budget: Budget,
}

impl ResponseWriter {
    pub(super) fn new(event: &KinesisFirehoseEvent, limit: usize) -> Self {
        // Untouched capacity costs no memory; the budget keeps the response within it.
        let mut json = String::with_capacity(limit + 128 * 1024);
        json.push_str("{\"records\":[");
        let budget = Budget::new(limit, event.records.iter().map(|r| r.record_id.as_deref()));
        Self { json, records: 0, budget }
    }

    pub(super) fn budget(&self) -> &Budget {
        &self.budget
    }

    pub(super) fn record(&mut self, id: Option<&str>, result: &str, data: &[u8], keys: &PartitionKeys) {
        self.budget.spend(data.len());
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
        if let Some(values) = keys {
            for (i, (key, value)) in PARTITION_KEYS.iter().zip(values).enumerate() {
                if i > 0 {
                    json.push(',');
                }
                write_str(json, key.name);
                json.push(':');
                write_str(json, value);
            }
        }
        json.push_str("}}}");
    }

    /// The response as Lambda's runtime sends it, verbatim. Checking it as `RawValue::from_string`
    /// does would parse all of it again, a large share of a batch that fits one response.
    #[allow(unsafe_code)]
    pub(super) fn finish(mut self) -> Box<RawValue> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firehose::PROCESSING_FAILED;
    use crate::firehose::budget::ANSWER_FRAME;

    /// The budget reserves [`ANSWER_FRAME`] for what an answer writes besides its id and data: the
    /// longest result and every partition key at its longest must fit it.
    #[test]
    fn an_answer_without_id_or_data_fits_its_reserved_frame() {
        let mut writer = ResponseWriter::new(&KinesisFirehoseEvent::default(), 1 << 20);
        let start = writer.json.len();
        let keys = Some(["123456789012".to_owned(), "2026-12-02".to_owned(), "23".to_owned()]);
        writer.record(Some(""), PROCESSING_FAILED, &[], &keys);
        let written = writer.json.len() - start + 1; // and the comma before the next answer
        assert!(written <= ANSWER_FRAME, "{written} > {ANSWER_FRAME}: {}", &writer.json[start..]);
    }
}
