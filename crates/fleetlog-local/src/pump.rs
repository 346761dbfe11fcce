//! Firehose's transformation hop, which the emulator does not perform: raw subscription payloads land
//! in the bucket, and [`LogPump`] carries them through the ETL's Firehose entry point (the one Firehose
//! invokes in AWS) into the processed stream.

use std::collections::HashSet;

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord, KinesisFirehoseResponse};
use fleetlog_aws::s3;
use fleetlog_etl::EtlError;
use fleetlog_etl::put::{RetryPolicy, put_all};

use crate::LocalError;
use crate::stack::{BUCKET, LocalStack, PROCESSED_STREAM, RAW_PREFIX};

/// What one pass of the log hop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PumpReport {
    /// Raw subscription payloads handed to the ETL.
    pub payloads: usize,
    /// Log events in them (CONTROL_MESSAGE payloads carry none).
    pub events: usize,
    /// JSON records put to the processed stream.
    pub records: usize,
}

/// Carries raw subscription payloads from the bucket through the ETL's Firehose shape (the entry
/// point Firehose invokes in AWS) and puts the records into the processed stream. Each payload is
/// carried once per pump.
#[derive(Debug, Default)]
pub struct LogPump {
    carried: HashSet<String>,
    /// The ETL as one warm container: built at the first pump, kept (with its report throttle).
    etl: Option<fleetlog_etl::EtlState>,
}

impl LogPump {
    pub async fn pump(&mut self, stack: &LocalStack) -> Result<PumpReport, LocalError> {
        let mut report = PumpReport::default();
        let keys: Vec<String> = s3::list_keys(&stack.s3, BUCKET, RAW_PREFIX)
            .await?
            .into_iter()
            .filter(|k| !self.carried.contains(k))
            .collect();
        if keys.is_empty() {
            return Ok(report);
        }
        let mut event = KinesisFirehoseEvent::default();
        event.delivery_stream_arn = Some(stack.raw_stream_arn.clone());
        for (i, key) in keys.iter().enumerate() {
            let data = s3::get_object(&stack.s3, BUCKET, key).await?;
            report.events += count_events(&data);
            let mut record = KinesisFirehoseEventRecord::default();
            record.record_id = Some(i.to_string());
            record.data.0 = data;
            event.records.push(record);
        }
        report.payloads = keys.len();
        let state = self.etl.get_or_insert_with(|| stack.etl_state());
        // Read back from the JSON Lambda would return to Firehose.
        let answer = fleetlog_etl::handle_firehose(state, &event).await?;
        let response: KinesisFirehoseResponse = serde_json::from_str(answer.get())
            .map_err(|e| LocalError::Unexpected(format!("the ETL's response is not Firehose's shape: {e}")))?;
        let mut lines = Vec::new();
        for record in &response.records {
            match record.result.as_deref() {
                Some(fleetlog_etl::firehose::OK) => {
                    lines.extend(record.data.0.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec));
                }
                Some(fleetlog_etl::firehose::DROPPED) => {}
                other => {
                    return Err(LocalError::Unexpected(format!(
                        "the ETL could not transform a payload ({other:?}): {record:?}"
                    )));
                }
            }
        }
        report.records = lines.len();
        put_all(&stack.firehose, PROCESSED_STREAM, lines, RetryPolicy::default()).await.map_err(EtlError::from)?;
        self.carried.extend(keys);
        Ok(report)
    }
}

/// Log events in one raw subscription payload (0 for anything undecodable; the ETL reports those).
fn count_events(gzipped: &[u8]) -> usize {
    let mut plain = Vec::new();
    if fleetlog_etl::gzip::gunzip_into(gzipped, &mut plain).is_err() {
        return 0;
    }
    fleetlog_etl::envelope::parse_envelope(&plain).map_or(0, |e| e.log_events.len())
}
