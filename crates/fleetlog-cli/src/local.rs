//! fleetlog's resources inside the local emulator, and the hops the emulator does not perform.
//!
//! What the stack in infra/ creates for the pipeline, created here with SDK calls: the enroll queue
//! and its DLQ, the EventBridge rules (same patterns), the enrollment table, the log bucket and the
//! delivery streams. The emulator never invokes Lambdas, so two hops are performed by this module
//! through the same handler entry points the Lambdas use: draining the enroll queue into the
//! enroller ([`fleetlog_enroller::queue_source::drain_queue`]), and carrying raw subscription data from S3
//! through the ETL's Firehose shape into the processed stream ([`LogPump`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord, KinesisFirehoseResponse};
use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_firehose::types::{CompressionFormat, DeliveryStreamType, ExtendedS3DestinationConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use fleetlog_aws::Clients;
use fleetlog_core::Platform;
use fleetlog_core::events::{
    FORWARDED_COMMAND_STATUSES, command_invocation_event, command_outcome_rule_pattern, reconcile_request_rule_pattern,
    state_change_rule_pattern, tag_change_rule_pattern,
};
use fleetlog_core::log_groups::default_log_group_prefix;
use fleetlog_core::settings::EnrollerSettings;
use fleetlog_enroller::Enroller;
use fleetlog_etl::put::{RetryPolicy, put_all};
use fleetlog_etl::{EtlState, MetricsOutput, SightingReports};

use crate::emulator::{ACCOUNT, REGION};
use crate::sdk_error;

pub const ENROLL_QUEUE: &str = "fleetlog-enroll";
pub const ENROLL_DLQ: &str = "fleetlog-enroll-dlq";
pub const ENROLLMENT_TABLE: &str = "fleetlog-enrollments";
/// fleetlog's SSM Command document, named as the stack names it (`{stack}-agent`, stack `fleetlog`).
pub const AGENT_DOCUMENT: &str = "fleetlog-agent";
pub const BUCKET: &str = "fleetlog-logs";
/// The subscription filters' destination. In AWS this stream runs the ETL as its transformation;
/// the emulator cannot, so it lands raw payloads under `raw/` for [`LogPump`].
pub const RAW_STREAM: &str = "fleetlog-subscriptions";
pub const RAW_PREFIX: &str = "raw/";
/// Where transformed records land: the prefix the Glue table reads.
pub const PROCESSED_STREAM: &str = "fleetlog-records";
pub const LOGS_PREFIX: &str = "logs/";
/// The enroll queue's redrive bound; the stack uses the same.
pub const MAX_RECEIVE_COUNT: u32 = 30;
/// The emulator does not check IAM; this names the role the stack creates.
pub const SUBSCRIPTION_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/fleetlog-logs-to-firehose";
const FIREHOSE_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/fleetlog-firehose";
/// EC2 image ids the emulator knows as Amazon Linux and Windows.
pub const LINUX_AMI: &str = "ami-0a1b2c3d4e5f60001";
pub const WINDOWS_AMI: &str = "ami-0a1b2c3d4e5f60006";
/// The emulator launches at most this many instances per RunInstances call.
const MAX_LAUNCH: i32 = 40;
/// The enroller's default management tag.
pub const MANAGEMENT_TAG: (&str, &str) = ("fleetlog:managed", "true");
/// The account name the local log group prefix is built from.
pub const LOCAL_ACCOUNT_NAME: &str = "fleetlog local";

/// (rule name, pattern) for every rule that targets the enroll queue.
pub fn enroll_rules() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("fleetlog-ec2-state", state_change_rule_pattern()),
        ("fleetlog-ec2-tags", tag_change_rule_pattern(&["fleetlog:managed", "fleetlog:profile"])),
        ("fleetlog-requests", reconcile_request_rule_pattern()),
        ("fleetlog-command-outcomes", command_outcome_rule_pattern(AGENT_DOCUMENT)),
    ]
}

/// fleetlog deployed into an emulator.
#[derive(Debug, Clone)]
pub struct LocalStack {
    pub config: SdkConfig,
    pub clients: Clients,
    pub events: aws_sdk_eventbridge::Client,
    pub s3: aws_sdk_s3::Client,
    pub firehose: aws_sdk_firehose::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
    pub raw_stream_arn: String,
    pub log_group_prefix: String,
    /// (command, instance) pairs [`LocalStack::report_command_outcomes`] has reported.
    reported_commands: Arc<Mutex<BTreeSet<(String, String)>>>,
}

impl LocalStack {
    /// Creates (or finds) every resource; safe to run against an emulator that already has them.
    pub async fn deploy(config: &SdkConfig) -> Result<Self> {
        let clients = Clients::new(config);
        let events = aws_sdk_eventbridge::Client::new(config);
        let s3 = s3_client(config);
        let firehose = aws_sdk_firehose::Client::new(config);

        let dlq_url = create_queue(&clients.sqs, ENROLL_DLQ, HashMap::new()).await?;
        let dlq_arn = queue_arn(&clients.sqs, &dlq_url).await?;
        let redrive =
            serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT.to_string() });
        let queue_url = create_queue(
            &clients.sqs,
            ENROLL_QUEUE,
            HashMap::from([
                (QueueAttributeName::RedrivePolicy, redrive.to_string()),
                (QueueAttributeName::VisibilityTimeout, "120".to_owned()),
            ]),
        )
        .await?;
        let queue_arn = queue_arn(&clients.sqs, &queue_url).await?;
        for (rule, pattern) in enroll_rules() {
            events
                .put_rule()
                .name(rule)
                .event_pattern(pattern.to_string())
                .send()
                .await
                .map_err(sdk_error("PutRule"))?;
            let target = aws_sdk_eventbridge::types::Target::builder()
                .id("enroll-queue")
                .arn(&queue_arn)
                .build()
                .context("EventBridge target")?;
            events.put_targets().rule(rule).targets(target).send().await.map_err(sdk_error("PutTargets"))?;
        }

        create_agent_document(&clients.ssm).await?;
        fleetlog_aws::store::EnrollmentStore::new(clients.dynamodb.clone(), ENROLLMENT_TABLE)
            .create_table_if_missing()
            .await?;

        match s3.create_bucket().bucket(BUCKET).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
            Err(e) => return Err(sdk_error("CreateBucket")(e)),
        }
        let mut raw_stream_arn = String::new();
        for (stream, prefix) in [(RAW_STREAM, RAW_PREFIX), (PROCESSED_STREAM, LOGS_PREFIX)] {
            let arn = ensure_delivery_stream(&firehose, stream, prefix).await?;
            if stream == RAW_STREAM {
                raw_stream_arn = arn;
            }
        }

        Ok(Self {
            config: config.clone(),
            clients,
            events,
            s3,
            firehose,
            queue_url,
            queue_arn,
            dlq_url,
            raw_stream_arn,
            log_group_prefix: default_log_group_prefix(LOCAL_ACCOUNT_NAME, ACCOUNT, REGION),
            reported_commands: Arc::default(),
        })
    }

    /// The environment the stack gives the enroller Lambda, for these resources.
    pub fn enroller_env(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("FLEETLOG_ENROLLMENT_TABLE".to_owned(), ENROLLMENT_TABLE.to_owned()),
            ("FLEETLOG_SUBSCRIPTION_DESTINATION_ARN".to_owned(), self.raw_stream_arn.clone()),
            ("FLEETLOG_SUBSCRIPTION_ROLE_ARN".to_owned(), SUBSCRIPTION_ROLE_ARN.to_owned()),
            ("FLEETLOG_DEAD_LETTER_QUEUE_URL".to_owned(), self.dlq_url.clone()),
            ("FLEETLOG_ENROLL_QUEUE_URL".to_owned(), self.queue_url.clone()),
            ("FLEETLOG_AGENT_DOCUMENT".to_owned(), AGENT_DOCUMENT.to_owned()),
            ("FLEETLOG_LOG_GROUP_PREFIX".to_owned(), self.log_group_prefix.clone()),
        ])
    }

    /// What the CLI's fleet commands need to know about this deployment.
    pub fn fleet_options(&self) -> crate::fleet::FleetOptions {
        crate::fleet::FleetOptions {
            management_tag: fleetlog_core::tags::ManagementTag {
                key: MANAGEMENT_TAG.0.to_owned(),
                value: MANAGEMENT_TAG.1.to_owned(),
            },
            agent_document: fleetlog_core::commands::AgentDocument {
                name: AGENT_DOCUMENT.to_owned(),
                version: fleetlog_core::commands::DEFAULT_DOCUMENT_VERSION.to_owned(),
            },
            table: ENROLLMENT_TABLE.to_owned(),
            subscription_filter: "fleetlog".to_owned(),
            freshness_window: fleetlog_core::freshness::DEFAULT_FRESHNESS_WINDOW,
            retention: fleetlog_core::log_groups::RetentionDays::default(),
        }
    }

    /// How `configs publish` renders and checks configs for this deployment.
    pub fn rendering(&self) -> crate::configs::Rendering {
        crate::configs::Rendering::new(crate::DEFAULT_PARAMETER_PREFIX, &self.log_group_prefix, &[])
    }

    /// The enroller, configured as the stack configures it (plus `overrides`), on `clients`.
    pub fn enroller(&self, overrides: &[(&str, &str)], clients: Clients) -> Result<Enroller> {
        let mut env = self.enroller_env();
        env.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let settings = EnrollerSettings::from_lookup(|k| env.get(k).cloned())?;
        Ok(Enroller::new(settings, clients))
    }

    /// Launches `count` instances of the platform with the tags, returning their ids.
    pub async fn launch(&self, platform: Platform, tags: &[(&str, &str)], count: i32) -> Result<Vec<String>> {
        let ami = match platform {
            Platform::Linux => LINUX_AMI,
            Platform::Windows => WINDOWS_AMI,
        };
        let mut ids = Vec::new();
        let mut remaining = count;
        while remaining > 0 {
            let n = remaining.min(MAX_LAUNCH);
            remaining -= n;
            let mut request = self
                .clients
                .ec2
                .run_instances()
                .image_id(ami)
                .instance_type(InstanceType::T3Micro)
                .min_count(n)
                .max_count(n);
            if !tags.is_empty() {
                let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
                for (k, v) in tags {
                    spec = spec.tags(Tag::builder().key(*k).value(*v).build());
                }
                request = request.tag_specifications(spec.build());
            }
            let out = request.send().await.map_err(sdk_error("RunInstances"))?;
            ids.extend(out.instances().iter().filter_map(|i| i.instance_id().map(str::to_owned)));
        }
        Ok(ids)
    }

    /// Puts events (as AWS would emit them) on the default bus.
    pub async fn put_events(&self, events: &[serde_json::Value]) -> Result<()> {
        for chunk in events.chunks(10) {
            let entries = chunk
                .iter()
                .map(|e| {
                    PutEventsRequestEntry::builder()
                        .source(e["source"].as_str().unwrap_or_default())
                        .detail_type(e["detail-type"].as_str().unwrap_or_default())
                        .detail(e["detail"].to_string())
                        .set_resources(
                            e["resources"]
                                .as_array()
                                .map(|r| r.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()),
                        )
                        .build()
                })
                .collect();
            let out =
                self.events.put_events().set_entries(Some(entries)).send().await.map_err(sdk_error("PutEvents"))?;
            if out.failed_entry_count() > 0 {
                anyhow::bail!("EventBridge refused {} events: {:?}", out.failed_entry_count(), out.entries());
            }
        }
        Ok(())
    }

    /// Stands in for Run Command's status-change events, which the emulator does not emit: puts on the
    /// bus one "EC2 Command Invocation Status-change Notification" per invocation of fleetlog's
    /// document that has reached a final status since the last call. Returns how many.
    pub async fn report_command_outcomes(&self) -> Result<usize> {
        let mut pages = self.clients.ssm.list_command_invocations().into_paginator().send();
        let mut events = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk_error("ListCommandInvocations"))?;
            for invocation in page.command_invocations() {
                let (Some(command_id), Some(instance_id), Some(status)) =
                    (invocation.command_id(), invocation.instance_id(), invocation.status())
                else {
                    continue;
                };
                let status = status.as_str();
                if invocation.document_name() != Some(AGENT_DOCUMENT) || !FORWARDED_COMMAND_STATUSES.contains(&status) {
                    continue;
                }
                let first = self
                    .reported_commands
                    .lock()
                    .map_or(true, |mut reported| reported.insert((command_id.to_owned(), instance_id.to_owned())));
                if first {
                    events.push(command_invocation_event(
                        instance_id,
                        command_id,
                        AGENT_DOCUMENT,
                        status,
                        ACCOUNT,
                        REGION,
                    ));
                }
            }
        }
        self.put_events(&events).await?;
        Ok(events.len())
    }

    /// [`LocalStack::report_command_outcomes`] until `expected` outcomes have been reported (the
    /// emulator finishes a command a moment after it is sent); an error after `timeout`. Returns how
    /// many were reported.
    pub async fn await_command_outcomes(&self, expected: usize, timeout: std::time::Duration) -> Result<usize> {
        let deadline = std::time::Instant::now() + timeout;
        let mut reported = self.report_command_outcomes().await?;
        while reported < expected {
            if std::time::Instant::now() > deadline {
                anyhow::bail!("only {reported} of {expected} agent commands reported an outcome");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            reported += self.report_command_outcomes().await?;
        }
        Ok(reported)
    }

    /// Messages visible on a queue (SQS's approximate count).
    pub async fn visible_messages(&self, queue_url: &str) -> Result<usize> {
        let count =
            queue_attribute(&self.clients.sqs, queue_url, QueueAttributeName::ApproximateNumberOfMessages).await?;
        Ok(count.and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    pub fn etl_state(&self) -> EtlState {
        EtlState {
            firehose: self.firehose.clone(),
            region: REGION.to_owned(),
            delivery_stream: Some(PROCESSED_STREAM.to_owned()),
            retry: RetryPolicy::default(),
            // The CLI's own output is on stdout.
            metrics: MetricsOutput::Stderr,
            sightings: Some(Arc::new(SightingReports::new(
                self.clients.sqs.clone(),
                self.queue_url.clone(),
                fleetlog_core::freshness::DEFAULT_FRESHNESS_WINDOW,
            ))),
        }
    }
}

/// S3 with path-style addressing, which the emulator needs (no per-bucket host names on loopback).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build())
}

/// fleetlog's Command document, as the stack creates it ([`fleetlog_core::commands::agent_document`]).
async fn create_agent_document(ssm: &aws_sdk_ssm::Client) -> Result<()> {
    let content = fleetlog_core::commands::agent_document().to_string();
    let created = ssm
        .create_document()
        .name(AGENT_DOCUMENT)
        .document_type(aws_sdk_ssm::types::DocumentType::Command)
        .document_format(aws_sdk_ssm::types::DocumentFormat::Json)
        .content(content)
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_document_already_exists()) => Ok(()),
        Err(e) => Err(sdk_error("CreateDocument")(e)),
    }
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String> {
    let out = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(sdk_error("CreateQueue"))?;
    out.queue_url().map(str::to_owned).context("CreateQueue returned no queue URL")
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    queue_attribute(sqs, url, QueueAttributeName::QueueArn).await?.context("queue has no ARN")
}

/// One attribute of a queue, if SQS reports it.
async fn queue_attribute(sqs: &aws_sdk_sqs::Client, url: &str, name: QueueAttributeName) -> Result<Option<String>> {
    let mut out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .map_err(sdk_error("GetQueueAttributes"))?;
    Ok(out.attributes.as_mut().and_then(|attributes| attributes.remove(&name)))
}

/// A DirectPut stream to the log bucket under a static prefix (the emulator cannot evaluate the
/// stack's `dt=!{partitionKeyFromLambda:dt}` prefixes).
async fn ensure_delivery_stream(firehose: &aws_sdk_firehose::Client, name: &str, prefix: &str) -> Result<String> {
    if let Ok(found) = firehose.describe_delivery_stream().delivery_stream_name(name).send().await
        && let Some(description) = found.delivery_stream_description()
    {
        return Ok(description.delivery_stream_arn().to_owned());
    }
    let destination = ExtendedS3DestinationConfiguration::builder()
        .bucket_arn(format!("arn:aws:s3:::{BUCKET}"))
        .role_arn(FIREHOSE_ROLE_ARN)
        .prefix(prefix)
        .compression_format(CompressionFormat::Uncompressed)
        .build()
        .context("Firehose destination")?;
    let created = firehose
        .create_delivery_stream()
        .delivery_stream_name(name)
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(destination)
        .send()
        .await
        .map_err(sdk_error("CreateDeliveryStream"))?;
    created.delivery_stream_arn().map(str::to_owned).context("CreateDeliveryStream returned no ARN")
}

/// Every object key under `prefix`, in key order.
pub async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(sdk_error("ListObjectsV2"))?;
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
    }
    Ok(keys)
}

pub async fn get_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let out = s3.get_object().bucket(bucket).key(key).send().await.map_err(sdk_error("GetObject"))?;
    let body = out.body.collect().await.with_context(|| format!("reading s3://{bucket}/{key}"))?;
    Ok(body.into_bytes().to_vec())
}

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
    etl: Option<EtlState>,
}

impl LogPump {
    pub async fn pump(&mut self, stack: &LocalStack) -> Result<PumpReport> {
        let mut report = PumpReport::default();
        let keys: Vec<String> =
            list_keys(&stack.s3, BUCKET, RAW_PREFIX).await?.into_iter().filter(|k| !self.carried.contains(k)).collect();
        if keys.is_empty() {
            return Ok(report);
        }
        let mut event = KinesisFirehoseEvent::default();
        event.delivery_stream_arn = Some(stack.raw_stream_arn.clone());
        for (i, key) in keys.iter().enumerate() {
            let data = get_object(&stack.s3, BUCKET, key).await?;
            report.events += count_events(&data);
            let mut record = KinesisFirehoseEventRecord::default();
            record.record_id = Some(i.to_string());
            record.data.0 = data;
            event.records.push(record);
        }
        report.payloads = keys.len();
        let state = self.etl.get_or_insert_with(|| stack.etl_state());
        // Read back from the JSON Lambda would return to Firehose.
        let response: KinesisFirehoseResponse =
            serde_json::from_str(fleetlog_etl::handle_firehose(state, &event).await?.get())?;
        let mut lines = Vec::new();
        for record in &response.records {
            match record.result.as_deref() {
                Some(fleetlog_etl::firehose::OK) => {
                    lines.extend(record.data.0.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec));
                }
                Some(fleetlog_etl::firehose::DROPPED) => {}
                other => anyhow::bail!("the ETL could not transform a payload ({other:?}): {record:?}"),
            }
        }
        report.records = lines.len();
        put_all(&stack.firehose, PROCESSED_STREAM, lines, RetryPolicy::default()).await?;
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
