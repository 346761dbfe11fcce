//! The table's columns as Arrow types, from the schema table in `fleetlog_core::schema`; the
//! `account`, `dt` and `hour` partition columns, from an object's key as Athena reads them; and one
//! object's records decoded against them.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, LazyLock};

use anyhow::{Context, Result};
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::ReaderBuilder;
use flate2::bufread::MultiGzDecoder;
use fleetlog_core::schema::{COLUMNS, GZIP_MAGIC, PARTITION_KEYS, Partition};

/// The Arrow schema of the table's data columns, from the ETL's schema table.
pub fn arrow_schema() -> SchemaRef {
    static COLUMNS: LazyLock<SchemaRef> = LazyLock::new(data_schema);
    Arc::clone(&COLUMNS)
}

/// What an object's records are read as: the data columns, then the `account` each record carries
/// (the partition value for objects whose key has none).
fn record_schema() -> SchemaRef {
    static RECORDS: LazyLock<SchemaRef> = LazyLock::new(|| {
        let data = arrow_schema();
        let account = Field::new(PARTITION_KEYS[0].name, DataType::Utf8, true);
        Arc::new(Schema::new(data.fields().iter().cloned().chain([Arc::new(account)]).collect::<Vec<_>>()))
    });
    Arc::clone(&RECORDS)
}

fn data_schema() -> SchemaRef {
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
pub(super) fn read_records(name: &str, object: impl Read, mut each: impl FnMut(RecordBatch) -> bool) -> Result<()> {
    let mut input = BufReader::new(object);
    let gzip = input.fill_buf().with_context(|| format!("reading {name}"))?.starts_with(&GZIP_MAGIC);
    // Firehose may write an object as several gzip members; each member's checksums are checked.
    let text: Box<dyn BufRead> =
        if gzip { Box::new(BufReader::new(MultiGzDecoder::new(input))) } else { Box::new(input) };
    let reader = ReaderBuilder::new(record_schema())
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
pub(super) const PARTITION_COLUMNS: [&str; 3] =
    [PARTITION_KEYS[0].name, PARTITION_KEYS[1].name, PARTITION_KEYS[2].name];

/// The partition columns alone (for deciding which objects a query reads).
pub(super) fn partition_schema() -> SchemaRef {
    static PARTITION: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(PARTITION_COLUMNS.map(|name| Field::new(name, DataType::Utf8, true)).to_vec()))
    });
    Arc::clone(&PARTITION)
}

/// The table's columns: the data columns (see [`arrow_schema`]), then the partition keys. Built once: every
/// batch read gets it.
pub(super) fn table_schema() -> SchemaRef {
    static TABLE: LazyLock<SchemaRef> = LazyLock::new(|| {
        let (records, partition) = (arrow_schema(), partition_schema());
        Arc::new(Schema::new(records.fields().iter().chain(partition.fields()).cloned().collect::<Vec<_>>()))
    });
    Arc::clone(&TABLE)
}

/// `batch` (read as [`record_schema`]) with the partition columns in place of its records' own
/// `account`: the object's key partition for every record, or, for an object without one (the
/// handler's direct puts, objects written before the account key, files under other names), each
/// record's own `account`, and `dt` and `hour` from its `time`.
pub(super) fn with_partition_columns(batch: RecordBatch, partition: Option<&Partition>) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let mut all = batch.columns().to_vec();
    let own_account = all.pop().context("records without their account column")?;
    let columns: [ArrayRef; 3] = match partition {
        Some(partition) => {
            partition.clone().map(|value| Arc::new(StringArray::from(vec![value.as_str(); rows])) as ArrayRef)
        }
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
            [own_account, part(0, 10), part(11, 2)]
        }
    };
    all.extend(columns);
    Ok(RecordBatch::try_new(table_schema(), all)?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
