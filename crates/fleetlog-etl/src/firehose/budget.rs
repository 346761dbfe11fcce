//! Admission: what a Firehose response can still hold, and which records to read for it. Pure
//! arithmetic on sizes (no JSON, no gzip), so each rule is tested on its own; the transform asks,
//! the response writer spends.

use std::ops::Range;

/// The JSON of one answer besides its record id and data, at most:
/// `{"recordId":"","result":"ProcessingFailed","data":"","metadata":{"partitionKeys":{"account":"123456789012","dt":"YYYY-MM-DD","hour":"HH"}}},`
/// (140 bytes), with room to spare.
pub(super) const ANSWER_FRAME: usize = 160;
/// `{"records":[` and `]}`.
const RESPONSE_FRAME: usize = 14;
/// Envelope bytes that need not reappear in its records: the envelope's keys, message type and
/// subscription filters, and the group, stream and owner once (each record repeats them).
const ENVELOPE_HEAD: usize = 4096;

/// How many bytes of base64 `n` bytes of data take.
pub(super) fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// What a response is counted to take of its budget: its frame, every record's answer frame
/// (reserved up front, so answers without data never push it over) and the data of the answers
/// counted so far.
#[derive(Debug)]
pub(super) struct Budget {
    used: usize,
    limit: usize,
    /// The most an answer's data may take of this response: data needing more cannot fit it even
    /// alone.
    room: usize,
}

impl Budget {
    /// A budget of `limit` bytes for a batch whose records have the ids `ids`. The reserved frames
    /// are capped at half the budget, reached only by batches of over 20,000 records, which
    /// Firehose's buffers (at most 3 MB) do not hold.
    pub(super) fn new<'a>(limit: usize, ids: impl Iterator<Item = Option<&'a str>>) -> Self {
        let frames: usize = ids.map(|id| ANSWER_FRAME + id.map_or(4, str::len)).sum();
        let used = RESPONSE_FRAME + frames.min(limit / 2);
        Self { used, limit, room: limit.saturating_sub(used) }
    }

    /// Whether an answer carrying `cost` bytes of (base64) data fits what is left.
    pub(super) fn fits(&self, cost: usize) -> bool {
        self.used + cost <= self.limit
    }

    /// Whether an answer carrying `cost` bytes of data could fit this response if it were alone.
    pub(super) fn fits_alone(&self, cost: usize) -> bool {
        cost <= self.room
    }

    /// Whether an answer of `cost` must wait for another response: it cannot fit what is left, but
    /// could fit one alone.
    pub(super) fn not_now(&self, cost: usize) -> bool {
        !self.fits(cost) && self.fits_alone(cost)
    }

    /// Counts an answer carrying `data` bytes (before base64).
    pub(super) fn spend(&mut self, data: usize) {
        self.used += base64_len(data);
    }

    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// Whether a record whose gzip trailer claims `claimed` bytes is handed back unread: by its least
    /// output, or by what this batch's answered records took per byte (`yielded`), it cannot fit
    /// what is left. A record that could not fit a response alone either is read instead (to be
    /// split or refused), so whatever its trailer says, it is read once it comes back first; and
    /// expectations start with the batch's first answered record, so every batch answers one at
    /// least.
    pub(super) fn defers_unread(&self, claimed: Option<usize>, yielded: &Yield) -> bool {
        let Some(claimed) = claimed else { return false };
        self.not_now(least_output(claimed)) || yielded.expected(claimed).is_some_and(|cost| self.not_now(cost))
    }
}

/// The least response space a payload's records can take, from the size its gzip trailer claims
/// (`claimed`): an event's record (frame, shared fields, id and message as spelled) is longer than
/// the event in the envelope as CloudWatch Logs writes it. For envelopes spelled otherwise
/// (whitespace between tokens) it may say too much; such a record is only deferred sooner, never lost.
pub(super) fn least_output(claimed: usize) -> usize {
    base64_len(claimed.saturating_sub(ENVELOPE_HEAD))
}

/// What the records answered so far took of the response per byte of their payloads (records are
/// about twice their log text, and base64 adds a third): the batch's own measure of what the next
/// record will take. A batch bigger than a response (Firehose's buffer above the stack's 0.2 MB)
/// would otherwise inflate and read records that their least output lets through, only to hand
/// them back.
#[derive(Debug, Default)]
pub(super) struct Yield {
    payload_bytes: u64,
    response_bytes: u64,
}

impl Yield {
    pub(super) fn add(&mut self, payload_bytes: usize, response_bytes: usize) {
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

/// Where to cut an envelope's events, given what each one's records take (measured, or their floor
/// when not written: actual records are seldom more than twice their floor), into pieces whose
/// output stays under a quarter of the budget `limit`, so each fits any response alone.
pub(super) fn pieces(event_sizes: &[usize], limit: usize) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, &event_size) in event_sizes.iter().enumerate() {
        if i > start && base64_len(size + event_size) > limit / 4 {
            pieces.push(start..i);
            start = i;
            size = 0;
        }
        size += event_size;
    }
    pieces.push(start..event_sizes.len());
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::parse_envelope;
    use crate::gzip::{gunzip_into, gzip, gzip_claimed_size};
    use crate::put::RECORD_LIMITS;
    use crate::records::write_records;

    #[test]
    fn every_answer_frame_is_reserved_and_data_is_counted_in_base64() {
        let mut budget = Budget::new(1000, [Some("abc"), None].into_iter());
        let reserved = RESPONSE_FRAME + ANSWER_FRAME + 3 + ANSWER_FRAME + 4;
        assert!(budget.fits(1000 - reserved) && !budget.fits(1001 - reserved));
        assert!(budget.fits_alone(1000 - reserved) && !budget.fits_alone(1001 - reserved));
        budget.spend(30);
        assert!(budget.fits(1000 - reserved - 40) && !budget.fits(1001 - reserved - 40));
        assert!(budget.not_now(1000 - reserved), "no longer fits what is left, but would alone");
        assert!(!budget.not_now(1001 - reserved), "fits no response: not a matter of waiting");
        // However many records, half the budget is left for data.
        let crowded = Budget::new(1000, std::iter::repeat_n(None, 100));
        assert!(crowded.fits_alone(500 - RESPONSE_FRAME) && !crowded.fits_alone(501 - RESPONSE_FRAME));
    }

    #[test]
    fn records_are_deferred_unread_only_when_they_cannot_fit_now() {
        let mut budget = Budget::new(100_000, std::iter::empty());
        let mut yielded = Yield::default();
        assert!(!budget.defers_unread(None, &yielded), "not gzip: read, to be answered failed");
        assert!(!budget.defers_unread(Some(60_000), &yielded), "its least output fits");
        budget.spend(60_000);
        assert!(budget.defers_unread(Some(60_000), &yielded), "its least output no longer fits");
        assert!(!budget.defers_unread(Some(200_000), &yielded), "fits no response alone: read, to be split");
        // Records have taken three times their payload: a tenth under that is expected.
        assert!(!budget.defers_unread(Some(8_000), &yielded), "no expectation before a record is answered");
        yielded.add(1000, 3000);
        assert_eq!(yielded.expected(1000), Some(2700));
        assert!(budget.defers_unread(Some(8_000), &yielded), "expected to take 21,600 of 19,986 left");
        assert!(!budget.defers_unread(Some(4_000), &yielded));
    }

    #[test]
    fn pieces_each_fit_a_quarter_of_the_budget() {
        let sizes = [300, 300, 300, 800, 10, 10];
        let ranges = pieces(&sizes, 4000);
        assert_eq!(ranges, [0..2, 2..3, 3..4, 4..6]);
        for range in &ranges {
            let size: usize = sizes[range.clone()].iter().sum();
            assert!(base64_len(size) <= 1000 || range.len() == 1, "{range:?}");
        }
        assert_eq!(pieces(&[], 4000), vec![0..0]);
    }

    /// What a payload's records really take in the response.
    fn response_cost(payload: &[u8]) -> usize {
        let mut plain = Vec::new();
        gunzip_into(payload, &mut plain).unwrap();
        let envelope = parse_envelope(&plain).unwrap();
        let mut lines = Vec::new();
        write_records(&envelope, "", RECORD_LIMITS, &mut lines);
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
        let corpus = fleetlog_etl_bench::firehose_event(300_000, 5).event.records.into_iter().map(|r| r.data.0);
        for payload in cases.iter().map(|json| gzip(json.as_bytes())).chain(corpus) {
            let least = least_output(gzip_claimed_size(&payload).unwrap());
            assert!(least <= response_cost(&payload), "{least} > {}", response_cost(&payload));
        }
    }
}
