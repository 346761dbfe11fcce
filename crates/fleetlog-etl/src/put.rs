//! Putting records, with per-record retries, into a Firehose stream (PutRecordBatch: 500 records,
//! 4 MiB per call, 1,000 KiB per record) or into the Kinesis stream a fan-out stack's Firehose
//! streams read (PutRecords: 500 records, 5 MiB per call, 1 MiB per record with its partition key).

use std::time::Duration;

use aws_smithy_types::error::display::DisplayErrorContext;

use crate::records::RecordLimits;

pub const MAX_RECORD_BYTES: usize = 1000 * 1024;
/// What the ETL's records must keep to for Firehose: a little under its record limit (room for the
/// newline), messages split into parts of 512 KiB of JSON text, whose records always fit it.
pub const RECORD_LIMITS: RecordLimits = RecordLimits { record_bytes: MAX_RECORD_BYTES - 1024, part_bytes: 512 * 1024 };

/// Where records are put.
#[derive(Debug, Clone, Copy)]
pub enum Sink<'a> {
    Firehose {
        client: &'a aws_sdk_firehose::Client,
        stream: &'a str,
    },
    /// A Kinesis stream; each record's partition key is `partition_key` and its index (the index
    /// spreads records over shards; the prefix is what a reader tells them by).
    Kinesis {
        client: &'a aws_sdk_kinesis::Client,
        stream_arn: &'a str,
        partition_key: &'a str,
    },
}

/// One API's call limits.
#[derive(Debug, Clone, Copy)]
struct Limits {
    batch_records: usize,
    batch_bytes: usize,
    record_bytes: usize,
}

const FIREHOSE_LIMITS: Limits =
    Limits { batch_records: 500, batch_bytes: 4 * 1024 * 1024, record_bytes: MAX_RECORD_BYTES };
/// Kinesis counts a record's partition key (at most 256 bytes) in both its limits; a record of
/// `MAX_RECORD_BYTES` always fits with one.
const KINESIS_LIMITS: Limits =
    Limits { batch_records: 500, batch_bytes: 5 * 1024 * 1024 - 500 * 256, record_bytes: 1024 * 1024 - 256 };
const _: () = assert!(KINESIS_LIMITS.record_bytes >= MAX_RECORD_BYTES);

/// What one call answered: for each record, by position, the error that refused it; or why the call
/// as a whole failed.
type Answer = Result<Vec<Option<String>>, String>;

impl Sink<'_> {
    /// Newline-delimited records as this sink's records: one per line into Firehose (the records
    /// stream partitions each record by its own `account` and `time`); into Kinesis, whole lines
    /// packed up to a Firehose record's limit, since Kinesis bills each record as at least 1 KB and the
    /// Firehose stream reading it delivers the record's lines as they are.
    pub fn records_of(&self, lines: &[u8]) -> Vec<Vec<u8>> {
        match self {
            Sink::Firehose { .. } => one_per_line(lines),
            Sink::Kinesis { .. } => packed(lines, MAX_RECORD_BYTES),
        }
    }

    fn name(&self) -> &str {
        match self {
            Sink::Firehose { stream, .. } => stream,
            Sink::Kinesis { stream_arn, .. } => stream_arn,
        }
    }

    fn limits(&self) -> Limits {
        match self {
            Sink::Firehose { .. } => FIREHOSE_LIMITS,
            Sink::Kinesis { .. } => KINESIS_LIMITS,
        }
    }

    async fn send(&self, batch: &[Vec<u8>]) -> Result<Answer, PutError> {
        let refused = |code: Option<&str>, message: Option<&str>| {
            code.map(|code| format!("{code}: {}", message.unwrap_or_default()))
        };
        Ok(match self {
            Sink::Firehose { client, stream } => {
                use aws_sdk_firehose::{primitives::Blob, types::Record};
                // Every record is built or no call is made: answers are matched to records by position.
                let entries = batch
                    .iter()
                    .map(|data| Record::builder().data(Blob::new(data.clone())).build())
                    .collect::<Result<Vec<Record>, _>>()
                    .map_err(|e| PutError::InvalidRecord(e.to_string()))?;
                match client.put_record_batch().delivery_stream_name(*stream).set_records(Some(entries)).send().await {
                    Ok(out) if out.failed_put_count() == 0 => Ok(vec![None; batch.len()]),
                    Ok(out) => {
                        Ok(out.request_responses().iter().map(|r| refused(r.error_code(), r.error_message())).collect())
                    }
                    Err(e) => Err(DisplayErrorContext(&e).to_string()),
                }
            }
            Sink::Kinesis { client, stream_arn, partition_key } => {
                use aws_sdk_kinesis::{primitives::Blob, types::PutRecordsRequestEntry};
                let entries = batch
                    .iter()
                    .enumerate()
                    .map(|(i, data)| {
                        PutRecordsRequestEntry::builder()
                            .data(Blob::new(data.clone()))
                            .partition_key(format!("{partition_key}{i}"))
                            .build()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| PutError::InvalidRecord(e.to_string()))?;
                match client.put_records().stream_arn(*stream_arn).set_records(Some(entries)).send().await {
                    Ok(out) if out.failed_record_count().unwrap_or(0) == 0 => Ok(vec![None; batch.len()]),
                    Ok(out) => Ok(out.records().iter().map(|r| refused(r.error_code(), r.error_message())).collect()),
                    Err(e) => Err(DisplayErrorContext(&e).to_string()),
                }
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 5, first_delay: Duration::from_millis(100) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    #[error(
        "{count} of {total} records could not be delivered to {stream} after {attempts} attempts (last error: {last_error})"
    )]
    Undelivered { stream: String, count: usize, total: usize, attempts: u32, last_error: String },
    #[error("a record of {bytes} bytes exceeds {stream}'s record limit of {limit} bytes")]
    RecordTooLarge { stream: String, bytes: usize, limit: usize },
    #[error("record cannot be sent: {0}")]
    InvalidRecord(String),
}

/// Newline-delimited records as the sinks take them: one per line, each with its newline.
pub fn one_per_line(lines: &[u8]) -> Vec<Vec<u8>> {
    lines.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

/// Whole lines packed into records of at most `max` bytes (a longer line alone).
fn packed(lines: &[u8], max: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for line in lines.split_inclusive(|b| *b == b'\n') {
        match out.last_mut() {
            Some(record) if record.len() + line.len() <= max => record.extend_from_slice(line),
            _ => out.push(line.to_vec()),
        }
    }
    out
}

/// Splits records into calls within both limits, keeping order.
fn batches(records: &[Vec<u8>], limits: Limits) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, r) in records.iter().enumerate() {
        if i > start && (i - start == limits.batch_records || bytes + r.len() > limits.batch_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += r.len();
    }
    if start < records.len() {
        out.push(start..records.len());
    }
    out
}

/// Puts every record, retrying exactly the ones the sink reports as failed (and whole calls that
/// fail) with exponential backoff. Returns the number of calls made.
pub async fn put_all(sink: &Sink<'_>, records: Vec<Vec<u8>>, policy: RetryPolicy) -> Result<usize, PutError> {
    let limits = sink.limits();
    if let Some(big) = records.iter().find(|r| r.len() > limits.record_bytes) {
        return Err(PutError::RecordTooLarge {
            stream: sink.name().to_owned(),
            bytes: big.len(),
            limit: limits.record_bytes,
        });
    }
    let total = records.len();
    let mut pending = records;
    let mut calls = 0;
    let mut delay = policy.first_delay;
    let mut last_error = String::new();
    for attempt in 1..=policy.attempts.max(1) {
        let mut failed = Vec::new();
        for range in batches(&pending, limits) {
            let batch = &pending[range];
            calls += 1;
            match sink.send(batch).await? {
                Ok(answers) if answers.len() != batch.len() => {
                    // Answers match records by position; without one per record, which records
                    // failed is unknown, so all are sent again (a duplicate rather than a loss).
                    last_error = format!("{} answers for {} records", answers.len(), batch.len());
                    failed.extend(batch.iter().cloned());
                }
                Ok(answers) => {
                    for (data, answer) in batch.iter().zip(answers) {
                        if let Some(error) = answer {
                            last_error = error;
                            failed.push(data.clone());
                        }
                    }
                }
                Err(error) => {
                    last_error = error;
                    failed.extend(batch.iter().cloned());
                }
            }
        }
        if failed.is_empty() {
            return Ok(calls);
        }
        tracing::warn!(attempt, failed = failed.len(), %last_error, "Some records were not accepted; retrying them");
        pending = failed;
        if attempt < policy.attempts {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    Err(PutError::Undelivered {
        stream: sink.name().to_owned(),
        count: pending.len(),
        total,
        attempts: policy.attempts,
        last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_records_hold_whole_lines_within_the_limit() {
        let lines = b"aaaa\nbb\ncccccc\nd\n";
        assert_eq!(packed(lines, 8), [b"aaaa\nbb\n".to_vec(), b"cccccc\n".to_vec(), b"d\n".to_vec()]);
        assert_eq!(packed(lines, 2), [b"aaaa\n".to_vec(), b"bb\n".to_vec(), b"cccccc\n".to_vec(), b"d\n".to_vec()]);
        assert_eq!(packed(lines, 100).concat(), lines.to_vec());
        assert!(packed(b"", 8).is_empty());
    }

    #[test]
    fn batches_respect_count_and_size_limits() {
        for limits in [FIREHOSE_LIMITS, KINESIS_LIMITS] {
            let small = vec![vec![0u8; 10]; 1200];
            let sizes: Vec<usize> = batches(&small, limits).iter().map(|r| r.len()).collect();
            assert_eq!(sizes, [500, 500, 200]);
            let big = vec![vec![0u8; MAX_RECORD_BYTES]; 10];
            let ranges = batches(&big, limits);
            assert!(ranges.iter().all(|r| big[r.clone()].iter().map(Vec::len).sum::<usize>() <= limits.batch_bytes));
            assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), 10);
            assert!(batches(&[], limits).is_empty());
        }
    }
}
