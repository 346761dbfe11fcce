//! The Splunk destination's records: HEC events (Splunk's "Format events for HTTP Event Collector"),
//! one per log event, the message exactly, the time to the millisecond, indexed fields flat strings;
//! lossless through the response budget and re-ingestion as the table's records are.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord, KinesisFirehoseResponse};
use fleetlog_etl::firehose::{Context, OK, transform_for};
use fleetlog_etl::gzip::gzip;
use fleetlog_etl::records::{Destination, SplunkHec};
use serde_json::{Value, json};

const STREAM: &str = "i-0123456789abcdef0";
const GROUP: &str = "CCP-logs-acme-123456789012-us-east-1/system";

fn splunk() -> Destination {
    Destination::Splunk(SplunkHec { index: Some("aws".into()) })
}

fn record(id: &str, stream: &str, events: &[(String, i64, String)]) -> KinesisFirehoseEventRecord {
    let envelope = json!({
        "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": GROUP, "logStream": stream,
        "subscriptionFilters": ["fleetlog"],
        "logEvents": events.iter().map(|(id, t, m)| json!({"id": id, "timestamp": t, "message": m})).collect::<Vec<_>>(),
    });
    let mut r = KinesisFirehoseEventRecord::default();
    r.record_id = Some(id.to_owned());
    r.data.0 = gzip(envelope.to_string().as_bytes());
    r
}

fn batch(records: Vec<KinesisFirehoseEventRecord>) -> KinesisFirehoseEvent {
    let mut e = KinesisFirehoseEvent::default();
    e.delivery_stream_arn = Some("arn:aws:firehose:us-east-1:123456789012:deliverystream/fleetlog-splunk".into());
    e.records = records;
    e
}

/// An event line's `time` (`{"time":1764669600.123,…`) as milliseconds, read from its text exactly
/// (serde_json would read it as a float).
fn millis(line: &[u8]) -> i64 {
    let text = std::str::from_utf8(line).unwrap().strip_prefix(r#"{"time":"#).expect("time comes first");
    let number = &text[..text.find(',').unwrap()];
    let (seconds, fraction) = number.split_once('.').expect("seconds with milliseconds");
    assert_eq!(fraction.len(), 3, "{number}");
    let magnitude =
        i128::from(seconds.trim_start_matches('-').parse::<u64>().unwrap()) * 1000 + fraction.parse::<i128>().unwrap();
    i64::try_from(if seconds.starts_with('-') { -magnitude } else { magnitude }).unwrap()
}

/// Every HEC event of a batch run to completion (re-ingested payloads again): event id → (time,
/// message joined from its parts), checking the shape of each.
fn run(records: Vec<KinesisFirehoseEventRecord>) -> BTreeMap<String, (i64, String)> {
    let mut seen: BTreeMap<String, (i64, Vec<(u64, String)>)> = BTreeMap::new();
    let mut next = records;
    for _ in 0..10 {
        if next.is_empty() {
            break;
        }
        let out = transform_for(&splunk(), &batch(next), &Context::unknown("us-east-1"));
        let response: KinesisFirehoseResponse = serde_json::from_str(out.response.get()).unwrap();
        for answer in response.records.iter().filter(|r| r.result.as_deref() == Some(OK)) {
            assert!(answer.metadata.partition_keys.is_empty(), "a Splunk stream has no dynamic partitioning");
            for line in answer.data.0.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let event: Value = serde_json::from_slice(line).unwrap();
                let fields = event["fields"].as_object().expect("fields");
                assert!(fields.values().all(Value::is_string), "indexed fields are flat strings: {fields:?}");
                let id = fields["event_id"].as_str().unwrap().to_owned();
                let part = fields.get("part").map_or(1, |p| p.as_str().unwrap().parse().unwrap());
                let entry = seen.entry(id).or_insert((millis(line), Vec::new()));
                entry.1.push((part, event["event"].as_str().expect("the event is the message").to_owned()));
            }
        }
        next = out
            .reingest
            .into_iter()
            .enumerate()
            .map(|(i, data)| {
                let mut r = KinesisFirehoseEventRecord::default();
                r.record_id = Some(format!("re-{i}"));
                r.data.0 = data;
                r
            })
            .collect();
    }
    assert!(next.is_empty(), "re-ingestion did not converge");
    seen.into_iter()
        .map(|(id, (time, mut parts))| {
            parts.sort();
            assert!(parts.iter().enumerate().all(|(i, (p, _))| *p == i as u64 + 1), "{id}: {parts:?}");
            (id, (time, parts.into_iter().map(|(_, m)| m).collect()))
        })
        .collect()
}

#[test]
fn each_log_event_is_one_hec_event_with_splunks_metadata() {
    let trail = r#"{"eventVersion":"1.09","userIdentity":{"arn":"arn:aws:iam::123456789012:user/ops"},"eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","errorCode":"AccessDenied"}"#;
    let events = [
        ("1".to_owned(), 1_764_669_600_123, "Nov 22 10:00:01 web-1 sshd[4242]: Failed password".to_owned()),
        ("2".to_owned(), 1_764_669_600_124, trail.to_owned()),
        ("3".to_owned(), 1_764_669_600_125, "just text".to_owned()),
    ];
    let out = transform_for(&splunk(), &batch(vec![record("r", STREAM, &events)]), &Context::unknown("us-east-1"));
    let response: KinesisFirehoseResponse = serde_json::from_str(out.response.get()).unwrap();
    let lines: Vec<Value> = response.records[0]
        .data
        .0
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        json!({
            "time": 1_764_669_600.123, "host": STREAM, "source": format!("{GROUP}:{STREAM}"),
            "sourcetype": "syslog", "index": "aws", "event": events[0].2,
            "fields": {
                "event_id": "1", "account": "123456789012", "region": "us-east-1", "log_group": GROUP,
                "log_stream": STREAM, "instance_id": STREAM, "log_source": "system", "application": "unknown",
                "format": "syslog",
                "host": "web-1", "program": "sshd", "pid": "4242",
            },
        })
    );
    assert_eq!(lines[1]["sourcetype"], "aws:cloudtrail");
    assert_eq!(lines[1]["event"], trail, "the event is the message as a string, not re-serialised");
    assert_eq!(lines[1]["fields"]["principal_arn"], "arn:aws:iam::123456789012:user/ops");
    assert_eq!(lines[1]["fields"]["event_name"], "CreateUser");
    assert!(lines[1]["fields"].get("attributes").is_none(), "JSON members are Splunk's to extract");
    assert_eq!(lines[2]["sourcetype"], "aws:cloudwatchlogs");

    // A stream not named after an instance: the host the line names, else none (HEC's default).
    let other =
        transform_for(&splunk(), &batch(vec![record("r", "web-1", &events[..1])]), &Context::unknown("us-east-1"));
    let response: KinesisFirehoseResponse = serde_json::from_str(other.response.get()).unwrap();
    let line: Value = serde_json::from_slice(response.records[0].data.0.trim_ascii_end()).unwrap();
    assert_eq!(line["host"], "web-1");
    assert!(line["fields"].get("instance_id").is_none());
    let plain = transform_for(
        &Destination::Splunk(SplunkHec::default()),
        &batch(vec![record("r", "s", &events[2..])]),
        &Context::unknown("r"),
    );
    let response: KinesisFirehoseResponse = serde_json::from_str(plain.response.get()).unwrap();
    let line: Value = serde_json::from_slice(response.records[0].data.0.trim_ascii_end()).unwrap();
    assert!(line.get("host").is_none() && line.get("index").is_none(), "{line}");
}

#[test]
fn large_batches_and_huge_messages_reach_splunk_whole() {
    let records: Vec<_> = (0..40)
        .map(|r| {
            let events: Vec<_> = (0..100)
                .map(|e| {
                    (format!("r{r:02}e{e:03}"), 1_764_669_600_000 + e, format!("{r}/{e} {}", "payload ".repeat(120)))
                })
                .collect();
            record(&format!("r{r}"), STREAM, &events)
        })
        .collect();
    let mut expected: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for r in 0..40 {
        for e in 0..100 {
            expected.insert(
                format!("r{r:02}e{e:03}"),
                (1_764_669_600_000 + e, format!("{r}/{e} {}", "payload ".repeat(120))),
            );
        }
    }
    let huge = ("huge".to_owned(), 7, "🚀\"\\".repeat(200_000));
    expected.insert(huge.0.clone(), (huge.1, huge.2.clone()));
    let all = [records, vec![record("big", STREAM, &[huge])]].concat();
    assert_eq!(run(all), expected);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        ..proptest::prelude::ProptestConfig::default()
    })]
    /// Every HEC event's `event` is its input message and its `time` the event's timestamp.
    #[test]
    fn events_keep_their_message_and_time(
        events in proptest::collection::vec((proptest::prelude::any::<i64>(), proptest::prelude::any::<String>()), 0..20),
    ) {
        let events: Vec<(String, i64, String)> =
            events.into_iter().enumerate().map(|(i, (t, m))| (format!("e{i}"), t, m)).collect();
        let seen = run(vec![record("r", STREAM, &events)]);
        let expected: BTreeMap<String, (i64, String)> = events.into_iter().map(|(id, t, m)| (id, (t, m))).collect();
        proptest::prop_assert_eq!(seen, expected);
    }
}
