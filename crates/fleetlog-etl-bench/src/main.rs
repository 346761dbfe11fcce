//! Benchmark driver for the ETL core, one process, no AWS.
//!
//!   fleetlog-etl-bench corpus --bytes 1000000 [--seed 7] > event.json   # a Firehose transformation event
//!   fleetlog-etl-bench transform [event.json] > response.json           # (stdin when no file)
//!   fleetlog-etl-bench transform --invocations 20 event.json > /dev/null # a warm Lambda: 20 in a row
//!
//!   fleetlog-etl-bench core [--destination splunk-hec] [event.json]     # the record core alone
//!   fleetlog-etl-bench objects [--requests 100000]                      # a CloudFront log object
//!
//! `transform` reports decompressed bytes, events and throughput on stderr. `core` times only
//! gunzip + envelope parse + JSON records out, for every event (no response budget, no re-ingestion).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use clap::{Parser, Subcommand};
use fleetlog_etl::Payload;
use fleetlog_etl::firehose::{Context, OK, transform_for};
use fleetlog_etl::gzip::gunzip_into;
use fleetlog_etl::records::Destination;
use fleetlog_etl_bench as corpus;

/// As in the Lambda (see the workspace's `mimalloc` entry), so the figures are the Lambda's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmark driver for the log ETL: one process, no AWS. Figures go to stderr.
#[derive(Debug, Parser)]
#[command(version, after_help = "crates/fleetlog-etl/README.md has the benchmark's method and figures.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a Firehose transformation event of the realistic corpus to stdout
    Corpus {
        /// About this many bytes of base64 record data
        #[arg(long, default_value_t = 1_000_000)]
        bytes: u64,
        /// The same seed gives the same event
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Handle a Firehose transformation event as the Lambda does: the response JSON goes to stdout,
    /// the time from event JSON to response JSON to stderr
    Transform {
        /// Handle the event this many times in one process, as a warm Lambda container does; the
        /// first and the median of the others are reported
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        invocations: u64,
        /// Leave access requests out of windows (the stack's AccessMetrics=false): the cost of the
        /// live analytics is the difference
        #[arg(long)]
        no_access_metrics: bool,
        /// The event (JSON); standard input when absent
        file: Option<PathBuf>,
    },
    /// Time the record core alone: gunzip, envelope, a JSON record for every event (no response
    /// budget, nothing handed back)
    Core {
        /// Whose records to write
        #[arg(long, value_enum, default_value_t = DestinationArg::Table)]
        destination: DestinationArg,
        /// The event (JSON); standard input when absent
        file: Option<PathBuf>,
    },
    /// Time the log-object path on a generated gzip CloudFront standard log object: inflate, W3C
    /// lines, a record per request
    Objects {
        /// Requests in the object
        #[arg(long, default_value_t = 100_000)]
        requests: usize,
        #[arg(long, default_value_t = 11)]
        seed: u64,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DestinationArg {
    /// The Glue table's JSON records
    Table,
    /// Splunk HEC events
    SplunkHec,
}

fn main() {
    let result = match Cli::parse().command {
        Command::Corpus { bytes, seed } => corpus(bytes, seed),
        Command::Transform { invocations, no_access_metrics, file } => {
            run_transform(invocations, !no_access_metrics, file.as_deref())
        }
        Command::Core { destination, file } => run_core(destination, file.as_deref()),
        Command::Objects { requests, seed } => run_objects(requests, seed),
    };
    if let Err(e) = result {
        eprintln!("fleetlog-etl-bench: {e}");
        std::process::exit(1);
    }
}

fn corpus(bytes: u64, seed: u64) -> Result<(), String> {
    let corpus = corpus::firehose_event(bytes, seed);
    serde_json::to_writer(std::io::stdout().lock(), &corpus.event).map_err(|e| e.to_string())?;
    eprintln!(
        "corpus: {} records, {} events, {} bytes of base64",
        corpus.event.records.len(),
        corpus.events,
        corpus.base64_bytes
    );
    Ok(())
}

fn read_input(path: Option<&Path>) -> Result<Vec<u8>, String> {
    match path {
        Some(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())),
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

fn run_core(destination: DestinationArg, path: Option<&Path>) -> Result<(), String> {
    let event = parse_event(&read_input(path)?)?;
    let destination = match destination {
        DestinationArg::Table => fleetlog_etl::records::Destination::Table,
        DestinationArg::SplunkHec => {
            fleetlog_etl::records::Destination::Splunk(fleetlog_etl::records::SplunkHec { index: None })
        }
    };
    let started = Instant::now();
    let run =
        corpus::run_core_for(&destination, &event, &mut Vec::new(), &mut Vec::new()).map_err(|e| e.to_string())?;
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

fn run_objects(requests: usize, seed: u64) -> Result<(), String> {
    let (object, plain_bytes) = corpus::cloudfront_object(requests, seed);
    let started = Instant::now();
    let (records, bytes) = corpus::run_object(&object).map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "objects: {records} records ({:.1} MB JSON) from a {:.1} MB object ({:.1} MB gzip) in {secs:.3} s = {:.0} MB/s in",
        bytes as f64 / 1e6,
        plain_bytes as f64 / 1e6,
        object.len() as f64 / 1e6,
        plain_bytes as f64 / 1e6 / secs
    );
    Ok(())
}

/// Times what the Lambda does between receiving the payload and handing back the answer (as the
/// blueprint script does): parse the event, transform, and make the body the Lambda posts (the blueprint's
/// figure includes `json.dumps` of its response). Reading the file and writing to
/// stdout are outside. With `--invocations N` the same payload is handled N times in one process, as a
/// warm Lambda container handles one invocation after another; the first (cold) and the median of the
/// others are reported.
fn run_transform(invocations: u64, access_metrics: bool, path: Option<&Path>) -> Result<(), String> {
    let input = read_input(path)?;
    // The corpus's instances, a few to each of four applications, as the enrollment table would say.
    let applications = corpus::applications(&parse_event(&input)?, 4);
    let mut seconds = Vec::new();
    let mut last = None;
    for _ in 0..invocations {
        // The Lambda has sent and freed an invocation's response before the next one arrives.
        drop(last.take());
        let started = Instant::now();
        let event = parse_event(&input)?;
        let context = Context { region: "us-east-1", applications: &applications, access_metrics };
        let mut out = transform_for(&Destination::Table, &event, &context);
        let requests = out.windows.requests();
        let lines = fleetlog_etl::window_lines(&mut out.windows, &applications, 1_763_805_600_000);
        // The body the Lambda posts to the Runtime API.
        let body = fleetlog_etl::lambda::response_body(out.response);
        seconds.push(started.elapsed().as_secs_f64());
        last = Some((event, out.stats, body, requests, lines));
    }
    let Some((event, stats, body, requests, lines)) = last else { return Ok(()) };
    if access_metrics {
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        #[allow(clippy::cast_precision_loss)]
        let per_million = if requests == 0 { 0.0 } else { bytes as f64 * 1e6 / requests as f64 };
        eprintln!(
            "transform: {requests} access requests in windows: {} metric and contributor lines, {bytes} bytes ({:.1} MB per million access records)",
            lines.len(),
            per_million / 1e6
        );
    }
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
    let mut warm = seconds[1..].to_vec();
    warm.sort_by(f64::total_cmp);
    if let (Some(median), Some(best)) = (warm.get(warm.len() / 2), warm.first()) {
        eprintln!("transform: warm, median of {} more: {}", warm.len(), rates(*median));
        // The least disturbed invocation: on a shared machine, what the code costs.
        eprintln!("transform: warm, best of {} more: {}", warm.len(), rates(*best));
    }
    Ok(())
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
