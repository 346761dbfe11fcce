//! The log ETL's benchmark, kept out of the Lambda's dependencies: a realistic, reproducible corpus
//! ([`firehose_event`]) — Firehose transformation events whose records hold CloudWatch Logs envelopes
//! of mixed syslog, sshd, access logs, JSON application logs, Windows security events and multi-line
//! stack traces, in batches of 1 to 10,000 events within PutLogEvents' 1 MiB batch limit — and the
//! record core alone ([`run_core`]). The `fleetlog-etl-bench` binary and the criterion benchmarks
//! (`benches/core.rs`) run them; `bench/compare.py` compares the binary with the blueprint's script.

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord};

use fleetlog_etl::DecodeError;
use fleetlog_etl::envelope::parse_envelope;
use fleetlog_etl::gzip::{gunzip_into, gzip};
use fleetlog_etl::put::RECORD_LIMITS;
use fleetlog_etl::records::write_records;

/// A small deterministic generator (xorshift) so corpora are reproducible without extra crates.
#[derive(Debug)]
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn log_line(rng: &mut Rng, i: u64) -> (String, String) {
    let ip = format!("10.{}.{}.{}", rng.below(256), rng.below(256), rng.below(256));
    match rng.below(6) {
        0 => (
            "system".into(),
            format!(
                "Nov 22 10:{:02}:{:02} ip-10-0-0-{} systemd[1]: Started Session {i} of user ec2-user.",
                rng.below(60),
                rng.below(60),
                rng.below(255)
            ),
        ),
        1 => (
            "security".into(),
            format!(
                "Nov 22 10:00:{:02} ip-10-0-0-1 sshd[{}]: Failed password for invalid user admin{} from {ip} port {} ssh2",
                rng.below(60),
                rng.below(65000),
                rng.below(100),
                rng.below(65535)
            ),
        ),
        2 => (
            "access".into(),
            format!(
                "{ip} - - [22/Nov/2026:10:00:00 +0000] \"GET /api/v1/items/{}?page={} HTTP/1.1\" {} {} \"https://example.com/\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\"",
                rng.below(100000),
                rng.below(50),
                [200, 200, 200, 304, 404, 500, 503][usize::try_from(rng.below(7)).unwrap_or(0)],
                rng.below(100000)
            ),
        ),
        3 => (
            "app".into(),
            format!(
                "{{\"level\":\"{}\",\"ts\":\"2026-11-22T10:00:00Z\",\"msg\":\"request served\",\"request_id\":\"{:016x}\",\"latency_ms\":{},\"user\":{{\"id\":{}}}}}",
                ["info", "warn", "error"][usize::try_from(rng.below(3)).unwrap_or(0)],
                rng.next(),
                rng.below(2000),
                rng.below(10000)
            ),
        ),
        4 => (
            "windows-security".into(),
            format!(
                "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Security-Auditing' Guid='{{54849625-5478-4994-a5ba-3e3b0328c30d}}'/><EventID>{}</EventID><Version>0</Version><Level>0</Level><Task>12544</Task><Keywords>0x8010000000000000</Keywords><TimeCreated SystemTime='2026-11-22T10:00:00.000Z'/><EventRecordID>{i}</EventRecordID><Channel>Security</Channel><Computer>WIN-{}</Computer></System><EventData><Data Name='TargetUserName'>admin</Data><Data Name='IpAddress'>{ip}</Data></EventData></Event>",
                [4624, 4625, 4672][usize::try_from(rng.below(3)).unwrap_or(0)],
                rng.below(100)
            ),
        ),
        _ => (
            "app".into(),
            format!(
                "Exception in thread \"main\" java.lang.IllegalStateException: request {i} failed\n\tat com.example.Service.handle(Service.java:{})\n\tat com.example.Server.run(Server.java:88)\n\tat java.base/java.lang.Thread.run(Thread.java:833)",
                rng.below(500)
            ),
        ),
    }
}

/// An envelope with its keys in the order CloudWatch Logs writes them.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct CorpusEnvelope {
    message_type: &'static str,
    owner: &'static str,
    log_group: String,
    log_stream: String,
    subscription_filters: [&'static str; 1],
    log_events: Vec<CorpusEvent>,
}

#[derive(serde::Serialize)]
struct CorpusEvent {
    id: String,
    timestamp: u64,
    message: String,
}

/// PutLogEvents' batch limit: the messages' UTF-8 bytes plus 26 bytes per event.
const PUT_LOG_EVENTS_BYTES: usize = 1_048_576;
const PUT_LOG_EVENTS_OVERHEAD: usize = 26;

/// What [`firehose_event`] made.
#[derive(Debug)]
pub struct Corpus {
    pub event: KinesisFirehoseEvent,
    pub events: u64,
    pub base64_bytes: u64,
}

/// A Firehose transformation event of about `base64_bytes` of record data (as Firehose sends it,
/// base64), the same for the same `seed`.
pub fn firehose_event(base64_bytes: u64, seed: u64) -> Corpus {
    let mut rng = Rng(seed.max(1));
    let mut records = Vec::new();
    let mut size = 0u64;
    let mut i = 0u64;
    while size < base64_bytes {
        // Batches of 1 to 10,000 events, as CloudWatch Logs delivers them: one envelope holds what one
        // PutLogEvents call put, so the largest stop at its 1 MiB limit (a few thousand events).
        let events_in_record = [1, 10, 100, 500, 1000, 10_000][usize::try_from(rng.below(6)).unwrap_or(0)];
        let instance = format!("i-{:017x}", rng.below(1 << 60));
        let (source, _) = log_line(&mut rng, i);
        let mut events = Vec::new();
        let mut batch_bytes = 0;
        while events.len() < events_in_record {
            let (_, message) = log_line(&mut rng, i + 1);
            batch_bytes += message.len() + PUT_LOG_EVENTS_OVERHEAD;
            if batch_bytes > PUT_LOG_EVENTS_BYTES {
                break;
            }
            i += 1;
            events.push(CorpusEvent { id: format!("{i:056}"), timestamp: 1_763_805_600_000 + i, message });
        }
        let envelope = CorpusEnvelope {
            message_type: "DATA_MESSAGE",
            owner: "123456789012",
            log_group: format!("CCP-logs-acme-123456789012-us-east-1/{source}"),
            log_stream: instance,
            subscription_filters: ["fleetlog"],
            log_events: events,
        };
        let mut record = KinesisFirehoseEventRecord::default();
        record.record_id = Some(format!("{:056}", records.len()));
        record.data.0 = gzip(&serde_json::to_vec(&envelope).unwrap_or_default());
        size += u64::try_from(record.data.0.len()).unwrap_or(0) * 4 / 3;
        records.push(record);
    }
    let mut event = KinesisFirehoseEvent::default();
    event.invocation_id = Some("bench".into());
    event.delivery_stream_arn = Some("arn:aws:firehose:us-east-1:123456789012:deliverystream/fleetlog-raw".into());
    event.region = Some("us-east-1".into());
    event.records = records;
    Corpus { event, events: i, base64_bytes: size }
}

/// What one pass of [`run_core`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CoreRun {
    pub decompressed_bytes: usize,
    pub json_bytes: usize,
    pub records: usize,
}

/// The record core over every record of `event`: gunzip, parse the envelope, write every event's
/// JSON record (no response budget, no re-ingestion). `plain` and `out` are reused between records.
pub fn run_core(event: &KinesisFirehoseEvent, plain: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<CoreRun, DecodeError> {
    let mut run = CoreRun::default();
    for record in &event.records {
        gunzip_into(&record.data.0, plain)?;
        let envelope = parse_envelope(plain)?;
        out.clear();
        run.records += write_records(&envelope, "us-east-1", RECORD_LIMITS, out);
        run.decompressed_bytes += plain.len();
        run.json_bytes += out.len();
    }
    Ok(run)
}
