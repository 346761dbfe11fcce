//! `fleetlog query`: SQL over the log table, on Athena or (`--local`) on an embedded engine
//! (Apache DataFusion) over the same JSON objects, with the same table name and columns.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use fleetlog_etl::schema::{COLUMNS, DATABASE, TABLE};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};

use crate::output::{Report, Table, progress_bar};
use crate::sdk_error;

/// Queries shipped with fleetlog; infra/ creates the same ones as Athena named queries.
pub const NAMED_QUERIES: &[(&str, &str)] = &[
    ("errors-per-instance", include_str!("../../../infra/queries/errors-per-instance.sql")),
    ("failed-ssh-logins", include_str!("../../../infra/queries/failed-ssh-logins.sql")),
    ("top-5xx-paths", include_str!("../../../infra/queries/top-5xx-paths.sql")),
    ("windows-security-events", include_str!("../../../infra/queries/windows-security-events.sql")),
    ("log-volume", include_str!("../../../infra/queries/log-volume.sql")),
];

/// Athena's price: $5 per TB scanned, at least 10 MB per query.
const ATHENA_USD_PER_BYTE: f64 = 5.0 / 1e12;
const ATHENA_MIN_BYTES: i64 = 10 * 1024 * 1024;

/// The SQL of a named query, or the argument itself.
pub fn resolve_sql(sql_or_name: &str) -> &str {
    NAMED_QUERIES.iter().find(|(name, _)| *name == sql_or_name).map_or(sql_or_name, |(_, sql)| sql)
}

/// The first comment line of a named query.
pub fn description(sql: &str) -> &str {
    sql.lines().next().and_then(|l| l.strip_prefix("-- ")).unwrap_or_default()
}

pub fn list_named() -> Report {
    let mut table = Table::new(&["name", "what it answers"]);
    let mut items = Vec::new();
    for (name, sql) in NAMED_QUERIES {
        table.row(vec![(*name).to_owned(), description(sql).to_owned()]);
        items.push(json!({ "name": name, "description": description(sql), "sql": sql }));
    }
    Report { json: json!({ "queries": items }), tables: vec![table], notes: Vec::new() }
}

/// Columns and rows as text, the same for both engines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl QueryResult {
    pub fn report(self, stats: Value, notes: Vec<String>) -> Report {
        let mut table = Table::new(&[]);
        table.header = self.columns.clone();
        table.rows = self.rows.iter().map(|r| r.iter().map(crate::output::cell).collect()).collect();
        let rows: Vec<Value> = self
            .rows
            .into_iter()
            .map(|r| Value::Object(self.columns.iter().cloned().zip(r).collect::<Map<String, Value>>()))
            .collect();
        Report { json: json!({ "columns": self.columns, "rows": rows, "stats": stats }), tables: vec![table], notes }
    }
}

// ---------------------------------------------------------------------------------------------
// Local engine

/// Where `--local` reads records from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalSource {
    /// `s3://bucket/prefix` (AWS, or the emulator with `--endpoint-url`).
    S3 { bucket: String, prefix: String },
    /// A folder of downloaded objects (searched recursively; `.gz` or plain).
    Dir(PathBuf),
}

impl LocalSource {
    pub fn parse(text: &str) -> Self {
        match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                Self::S3 { bucket: bucket.to_owned(), prefix: prefix.to_owned() }
            }
            None => Self::Dir(PathBuf::from(text)),
        }
    }
}

/// The Arrow schema of the table's data columns, from the ETL's schema table.
pub fn arrow_schema() -> SchemaRef {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|c| {
            let data_type = match c.glue_type {
                "bigint" => DataType::Int64,
                "int" => DataType::Int32,
                "map<string,string>" => DataType::Map(
                    Arc::new(Field::new(
                        "entries",
                        DataType::Struct(Fields::from(vec![
                            Field::new("key", DataType::Utf8, false),
                            Field::new("value", DataType::Utf8, true),
                        ])),
                        false,
                    )),
                    false,
                ),
                _ => DataType::Utf8,
            };
            Field::new(c.name, data_type, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The most a gzip object may decompress to. Firehose buffers up to 128 MiB (this stack 64 MiB, as a
/// hint it may exceed) before compressing an object, more than the ETL allows a subscription payload;
/// a gibibyte refuses only what is not Firehose's.
const MAX_OBJECT_BYTES: u64 = 1 << 30;

/// An object's text: gunzipped when it is gzip.
fn plain_object(name: &str, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if !bytes.starts_with(&fleetlog_etl::decode::GZIP_MAGIC) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    fleetlog_etl::decode::gunzip_at_most(&bytes, &mut out, MAX_OBJECT_BYTES)
        .with_context(|| format!("{name}: not valid gzip"))?;
    Ok(out)
}

/// One object's records (newline-delimited JSON, gzip or plain), decoded against the table schema.
pub fn decode_object(name: &str, bytes: Vec<u8>) -> Result<Vec<RecordBatch>> {
    let plain = plain_object(name, bytes)?;
    let reader = ReaderBuilder::new(arrow_schema())
        .with_coerce_primitive(true)
        .build(std::io::Cursor::new(plain))
        .with_context(|| format!("{name}: cannot read records"))?;
    reader.map(|batch| batch.with_context(|| format!("{name}: not fleetlog JSON records"))).collect()
}

/// The records of every object read for the embedded engine.
#[derive(Debug, Default)]
pub struct LoadedRecords {
    pub objects: usize,
    pub batches: Vec<RecordBatch>,
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// S3 objects downloaded at once by [`fetch_s3`].
const CONCURRENT_GETS: usize = 8;

/// Reads every object under `s3://bucket/prefix`, several at a time, in key order, with a progress
/// bar on a terminal when there are many. Each object is decoded as it arrives, on a blocking thread,
/// while the next ones download; only its records are kept.
pub async fn fetch_s3(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<LoadedRecords> {
    let keys = crate::local::list_keys(s3, bucket, prefix).await?;
    let objects = keys.len();
    let progress = progress_bar(objects, format!("reading objects under s3://{bucket}/{prefix}"), true);
    let batches = futures::stream::iter(keys)
        .map(|key| {
            let progress = progress.clone();
            async move {
                let body = crate::local::get_object(s3, bucket, &key).await?;
                let name = format!("s3://{bucket}/{key}");
                let batches = tokio::task::spawn_blocking(move || decode_object(&name, body)).await??;
                progress.inc(1);
                Ok::<_, anyhow::Error>(batches)
            }
        })
        .buffered(CONCURRENT_GETS)
        .try_concat()
        .await;
    progress.finish_and_clear();
    Ok(LoadedRecords { objects, batches: batches? })
}

/// Reads every file under a folder of downloaded objects, in path order.
pub fn read_folder(dir: &Path) -> Result<LoadedRecords> {
    if !dir.is_dir() {
        bail!("{} is not a folder (give a folder of log objects or s3://bucket/prefix)", dir.display());
    }
    let mut files = Vec::new();
    files_under(dir, &mut files)?;
    files.sort();
    let mut loaded = LoadedRecords { objects: files.len(), batches: Vec::new() };
    for path in files {
        let name = path.display().to_string();
        let bytes = std::fs::read(&path).with_context(|| format!("reading {name}"))?;
        loaded.batches.extend(decode_object(&name, bytes)?);
    }
    Ok(loaded)
}

/// A session with `logs` (and `fleetlog.logs`) holding the records, plus the partition columns
/// `dt` and `hour` computed as the ETL computes its partition keys.
pub async fn local_session(batches: Vec<RecordBatch>) -> Result<SessionContext> {
    let config = SessionConfig::new().with_default_catalog_and_schema("datafusion", DATABASE);
    let ctx = SessionContext::new_with_config(config);
    // Athena's `element_at(map, key)` is the map's value, NULL when the key is missing; DataFusion's
    // is a list of it. Here it is what `map['key']` is (get_field), so one query serves both engines.
    let get_field = datafusion::functions::core::get_field();
    ctx.register_udf(get_field.as_ref().clone().with_aliases(["element_at"]));
    let table = MemTable::try_new(arrow_schema(), vec![batches])?;
    ctx.register_table("records", Arc::new(table))?;
    ctx.sql(&format!(
        "CREATE VIEW {TABLE} AS SELECT *, substr(\"time\", 1, 10) AS dt, substr(\"time\", 12, 2) AS hour FROM records"
    ))
    .await?;
    Ok(ctx)
}

pub async fn run_local(ctx: &SessionContext, sql: &str) -> Result<QueryResult> {
    let frame = ctx.sql(sql).await.map_err(|e| anyhow::anyhow!("SQL error: {e}"))?;
    let columns: Vec<String> = frame.schema().fields().iter().map(|f| f.name().clone()).collect();
    let batches = frame.collect().await.map_err(|e| anyhow::anyhow!("query failed: {e}"))?;
    let options = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    for batch in &batches {
        let formatters: Vec<ArrayFormatter<'_>> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let cells = batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(column, formatter)| {
                    if column.is_null(row) {
                        return Value::Null;
                    }
                    let text = formatter.value(row).to_string();
                    if column.data_type().is_integer() {
                        text.parse::<i64>().map_or(Value::String(text), Value::from)
                    } else if column.data_type().is_floating() {
                        text.parse::<f64>().map_or(Value::String(text.clone()), |f| json!(f))
                    } else {
                        Value::String(text)
                    }
                })
                .collect();
            rows.push(cells);
        }
    }
    Ok(QueryResult { columns, rows })
}

// ---------------------------------------------------------------------------------------------
// Athena

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
        .map_err(sdk_error("StartQueryExecution"))?;
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
            .map_err(sdk_error("GetQueryExecution"))?;
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
        let page = page.map_err(sdk_error("GetQueryResults"))?;
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
    fn named_queries_resolve_and_describe_themselves() {
        assert!(resolve_sql("log-volume").contains("GROUP BY instance_id, source"));
        assert_eq!(resolve_sql("SELECT 1"), "SELECT 1");
        for (name, sql) in NAMED_QUERIES {
            assert!(!description(sql).is_empty(), "{name} has no description line");
        }
    }

    #[test]
    fn sources_parse() {
        assert_eq!(LocalSource::parse("s3://b/logs/"), LocalSource::S3 { bucket: "b".into(), prefix: "logs/".into() });
        assert_eq!(LocalSource::parse("s3://b"), LocalSource::S3 { bucket: "b".into(), prefix: String::new() });
        assert_eq!(LocalSource::parse("/tmp/x"), LocalSource::Dir("/tmp/x".into()));
    }

    #[test]
    fn athena_cost_has_a_minimum() {
        let stats = AthenaStats { bytes_scanned: 0, ..AthenaStats::default() };
        assert!((stats.cost_usd() - 10.0 * 1024.0 * 1024.0 * 5.0 / 1e12).abs() < 1e-12);
        let stats = AthenaStats { bytes_scanned: 1_000_000_000_000, ..AthenaStats::default() };
        assert!((stats.cost_usd() - 5.0).abs() < 1e-9);
    }

    /// Every named query runs on the local engine, over records of every format.
    #[tokio::test]
    async fn named_queries_run_locally() {
        let now = chrono::Utc::now();
        let time = now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let records = [
            json!({"event_id":"1","timestamp":now.timestamp_millis(),"time":time,"instance_id":"i-01234567","source":"security","format":"syslog","program":"sshd","severity":"ERROR","message":"Failed password for root from 203.0.113.9 port 22 ssh2"}),
            json!({"event_id":"2","timestamp":now.timestamp_millis(),"time":time,"instance_id":"i-01234567","source":"access","format":"access","http_status":503,"http_path":"/a","message":"x"}),
            json!({"event_id":"3","timestamp":now.timestamp_millis(),"time":time,"instance_id":"i-89abcdef","source":"windows-security","format":"windows_event","win_event_id":4625,"win_provider":"p","message":"<Event/>","attributes":{"k":"v"}}),
        ];
        let body: String = records.iter().map(|r| format!("{r}\n")).collect();
        let ctx = local_session(decode_object("t", body.into_bytes()).unwrap()).await.unwrap();
        for (name, sql) in NAMED_QUERIES {
            let result = run_local(&ctx, sql).await.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!result.rows.is_empty(), "{name} found nothing");
        }
        let ssh = run_local(&ctx, resolve_sql("failed-ssh-logins")).await.unwrap();
        assert_eq!(ssh.rows[0], vec![json!("i-01234567"), json!("203.0.113.9"), json!(1)]);
        let bad = run_local(&ctx, "SELEC nonsense").await.unwrap_err();
        assert!(bad.to_string().starts_with("SQL error"), "{bad}");
    }

    #[test]
    fn objects_larger_than_a_subscription_payload_are_read() {
        // This stack's Firehose buffers 64 MiB before compressing, a hint it may exceed: more than
        // the ETL's cap for what CloudWatch Logs sends.
        let size = usize::try_from(fleetlog_etl::decode::MAX_DECOMPRESSED).unwrap() + 1024 * 1024;
        let object = fleetlog_etl::decode::gzip(&vec![b'\n'; size]);
        assert_eq!(plain_object("big.gz", object).unwrap().len(), size);
        let refused = plain_object("cut.gz", fleetlog_etl::decode::gzip(b"{}")[..12].to_vec()).unwrap_err();
        assert!(format!("{refused:#}").starts_with("cut.gz: not valid gzip: "), "{refused:#}");
        assert_eq!(plain_object("plain", b"{}".to_vec()).unwrap(), b"{}", "plain objects are read as they are");
    }

    /// What the ETL writes, the local engine reads, however awkward the messages: an object of
    /// records is read whole or not at all, so one record it refused would hide all the others. JSON
    /// attributes are read by key, as on Athena.
    #[tokio::test]
    async fn etl_records_of_awkward_messages_are_read() {
        let messages = [
            // A JSON line whose string was cut inside an emoji: its value holds a lone surrogate escape.
            r#"{"level":"warn","ts":"cut \ud83d here"}"#,
            "tab\there \"quoted\" back\\slash é 🚀 \u{1}\nsecond line",
            "",
        ];
        let events: Vec<Value> = (0i64..)
            .zip(messages)
            .map(|(i, message)| json!({"id": i.to_string(), "timestamp": 1_763_805_600_000 + i, "message": message}))
            .collect();
        let envelope = json!({"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "g/app",
            "logStream": "i-0123456789abcdef0", "subscriptionFilters": ["f"], "logEvents": events})
        .to_string()
        // A lone surrogate in the envelope itself, which CloudWatch Logs never writes but JSON allows.
        .replace(r#""id":"2""#, r#""id":"2\udc00""#)
        .replace(r#""message":"""#, r#""message":"\ud800""#);
        let envelope = fleetlog_etl::decode::parse_envelope(envelope.as_bytes()).unwrap();
        let mut records = Vec::new();
        fleetlog_etl::transform::write_records(&envelope, "us-east-1", &mut records);
        let ctx = local_session(decode_object("t", records).unwrap()).await.unwrap();
        // Both spellings of a map lookup; `element_at` is also Athena's, which `map['key']` is not
        // for a missing key.
        let sql = format!(
            "SELECT message, attributes['ts'] AS ts, element_at(attributes, 'ts') AS same FROM {TABLE} ORDER BY timestamp"
        );
        let result = run_local(&ctx, &sql).await.unwrap();
        let read: Vec<&Value> = result.rows.iter().map(|row| &row[0]).collect();
        let mut written = messages.map(|m| json!(m));
        written[2] = json!("\u{fffd}");
        assert_eq!(read, written.iter().collect::<Vec<_>>(), "a lone surrogate in an envelope reads as U+FFFD");
        assert_eq!(result.rows[0][1], json!("cut \u{fffd} here"), "the lone escape reads as U+FFFD");
        assert_eq!(result.rows[1][1], Value::Null, "a JSON attribute a record lacks reads as NULL");
        for row in &result.rows {
            assert_eq!(row[2], row[1], "element_at is the value, as on Athena, not a list of it");
        }
    }
}
