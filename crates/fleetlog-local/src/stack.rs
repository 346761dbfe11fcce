//! fleetlog's resources inside the local emulator, named as the stack in `infra/` names them.
//!
//! What the stack creates for the pipeline, created here with SDK calls: the enroll queue and its DLQ,
//! the EventBridge rules (same patterns), fleetlog's Command document, the enrollment table, the log
//! bucket and the delivery streams. [`LocalStack`] also stands in for what AWS would do on its own:
//! Run Command's status-change events, and the agent writing log lines.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use aws_sdk_firehose::types::{CompressionFormat, DeliveryStreamType, ExtendedS3DestinationConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use fleetlog_aws::Clients;
use fleetlog_aws::error::classify;
use fleetlog_core::Platform;
use fleetlog_core::agent_config::Rendering;
use fleetlog_core::events::{
    FORWARDED_COMMAND_STATUSES, command_invocation_event, command_outcome_rule_pattern, logs_seen_rule_pattern,
    reconcile_request_rule_pattern, state_change_rule_pattern, tag_change_rule_pattern,
};
use fleetlog_core::log_groups::default_log_group_prefix;
use fleetlog_core::settings::{EnrollerSettings, enroller_default};
use fleetlog_enroller::Enroller;
use fleetlog_etl::applications::ApplicationSource;
use fleetlog_etl::put::RetryPolicy;
use fleetlog_etl::{EtlState, MetricsOutput, SightingReports};

use crate::LocalError;
use crate::emulator::{ACCOUNT, REGION};

pub const ENROLL_QUEUE: &str = "fleetlog-enroll";
pub const ENROLL_DLQ: &str = "fleetlog-enroll-dlq";
pub const ENROLLMENT_TABLE: &str = "fleetlog-enrollments";
/// fleetlog's SSM Command document, named as the stack names it (`{stack}-agent`, stack `fleetlog`).
pub const AGENT_DOCUMENT: &str = "fleetlog-agent";
pub const BUCKET: &str = "fleetlog-logs";
/// The stack name the local deployment's resources are named after.
pub const STACK: &str = "fleetlog";
/// A central stack's destination, named as the stack names it (`{stack}-logs`).
pub const DESTINATION: &str = "fleetlog-logs";
/// The subscription filters' destination. In AWS this stream runs the ETL as its transformation;
/// the emulator cannot, so it lands raw payloads under `raw/` for [`LogPump`].
pub const RAW_STREAM: &str = "fleetlog-subscriptions";
pub const RAW_PREFIX: &str = "raw/";
/// Where the subscription-target handler (which puts its records itself) delivers, under
/// [`LOGS_PREFIX`] unpartitioned; [`LogPump`] stores the transformation's records by partition.
pub const PROCESSED_STREAM: &str = "fleetlog-records";
pub use fleetlog_core::schema::LOGS_PREFIX;
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
/// The management tag the local deployment uses: the enroller's default (a test holds them equal).
pub const MANAGEMENT_TAG: (&str, &str) = ("fleetlog:managed", "true");
/// The account name the local log group prefix is built from.
pub const LOCAL_ACCOUNT_NAME: &str = "fleetlog local";

/// (rule name, pattern) for every rule that targets the enroll queue.
pub fn enroll_rules() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("fleetlog-ec2-state", state_change_rule_pattern()),
        (
            "fleetlog-ec2-tags",
            tag_change_rule_pattern(&[
                MANAGEMENT_TAG.0,
                enroller_default("FLEETLOG_PROFILE_TAG_KEY"),
                enroller_default("FLEETLOG_APPLICATION_TAG_KEY"),
                enroller_default("FLEETLOG_OWNER_TAG_KEY"),
            ]),
        ),
        ("fleetlog-requests", reconcile_request_rule_pattern()),
        ("fleetlog-command-outcomes", command_outcome_rule_pattern(AGENT_DOCUMENT)),
        // A member's: the local stack plays the central account and its member at once.
        ("fleetlog-logs-seen", logs_seen_rule_pattern()),
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
    pub async fn deploy(config: &SdkConfig) -> Result<Self, LocalError> {
        let clients = Clients::new(config);
        let events = aws_sdk_eventbridge::Client::new(config);
        let s3 = fleetlog_aws::s3::client(config);
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
                .map_err(|e| classify("events:PutRule", e))?;
            let target = aws_sdk_eventbridge::types::Target::builder()
                .id("enroll-queue")
                .arn(&queue_arn)
                .build()
                .map_err(|e| LocalError::Unexpected(format!("EventBridge target: {e}")))?;
            events
                .put_targets()
                .rule(rule)
                .targets(target)
                .send()
                .await
                .map_err(|e| classify("events:PutTargets", e))?;
        }

        create_agent_document(&clients.ssm).await?;
        fleetlog_aws::store::EnrollmentStore::new(clients.dynamodb.clone(), ENROLLMENT_TABLE)
            .create_table_if_missing()
            .await?;

        match s3.create_bucket().bucket(BUCKET).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
            Err(e) => return Err(classify("s3:CreateBucket", e).into()),
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

    /// A central stack's CloudWatch Logs destination in front of the subscriptions stream, named as
    /// the stack names it (`{stack}-logs`), admitting `members`; its ARN. The emulator is one
    /// account, so "members" subscribe from the account that owns it.
    pub async fn create_destination(&self, members: &[&str]) -> Result<String, LocalError> {
        let logs = &self.clients.logs;
        let created = logs
            .put_destination()
            .destination_name(DESTINATION)
            .target_arn(&self.raw_stream_arn)
            .role_arn(SUBSCRIPTION_ROLE_ARN)
            .send()
            .await
            .map_err(|e| classify("logs:PutDestination", e))?;
        let arn = created
            .destination()
            .and_then(|d| d.arn())
            .map(str::to_owned)
            .ok_or_else(|| LocalError::Unexpected("PutDestination returned no ARN".into()))?;
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "AWS": members },
                "Action": ["logs:PutSubscriptionFilter", "logs:PutAccountPolicy"],
                "Resource": arn,
            }]
        });
        logs.put_destination_policy()
            .destination_name(DESTINATION)
            .access_policy(policy.to_string())
            .send()
            .await
            .map_err(|e| classify("logs:PutDestinationPolicy", e))?;
        Ok(arn)
    }

    /// account-policy mode: the account's subscription filter policy, as the stack's
    /// `AccountSubscriptionPolicy` makes it, delivering every group but fleetlog's own to the
    /// subscriptions stream.
    pub async fn put_account_policy(&self) -> Result<(), LocalError> {
        use fleetlog_core::account_policy::{POLICY_NAME, own_log_groups, policy_document, selection_criteria};
        let document = policy_document(&self.raw_stream_arn, Some(SUBSCRIPTION_ROLE_ARN), "");
        self.clients
            .logs
            .put_account_policy()
            .policy_name(POLICY_NAME)
            .policy_type(aws_sdk_cloudwatchlogs::types::PolicyType::SubscriptionFilterPolicy)
            .scope(aws_sdk_cloudwatchlogs::types::Scope::All)
            .selection_criteria(selection_criteria(&own_log_groups(STACK)))
            .policy_document(document.to_string())
            .send()
            .await
            .map_err(|e| classify("logs:PutAccountPolicy", e))?;
        Ok(())
    }

    /// How configs are rendered and checked for this deployment (the enroller's defaults).
    pub fn rendering(&self) -> Rendering {
        Rendering::new(enroller_default("FLEETLOG_CONFIG_PARAMETER_PREFIX"), &self.log_group_prefix, &[])
    }

    /// The enroller, configured as the stack configures it (plus `overrides`), on `clients`.
    pub fn enroller(&self, overrides: &[(&str, &str)], clients: Clients) -> Result<Enroller, LocalError> {
        let mut env = self.enroller_env();
        env.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let settings = EnrollerSettings::from_lookup(|k| env.get(k).cloned())?;
        Ok(Enroller::new(settings, clients))
    }

    /// Launches `count` instances of the platform with the tags, returning their ids.
    pub async fn launch(
        &self,
        platform: Platform,
        tags: &[(&str, &str)],
        count: i32,
    ) -> Result<Vec<String>, LocalError> {
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
            let out = request.send().await.map_err(|e| classify("ec2:RunInstances", e))?;
            ids.extend(out.instances().iter().filter_map(|i| i.instance_id().map(str::to_owned)));
        }
        Ok(ids)
    }

    /// Puts events (as AWS would emit them) on the default bus.
    pub async fn put_events(&self, events: &[serde_json::Value]) -> Result<(), LocalError> {
        Ok(fleetlog_aws::events::put_events(&self.events, events).await?)
    }

    /// Stands in for Run Command's status-change events, which the emulator does not emit: puts on the
    /// bus one "EC2 Command Invocation Status-change Notification" per invocation of fleetlog's
    /// document that has reached a final status since the last call. Returns how many.
    pub async fn report_command_outcomes(&self) -> Result<usize, LocalError> {
        let mut events = Vec::new();
        for invocation in fleetlog_aws::ssm::list_invocations(&self.clients.ssm, None).await? {
            let status = invocation.status.as_str();
            if invocation.document != AGENT_DOCUMENT || !FORWARDED_COMMAND_STATUSES.contains(&status) {
                continue;
            }
            let first = self.reported_commands.lock().map_or(true, |mut reported| {
                reported.insert((invocation.command_id.clone(), invocation.instance_id.clone()))
            });
            if first {
                events.push(command_invocation_event(
                    &invocation.instance_id,
                    &invocation.command_id,
                    AGENT_DOCUMENT,
                    status,
                    ACCOUNT,
                    REGION,
                ));
            }
        }
        self.put_events(&events).await?;
        Ok(events.len())
    }

    /// [`LocalStack::report_command_outcomes`] until `expected` outcomes have been reported (the
    /// emulator finishes a command a moment after it is sent); an error after `timeout`. Returns how
    /// many were reported.
    pub async fn await_command_outcomes(
        &self,
        expected: usize,
        timeout: std::time::Duration,
    ) -> Result<usize, LocalError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut reported = self.report_command_outcomes().await?;
        while reported < expected {
            if std::time::Instant::now() > deadline {
                return Err(LocalError::Unexpected(format!(
                    "only {reported} of {expected} agent commands reported an outcome"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            reported += self.report_command_outcomes().await?;
        }
        Ok(reported)
    }

    /// Messages visible on a queue (SQS's approximate count).
    pub async fn visible_messages(&self, queue_url: &str) -> Result<usize, LocalError> {
        let count =
            queue_attribute(&self.clients.sqs, queue_url, QueueAttributeName::ApproximateNumberOfMessages).await?;
        Ok(count.and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    pub fn etl_state(&self) -> EtlState {
        EtlState {
            firehose: self.firehose.clone(),
            kinesis: aws_sdk_kinesis::Client::new(&self.config),
            s3: self.s3.clone(),
            region: REGION.to_owned(),
            delivery_stream: Some(PROCESSED_STREAM.to_owned()),
            retry: RetryPolicy::default(),
            // The CLI's own output is on stdout.
            metrics: MetricsOutput::Stderr,
            destination: fleetlog_etl::records::Destination::default(),
            splunk_stream: None,
            fan_out_stream: None,
            sightings: Some(Arc::new(SightingReports::new(
                self.clients.sqs.clone(),
                self.queue_url.clone(),
                fleetlog_core::freshness::DEFAULT_FRESHNESS_WINDOW,
            ))),
            // Instances' applications as the local enroller recorded their tags.
            applications: Arc::new(ApplicationSource::new(
                self.s3.clone(),
                Some(fleetlog_aws::store::EnrollmentStore::new(self.clients.dynamodb.clone(), ENROLLMENT_TABLE)),
                None,
            )),
            access_metrics: true,
        }
    }

    /// Writes the lines, timed just before now, into the group's stream named after the instance, as
    /// the CloudWatch agent does (the emulator runs no agent).
    pub async fn write_agent_logs(&self, group: &str, instance_id: &str, lines: &[String]) -> Result<(), LocalError> {
        let logs = &self.clients.logs;
        match logs.create_log_stream().log_group_name(group).log_stream_name(instance_id).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_already_exists_exception()) => {}
            Err(e) => return Err(classify("logs:CreateLogStream", e).into()),
        }
        let now = chrono::Utc::now().timestamp_millis();
        let events: Vec<InputLogEvent> = lines
            .iter()
            .zip((1..=lines.len()).rev())
            .map(|(message, age)| {
                InputLogEvent::builder()
                    .timestamp(now - i64::try_from(age).unwrap_or(i64::MAX))
                    .message(message)
                    .build()
            })
            .collect::<Result<_, _>>()
            .map_err(|e| LocalError::Unexpected(format!("log event: {e}")))?;
        logs.put_log_events()
            .log_group_name(group)
            .log_stream_name(instance_id)
            .set_log_events(Some(events))
            .send()
            .await
            .map_err(|e| classify("logs:PutLogEvents", e))?;
        Ok(())
    }
}

/// fleetlog's Command document, as the stack creates it ([`fleetlog_core::commands::agent_document`]).
async fn create_agent_document(ssm: &aws_sdk_ssm::Client) -> Result<(), LocalError> {
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
        Err(e) => Err(classify("ssm:CreateDocument", e).into()),
    }
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, LocalError> {
    let out = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| classify("sqs:CreateQueue", e))?;
    out.queue_url().map(str::to_owned).ok_or_else(|| LocalError::Unexpected("CreateQueue returned no queue URL".into()))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, LocalError> {
    queue_attribute(sqs, url, QueueAttributeName::QueueArn)
        .await?
        .ok_or_else(|| LocalError::Unexpected(format!("queue {url} has no ARN")))
}

/// One attribute of a queue, if SQS reports it.
async fn queue_attribute(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    name: QueueAttributeName,
) -> Result<Option<String>, LocalError> {
    let mut out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .map_err(|e| classify("sqs:GetQueueAttributes", e))?;
    Ok(out.attributes.as_mut().and_then(|attributes| attributes.remove(&name)))
}

/// A DirectPut stream to the log bucket under a static prefix (the emulator cannot evaluate the
/// stack's `dt=!{partitionKeyFromLambda:dt}` prefixes).
async fn ensure_delivery_stream(
    firehose: &aws_sdk_firehose::Client,
    name: &str,
    prefix: &str,
) -> Result<String, LocalError> {
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
        .map_err(|e| LocalError::Unexpected(format!("Firehose destination: {e}")))?;
    let created = firehose
        .create_delivery_stream()
        .delivery_stream_name(name)
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(destination)
        .send()
        .await
        .map_err(|e| classify("firehose:CreateDeliveryStream", e))?;
    created
        .delivery_stream_arn()
        .map(str::to_owned)
        .ok_or_else(|| LocalError::Unexpected("CreateDeliveryStream returned no ARN".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_management_tag_is_the_enrollers_default() {
        assert_eq!(
            MANAGEMENT_TAG,
            (enroller_default("FLEETLOG_MANAGEMENT_TAG_KEY"), enroller_default("FLEETLOG_MANAGEMENT_TAG_VALUE"))
        );
    }
}
