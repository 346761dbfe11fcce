//! `fleetlog query` on Athena: start the query in the workgroup, poll it with progress, page through
//! its results, and say what it scanned and cost.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use fleetlog_aws::athena;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::QueryResult;

/// Athena's price: $5 per TB scanned, at least 10 MB per query.
const ATHENA_USD_PER_BYTE: f64 = 5.0 / 1e12;
const ATHENA_MIN_BYTES: i64 = 10 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct AthenaOptions {
    pub workgroup: String,
    pub database: String,
    /// How long to wait before giving up (the query keeps running in Athena).
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AthenaStats {
    pub query_execution_id: String,
    pub bytes_scanned: i64,
    pub elapsed_ms: i64,
}

impl AthenaStats {
    /// Estimated cost in USD: $5/TB scanned with Athena's 10 MB minimum.
    pub fn cost_usd(&self) -> f64 {
        self.bytes_scanned.max(ATHENA_MIN_BYTES) as f64 * ATHENA_USD_PER_BYTE
    }
}

pub async fn run_athena(
    client: &aws_sdk_athena::Client,
    sql: &str,
    options: &AthenaOptions,
) -> Result<(QueryResult, AthenaStats)> {
    let id = athena::start_query(client, sql, &options.workgroup, &options.database).await?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let begun = Instant::now();
    let mut stats = AthenaStats { query_execution_id: id.clone(), ..AthenaStats::default() };
    loop {
        let progress = athena::query_progress(client, &id).await?;
        stats.bytes_scanned = progress.bytes_scanned;
        stats.elapsed_ms = progress.engine_ms;
        spinner.set_message(format!("{id}: {} ({} scanned)", progress.state, human_bytes(stats.bytes_scanned)));
        spinner.tick();
        if progress.succeeded() {
            break;
        }
        if progress.ended_badly() {
            spinner.finish_and_clear();
            let reason = progress.reason.as_deref().unwrap_or("no reason given");
            bail!("Athena query {id} {}: {reason}", progress.state.to_lowercase());
        }
        if begun.elapsed() > options.timeout {
            spinner.finish_and_clear();
            bail!("Athena query {id} still running after {:?}; see it in the Athena console", options.timeout);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    spinner.finish_and_clear();
    let (columns, rows) = athena::query_results(client, &id).await?;
    let rows = rows
        .into_iter()
        .map(|row| row.into_iter().map(|cell| cell.map_or(Value::Null, Value::String)).collect())
        .collect();
    Ok((QueryResult { columns, rows }, stats))
}

pub fn human_bytes(bytes: i64) -> String {
    let b = bytes as f64;
    if bytes < 1_000 {
        format!("{bytes} B")
    } else if bytes < 1_000_000 {
        format!("{:.1} kB", b / 1e3)
    } else if bytes < 1_000_000_000 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.2} GB", b / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn athena_cost_has_a_minimum() {
        let stats = AthenaStats { bytes_scanned: 0, ..AthenaStats::default() };
        assert!((stats.cost_usd() - 10.0 * 1024.0 * 1024.0 * 5.0 / 1e12).abs() < 1e-12);
        let stats = AthenaStats { bytes_scanned: 1_000_000_000_000, ..AthenaStats::default() };
        assert!((stats.cost_usd() - 5.0).abs() < 1e-9);
    }
}
