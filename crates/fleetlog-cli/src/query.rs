//! `fleetlog query`: SQL over the log table, on Athena or (`--local`) on an embedded engine
//! (Apache DataFusion) over the same JSON objects, with the same table name and columns.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{
    DataType, Field, Fields, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema, SchemaRef,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::{LexOrdering, PhysicalExpr};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use datafusion::prelude::{SessionConfig, SessionContext};
use flate2::bufread::MultiGzDecoder;
use fleetlog_core::schema::{COLUMNS, DATABASE, PARTITION_KEYS, TABLE};
use fleetlog_etl::gzip::GZIP_MAGIC;
use futures::{Stream, StreamExt, TryStreamExt};
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
    static RECORDS: LazyLock<SchemaRef> = LazyLock::new(record_schema);
    Arc::clone(&RECORDS)
}

fn record_schema() -> SchemaRef {
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

/// Reads one object's records (newline-delimited JSON, gzip or plain) against the table schema,
/// handing each batch to `each` as it is decoded; `each` returns false when it wants no more. Errors
/// name the object.
fn read_records(name: &str, object: impl Read, mut each: impl FnMut(RecordBatch) -> bool) -> Result<()> {
    let mut input = BufReader::new(object);
    let gzip = input.fill_buf().with_context(|| format!("reading {name}"))?.starts_with(&GZIP_MAGIC);
    // Firehose may write an object as several gzip members; each member's checksums are checked.
    let text: Box<dyn BufRead> =
        if gzip { Box::new(BufReader::new(MultiGzDecoder::new(input))) } else { Box::new(input) };
    let reader = ReaderBuilder::new(arrow_schema())
        .with_coerce_primitive(true)
        .build(text)
        .with_context(|| format!("{name}: cannot read records"))?;
    for batch in reader {
        let batch = batch.map_err(|e| match e {
            ArrowError::IoError(_, cause) if gzip => {
                anyhow::Error::new(cause).context(format!("{name}: not valid gzip"))
            }
            ArrowError::IoError(_, cause) => anyhow::Error::new(cause).context(format!("reading {name}")),
            other => anyhow::Error::new(other).context(format!("{name}: not fleetlog JSON records")),
        })?;
        if !each(batch) {
            break;
        }
    }
    Ok(())
}

/// The partition columns, after the records' columns: as Athena reads them, from the object's key.
const PARTITION_COLUMNS: [&str; 2] = [PARTITION_KEYS[0].name, PARTITION_KEYS[1].name];

/// The partition columns alone (for deciding which objects a query reads).
fn partition_schema() -> SchemaRef {
    static PARTITION: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(PARTITION_COLUMNS.map(|name| Field::new(name, DataType::Utf8, true)).to_vec()))
    });
    Arc::clone(&PARTITION)
}

/// The table's columns: the records' (see [`arrow_schema`]), then `dt` and `hour`. Built once: every
/// batch read gets it.
fn table_schema() -> SchemaRef {
    static TABLE: LazyLock<SchemaRef> = LazyLock::new(|| {
        let (records, partition) = (arrow_schema(), partition_schema());
        Arc::new(Schema::new(records.fields().iter().chain(partition.fields()).cloned().collect::<Vec<_>>()))
    });
    Arc::clone(&TABLE)
}

/// `filter` naming columns without their table (a partition's one-row batch has none).
fn unqualified(filter: &Expr) -> datafusion::error::Result<Expr> {
    let transformed = filter.clone().transform(|e| {
        Ok(match e {
            Expr::Column(column) => Transformed::yes(Expr::Column(Column::new_unqualified(column.name))),
            other => Transformed::no(other),
        })
    })?;
    Ok(transformed.data)
}

/// Whether `predicate`, over the partition columns, is true of `partition`.
fn holds_for(predicate: &dyn PhysicalExpr, partition: &[String; 2]) -> datafusion::error::Result<bool> {
    let values = partition.clone().map(|value| Arc::new(StringArray::from(vec![value])) as ArrayRef);
    let row = RecordBatch::try_new(partition_schema(), values.to_vec())?;
    let holds = predicate.evaluate(&row)?.into_array(1)?;
    Ok(holds.as_boolean_opt().is_some_and(|b| b.is_valid(0) && b.value(0)))
}

/// An object's `dt` and `hour`, from its key's `dt=…/hour=…/` segments (what the stack's Firehose
/// writes, from the partition keys the ETL gives each batch), when it has both.
fn key_partition(name: &str) -> Option<[String; 2]> {
    let segment =
        |column: &str| name.split('/').find_map(|part| part.strip_prefix(column)?.strip_prefix('=')).map(str::to_owned);
    Some([segment(PARTITION_COLUMNS[0])?, segment(PARTITION_COLUMNS[1])?])
}

/// `batch` with `dt` and `hour` added: the object's key partition for every record, or, for an
/// object without one (the emulator's, files under other names), each record's own, from its `time`.
fn with_partition_columns(batch: RecordBatch, partition: Option<&[String; 2]>) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let columns: [ArrayRef; 2] = match partition {
        Some([dt, hour]) => [dt, hour].map(|value| Arc::new(StringArray::from(vec![value.as_str(); rows])) as ArrayRef),
        None => {
            let time = batch.column_by_name("time").context("records without a time column")?.as_string::<i32>();
            // substr(time, 1, 10) and substr(time, 12, 2), as the ETL derives its partition keys.
            let part = |skip: usize, take: usize| -> ArrayRef {
                Arc::new(
                    time.iter()
                        .map(|t| t.map(|t| t.chars().skip(skip).take(take).collect::<String>()))
                        .collect::<StringArray>(),
                )
            };
            [part(0, 10), part(11, 2)]
        }
    };
    let mut all = batch.columns().to_vec();
    all.extend(columns);
    Ok(RecordBatch::try_new(table_schema(), all)?)
}

/// The objects `query --local` reads: listed first, read while the query runs.
#[derive(Debug)]
pub struct LocalObjects {
    place: ObjectPlace,
    names: Vec<String>,
    /// Each object's [`key_partition`].
    partitions: Vec<Option<[String; 2]>>,
    /// What the progress bar says it reads.
    label: String,
    /// Which objects have been read (to their end, or as far as a query needed them).
    read: Vec<AtomicBool>,
}

#[derive(Debug)]
enum ObjectPlace {
    S3 { client: aws_sdk_s3::Client, bucket: String },
    Folder,
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

/// S3 objects read at once (one per partition of a scan).
const CONCURRENT_GETS: usize = 8;

impl LocalObjects {
    fn new(place: ObjectPlace, names: Vec<String>, label: String) -> Self {
        let partitions = names.iter().map(|name| key_partition(name)).collect();
        let read = names.iter().map(|_| AtomicBool::new(false)).collect();
        Self { place, names, partitions, label, read }
    }

    /// Every object under `s3://bucket/prefix`.
    pub async fn in_s3(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Self> {
        let names = crate::local::list_keys(client, bucket, prefix).await?;
        let place = ObjectPlace::S3 { client: client.clone(), bucket: bucket.to_owned() };
        Ok(Self::new(place, names, format!("reading objects under s3://{bucket}/{prefix}")))
    }

    /// Every file under a folder of downloaded objects.
    pub fn in_folder(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("{} is not a folder (give a folder of log objects or s3://bucket/prefix)", dir.display());
        }
        let mut files = Vec::new();
        files_under(dir, &mut files)?;
        files.sort();
        let names = files.iter().map(|f| f.display().to_string()).collect();
        Ok(Self::new(ObjectPlace::Folder, names, format!("reading files under {}", dir.display())))
    }

    pub fn count(&self) -> usize {
        self.names.len()
    }

    fn display_name(&self, index: usize) -> String {
        match &self.place {
            ObjectPlace::S3 { bucket, .. } => format!("s3://{bucket}/{}", self.names[index]),
            ObjectPlace::Folder => self.names[index].clone(),
        }
    }

    /// Object `index`, to be read on a blocking thread: an S3 object's bytes are fetched now, a
    /// file is opened (and read as it is decoded).
    async fn open(&self, index: usize) -> Result<Box<dyn Read + Send>> {
        match &self.place {
            ObjectPlace::S3 { client, bucket } => {
                let bytes = crate::local::get_object(client, bucket, &self.names[index]).await?;
                Ok(Box::new(std::io::Cursor::new(bytes)))
            }
            ObjectPlace::Folder => {
                let name = &self.names[index];
                Ok(Box::new(std::fs::File::open(name).with_context(|| format!("reading {name}"))?))
            }
        }
    }

    /// The objects a query's filters on `dt` and `hour` leave, as Athena prunes partitions: an object
    /// whose key partition fails them is not read. Objects without one are always read (their
    /// records' own `dt` and `hour` are filtered as they are read).
    fn matching(&self, state: &dyn Session, filters: &[Expr]) -> datafusion::error::Result<Vec<usize>> {
        let on_partition = filters
            .iter()
            .filter(|filter| expr_applicable_for_cols(&PARTITION_COLUMNS, filter))
            .map(unqualified)
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let Some(predicate) = conjunction(on_partition) else { return Ok((0..self.count()).collect()) };
        let columns = DFSchema::try_from(partition_schema())?;
        let predicate = state.create_physical_expr(predicate, &columns)?;
        // Objects share partitions: each is decided once.
        let mut decided: HashMap<&[String; 2], bool> = HashMap::new();
        let mut kept = Vec::new();
        for (index, partition) in self.partitions.iter().enumerate() {
            let keep = match partition {
                None => true,
                Some(partition) => match decided.entry(partition) {
                    Entry::Occupied(decision) => *decision.get(),
                    Entry::Vacant(undecided) => *undecided.insert(holds_for(predicate.as_ref(), partition)?),
                },
            };
            if keep {
                kept.push(index);
            }
        }
        Ok(kept)
    }

    /// The objects' records as a table that reads them while a query runs, so memory holds a few
    /// objects' records at a time, not all of them: each partition of a scan reads its share of the
    /// objects one after another (S3 objects eight at a time in all, files one per core), decoding
    /// on a blocking thread. A progress bar counts the objects on a terminal when there are many.
    pub fn into_table(self, show_progress: bool) -> Arc<ObjectsTable> {
        Arc::new(ObjectsTable { objects: Arc::new(self), show_progress })
    }
}

/// The table over [`LocalObjects`].
#[derive(Debug)]
pub struct ObjectsTable {
    objects: Arc<LocalObjects>,
    show_progress: bool,
}

impl ObjectsTable {
    /// How many of the objects the queries so far have read: filters on `dt` and `hour` and early
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

    /// Filters on `dt` and `hour` choose the objects read; they are applied to the records too.
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
        let kept = self.objects.matching(state, filters)?;
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
        let (_dir, ctx) = session_over(&[body.into_bytes()]).await;
        for (name, sql) in NAMED_QUERIES {
            let result = run_local(&ctx, sql).await.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!result.rows.is_empty(), "{name} found nothing");
        }
        let ssh = run_local(&ctx, resolve_sql("failed-ssh-logins")).await.unwrap();
        assert_eq!(ssh.rows[0], vec![json!("i-01234567"), json!("203.0.113.9"), json!(1)]);
        let bad = run_local(&ctx, "SELEC nonsense").await.unwrap_err();
        assert!(bad.to_string().starts_with("SQL error"), "{bad}");
    }

    /// `dt` and `hour` are an object's key partition when it has one, as on Athena (a record just past
    /// the hour stays in its batch's), else the record's own; a filter on them leaves the objects of
    /// other partitions unread.
    #[tokio::test]
    async fn key_partitions_choose_the_objects_read() {
        let dir = tempfile::tempdir().unwrap();
        let put = |path: &str, body: &[u8]| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        };
        let gzip = fleetlog_etl::gzip::gzip;
        put("logs/dt=2026-11-29/hour=10/a.gz", &gzip(br#"{"event_id":"a","time":"2026-11-29T11:00:00.001Z"}"#));
        put("logs/dt=2026-11-29/hour=12/b.gz", &gzip(br#"{"event_id":"b","time":"2026-11-29T12:00:00.000Z"}"#));
        // Unreadable: the query fails if this object is read.
        put("logs/dt=2026-11-30/hour=10/bad.gz", b"not json");
        put("elsewhere/c.json", br#"{"event_id":"c","time":"2026-11-29T10:30:00.000Z"}"#);
        let table = LocalObjects::in_folder(dir.path()).unwrap().into_table(false);
        let ctx = local_session(table.clone()).await.unwrap();
        let rows = |sql: &'static str| {
            let ctx = ctx.clone();
            async move { run_local(&ctx, sql).await.map(|r| r.rows) }
        };
        let in_ten = rows("SELECT event_id, dt, hour FROM logs WHERE dt = '2026-11-29' AND hour = '10' ORDER BY 1");
        let expected = |id: &str| vec![json!(id), json!("2026-11-29"), json!("10")];
        assert_eq!(in_ten.await.unwrap(), vec![expected("a"), expected("c")]);
        assert_eq!(table.objects_read(), 2, "a, and c (which has no key partition)");
        let ranged = rows("SELECT event_id FROM logs WHERE dt < '2026-11-30' AND hour IN ('12') AND event_id <> 'x'");
        assert_eq!(ranged.await.unwrap(), vec![vec![json!("b")]]);
        assert_eq!(table.objects_read(), 3, "b now too; c counts once");
        let everything = rows("SELECT count(*) FROM logs WHERE event_id <> 'x'").await.unwrap_err();
        assert!(format!("{everything:#}").contains("bad.gz: not fleetlog JSON records"), "{everything:#}");
    }

    #[test]
    fn key_partitions_are_read_from_key_segments() {
        let both = Some(["2026-11-30".to_owned(), "07".to_owned()]);
        assert_eq!(key_partition("logs/dt=2026-11-30/hour=07/fleetlog-1-2026-11-30-07-00-00-abc.gz"), both);
        assert_eq!(key_partition("/home/me/logs/hour=07/dt=2026-11-30/x"), both, "in either order");
        assert_eq!(key_partition("logs/dt=2026-11-30/x.gz"), None, "both or nothing");
        assert_eq!(key_partition("logs/xdt=1/hours=2/x.gz"), None);
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

    /// Rows of one object, as `read_records` decodes it.
    fn rows_of(name: &str, object: &[u8]) -> Result<usize> {
        let mut rows = 0;
        read_records(name, object, |batch| {
            rows += batch.num_rows();
            true
        })?;
        Ok(rows)
    }

    #[test]
    fn objects_are_read_gzip_or_plain_whatever_their_size() {
        // This stack's Firehose buffers 64 MiB before compressing, a hint it may exceed: more than
        // the ETL's cap for what CloudWatch Logs sends.
        let size = usize::try_from(fleetlog_etl::gzip::MAX_DECOMPRESSED).unwrap() + 1024 * 1024;
        let mut big = vec![b'\n'; size];
        big.extend_from_slice(b"{\"event_id\":\"last\"}\n");
        assert_eq!(rows_of("big.gz", &fleetlog_etl::gzip::gzip(&big)).unwrap(), 1);
        // An object of several gzip members, as Firehose may write: every member is read.
        let mut members = fleetlog_etl::gzip::gzip(b"{\"event_id\":\"1\"}\n");
        members.extend(fleetlog_etl::gzip::gzip(b"{\"event_id\":\"2\"}\n"));
        assert_eq!(rows_of("members.gz", &members).unwrap(), 2);
        assert_eq!(rows_of("plain", b"{}\n{}").unwrap(), 2, "plain objects are read as they are");
        let cut = rows_of("cut.gz", &members[..members.len() - 3]).unwrap_err();
        assert!(format!("{cut:#}").starts_with("cut.gz: not valid gzip: "), "{cut:#}");
        let mut corrupt = fleetlog_etl::gzip::gzip(b"{\"event_id\":\"1\"}\n");
        let crc_at = corrupt.len() - 8;
        corrupt[crc_at] ^= 1;
        let refused = rows_of("crc.gz", &corrupt).unwrap_err();
        assert!(format!("{refused:#}").starts_with("crc.gz: not valid gzip: "), "{refused:#}");
        let not_records = rows_of("text", b"not json").unwrap_err();
        assert!(format!("{not_records:#}").starts_with("text: not fleetlog JSON records: "), "{not_records:#}");
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
