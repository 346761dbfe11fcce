//! Athena: starting a query in a workgroup, asking how it is going, and reading its results.

use aws_sdk_athena::types::QueryExecutionContext;

use crate::error::{AwsError, ErrorKind, classify};

/// Where a query execution is, as GetQueryExecution reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryProgress {
    /// `QUEUED`, `RUNNING`, `SUCCEEDED`, `FAILED` or `CANCELLED`.
    pub state: String,
    /// Why it failed or was cancelled, when Athena says.
    pub reason: Option<String>,
    pub bytes_scanned: i64,
    pub engine_ms: i64,
}

impl QueryProgress {
    pub fn succeeded(&self) -> bool {
        self.state == "SUCCEEDED"
    }

    pub fn ended_badly(&self) -> bool {
        matches!(self.state.as_str(), "FAILED" | "CANCELLED")
    }
}

/// Starts `sql` in `workgroup` against `database`; returns the query execution id.
pub async fn start_query(
    client: &aws_sdk_athena::Client,
    sql: &str,
    workgroup: &str,
    database: &str,
) -> Result<String, AwsError> {
    let started = client
        .start_query_execution()
        .query_string(sql)
        .work_group(workgroup)
        .query_execution_context(QueryExecutionContext::builder().database(database).build())
        .send()
        .await
        .map_err(|e| classify("athena:StartQueryExecution", e))?;
    started
        .query_execution_id()
        .map(str::to_owned)
        .ok_or_else(|| AwsError::new("athena:StartQueryExecution", ErrorKind::Transient, "no query execution id"))
}

/// How query `id` is going.
pub async fn query_progress(client: &aws_sdk_athena::Client, id: &str) -> Result<QueryProgress, AwsError> {
    let out = client
        .get_query_execution()
        .query_execution_id(id)
        .send()
        .await
        .map_err(|e| classify("athena:GetQueryExecution", e))?;
    let Some(execution) = out.query_execution() else {
        return Err(AwsError::new("athena:GetQueryExecution", ErrorKind::Transient, "no query execution"));
    };
    let status = execution.status();
    Ok(QueryProgress {
        state: status.and_then(|s| s.state()).map_or("QUEUED", |s| s.as_str()).to_owned(),
        reason: status.and_then(|s| s.state_change_reason()).map(str::to_owned),
        bytes_scanned: execution.statistics().and_then(|s| s.data_scanned_in_bytes()).unwrap_or(0),
        engine_ms: execution.statistics().and_then(|s| s.engine_execution_time_in_millis()).unwrap_or(0),
    })
}

/// A finished query's column names and rows, every page; a NULL cell is `None`. Athena repeats a
/// SELECT's column names as its first row; that row is left out.
pub async fn query_results(
    client: &aws_sdk_athena::Client,
    id: &str,
) -> Result<(Vec<String>, Vec<Vec<Option<String>>>), AwsError> {
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    let mut first_row = true;
    let mut pages = client.get_query_results().query_execution_id(id).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify("athena:GetQueryResults", e))?;
        let Some(set) = page.result_set() else { continue };
        if columns.is_empty() {
            columns = set
                .result_set_metadata()
                .map(|m| m.column_info().iter().map(|c| c.name().to_owned()).collect())
                .unwrap_or_default();
        }
        for row in set.rows() {
            let cells: Vec<Option<String>> = row.data().iter().map(|d| d.var_char_value().map(str::to_owned)).collect();
            let is_header = first_row
                && cells.iter().map(|c| c.as_deref().unwrap_or_default()).eq(columns.iter().map(String::as_str));
            first_row = false;
            if !is_header {
                rows.push(cells);
            }
        }
    }
    Ok((columns, rows))
}
