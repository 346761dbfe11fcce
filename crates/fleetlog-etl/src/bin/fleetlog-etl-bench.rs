//! Benchmark driver for the ETL core, one process, no AWS.
//!
//!   fleetlog-etl-bench corpus --bytes 1000000 [--seed 7] > event.json   # a Firehose transformation event
//!   fleetlog-etl-bench transform [event.json] > response.json           # (stdin when no file)
//!   fleetlog-etl-bench transform --invocations 20 event.json > /dev/null # a warm Lambda: 20 in a row
//!
//!   fleetlog-etl-bench core [event.json]                                # the record core alone
//!
//! `transform` reports decompressed bytes, events and throughput on stderr. `core` times only
//! gunzip + envelope parse + JSON records out, for every event (no response budget, no re-ingestion).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::time::Instant;

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use fleetlog_etl::decode::gunzip_into;
use fleetlog_etl::firehose::{OK, transform};
use fleetlog_etl::{Payload, corpus};

/// As in the Lambda (see the workspace's `mimalloc` entry), so the figures are the Lambda's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("corpus") => corpus(&args[1..]),
        Some("transform") => run_transform(&args[1..]),
        Some("core") => run_core(file_arg(&args[1..])),
        _ => Err(
            "usage: fleetlog-etl-bench corpus --bytes N [--seed S] | transform [--invocations N] [FILE] | core [FILE]"
                .to_owned(),
        ),
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

fn corpus(args: &[String]) -> Result<(), String> {
    let corpus = corpus::firehose_event(flag(args, "--bytes", 1_000_000)?, flag(args, "--seed", 7)?);
    serde_json::to_writer(std::io::stdout().lock(), &corpus.event).map_err(|e| e.to_string())?;
    eprintln!(
        "corpus: {} records, {} events, {} bytes of base64",
        corpus.event.records.len(),
        corpus.events,
        corpus.base64_bytes
    );
    Ok(())
}

fn read_input(path: Option<&str>) -> Result<Vec<u8>, String> {
    match path {
        Some(p) => std::fs::read(p).map_err(|e| format!("{p}: {e}")),
        None => {
            let mut input = Vec::new();
            std::io::stdin().read_to_end(&mut input).map_err(|e| e.to_string())?;
            Ok(input)
        }
    }
}

/// Read as the Lambda reads it: the runtime deserialises the handler's payload type.
fn parse_event(input: &[u8]) -> Result<KinesisFirehoseEvent, String> {
    let payload: Payload = serde_json::from_slice(input).map_err(|e| format!("not a Firehose event: {e}"))?;
    payload.into_firehose_event().ok_or_else(|| "not a Firehose event: it has no records".to_owned())
}

fn run_core(path: Option<&str>) -> Result<(), String> {
    let event = parse_event(&read_input(path)?)?;
    let started = Instant::now();
    let run = corpus::run_core(&event, &mut Vec::new(), &mut Vec::new()).map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "core: {} records out ({:.1} MB JSON) from {:.1} MB decompressed in {secs:.3} s = {:.0} MB/s in",
        run.records,
        run.json_bytes as f64 / 1e6,
        run.decompressed_bytes as f64 / 1e6,
        run.decompressed_bytes as f64 / 1e6 / secs
    );
    Ok(())
}

/// Times what the Lambda does between receiving the payload and handing back the answer (as the
/// blueprint script does): parse the event, transform, and serialise the response as the runtime posts
/// it (the blueprint's figure includes `json.dumps` of its response). Reading the file and writing to
/// stdout are outside. With `--invocations N` the same payload is handled N times in one process, as a
/// warm Lambda container handles one invocation after another; the first (cold) and the median of the
/// others are reported.
fn run_transform(args: &[String]) -> Result<(), String> {
    let invocations = flag(args, "--invocations", 1)?.max(1);
    let input = read_input(file_arg(args))?;
    let mut seconds = Vec::new();
    let mut last = None;
    for _ in 0..invocations {
        let started = Instant::now();
        let event = parse_event(&input)?;
        let out = transform(&event, "us-east-1");
        // The body Lambda's runtime posts for a buffered response (serde_json::to_vec of it).
        let body = serde_json::to_vec(&out.response).map_err(|e| e.to_string())?;
        seconds.push(started.elapsed().as_secs_f64());
        last = Some((event, out.stats, body));
    }
    let Some((event, stats, body)) = last else { return Ok(()) };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&body).and_then(|()| stdout.flush()).map_err(|e| e.to_string())?;
    // Throughput counts all the log data the event holds, as the blueprint's figure does, including
    // records handed back unread; "delivered" counts the logs of records answered Ok (both measured
    // here, outside the timed span).
    let answered: KinesisFirehoseResponse = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let ok: HashSet<&str> = answered
        .records
        .iter()
        .filter(|r| r.result.as_deref() == Some(OK))
        .filter_map(|r| r.record_id.as_deref())
        .collect();
    let logs = logs_per_record(&event);
    let mb = logs.iter().map(|(_, size)| size).sum::<usize>() as f64 / 1e6;
    let delivered =
        logs.iter().filter(|(id, _)| id.is_some_and(|id| ok.contains(id))).map(|(_, size)| size).sum::<usize>() as f64
            / 1e6;
    eprintln!(
        "transform: {} records, {} events out, {} re-ingested ({} unread); {mb:.1} MB of logs in, {delivered:.1} MB delivered",
        stats.records_in, stats.events_out, stats.reingested, stats.deferred_unread,
    );
    let rates = |s: f64| format!("{s:.4} s = {:.0} MB/s in, {:.0} MB/s delivered", mb / s, delivered / s);
    eprintln!("transform: first invocation {} (event parse, transform, response JSON)", rates(seconds[0]));
    if let Some(warm) = median(&seconds[1..]) {
        eprintln!("transform: warm, median of {} more: {}", seconds.len() - 1, rates(warm));
    }
    Ok(())
}

fn median(seconds: &[f64]) -> Option<f64> {
    let mut sorted = seconds.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// The first argument that is neither a flag nor a flag's value.
fn file_arg(args: &[String]) -> Option<&str> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg.starts_with("--") {
            rest.next();
        } else {
            return Some(arg);
        }
    }
    None
}

/// Each record's id and decompressed size (records that do not decompress are left out).
fn logs_per_record(event: &KinesisFirehoseEvent) -> Vec<(Option<&str>, usize)> {
    let mut plain = Vec::new();
    event
        .records
        .iter()
        .filter_map(|r| gunzip_into(&r.data.0, &mut plain).ok().map(|()| (r.record_id.as_deref(), plain.len())))
        .collect()
}
