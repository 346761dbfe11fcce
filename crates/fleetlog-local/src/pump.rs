//! Firehose's transformation and dynamic partitioning, which the emulator does not perform: raw
//! subscription payloads land in the bucket, and [`LogPump`] carries them through the ETL's Firehose
//! entry point (the one Firehose invokes in AWS) and stores the records under the partitions the ETL
//! names, as the stack's delivery stream does.

use std::collections::{BTreeMap, HashSet};

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord, KinesisFirehoseResponse};
use fleetlog_aws::s3;
use fleetlog_core::schema::{LOGS_PREFIX, PARTITION_KEYS, Partition, partition_path};

use crate::LocalError;
use crate::stack::{BUCKET, LocalStack, RAW_PREFIX};

/// What one pass of the log hop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PumpReport {
    /// Raw subscription payloads handed to the ETL.
    pub payloads: usize,
    /// Log events in them (CONTROL_MESSAGE payloads carry none).
    pub events: usize,
    /// JSON records stored under their partitions.
    pub records: usize,
}

/// Carries raw subscription payloads from the bucket through the ETL's Firehose shape (the entry
/// point Firehose invokes in AWS) and stores the records of each partition as one object under
/// `logs/account=…/dt=…/hour=…/`, named by its content, so carrying a payload again stores nothing
/// twice. Each payload is carried once per pump.
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
        let mut partitions: BTreeMap<Partition, Vec<u8>> = BTreeMap::new();
        for record in &response.records {
            match record.result.as_deref() {
                Some(fleetlog_etl::firehose::OK) => {
                    let key = |column: usize| record.metadata.partition_keys.get(PARTITION_KEYS[column].name).cloned();
                    let partition = [key(0), key(1), key(2)].into_iter().collect::<Option<Vec<_>>>();
                    let Some(Ok(partition)) = partition.map(Partition::try_from) else {
                        return Err(LocalError::Unexpected(format!(
                            "the ETL gave records no partition keys: {record:?}"
                        )));
                    };
                    report.records += record.data.0.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
                    partitions.entry(partition).or_default().extend_from_slice(&record.data.0);
                }
                Some(fleetlog_etl::firehose::DROPPED) => {}
                other => {
                    return Err(LocalError::Unexpected(format!(
                        "the ETL could not transform a payload ({other:?}): {record:?}"
                    )));
                }
            }
        }
        for (partition, records) in partitions {
            let name = s3::content_address(&records);
            let key = format!("{LOGS_PREFIX}{}fleetlog-records-{name}", partition_path(&partition));
            s3::put_once(&stack.s3, BUCKET, &key, records).await?;
        }
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
