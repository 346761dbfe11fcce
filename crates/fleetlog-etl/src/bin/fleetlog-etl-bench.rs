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

use aws_lambda_events::firehose::KinesisFirehoseEvent;
use fleetlog_etl::firehose::transform;
use fleetlog_etl::{Payload, corpus};
use serde_json::value::RawValue;

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
/// blueprint script does): parse the event, transform, write the response JSON and check it as the
/// handler does. Reading the file and writing to stdout are outside.
fn run_transform(path: Option<&str>) -> Result<(), String> {
    let input = read_input(path)?;
    let started = Instant::now();
    let event = parse_event(&input)?;
    let out = transform(&event, "us-east-1");
    let response = RawValue::from_string(out.response).map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(response.get().as_bytes()).and_then(|()| stdout.flush()).map_err(|e| e.to_string())?;
    let mb = out.stats.decompressed_bytes as f64 / 1e6;
    eprintln!(
        "transform: {} records, {} events out, {} re-ingested, {:.1} MB decompressed in {:.3} s = {:.0} MB/s (event parse, transform, response JSON)",
        out.stats.records_in,
        out.stats.events_out,
        out.stats.reingested,
        mb,
        secs,
        mb / secs
    );
    Ok(())
}
