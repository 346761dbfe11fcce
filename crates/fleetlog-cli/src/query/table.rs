//! The table DataFusion scans: [`LocalObjects`] read while a query runs, a few objects at a time,
//! decoded on blocking threads; and the session and result shape of `query --local`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Result;
use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use datafusion::prelude::{SessionConfig, SessionContext};
use fleetlog_core::schema::{DATABASE, TABLE};
use futures::{Stream, StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use serde_json::{Value, json};

use super::QueryResult;
use super::objects::{CONCURRENT_GETS, LocalObjects, ObjectPlace};
use super::pruning::matching;
use super::schema::{PARTITION_COLUMNS, read_records, table_schema, with_partition_columns};
use crate::output::progress_bar;

/// The table over [`LocalObjects`].
#[derive(Debug)]
pub struct ObjectsTable {
    pub(super) objects: Arc<LocalObjects>,
    pub(super) show_progress: bool,
}

impl ObjectsTable {
    /// How many of the objects the queries so far have read: filters on the partition columns and early
    /// stops read fewer than there are.
    pub fn objects_read(&self) -> usize {
        self.objects.read.iter().filter(|read| read.load(Ordering::Relaxed)).count()
    }
}

#[async_trait]
impl TableProvider for ObjectsTable {
    fn schema(&self) -> SchemaRef {
        table_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters on the partition columns choose the objects read; they are applied to the records too.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|filter| {
                if expr_applicable_for_cols(&PARTITION_COLUMNS, filter) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let kept = matching(&self.objects.partitions, state, filters)?;
        let share = match self.objects.place {
            ObjectPlace::S3 { .. } => CONCURRENT_GETS,
            ObjectPlace::Folder => std::thread::available_parallelism().map_or(1, usize::from),
        };
        let partitions = share.min(kept.len()).max(1);
        let progress =
            Arc::new(ClearedOnDrop(progress_bar(kept.len(), self.objects.label.clone(), self.show_progress)));
        let streams = (0..partitions)
            .map(|partition| {
                Arc::new(ObjectPartition {
                    objects: Arc::clone(&self.objects),
                    indices: kept.iter().copied().skip(partition).step_by(partitions).collect(),
                    schema: table_schema(),
                    progress: Arc::clone(&progress),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        let no_ordering: Vec<LexOrdering> = Vec::new();
        Ok(Arc::new(StreamingTableExec::try_new(table_schema(), streams, projection, no_ordering, false, limit)?))
    }
}

/// A scan's progress bar, cleared when the scan is dropped (a query that stopped early leaves none).
#[derive(Debug)]
struct ClearedOnDrop(ProgressBar);

impl Drop for ClearedOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// One partition of a scan of [`ObjectsTable`]: the objects `indices`, one after another.
#[derive(Debug)]
struct ObjectPartition {
    objects: Arc<LocalObjects>,
    indices: Vec<usize>,
    schema: SchemaRef,
    progress: Arc<ClearedOnDrop>,
}

/// Decoded batches waiting for the query, per partition: the decoder runs at most this far ahead.
const BATCHES_AHEAD: usize = 2;

impl PartitionStream for ObjectPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (objects, progress) = (Arc::clone(&self.objects), Arc::clone(&self.progress));
        let batches = futures::stream::iter(self.indices.clone())
            .then(move |index| records_of(Arc::clone(&objects), index, Arc::clone(&progress)))
            .try_flatten()
            .map_err(|e| DataFusionError::External(format!("{e:#}").into()));
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), batches))
    }
}

/// Object `index`'s records, with its partition columns, as a blocking thread decodes them, at most
/// [`BATCHES_AHEAD`] batches ahead of the query; the thread stops when the query wants no more.
async fn records_of(
    objects: Arc<LocalObjects>,
    index: usize,
    progress: Arc<ClearedOnDrop>,
) -> Result<impl Stream<Item = Result<RecordBatch>>> {
    let object = objects.open(index).await?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
    tokio::task::spawn_blocking(move || {
        let name = objects.display_name(index);
        let partition = objects.partitions[index].as_ref();
        // A closed channel means the query has what it needs (a LIMIT, an error elsewhere).
        let read =
            read_records(&name, object, |batch| sender.blocking_send(with_partition_columns(batch, partition)).is_ok());
        objects.read[index].store(true, Ordering::Relaxed);
        match read {
            Ok(()) => progress.0.inc(1),
            Err(e) => drop(sender.blocking_send(Err(e))),
        }
        if progress.0.position() == progress.0.length().unwrap_or_default() {
            progress.0.finish_and_clear();
        }
    });
    Ok(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)))
}

/// A session with `logs` (and `fleetlog.logs`): `table` (such as [`LocalObjects::into_table`]).
pub async fn local_session(table: Arc<dyn TableProvider>) -> Result<SessionContext> {
    let config = SessionConfig::new().with_default_catalog_and_schema("datafusion", DATABASE);
    let ctx = SessionContext::new_with_config(config);
    // Athena's `element_at(map, key)` is the map's value, NULL when the key is missing; DataFusion's
    // is a list of it. Here it is what `map['key']` is (get_field), so one query serves both engines.
    let get_field = datafusion::functions::core::get_field();
    ctx.register_udf(get_field.as_ref().clone().with_aliases(["element_at"]));
    ctx.register_table(TABLE, table)?;
    Ok(ctx)
}

pub async fn run_local(ctx: &SessionContext, sql: &str) -> Result<QueryResult> {
    let frame = ctx.sql(sql).await.map_err(|e| anyhow::anyhow!("SQL error: {e}"))?;
    let columns: Vec<String> = frame.schema().fields().iter().map(|f| f.name().clone()).collect();
    let batches = frame.collect().await.map_err(|e| match e.find_root() {
        // An object the table could not read: its own message, which names it.
        DataFusionError::External(cause) => anyhow::anyhow!("{cause}"),
        _ => anyhow::anyhow!("query failed: {e}"),
    })?;
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
                .map(|(column, formatter)| cell_value(column.as_ref(), formatter, row))
                .collect();
            rows.push(cells);
        }
    }
    Ok(QueryResult { columns, rows })
}

/// One cell as JSON: integers and floats as numbers (read as such, not printed and parsed back),
/// anything else as its text.
fn cell_value(column: &dyn Array, formatter: &ArrayFormatter<'_>, row: usize) -> Value {
    if column.is_null(row) {
        return Value::Null;
    }
    match column.data_type() {
        DataType::Int8 => column.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => column.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => column.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => column.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => column.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => column.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => column.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => column.as_primitive::<UInt64Type>().value(row).into(),
        // Not finite: JSON has no such number, so null (as serde_json writes it).
        DataType::Float32 => json!(column.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => json!(column.as_primitive::<Float64Type>().value(row)),
        _ => Value::String(formatter.value(row).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{NAMED_QUERIES, resolve_sql};

    /// A session over `objects` as `query --local` reads a folder of them (the folder lives as long
    /// as the session needs it: objects are read while queries run).
    async fn session_over(objects: &[Vec<u8>]) -> (tempfile::TempDir, SessionContext) {
        let dir = tempfile::tempdir().unwrap();
        for (i, object) in objects.iter().enumerate() {
            std::fs::write(dir.path().join(format!("{i:03}.json.gz")), object).unwrap();
        }
        let table = LocalObjects::in_folder(dir.path()).unwrap().into_table(false);
        let ctx = local_session(table).await.unwrap();
        (dir, ctx)
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
            json!({"event_id":"4","timestamp":now.timestamp_millis(),"time":time,"source":"waf","format":"waf","waf_action":"BLOCK","waf_rule":"BadBots","client_ip":"203.0.113.9","country":"NL","message":"{}"}),
            json!({"event_id":"5","timestamp":now.timestamp_millis(),"time":time,"source":"E2EXAMPLE","format":"cloudfront","edge_location":"SFO5-C1","http_status":503,"http_bytes":120,"message":"x"}),
            json!({"event_id":"6","timestamp":now.timestamp_millis(),"time":time,"source":"trail","format":"cloudtrail","principal_arn":"arn:aws:iam::123456789012:user/ops","event_source":"s3.amazonaws.com","event_name":"GetObject","error_code":"AccessDenied","message":"{}"}),
        ];
        // Access requests of one application across a five-minute boundary: two windows.
        let window_ms = 300_000;
        let start = now.timestamp_millis() / window_ms * window_ms - window_ms;
        let access = |id: &str, at: i64, ip: &str, status: u16| json!({"event_id":id,"timestamp":at,"time":time,"application":"shop","format":"access","client_ip":ip,"http_status":status,"http_bytes":10,"message":"x"});
        let records: Vec<Value> = records
            .into_iter()
            .chain([
                access("w1", start - 1, "198.51.100.7", 200),
                access("w2", start, "198.51.100.7", 200),
                access("w3", start + window_ms - 1, "198.51.100.7", 503),
                access("w4", start + 10, "192.0.2.1", 200),
            ])
            .collect();
        let body: String = records.iter().map(|r| format!("{r}\n")).collect();
        let (_dir, ctx) = session_over(&[body.into_bytes()]).await;
        for (name, sql) in NAMED_QUERIES {
            let result = run_local(&ctx, sql).await.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!result.rows.is_empty(), "{name} found nothing");
        }
        let ssh = run_local(&ctx, resolve_sql("failed-ssh-logins")).await.unwrap();
        assert_eq!(ssh.rows[0], vec![json!("i-01234567"), json!("203.0.113.9"), json!(1)]);
        let edges = run_local(&ctx, resolve_sql("cloudfront-edges")).await.unwrap();
        assert_eq!(edges.rows[0], vec![json!("SFO5-C1"), json!(1), json!(1), json!(120)]);
        let blocks = run_local(&ctx, resolve_sql("waf-blocks")).await.unwrap();
        assert_eq!(blocks.rows[0], vec![json!("BadBots"), json!("203.0.113.9"), json!("NL"), json!(1)]);
        let denied = run_local(&ctx, resolve_sql("cloudtrail-access-denied")).await.unwrap();
        assert_eq!(denied.rows[0][0], json!("arn:aws:iam::123456789012:user/ops"));
        let windows = run_local(&ctx, resolve_sql("access-windows")).await.unwrap();
        let window = |ms: i64| {
            json!(chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%dT%H:%M:%S").to_string())
        };
        let shop: Vec<&Vec<Value>> = windows.rows.iter().filter(|r| r[0] == json!("shop")).collect();
        assert_eq!(shop[0], &vec![json!("shop"), window(start), json!(3), json!(1), json!(30)], "{:?}", windows.rows);
        assert_eq!(shop[1], &vec![json!("shop"), window(start - window_ms), json!(1), json!(0), json!(10)]);
        let clients = run_local(&ctx, resolve_sql("top-clients")).await.unwrap();
        let shop: Vec<&Vec<Value>> = clients.rows.iter().filter(|r| r[0] == json!("shop")).collect();
        assert_eq!(shop[0], &vec![json!("shop"), json!("198.51.100.7"), window(start), json!(2), json!(1)]);
        assert_eq!(shop[1], &vec![json!("shop"), json!("192.0.2.1"), window(start), json!(1), json!(0)]);
        let bad = run_local(&ctx, "SELEC nonsense").await.unwrap_err();
        assert!(bad.to_string().starts_with("SQL error"), "{bad}");
    }

    /// `account`, `dt` and `hour` are an object's key partition when it has one, as on Athena (a record
    /// just past the hour stays in its batch's), else the record's own; a filter on them leaves the
    /// objects of other partitions, and other accounts, unread.
    #[tokio::test]
    async fn key_partitions_choose_the_objects_read() {
        let dir = tempfile::tempdir().unwrap();
        let put = |path: &str, body: &[u8]| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        };
        let gzip = fleetlog_etl::gzip::gzip;
        let (first, second) = ("111111111111", "222222222222");
        let record = |id: &str, account: &str, time: &str| {
            gzip(format!(r#"{{"event_id":"{id}","account":"{account}","time":"{time}"}}"#).as_bytes())
        };
        put(
            &format!("logs/account={first}/dt=2026-11-29/hour=10/a.gz"),
            &record("a", first, "2026-11-29T11:00:00.001Z"),
        );
        put(
            &format!("logs/account={first}/dt=2026-11-29/hour=12/b.gz"),
            &record("b", first, "2026-11-29T12:00:00.000Z"),
        );
        put(
            &format!("logs/account={second}/dt=2026-11-29/hour=10/d.gz"),
            &record("d", second, "2026-11-29T10:00:00.000Z"),
        );
        // Unreadable: the query fails if this object is read.
        put(&format!("logs/account={first}/dt=2026-11-30/hour=10/bad.gz"), b"not json");
        put("elsewhere/c.json", &record("c", first, "2026-11-29T10:30:00.000Z"));
        let table = LocalObjects::in_folder(dir.path()).unwrap().into_table(false);
        let ctx = local_session(table.clone()).await.unwrap();
        let rows = |sql: String| {
            let ctx = ctx.clone();
            async move { run_local(&ctx, &sql).await.map(|r| r.rows) }
        };
        let in_ten = rows(format!(
            "SELECT event_id, account, dt, hour FROM logs WHERE account = '{first}' AND dt = '2026-11-29' AND hour = '10' ORDER BY 1"
        ));
        let expected = |id: &str| vec![json!(id), json!(first), json!("2026-11-29"), json!("10")];
        assert_eq!(in_ten.await.unwrap(), vec![expected("a"), expected("c")]);
        assert_eq!(table.objects_read(), 2, "a, and c (which has no key partition); not the other account's d");
        let other =
            rows(format!("SELECT event_id, account FROM logs WHERE account = '{second}' AND dt = '2026-11-29'"));
        assert_eq!(other.await.unwrap(), vec![vec![json!("d"), json!(second)]]);
        assert_eq!(table.objects_read(), 3, "d now too; c counts once");
        let ranged =
            rows("SELECT event_id FROM logs WHERE dt < '2026-11-30' AND hour IN ('12') AND event_id <> 'x'".into());
        assert_eq!(ranged.await.unwrap(), vec![vec![json!("b")]]);
        assert_eq!(table.objects_read(), 4);
        let everything = rows("SELECT count(*) FROM logs WHERE event_id <> 'x'".into()).await.unwrap_err();
        assert!(format!("{everything:#}").contains("bad.gz: not fleetlog JSON records"), "{everything:#}");
    }

    /// Numbers come out as JSON numbers of their own type, whatever their size.
    #[tokio::test]
    async fn cells_are_json_of_their_type() {
        let (_dir, ctx) = session_over(&[]).await;
        let sql = "SELECT arrow_cast(18446744073709551615, 'UInt64') AS big, arrow_cast(-7, 'Int8') AS small, \
                   1.5 AS half, CAST('NaN' AS DOUBLE) AS nan, 'text' AS s, CAST(NULL AS BIGINT) AS none";
        let result = run_local(&ctx, sql).await.unwrap();
        assert_eq!(
            result.rows,
            vec![vec![json!(u64::MAX), json!(-7), json!(1.5), Value::Null, json!("text"), Value::Null]]
        );
    }

    /// Objects are read while the query runs, as far as it needs: a query that stops early leaves
    /// the later objects unread (all in memory at once is what this spares), and one that reads
    /// them all names the object it could not read.
    #[tokio::test]
    async fn objects_are_read_as_the_query_needs_them() {
        // Each partition (one per core for a folder) starts with a good object; bad ones follow.
        let partitions = std::thread::available_parallelism().map_or(1, usize::from);
        let good = |i: usize| fleetlog_etl::gzip::gzip(format!("{{\"event_id\":\"{i}\"}}\n").as_bytes());
        let mut objects: Vec<Vec<u8>> = (0..partitions).map(good).collect();
        objects.extend((0..partitions * 3).map(|_| b"not json".to_vec()));
        let (dir, ctx) = session_over(&objects).await;
        let first = run_local(&ctx, "SELECT event_id FROM logs LIMIT 1").await.unwrap();
        assert_eq!(first.rows.len(), 1);
        let all = run_local(&ctx, "SELECT count(*) FROM logs").await.unwrap_err();
        // Partitions read side by side: whichever bad object came first is named.
        let message = format!("{all:#}");
        assert!(message.starts_with(&dir.path().display().to_string()), "{message}");
        assert!(message.contains(".json.gz: not fleetlog JSON records: "), "{message}");
        assert!(
            (0..partitions).all(|i| !message.contains(&format!("{i:03}.json.gz"))),
            "names a good object: {message}"
        );
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
        let envelope = fleetlog_etl::envelope::parse_envelope(envelope.as_bytes()).unwrap();
        let mut records = Vec::new();
        fleetlog_etl::records::write_records(&envelope, "us-east-1", fleetlog_etl::put::RECORD_LIMITS, &mut records);
        let (_dir, ctx) = session_over(&[records]).await;
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
