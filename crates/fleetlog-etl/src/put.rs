//! PutRecordBatch with Firehose's limits (500 records, 4 MiB per call) and per-record retries.

use std::time::Duration;

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;

use crate::records::RecordLimits;

const MAX_BATCH_RECORDS: usize = 500;
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_RECORD_BYTES: usize = 1000 * 1024;
/// What the ETL's records must keep to for Firehose: a little under its record limit (room for the
/// newline), messages split into parts of 512 KiB of JSON text, whose records always fit it.
pub const RECORD_LIMITS: RecordLimits = RecordLimits { record_bytes: MAX_RECORD_BYTES - 1024, part_bytes: 512 * 1024 };

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
    #[error("record of {0} bytes exceeds Firehose's 1,000 KiB record limit")]
    RecordTooLarge(usize),
    #[error("record cannot be sent: {0}")]
    InvalidRecord(String),
}

/// Splits records into calls within both limits, keeping order.
fn batches(records: &[Vec<u8>]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, r) in records.iter().enumerate() {
        if i > start && (i - start == MAX_BATCH_RECORDS || bytes + r.len() > MAX_BATCH_BYTES) {
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

/// Puts every record, retrying exactly the ones Firehose reports as failed (and whole calls that
/// fail) with exponential backoff. Returns the number of calls made.
pub async fn put_all(
    client: &aws_sdk_firehose::Client,
    stream: &str,
    records: Vec<Vec<u8>>,
    policy: RetryPolicy,
) -> Result<usize, PutError> {
    if let Some(big) = records.iter().find(|r| r.len() > MAX_RECORD_BYTES) {
        return Err(PutError::RecordTooLarge(big.len()));
    }
    let total = records.len();
    let mut pending = records;
    let mut calls = 0;
    let mut delay = policy.first_delay;
    let mut last_error = String::new();
    for attempt in 1..=policy.attempts.max(1) {
        let mut failed = Vec::new();
        for range in batches(&pending) {
            let batch = &pending[range];
            // Every record is built or no call is made: responses are matched to records by position.
            let entries = batch
                .iter()
                .map(|data| Record::builder().data(Blob::new(data.clone())).build())
                .collect::<Result<Vec<Record>, _>>()
                .map_err(|e| PutError::InvalidRecord(e.to_string()))?;
            calls += 1;
            match client.put_record_batch().delivery_stream_name(stream).set_records(Some(entries)).send().await {
                Ok(output) if output.failed_put_count() == 0 => {}
                Ok(output) if output.request_responses().len() != batch.len() => {
                    // Entries answer records by position; without one per record, which records
                    // failed is unknown, so all are sent again (a duplicate rather than a loss).
                    last_error = format!(
                        "{} failed, but {} entries answered {} records",
                        output.failed_put_count(),
                        output.request_responses().len(),
                        batch.len()
                    );
                    failed.extend(batch.iter().cloned());
                }
                Ok(output) => {
                    for (data, result) in batch.iter().zip(output.request_responses()) {
                        if let Some(code) = result.error_code() {
                            last_error = format!("{code}: {}", result.error_message().unwrap_or_default());
                            failed.push(data.clone());
                        }
                    }
                }
                Err(e) => {
                    last_error = aws_smithy_types::error::display::DisplayErrorContext(&e).to_string();
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
        stream: stream.to_owned(),
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
    fn batches_respect_count_and_size_limits() {
        let small = vec![vec![0u8; 10]; 1200];
        let sizes: Vec<usize> = batches(&small).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, [500, 500, 200]);
        let big = vec![vec![0u8; 900 * 1024]; 10];
        let ranges = batches(&big);
        assert!(ranges.iter().all(|r| big[r.clone()].iter().map(Vec::len).sum::<usize>() <= MAX_BATCH_BYTES));
        assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), 10);
        assert!(batches(&[]).is_empty());
    }
}
