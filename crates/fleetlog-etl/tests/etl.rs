//! Lossless transformation: every input message appears exactly once in the output or in what is
//! re-ingested; malformed input is a per-record failure, never a failed invocation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use aws_lambda_events::firehose::{
    KinesisFirehoseEvent, KinesisFirehoseEventRecord, KinesisFirehoseResponse, KinesisFirehoseResponseRecord,
};
use fleetlog_etl::envelope::parse_envelope;
use fleetlog_etl::firehose::{DROPPED, OK, PROCESSING_FAILED, Transformed, transform};
use fleetlog_etl::gzip::{gunzip_into, gzip};
use serde_json::{Value, json};

const STREAM: &str = "i-0123456789abcdef0";
const GROUP: &str = "CCP-logs-acme-123456789012-us-east-1/system";

fn envelope(events: &[(String, String)]) -> Value {
    json!({
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": GROUP,
        "logStream": STREAM,
        "subscriptionFilters": ["fleetlog"],
        "logEvents": events.iter().enumerate().map(|(i, (id, m))| json!({"id": id, "timestamp": 1_763_800_000_000i64 + i as i64, "message": m})).collect::<Vec<_>>()
    })
}

fn record(id: &str, data: Vec<u8>) -> KinesisFirehoseEventRecord {
    let mut r = KinesisFirehoseEventRecord::default();
    r.record_id = Some(id.to_owned());
    r.data.0 = data;
    r
}

fn event(records: Vec<KinesisFirehoseEventRecord>) -> KinesisFirehoseEvent {
    let mut e = KinesisFirehoseEvent::default();
    e.delivery_stream_arn = Some("arn:aws:firehose:us-east-1:123456789012:deliverystream/fleetlog-raw".into());
    e.records = records;
    e
}

/// Reassembles output lines into event id → message (joining split parts), checking each id once.
fn collect(lines: &[u8], into: &mut BTreeMap<String, String>) {
    let mut parts: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).unwrap();
        assert!(line.len() <= 1000 * 1024, "record of {} bytes", line.len());
        let id = v["event_id"].as_str().unwrap().to_owned();
        let part = v["part"].as_u64().unwrap_or(1);
        parts.entry(id).or_default().push((part, v["message"].as_str().unwrap().to_owned()));
    }
    for (id, mut pieces) in parts {
        pieces.sort();
        assert!(pieces.iter().enumerate().all(|(i, (p, _))| *p == i as u64 + 1), "{id}: parts {pieces:?}");
        let message: String = pieces.into_iter().map(|(_, m)| m).collect();
        assert!(into.insert(id.clone(), message).is_none(), "{id} appears twice");
    }
}

/// The response records, read back from the response JSON.
fn answers(out: &Transformed) -> Vec<KinesisFirehoseResponseRecord> {
    serde_json::from_str::<KinesisFirehoseResponse>(out.response.get())
        .expect("the response is a KinesisFirehoseResponse")
        .records
}

/// Runs a batch through the transformation, and re-ingested payloads again, until nothing is left.
fn run_to_completion(records: Vec<KinesisFirehoseEventRecord>) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    let mut batch = records;
    for _round in 0..10 {
        if batch.is_empty() {
            return seen;
        }
        let out = transform(&event(batch), "us-east-1");
        for r in answers(&out) {
            if r.result.as_deref() == Some(OK) {
                collect(&r.data.0, &mut seen);
            }
        }
        assert!(
            out.response.get().len() <= 6_000_000,
            "response of {} bytes exceeds Lambda's limit",
            out.response.get().len()
        );
        batch = out.reingest.into_iter().enumerate().map(|(i, d)| record(&format!("re-{i}"), d)).collect();
    }
    panic!("re-ingestion did not converge");
}

fn tricky_messages() -> Vec<String> {
    vec![
        String::new(),
        "line one\nline two\n\tindented".into(),
        "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom".into(),
        "unicode: żółć 日本語 🚀 \u{202e}rtl".into(),
        "control: \u{0}\u{1}\u{7}\u{1b}[31mred\u{7f}".into(),
        "quote \" backslash \\ slash /".into(),
        "x".repeat(256 * 1024),
        "\u{0}".repeat(256 * 1024),
        "é".repeat(200 * 1024),
        "🚀\"\\\u{1}".repeat(100_000),
        // A JSON message too large for one record, whose parsed fields alone nearly fill a record.
        format!("{{{}\"end\":1}}", (0..60_000).map(|i| format!("\"k{i}\":\"v\",")).collect::<String>()),
        r#"{"level":"warn","msg":"json \"inside\"","n":[1,2]}"#.into(),
        "Nov 22 10:00:01 host sshd[1]: Failed password for invalid user x".into(),
    ]
}

#[test]
fn every_message_comes_out_exactly_once_and_unaltered() {
    let events: Vec<(String, String)> =
        tricky_messages().into_iter().enumerate().map(|(i, m)| (format!("e{i:03}"), m)).collect();
    let data = gzip(envelope(&events).to_string().as_bytes());
    let seen = run_to_completion(vec![record("r1", data)]);
    let expected: BTreeMap<String, String> = events.into_iter().collect();
    assert_eq!(seen.len(), expected.len());
    for (id, message) in &expected {
        assert_eq!(seen.get(id), Some(message), "{id}");
    }
}

/// Every field of every format is a column of the schema table, with a JSON type its Glue type reads.
#[test]
fn records_of_every_format_conform_to_the_schema() {
    let messages = [
        "Nov 22 10:00:01 ip-10-0-0-1 sshd[4242]: Failed password for root from 203.0.113.9",
        "<34>1 2026-11-22T10:00:00.000Z host app 77 ID47 - message",
        r#"203.0.113.9 - - [22/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" 503 12 "-" "curl/8""#,
        r#"{"level":"error","msg":"boom","n":3,"nested":{"a":1}}"#,
        r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider Name="Microsoft-Windows-Security-Auditing"/><EventID>4625</EventID><Level>0</Level><Channel>Security</Channel><Computer>WIN-1</Computer></System></Event>"#,
        "plain text",
    ];
    let mut events: Vec<(String, String)> =
        messages.iter().enumerate().map(|(i, m)| (format!("e{i}"), m.to_string())).collect();
    events.push(("big".into(), "y".repeat(1100 * 1024)));
    let out = transform(&event(vec![record("r1", gzip(envelope(&events).to_string().as_bytes()))]), "us-east-1");
    let mut lines: Vec<u8> = answers(&out).into_iter().flat_map(|r| r.data.0.clone()).collect();
    for payload in &out.reingest {
        let reingested = transform(&event(vec![record("re", payload.clone())]), "us-east-1");
        lines.extend(answers(&reingested).into_iter().flat_map(|r| r.data.0.clone()));
    }
    let mut seen_formats = std::collections::BTreeSet::new();
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).unwrap();
        seen_formats.insert(v["format"].as_str().unwrap().to_owned());
        for (key, value) in v.as_object().unwrap() {
            // `account` is read as a partition key; the record carries it too.
            let column = fleetlog_core::schema::COLUMNS
                .iter()
                .chain(&fleetlog_core::schema::PARTITION_KEYS[..1])
                .find(|c| c.name == key)
                .unwrap_or_else(|| panic!("field {key} is not a column of the schema"));
            let fits = match column.glue_type {
                "string" => value.is_string(),
                "int" | "bigint" => value.is_i64() || value.is_u64(),
                "map<string,string>" => value.as_object().is_some_and(|m| m.values().all(Value::is_string)),
                other => panic!("unexpected column type {other}"),
            };
            assert!(fits, "{key}: {value} does not fit {}", column.glue_type);
        }
    }
    assert_eq!(seen_formats.len(), 5, "{seen_formats:?}");
}

#[test]
fn output_records_carry_the_documented_fields() {
    let events = vec![("e1".to_owned(), "Nov 22 10:00:01 ip-10-0-0-1 sshd[4242]: Failed password for root".to_owned())];
    let out = transform(&event(vec![record("r1", gzip(envelope(&events).to_string().as_bytes()))]), "us-east-1");
    let r = &answers(&out)[0];
    assert_eq!(r.result.as_deref(), Some(OK));
    let keys = |name: &str| r.metadata.partition_keys.get(name).map(String::as_str);
    assert_eq!((keys("account"), keys("dt"), keys("hour")), (Some("123456789012"), Some("2025-11-22"), Some("08")));
    let v: Value = serde_json::from_slice(r.data.0.strip_suffix(b"\n").unwrap()).unwrap();
    assert_eq!(v["event_id"], "e1");
    assert_eq!(v["timestamp"], 1_763_800_000_000i64);
    assert_eq!(v["time"], "2025-11-22T08:26:40.000Z");
    assert_eq!(v["account"], "123456789012");
    assert_eq!(v["region"], "us-east-1");
    assert_eq!(v["log_group"], GROUP);
    assert_eq!(v["log_stream"], STREAM);
    assert_eq!(v["instance_id"], STREAM);
    assert_eq!(v["source"], "system");
    assert_eq!(v["format"], "syslog");
    assert_eq!(v["program"], "sshd");
    assert_eq!(v["host"], "ip-10-0-0-1");
}

#[test]
fn control_messages_are_dropped_and_bad_records_fail_alone() {
    let control = gzip(json!({"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logStream": "", "subscriptionFilters": [], "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}).to_string().as_bytes());
    let good = gzip(envelope(&[("e1".into(), "hello".into())]).to_string().as_bytes());
    let bomb = gzip(&vec![b' '; 80 * 1024 * 1024]);
    let cases = vec![
        record("control", control),
        record("good", good),
        record("not-gzip", b"plain text".to_vec()),
        record("corrupt-gzip", vec![0x1f, 0x8b, 8, 0, 1, 2, 3]),
        record("bad-json", gzip(b"{\"messageType\": ")),
        record("unknown-type", gzip(br#"{"messageType":"OTHER","logEvents":[]}"#)),
        record("bomb", bomb),
        record("empty", Vec::new()),
    ];
    let originals: BTreeMap<String, Vec<u8>> =
        cases.iter().map(|r| (r.record_id.clone().unwrap(), r.data.0.clone())).collect();
    let out = transform(&event(cases), "us-east-1");
    let answers = answers(&out);
    let results: BTreeMap<&str, &str> =
        answers.iter().map(|r| (r.record_id.as_deref().unwrap(), r.result.as_deref().unwrap())).collect();
    assert_eq!(results["control"], DROPPED);
    assert_eq!(results["good"], OK);
    for bad in ["not-gzip", "corrupt-gzip", "bad-json", "unknown-type", "bomb", "empty"] {
        assert_eq!(results[bad], PROCESSING_FAILED, "{bad}");
        let r = answers.iter().find(|r| r.record_id.as_deref() == Some(bad)).unwrap();
        assert_eq!(r.data.0, originals[bad], "{bad}: the original goes to Firehose's error output");
    }
    assert_eq!(answers.len(), 8, "one answer per record");
    assert_eq!(out.stats.counters()[2].1, 6, "RecordsFailed counts the records sent to the error output");
    assert!(out.reingest.is_empty());
}

#[test]
fn messages_are_copied_as_the_envelope_spells_them() {
    // JSON allows spellings serde_json would not write (`\/`, `\u0041`): records carry the literal
    // unchanged, so every JSON reader sees what the envelope said. JSON's grammar also allows escapes
    // text cannot hold (a lone surrogate), which JSON readers refuse, and with it every record of the
    // S3 object it lands in: that one escape is respelled U+FFFD, the rest of the literal kept.
    let envelope = r#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":[],
        "logEvents":[{"id":"lone","timestamp":1,"message":"a\ud800b"},{"id":"spelled","timestamp":2,"message":"\/\u0041 \"x\""}]}"#;
    let out = transform(&event(vec![record("r", gzip(envelope.as_bytes()))]), "us-east-1");
    assert_eq!(answers(&out)[0].result.as_deref(), Some(OK));
    let text = String::from_utf8(answers(&out)[0].data.0.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains(r#""format":"text","message":"a\ufffdb""#), "{}", lines[0]);
    let lone: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(lone["message"], "a\u{fffd}b");
    let spelled: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(spelled["message"], "/A \"x\"");
}

#[test]
fn messages_that_are_not_strings_fail_the_record() {
    let envelope = r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":{"a":1}}]}"#;
    let out = transform(&event(vec![record("r", gzip(envelope.as_bytes()))]), "us-east-1");
    assert_eq!(answers(&out)[0].result.as_deref(), Some(PROCESSING_FAILED));
    let not_utf8 =
        gzip(b"{\"messageType\":\"DATA_MESSAGE\",\"logEvents\":[{\"id\":\"1\",\"timestamp\":1,\"message\":\"\xff\"}]}");
    let out = transform(&event(vec![record("r", not_utf8)]), "us-east-1");
    assert_eq!(answers(&out)[0].result.as_deref(), Some(PROCESSING_FAILED));
}

/// `count` records `r0`, `r1`, …, record `r` holding the events `events(r)` (id, message); and every
/// event's message by id.
fn records_of(
    count: usize,
    events: impl Fn(usize) -> Vec<(String, String)>,
) -> (Vec<KinesisFirehoseEventRecord>, BTreeMap<String, String>) {
    let mut expected = BTreeMap::new();
    let records = (0..count)
        .map(|r| {
            let events = events(r);
            expected.extend(events.iter().cloned());
            record(&format!("r{r}"), gzip(envelope(&events).to_string().as_bytes()))
        })
        .collect();
    (records, expected)
}

#[test]
fn batches_over_the_response_limit_are_reingested_without_loss() {
    // 40 records × 100 events × ~1.5 KB of JSON ≈ 6+ MB of output, over the 6 MB response limit.
    let (records, expected) = records_of(40, |r| {
        (0..100).map(|e| (format!("r{r:02}e{e:03}"), format!("{r}/{e} {}", "payload ".repeat(120)))).collect()
    });
    let first = transform(&event(records.clone()), "us-east-1");
    assert!(!first.reingest.is_empty(), "the batch must overflow for this test to mean anything");
    assert_eq!(run_to_completion(records), expected);
}

#[test]
fn a_record_that_would_fit_an_empty_response_goes_back_whole() {
    // After ~2.4 MB of response, a record of ~4.4 MB of output: read (its trailer leaves room), found
    // not to fit, and handed back as it came; splitting it would only cost a recompression.
    let big: Vec<(String, String)> = (0..10).map(|e| (format!("a{e:02}"), "z".repeat(180 * 1024))).collect();
    let many: Vec<(String, String)> =
        (0..10_000).map(|e| (format!("b{e:05}"), format!("{e:05} {}", "x".repeat(94)))).collect();
    let (first, second) = (gzip(envelope(&big).to_string().as_bytes()), gzip(envelope(&many).to_string().as_bytes()));
    let batch = vec![record("first", first), record("second", second.clone())];
    let out = transform(&event(batch.clone()), "us-east-1");
    let results: Vec<_> = answers(&out).into_iter().map(|r| r.result.unwrap()).collect();
    assert_eq!(results, [OK, DROPPED]);
    assert_eq!((out.stats.reingested, out.stats.deferred_unread), (1, 0), "read, then handed back");
    assert_eq!(out.reingest, [second], "whole, not split");
    assert_eq!(run_to_completion(batch), big.into_iter().chain(many).collect());
}

#[test]
fn a_record_that_cannot_fit_what_is_left_is_handed_back_unread() {
    // ~4.7 MB of the response taken, then a payload whose trailer claims 2 MB of envelope: it cannot
    // fit, so it goes back untouched, before it is inflated (its body is not even deflate data).
    let events: Vec<(String, String)> = (0..35).map(|e| (format!("e{e:03}"), "z".repeat(100 * 1024))).collect();
    let filler = gzip(envelope(&events).to_string().as_bytes());
    let mut unread = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    unread.extend_from_slice(&[0xaa; 100]);
    unread.extend_from_slice(&[0, 0, 0, 0]);
    unread.extend_from_slice(&2_000_000u32.to_le_bytes());
    let out = transform(&event(vec![record("filler", filler), record("unread", unread.clone())]), "us-east-1");
    let results: Vec<_> = answers(&out).into_iter().map(|r| r.result.unwrap()).collect();
    assert_eq!(results, [OK, DROPPED]);
    assert_eq!(out.reingest, [unread.clone()], "handed back byte for byte");
    assert_eq!((out.stats.reingested, out.stats.deferred_unread), (1, 1));
    let counters = out.stats.counters();
    assert_eq!(
        counters.map(|(counter, n)| (counter.name(), n)),
        [("LogEventsTransformed", 35), ("RecordsReingested", 1), ("RecordsFailed", 0)]
    );
    // Alone (or first) in a batch it is read, and what it really is decides: here, the error output.
    let alone = transform(&event(vec![record("unread", unread)]), "us-east-1");
    assert_eq!(answers(&alone)[0].result.as_deref(), Some(PROCESSING_FAILED));
    assert_eq!(alone.stats.deferred_unread, 0);
}

#[test]
fn records_like_those_answered_that_cannot_fit_are_handed_back_unread() {
    // Records of one shape, whose short lines make records many times their payload: four fit a
    // response. The rest pass their trailers' least output, but going by what the answered ones
    // took they cannot fit what is left, so they go back before they are inflated (they used to be
    // inflated and read, only to be handed back).
    let (records, expected) =
        records_of(9, |r| (0..3000).map(|e| (format!("r{r}e{e:04}"), format!("line {e:05} of {r}"))).collect());
    let out = transform(&event(records.clone()), "us-east-1");
    assert!(out.stats.reingested >= 2, "the batch must overflow for this test to mean anything");
    assert_eq!(out.stats.deferred_unread, out.stats.reingested, "every record handed back is unread");
    assert_eq!(out.reingest, records[9 - out.stats.reingested..].iter().map(|r| r.data.0.clone()).collect::<Vec<_>>());
    assert_eq!(run_to_completion(records), expected);
}

#[test]
fn a_single_record_too_large_for_a_response_is_split_for_reingestion() {
    let events: Vec<(String, String)> = (0..60).map(|e| (format!("e{e:03}"), "z".repeat(100 * 1024))).collect();
    let data = gzip(envelope(&events).to_string().as_bytes());
    let first = transform(&event(vec![record("big", data.clone())]), "us-east-1");
    assert_eq!(answers(&first)[0].result.as_deref(), Some(DROPPED));
    assert!(first.reingest.len() > 1, "split into several envelopes");
    for piece in &first.reingest {
        let mut plain = Vec::new();
        gunzip_into(piece, &mut plain).unwrap();
        assert!(parse_envelope(&plain).is_ok());
    }
    let seen = run_to_completion(vec![record("big", data)]);
    assert_eq!(seen, events.into_iter().collect());
}

#[test]
fn a_single_event_too_large_for_any_response_goes_to_the_error_output() {
    // Re-ingesting it would bring it back forever; Firehose keeps a ProcessingFailed record's data.
    let events = vec![("only".to_owned(), "z".repeat(5_000_000))];
    let data = gzip(envelope(&events).to_string().as_bytes());
    let out = transform(&event(vec![record("huge", data.clone())]), "us-east-1");
    assert_eq!(answers(&out)[0].result.as_deref(), Some(PROCESSING_FAILED));
    assert_eq!(answers(&out)[0].data.0, data);
    assert!(out.reingest.is_empty());
    assert_eq!(out.stats.failed, 1);
}

#[test]
fn a_record_found_too_large_once_written_is_split_from_that_writing() {
    // JSON messages: their lower bound (the messages) fits the response, but with their attributes
    // the records do not, so the record is written, measured, and split from what was written.
    let message: String =
        format!("{{{}\"end\":1}}", (0..5000).map(|i| format!("\"k{i}\":\"v{i}\",")).collect::<String>());
    let events: Vec<(String, String)> = (0..40).map(|e| (format!("e{e:03}"), message.clone())).collect();
    let data = gzip(envelope(&events).to_string().as_bytes());
    let first = transform(&event(vec![record("json", data.clone())]), "us-east-1");
    assert_eq!(answers(&first)[0].result.as_deref(), Some(DROPPED));
    assert!(first.reingest.len() > 1, "split into several envelopes");
    assert_eq!(run_to_completion(vec![record("json", data)]), events.into_iter().collect());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        ..proptest::prelude::ProptestConfig::default()
    })]
    #[test]
    fn arbitrary_messages_round_trip(messages in proptest::collection::vec(proptest::prelude::any::<String>(), 0..20)) {
        let events: Vec<(String, String)> = messages.into_iter().enumerate().map(|(i, m)| (format!("e{i}"), m)).collect();
        let seen = run_to_completion(vec![record("r", gzip(envelope(&events).to_string().as_bytes()))]);
        proptest::prop_assert_eq!(seen, events.into_iter().collect::<BTreeMap<_, _>>());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512), gz in proptest::prelude::any::<bool>()) {
        let data = if gz { gzip(&data) } else { data };
        let out = transform(&event(vec![record("r", data)]), "us-east-1");
        proptest::prop_assert_eq!(answers(&out).len(), 1);
    }
}
