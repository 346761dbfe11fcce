//! Any bytes, as a decompressed CloudWatch Logs envelope. The envelope reader must agree with
//! serde_json (what either reads, both read, as the same envelope); each event it reads must become
//! one JSON record keeping its id, timestamp and message; and the Firehose transform, given the bytes
//! gzipped as a record, must answer that record exactly once, as its kind requires.
#![no_main]

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord, KinesisFirehoseResponse};
use fleetlog_etl::envelope::{Envelope, MessageType, parse_envelope};
use fleetlog_etl::firehose::{DROPPED, OK, PROCESSING_FAILED, transform};
use fleetlog_etl::gzip::gzip;
use fleetlog_etl::json::well_formed;
use fleetlog_etl::put::RECORD_LIMITS;
use fleetlog_etl::records::write_records;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let ours = parse_envelope(data).ok();
    let theirs = std::str::from_utf8(data)
        .ok()
        .and_then(|text| serde_json::from_str::<Envelope<'_>>(text).ok())
        .map(Envelope::marked)
        .filter(|envelope| envelope.kind().is_ok());
    assert_eq!(ours, theirs, "the envelope reader and serde_json read these bytes differently");
    if let Some(envelope) = &ours {
        check_records(envelope);
    }
    check_answer(data, ours.as_ref());
});

/// The text a literal spells, a lone surrogate (which text cannot hold) as U+FFFD.
fn decoded(content: &str) -> String {
    serde_json::from_str(&format!("\"{}\"", well_formed(content))).expect("a literal the reader accepted decodes")
}

fn check_records(envelope: &Envelope<'_>) {
    let mut lines = Vec::new();
    let written = write_records(envelope, "us-east-1", RECORD_LIMITS, &mut lines);
    assert!(lines.is_empty() || lines.ends_with(b"\n"), "records are newline-terminated");
    let records: Vec<&[u8]> = lines.split(|b| *b == b'\n').filter(|line| !line.is_empty()).collect();
    assert_eq!(records.len(), written);
    // Messages long enough to be split into parts (over 1,000 KiB of record) do not fit a fuzz input.
    assert_eq!(written, envelope.log_events.len(), "one record per event");
    for (event, record) in envelope.log_events.iter().zip(records) {
        // JSON readers refuse lone surrogates, so records must hold none.
        let record: Value = serde_json::from_slice(record).expect("a record is JSON that serde_json reads");
        assert_eq!(record["event_id"], Value::String(decoded(event.id_literal())));
        assert_eq!(record["timestamp"], Value::from(event.timestamp));
        assert_eq!(
            record["message"],
            Value::String(decoded(event.message_literal())),
            "the message comes out unaltered (a lone surrogate as U+FFFD)"
        );
    }
}

fn check_answer(data: &[u8], envelope: Option<&Envelope<'_>>) {
    let mut record = KinesisFirehoseEventRecord::default();
    record.record_id = Some("fuzzed".into());
    record.data.0 = gzip(data);
    let mut event = KinesisFirehoseEvent::default();
    event.records.push(record);
    let out = transform(&event, "us-east-1");
    let response: KinesisFirehoseResponse =
        serde_json::from_str(out.response.get()).expect("the response is a Firehose response");
    assert_eq!(response.records.len(), 1, "one answer per record");
    assert_eq!(response.records[0].record_id.as_deref(), Some("fuzzed"));
    let expected = match envelope.map(|e| e.kind()) {
        Some(Ok(MessageType::Data)) => OK,
        Some(Ok(MessageType::Control)) => DROPPED,
        _ => PROCESSING_FAILED,
    };
    assert_eq!(response.records[0].result.as_deref(), Some(expected));
    assert!(out.reingest.is_empty(), "a small record fits the response");
}
