//! `fleetlog query` on Athena: start the query in the workgroup, poll it with progress, page through
//! its results, and say what it scanned and cost.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState};
use fleetlog_aws::error::classify;
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
    athena: &aws_sdk_athena::Client,
    sql: &str,
    options: &AthenaOptions,
) -> Result<(QueryResult, AthenaStats)> {
    let started = athena
        .start_query_execution()
        .query_string(sql)
        .work_group(&options.workgroup)
        .query_execution_context(QueryExecutionContext::builder().database(&options.database).build())
        .send()
        .await
        .map_err(|e| classify("athena:StartQueryExecution", e))?;
    let id = started.query_execution_id().context("Athena returned no query execution id")?.to_owned();

    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let begun = Instant::now();
    let mut stats = AthenaStats { query_execution_id: id.clone(), ..AthenaStats::default() };
    loop {
        let out = athena
            .get_query_execution()
            .query_execution_id(&id)
            .send()
            .await
            .map_err(|e| classify("athena:GetQueryExecution", e))?;
        let execution = out.query_execution().context("Athena returned no query execution")?;
        if let Some(s) = execution.statistics() {
            stats.bytes_scanned = s.data_scanned_in_bytes().unwrap_or(0);
            stats.elapsed_ms = s.engine_execution_time_in_millis().unwrap_or(0);
        }
        let status = execution.status();
        let state = status.and_then(|s| s.state()).cloned().unwrap_or(QueryExecutionState::Queued);
        spinner.set_message(format!("{id}: {} ({} scanned)", state.as_str(), human_bytes(stats.bytes_scanned)));
        spinner.tick();
        match state {
            QueryExecutionState::Succeeded => break,
            QueryExecutionState::Failed | QueryExecutionState::Cancelled => {
                spinner.finish_and_clear();
                let reason = status.and_then(|s| s.state_change_reason()).unwrap_or("no reason given");
                bail!("Athena query {id} {}: {reason}", state.as_str().to_lowercase());
            }
            _ => {}
        }
        if begun.elapsed() > options.timeout {
            spinner.finish_and_clear();
            bail!("Athena query {id} still running after {:?}; see it in the Athena console", options.timeout);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    spinner.finish_and_clear();

    let mut result = QueryResult::default();
    let mut pages = athena.get_query_results().query_execution_id(&id).into_paginator().send();
    let mut first_row = true;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify("athena:GetQueryResults", e))?;
        let Some(set) = page.result_set() else { continue };
        if result.columns.is_empty() {
            result.columns = set
                .result_set_metadata()
                .map(|m| m.column_info().iter().map(|c| c.name().to_owned()).collect())
                .unwrap_or_default();
        }
        for row in set.rows() {
            let cells: Vec<Value> = row
                .data()
                .iter()
                .map(|d| d.var_char_value().map_or(Value::Null, |v| Value::String(v.to_owned())))
                .collect();
            // SELECT results repeat the column names as their first row.
            let is_header = first_row
                && cells.iter().map(|c| c.as_str().unwrap_or_default()).eq(result.columns.iter().map(String::as_str));
            first_row = false;
            if !is_header {
                result.rows.push(cells);
            }
        }
    }
    Ok((result, stats))
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
