//! A reconcile sweep over 1,000 tagged instances on the emulator, from the sweep to every instance
//! enrolled: wall time, the enroller's AWS calls per instance, and this process's peak memory.
//!
//!   cargo bench --workspace --bench sweep          # optimised
//!   cargo test --workspace --bench sweep           # the same run in a debug build (scripts/test)
//!
//! Figures go to stdout; nothing is asserted about time. The emulator is a separate process, so the
//! memory is the enroller's (and the fixture's).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use fleetlog_core::Platform;
use fleetlog_enroller::Work;
use fleetlog_local::event_source::{DEFAULT_BATCH_SIZE, drain_queue};
use fleetlog_tests::REGION;
use fleetlog_tests::fleet::{Fleet, MANAGED};

const INSTANCES: usize = 1000;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let fleet = Fleet::new().await;
    let ids = fleet.launch(Platform::Linux, &[MANAGED], i32::try_from(INSTANCES).unwrap()).await;
    fleet.enroller_calls.reset();
    let before = peak_rss_kib();

    let started = Instant::now();
    let outcomes = fleet.state.enroller.run(&Work { reconcile: true, ..Work::default() }).await.unwrap();
    let swept = started.elapsed();
    let drained =
        drain_queue(&fleet.state, &fleet.queue_url, &fleet.queue_arn, REGION, DEFAULT_BATCH_SIZE).await.unwrap();
    let total = started.elapsed();

    let enrolled = active_records(&fleet, &ids).await;
    let calls = fleet.enroller_calls.snapshot();
    // Receiving and deleting messages is the event source mapping's work, not the enroller's.
    let by_mapping = |op: &str| op.starts_with("SQS:ReceiveMessage") || op.starts_with("SQS:DeleteMessage");
    let aws: usize = calls.iter().filter(|(op, _)| !by_mapping(op)).map(|(_, n)| n).sum();
    println!("sweep of {INSTANCES} tagged instances on the emulator");
    println!("  sweep (reads, fan-out):      {:.2} s, {} outcomes", swept.as_secs_f64(), outcomes.len());
    println!(
        "  sweep to all enrolled:       {:.2} s ({} messages in {} invocations)",
        total.as_secs_f64(),
        drained.messages,
        drained.invocations
    );
    println!("  instances enrolling:         {enrolled}");
    println!("  enroller AWS calls:          {aws} ({:.2} per instance)", aws as f64 / INSTANCES as f64);
    println!("  by operation:                {calls:?}");
    println!("  peak RSS:                    {:?} KiB (before the sweep {:?} KiB)", peak_rss_kib(), before);
    assert_eq!(enrolled, INSTANCES, "every instance enrolled");
}

async fn active_records(fleet: &Fleet, ids: &[String]) -> usize {
    let records = fleet.state.enroller.store.get_many(ids).await.unwrap();
    records.values().filter(|r| r.is_active()).count()
}
