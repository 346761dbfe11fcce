//! Benchmark driver for the ETL core, one process, no AWS.
//!
//!   fleetlog-etl-bench corpus --bytes 1000000 [--seed 7] > event.json   # a Firehose transformation event
//!   fleetlog-etl-bench transform [event.json] > response.json           # (stdin when no file)
//!
//!   fleetlog-etl-bench core [event.json]                                # the record core alone
//!
//! `transform` reports decompressed bytes, events and throughput on stderr. `core` times only
//! gunzip + envelope parse + JSON records out, for every event (no response budget, no re-ingestion).

use std::io::{Read, Write};
use std::time::Instant;

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord};
use fleetlog_etl::decode::{gunzip_into, gzip, parse_envelope};
use fleetlog_etl::firehose::transform;
use fleetlog_etl::transform::write_records;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("corpus") => corpus(&args[1..]),
        Some("transform") => run_transform(args.get(1).map(String::as_str)),
        Some("core") => run_core(args.get(1).map(String::as_str)),
        _ => Err("usage: fleetlog-etl-bench corpus --bytes N [--seed S] | transform [FILE] | core [FILE]".to_owned()),
    };
    if let Err(e) = result {
        eprintln!("fleetlog-etl-bench: {e}");
        std::process::exit(2);
    }
}

fn flag(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} needs a number")),
    }
}

/// A small deterministic generator (xorshift) so corpora are reproducible without extra crates.
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

fn corpus(args: &[String]) -> Result<(), String> {
    let target = flag(args, "--bytes", 1_000_000)?;
    let mut rng = Rng(flag(args, "--seed", 7)?.max(1));
    let mut records = Vec::new();
    let mut base64_bytes = 0u64;
    let mut i = 0u64;
    while base64_bytes < target {
        // Batches of 1 to 10,000 events, as CloudWatch Logs delivers them.
        let events_in_record = [1, 10, 100, 500, 1000, 10_000][usize::try_from(rng.below(6)).unwrap_or(0)];
        let instance = format!("i-{:017x}", rng.below(1 << 60));
        let (source, _) = log_line(&mut rng, i);
        let events: Vec<_> = (0..events_in_record)
            .map(|_| {
                i += 1;
                let (_, message) = log_line(&mut rng, i);
                serde_json::json!({"id": format!("{:056}", i), "timestamp": 1_763_805_600_000u64 + i, "message": message})
            })
            .collect();
        let envelope = serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "123456789012",
            "logGroup": format!("CCP-logs-acme-123456789012-us-east-1/{source}"), "logStream": instance,
            "subscriptionFilters": ["fleetlog"], "logEvents": events
        });
        let mut record = KinesisFirehoseEventRecord::default();
        record.record_id = Some(format!("{:056}", records.len()));
        record.data.0 = gzip(envelope.to_string().as_bytes());
        base64_bytes += u64::try_from(record.data.0.len()).unwrap_or(0) * 4 / 3;
        records.push(record);
    }
    let mut event = KinesisFirehoseEvent::default();
    event.invocation_id = Some("bench".into());
    event.delivery_stream_arn = Some("arn:aws:firehose:us-east-1:123456789012:deliverystream/fleetlog-raw".into());
    event.region = Some("us-east-1".into());
    event.records = records;
    serde_json::to_writer(std::io::stdout().lock(), &event).map_err(|e| e.to_string())?;
    eprintln!("corpus: {} records, {i} events, ~{base64_bytes} bytes of base64", event.records.len());
    Ok(())
}

fn read_event(path: Option<&str>) -> Result<KinesisFirehoseEvent, String> {
    let mut input = Vec::new();
    match path {
        Some(p) => input = std::fs::read(p).map_err(|e| format!("{p}: {e}"))?,
        None => {
            std::io::stdin().read_to_end(&mut input).map_err(|e| e.to_string())?;
        }
    }
    serde_json::from_slice(&input).map_err(|e| format!("not a Firehose event: {e}"))
}

fn run_core(path: Option<&str>) -> Result<(), String> {
    let event = read_event(path)?;
    let started = Instant::now();
    let (mut plain, mut out) = (Vec::new(), Vec::new());
    let (mut bytes_in, mut bytes_out, mut events) = (0usize, 0usize, 0usize);
    for record in &event.records {
        gunzip_into(&record.data.0, &mut plain).map_err(|e| e.to_string())?;
        let envelope = parse_envelope(&plain).map_err(|e| e.to_string())?;
        out.clear();
        events += write_records(&envelope, &envelope.log_events, "us-east-1", &mut out);
        bytes_in += plain.len();
        bytes_out += out.len();
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "core: {events} records out ({:.1} MB JSON) from {:.1} MB decompressed in {secs:.3} s = {:.0} MB/s in",
        bytes_out as f64 / 1e6,
        bytes_in as f64 / 1e6,
        bytes_in as f64 / 1e6 / secs
    );
    Ok(())
}

fn run_transform(path: Option<&str>) -> Result<(), String> {
    let started = Instant::now();
    let event = read_event(path)?;
    let out = transform(&event, "us-east-1");
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer(&mut stdout, &out.response).map_err(|e| e.to_string())?;
    stdout.flush().map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let mb = out.stats.decompressed_bytes as f64 / 1e6;
    eprintln!(
        "transform: {} records, {} events out, {} re-ingested, {:.1} MB decompressed in {:.3} s = {:.0} MB/s (end to end, incl. event parse and response write)",
        out.stats.records_in,
        out.stats.events_out,
        out.stats.reingested,
        mb,
        secs,
        mb / secs
    );
    Ok(())
}
