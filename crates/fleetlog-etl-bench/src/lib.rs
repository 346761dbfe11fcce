//! The log ETL's benchmark, kept out of the Lambda's dependencies: a realistic, reproducible corpus
//! ([`firehose_event`]) — Firehose transformation events whose records hold CloudWatch Logs envelopes
//! of mixed syslog, sshd, access logs, JSON application logs, Windows security events and multi-line
//! stack traces, in batches of 1 to 10,000 events within PutLogEvents' 1 MiB batch limit — and the
//! record core alone ([`run_core`]); and CloudFront standard log objects ([`cloudfront_object`]) with
//! the log-object path that reads them ([`run_object`]). The `fleetlog-etl-bench` binary and the criterion benchmarks
//! (`benches/core.rs`) run them; `bench/compare.py` compares the binary with the blueprint's script.

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord};

use fleetlog_etl::DecodeError;
use fleetlog_etl::envelope::parse_envelope;
use fleetlog_etl::gzip::{gunzip_into, gzip};
use fleetlog_etl::objects::{LineReader, ObjectRecords};
use fleetlog_etl::put::RECORD_LIMITS;
use fleetlog_etl::records::{Destination, Origin, TableJson, write_for};

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

/// The applications of `event`'s instances, the instances dealt round `count` applications
/// (`app-0`, `app-1`, …) as an enrollment table of a mixed fleet would say.
pub fn applications(event: &KinesisFirehoseEvent, count: usize) -> fleetlog_etl::applications::Applications {
    let tagged = fleetlog_etl::firehose::instance_ids(event)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, format!("app-{}", i % count.max(1))))
        .collect();
    fleetlog_etl::applications::Applications::new(tagged, std::sync::Arc::default())
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
    run_core_for(&Destination::Table, event, plain, out)
}

/// [`run_core`] writing `destination`'s records (the Glue table's, or Splunk HEC events).
pub fn run_core_for(
    destination: &Destination,
    event: &KinesisFirehoseEvent,
    plain: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<CoreRun, DecodeError> {
    let mut run = CoreRun::default();
    for record in &event.records {
        gunzip_into(&record.data.0, plain)?;
        let envelope = parse_envelope(plain)?;
        out.clear();
        run.records += write_for(destination, &envelope, &Origin::unknown("us-east-1"), RECORD_LIMITS, out, |_, _| {});
        run.decompressed_bytes += plain.len();
        run.json_bytes += out.len();
    }
    Ok(run)
}

/// The `#Fields:` directive of a CloudFront distribution's standard log file, every field in the
/// order the Developer Guide lists them.
const CLOUDFRONT_FIELDS: &str = "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end";

/// A gzip CloudFront standard log object of `lines` requests, as CloudFront writes one: the two
/// directives, then tab-separated lines with every field, user agents and some paths URL-encoded,
/// mostly hits with some misses, redirects, 4xx and 5xx across a dozen edge locations. Returns the
/// object and its size uncompressed.
pub fn cloudfront_object(lines: usize, seed: u64) -> (Vec<u8>, usize) {
    const EDGES: [&str; 12] = [
        "SFO5-C1", "IAD89-C3", "FRA56-C2", "LHR61-C1", "NRT57-C4", "SYD1-C1", "GRU3-C2", "CDG50-C1", "SIN2-C3",
        "AMS54-C1", "DFW56-P2", "BOM78-P1",
    ];
    const PATHS: [&str; 6] = ["/", "/index.html", "/assets/app.js", "/img/caf%C3%A9.png", "/api/v1/tracks", "/search"];
    const AGENTS: [&str; 3] = [
        "Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)%20AppleWebKit/537.36%20(KHTML,%20like%20Gecko)%20Chrome/131.0%20Safari/537.36",
        "Mozilla/5.0%20(iPhone;%20CPU%20iPhone%20OS%2018_1%20like%20Mac%20OS%20X)%20AppleWebKit/605.1.15",
        "curl/8.5.0",
    ];
    let mut rng = Rng(seed.max(1));
    let mut text = format!("#Version: 1.0\n{CLOUDFRONT_FIELDS}\n");
    for i in 0..lines {
        let status = match rng.below(100) {
            0..=79 => 200,
            80..=87 => 304,
            88..=91 => 301,
            92..=96 => 404,
            97 => 500,
            _ => 503,
        };
        let result = match status {
            200 | 304 if rng.below(10) < 8 => "Hit",
            200 | 304 => "Miss",
            301 => "Redirect",
            500 | 503 => "Error",
            _ => "Miss",
        };
        let second = i * 3600 / lines.max(1);
        let line = [
            "2026-12-03".to_owned(),
            format!("10:{:02}:{:02}", second / 60, second % 60),
            EDGES[rng.below(12) as usize].to_owned(),
            (200 + rng.below(90_000)).to_string(),
            format!("198.51.{}.{}", rng.below(256), rng.below(256)),
            "GET".to_owned(),
            "d111111abcdef8.cloudfront.net".to_owned(),
            PATHS[rng.below(6) as usize].to_owned(),
            status.to_string(),
            "https://www.example.com/".to_owned(),
            AGENTS[rng.below(3) as usize].to_owned(),
            if rng.below(4) == 0 { format!("q=track{}", rng.below(1000)) } else { "-".to_owned() },
            "-".to_owned(),
            result.to_owned(),
            format!("{:016x}{:016x}==", rng.next(), rng.next()),
            "www.example.com".to_owned(),
            "https".to_owned(),
            (100 + rng.below(900)).to_string(),
            format!("0.{:03}", rng.below(1000)),
            "-".to_owned(),
            "TLSv1.3".to_owned(),
            "TLS_AES_128_GCM_SHA256".to_owned(),
            result.to_owned(),
            "HTTP/2.0".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            (1024 + rng.below(60_000)).to_string(),
            format!("0.{:03}", rng.below(1000)),
            result.to_owned(),
            "text/html".to_owned(),
            rng.below(90_000).to_string(),
            "-".to_owned(),
            "-".to_owned(),
        ]
        .join("\t");
        text.push_str(&line);
        text.push('\n');
    }
    (gzip(text.as_bytes()), text.len())
}

/// The log-object path over a whole object, as the Lambda reads one (in 64 KiB chunks, records taken
/// as they wait): returns how many records it made and their bytes.
pub fn run_object(object: &[u8]) -> Result<(usize, usize), DecodeError> {
    let source = fleetlog_etl::envelope::Envelope::of_source(
        "123456789012".into(),
        "cloudfront/E2EXAMPLE".into(),
        "cf/E2EXAMPLE.2026-12-03-10.a1b2c3d4.gz".into(),
    );
    let origin = Origin::unknown("us-east-1");
    let mut records = ObjectRecords::new(TableJson, &source, &origin, "d41d8cd98f00b204e9800998ecf8427e", 0);
    let mut reader = LineReader::default();
    let (mut count, mut bytes) = (0, 0);
    let mut take = |records: &mut ObjectRecords<TableJson>| {
        for record in fleetlog_etl::put::one_per_line(&records.take()) {
            count += 1;
            bytes += record.len();
        }
    };
    for chunk in object.chunks(64 * 1024) {
        reader.push(chunk, &mut |line| records.line(line))?;
        take(&mut records);
    }
    reader.finish(&mut |line| records.line(line))?;
    take(&mut records);
    Ok((count, bytes))
}

/// `count` CloudTrail events and AWS WAF log lines, alternating, with the fields of the CloudTrail
/// User Guide's "CloudTrail record contents" and the WAF Developer Guide's "Log fields for web ACL
/// traffic", varied per line: the JSON messages a trail's and a web ACL's log groups hold.
pub fn service_lines(count: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed.max(1));
    (0..count)
        .map(|i| {
            let ip = format!("198.51.{}.{}", rng.below(256), rng.below(256));
            if i % 2 == 0 {
                let (event, error) = if rng.below(10) == 0 { ("GetObject", "\"errorCode\":\"AccessDenied\",\"errorMessage\":\"Access Denied\",") } else { ("PutObject", "") };
                format!(
                    "{{\"eventVersion\":\"1.09\",\"userIdentity\":{{\"type\":\"AssumedRole\",\"principalId\":\"AROAEXAMPLE:s{i}\",\"arn\":\"arn:aws:sts::111122223333:assumed-role/App{}/s{i}\",\"accountId\":\"111122223333\"}},\"eventTime\":\"2026-12-03T10:00:{:02}Z\",\"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"{event}\",\"awsRegion\":\"eu-west-1\",\"sourceIPAddress\":\"{ip}\",\"userAgent\":\"aws-sdk-rust/1.3\",{error}\"requestParameters\":{{\"bucketName\":\"b{}\",\"key\":\"k/{}\"}},\"responseElements\":null,\"requestID\":\"{:016X}\",\"eventID\":\"{:016x}\",\"readOnly\":false,\"eventType\":\"AwsApiCall\",\"recipientAccountId\":\"111122223333\"}}",
                    rng.below(20),
                    rng.below(60),
                    rng.below(5),
                    rng.below(100_000),
                    rng.next(),
                    rng.next(),
                )
            } else {
                let action = if rng.below(4) == 0 { "BLOCK" } else { "ALLOW" };
                format!(
                    "{{\"timestamp\":1796294559{:03},\"formatVersion\":1,\"webaclId\":\"arn:aws:wafv2:us-east-1:111122223333:global/webacl/acl/1\",\"terminatingRuleId\":\"{}\",\"terminatingRuleType\":\"REGULAR\",\"action\":\"{action}\",\"httpSourceName\":\"CF\",\"httpSourceId\":\"E2EXAMPLE\",\"ruleGroupList\":[],\"rateBasedRuleList\":[],\"nonTerminatingMatchingRules\":[],\"httpRequest\":{{\"clientIp\":\"{ip}\",\"country\":\"{}\",\"headers\":[{{\"name\":\"Host\",\"value\":\"www.example.com\"}},{{\"name\":\"User-Agent\",\"value\":\"Mozilla/5.0\"}}],\"uri\":\"/api/v1/tracks/{}\",\"args\":\"page={}\",\"httpVersion\":\"HTTP/2.0\",\"httpMethod\":\"GET\",\"requestId\":\"{:016x}\"}}}}",
                    rng.below(1000),
                    if action == "BLOCK" { "BlockBadBots" } else { "Default_Action" },
                    ["NL", "US", "DE", "BR", "JP"][rng.below(5) as usize],
                    rng.below(100_000),
                    rng.below(50),
                    rng.next(),
                )
            }
        })
        .collect()
}
