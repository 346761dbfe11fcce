//! Criterion benchmarks of the ETL on the corpus's ~200 KB, ~1 MB and ~5 MB Firehose events (base64 size):
//! `core` is the record core alone (gunzip, envelope, a JSON record for every event); `transform` is
//! the whole Firehose shape (response budget, records handed back, the response JSON). Throughput is
//! decompressed log data in, the measure the targets use.
//!
//!   cargo bench -p fleetlog-etl --bench core
//!
//! `cargo test -p fleetlog-etl --bench core` runs each benchmark once, as a check that it works.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleetlog_etl::corpus::{firehose_event, run_core};
use fleetlog_etl::firehose::transform;

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
        group.finish();
    }
}

criterion_group!(benches, etl);
criterion_main!(benches);
