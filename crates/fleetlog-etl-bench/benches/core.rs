//! Criterion benchmarks of the ETL on the corpus's ~200 KB, ~1 MB and ~5 MB Firehose events (base64 size):
//! `core` is the record core alone (gunzip, envelope, a JSON record for every event); `transform` is
//! the whole Firehose shape (response budget, records handed back, the response JSON); `core-hec` is
//! `core` writing Splunk HEC events instead. Throughput is
//! decompressed log data in, the measure the targets use. `parse/{format}` is the parsers alone, with
//! the writing of the fields they find, on the 200 KB event's messages of each format (throughput:
//! message bytes as the envelope spells them): the share of a record's cost that richer output takes;
//! `parse/cloudtrail` and `parse/waf` the same on generated CloudTrail events and WAF lines.
//!
//!   cargo bench -p fleetlog-etl-bench --bench core
//!
//! `objects/cloudfront` is the log-object path (inflate, W3C lines, records) over a generated CloudFront
//! standard log object of 100,000 requests (throughput: its bytes uncompressed).
//!
//! `cargo test -p fleetlog-etl-bench --bench core` runs each benchmark once, as a check that it works.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleetlog_etl::envelope::{LogEvent, parse_envelope};
use fleetlog_etl::firehose::{Context, transform, transform_for};
use fleetlog_etl::gzip::gunzip_into;
use fleetlog_etl::parse::parse_literal;
use fleetlog_etl::records::{Destination, SplunkHec};
use fleetlog_etl_bench::{
    applications, cloudfront_object, firehose_event, run_core, run_core_for, run_object, service_lines,
};

/// As in the Lambda (see the workspace's `mimalloc` entry), so the figures are the Lambda's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn etl(c: &mut Criterion) {
    // 200 KB: the stack's batch size, which a response holds whole (every line is transformed).
    for (name, base64_bytes) in [("200KB", 200_000), ("1MB", 1_000_000), ("5MB", 5_000_000)] {
        let corpus = firehose_event(base64_bytes, 11);
        let (mut plain, mut out) = (Vec::new(), Vec::new());
        let first = run_core(&corpus.event, &mut plain, &mut out).expect("the corpus decodes");
        let mut group = c.benchmark_group(format!("etl/{name}"));
        group.throughput(Throughput::Bytes(first.decompressed_bytes as u64));
        group.sample_size(10);
        group.bench_function("core", |b| {
            b.iter(|| run_core(black_box(&corpus.event), &mut plain, &mut out).expect("the corpus decodes"));
        });
        group.bench_function("transform", |b| b.iter(|| transform(black_box(&corpus.event), "us-east-1")));
        // The live analytics' cost: the same transformation with access requests left out of windows,
        // and with them folded and written as the Lambda writes them (four applications).
        let applications = applications(&corpus.event, 4);
        for (name, access_metrics) in [("transform-no-windows", false), ("transform-windows", true)] {
            let context = Context { region: "us-east-1", applications: &applications, access_metrics };
            group.bench_function(name, |b| {
                b.iter(|| {
                    let mut out = transform_for(&Destination::Table, black_box(&corpus.event), &context);
                    let lines = fleetlog_etl::window_lines(&mut out.windows, &applications, 1_763_805_600_000);
                    (out.response, lines)
                });
            });
        }
        let hec = Destination::Splunk(SplunkHec { index: Some("aws".into()) });
        group.bench_function("core-hec", |b| {
            b.iter(|| run_core_for(&hec, black_box(&corpus.event), &mut plain, &mut out).expect("the corpus decodes"));
        });
        group.finish();
    }
}

fn parsers(c: &mut Criterion) {
    let corpus = firehose_event(200_000, 11);
    let plains: Vec<Vec<u8>> = corpus
        .event
        .records
        .iter()
        .map(|record| {
            let mut plain = Vec::new();
            gunzip_into(&record.data.0, &mut plain).expect("the corpus decodes");
            plain
        })
        .collect();
    let envelopes: Vec<_> = plains.iter().map(|p| parse_envelope(p).expect("the corpus decodes")).collect();
    let (mut scratch, mut fields_json) = (String::new(), Vec::new());
    let mut by_format: BTreeMap<&str, Vec<&LogEvent<'_>>> = BTreeMap::new();
    for event in envelopes.iter().flat_map(|e| &e.log_events) {
        let (format, _) = parse_literal(event.message_literal(), || event.text(&mut scratch));
        by_format.entry(format.as_str()).or_default().push(event);
    }
    let mut group = c.benchmark_group("parse");
    group.sample_size(10);
    for (format, events) in &by_format {
        group.throughput(Throughput::Bytes(events.iter().map(|e| e.message_literal().len() as u64).sum()));
        group.bench_function(*format, |b| {
            b.iter(|| {
                for event in events {
                    let (_, fields) = parse_literal(black_box(event.message_literal()), || event.text(&mut scratch));
                    fields_json.clear();
                    fields.write_json(&mut fields_json);
                }
            });
        });
    }
    // The AWS services' JSON lines, which the corpus of instance logs does not hold.
    let lines: Vec<String> = service_lines(2_000, 11).iter().map(|l| serde_json::to_string(l).expect("text")).collect();
    for (format, kind) in [("cloudtrail", 0), ("waf", 1)] {
        let literals: Vec<&str> = lines.iter().skip(kind).step_by(2).map(|l| &l[1..l.len() - 1]).collect();
        let told = parse_literal(literals[0], || None).0.as_str();
        assert_eq!(told, format, "the generated lines are told as {format}");
        group.throughput(Throughput::Bytes(literals.iter().map(|l| l.len() as u64).sum()));
        group.bench_function(format, |b| {
            b.iter(|| {
                for literal in &literals {
                    let (_, fields) = parse_literal(black_box(literal), || None);
                    fields_json.clear();
                    fields.write_json(&mut fields_json);
                }
            });
        });
    }
    group.finish();
}

fn objects(c: &mut Criterion) {
    let (object, plain_bytes) = cloudfront_object(100_000, 11);
    let (records, _) = run_object(&object).expect("the object reads");
    assert_eq!(records, 100_000, "one record per request");
    let mut group = c.benchmark_group("objects");
    group.throughput(Throughput::Bytes(plain_bytes as u64));
    group.sample_size(10);
    group.bench_function("cloudfront", |b| b.iter(|| run_object(black_box(&object)).expect("the object reads")));
    group.finish();
}

criterion_group!(benches, etl, parsers, objects);
criterion_main!(benches);
