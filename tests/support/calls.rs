//! Counts the AWS API calls a client makes (operations, not retry attempts), and records what IAM
//! would authorise for each of them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use fleetlog_aws::Clients;

use crate::{ACCOUNT, REGION, iam};

#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, usize>>>);

impl CallCounter {
    /// Calls per `service:Operation`.
    pub fn snapshot(&self) -> BTreeMap<String, usize> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn total(&self) -> usize {
        self.snapshot().values().sum()
    }

    pub fn reset(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }

    /// The enroller's clients, every call counted and its authorisations recorded.
    pub fn clients(&self, config: &SdkConfig, recorder: &CallRecorder) -> Clients {
        macro_rules! counted {
            ($sdk:ident) => {
                $sdk::Client::from_conf(
                    $sdk::config::Builder::from(config).interceptor(self.clone()).interceptor(recorder.clone()).build(),
                )
            };
        }
        Clients {
            ec2: counted!(aws_sdk_ec2),
            ssm: counted!(aws_sdk_ssm),
            logs: counted!(aws_sdk_cloudwatchlogs),
            cloudwatch: counted!(aws_sdk_cloudwatch),
            dynamodb: counted!(aws_sdk_dynamodb),
            sqs: counted!(aws_sdk_sqs),
        }
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(metadata), Ok(mut calls)) = (cfg.load::<Metadata>(), self.0.lock()) {
            *calls.entry(format!("{}:{}", metadata.service(), metadata.name())).or_default() += 1;
        }
        Ok(())
    }
}

/// The tags each instance has now, as the fixture set them: what `ssm:resourceTag/…` reads when a
/// command is sent.
pub type InstanceTags = Arc<Mutex<BTreeMap<String, BTreeMap<String, String>>>>;

/// Records, for every call a client makes, the requests IAM authorises for it ([`iam::Request`]).
#[derive(Debug, Clone, Default)]
pub struct CallRecorder {
    requests: Arc<Mutex<Vec<iam::Request>>>,
    pub tags: InstanceTags,
}

impl CallRecorder {
    /// A recorder that reads and writes the same instance tags as `other` (one account's instances).
    pub fn sharing_tags(other: &CallRecorder) -> Self {
        Self { requests: Arc::default(), tags: other.tags.clone() }
    }

    pub fn requests(&self) -> Vec<iam::Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "CallRecorder"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        track_tags(context.input(), &self.tags);
        let tags = self.tags.lock().map(|t| t.clone()).unwrap_or_default();
        let operation = cfg.load::<Metadata>().map(|m| format!("{}:{}", m.service(), m.name())).unwrap_or_default();
        let found = authorisations(context.input(), &tags)
            .unwrap_or_else(|| vec![iam::Request::new(&format!("unmodelled:{operation}"), "*")]);
        if let Ok(mut requests) = self.requests.lock() {
            requests.extend(found);
        }
        Ok(())
    }
}

/// Tags a recorded client sets or removes change what later conditions read.
fn track_tags(input: &aws_smithy_runtime_api::client::interceptors::context::Input, tags: &InstanceTags) {
    let Ok(mut known) = tags.lock() else { return };
    if let Some(i) = input.downcast_ref::<aws_sdk_ec2::operation::create_tags::CreateTagsInput>() {
        for id in i.resources() {
            let entry = known.entry(id.clone()).or_default();
            for tag in i.tags() {
                entry.insert(tag.key().unwrap_or_default().to_owned(), tag.value().unwrap_or_default().to_owned());
            }
        }
    }
    if let Some(i) = input.downcast_ref::<aws_sdk_ec2::operation::delete_tags::DeleteTagsInput>() {
        for id in i.resources() {
            let entry = known.entry(id.clone()).or_default();
            for tag in i.tags() {
                entry.remove(tag.key().unwrap_or_default());
            }
        }
    }
}

const ARN: &str = "arn:aws";

fn logs_group(name: &str) -> String {
    // CloudWatch Logs authorises group actions on the group's stream space (AccessDenied messages
    // name "…:log-group:NAME:log-stream:"), so a grant on the bare group ARN does not cover them.
    format!("{ARN}:logs:{REGION}:{ACCOUNT}:log-group:{name}:log-stream:")
}

fn queue_arn(url: &str) -> String {
    let name = url.rsplit('/').next().unwrap_or_default();
    format!("{ARN}:sqs:{REGION}:{ACCOUNT}:{name}")
}

fn table_arn(name: &str) -> String {
    format!("{ARN}:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
}

/// The KMS use a call on an encrypted queue or table implies (the stack encrypts both with its key).
fn via(service: &str, actions: &[&str]) -> Vec<iam::Request> {
    actions
        .iter()
        .map(|a| {
            iam::Request::new(a, iam::STACK_KEY_ARN).with("kms:ViaService", format!("{service}.{REGION}.amazonaws.com"))
        })
        .collect()
}

/// The requests IAM authorises for one SDK call; `None` for an operation not modelled here.
fn authorisations(
    input: &aws_smithy_runtime_api::client::interceptors::context::Input,
    tags: &BTreeMap<String, BTreeMap<String, String>>,
) -> Option<Vec<iam::Request>> {
    use iam::Request as R;
    macro_rules! input {
        ($ty:ty) => {
            input.downcast_ref::<$ty>()
        };
    }
    use aws_sdk_cloudwatch::operation as cw;
    use aws_sdk_cloudwatchlogs::operation as logs;
    use aws_sdk_dynamodb::operation as ddb;
    use aws_sdk_sqs::operation as sqs;
    use aws_sdk_ssm::operation as ssm;

    if input!(aws_sdk_ec2::operation::describe_instances::DescribeInstancesInput).is_some() {
        return Some(vec![R::new("ec2:DescribeInstances", "*")]);
    }
    if let Some(i) = input!(ssm::send_command::SendCommandInput) {
        let document = i.document_name().unwrap_or_default();
        let owner = if document.starts_with("AWS-") { "" } else { ACCOUNT };
        let mut out = vec![R::new("ssm:SendCommand", format!("{ARN}:ssm:{REGION}:{owner}:document/{document}"))];
        for id in i.instance_ids() {
            let mut request = R::new("ssm:SendCommand", format!("{ARN}:ec2:{REGION}:{ACCOUNT}:instance/{id}"));
            for (k, v) in tags.get(id).into_iter().flatten() {
                request = request.with(&format!("ssm:resourceTag/{k}"), v.clone());
            }
            out.push(request);
        }
        return Some(out);
    }
    if let Some(i) = input!(ssm::get_parameters::GetParametersInput) {
        let name = |n: &String| format!("{ARN}:ssm:{REGION}:{ACCOUNT}:parameter/{n}");
        return Some(i.names().iter().map(|n| R::new("ssm:GetParameters", name(n))).collect());
    }
    if let Some(i) = input!(logs::create_log_group::CreateLogGroupInput) {
        let group = logs_group(i.log_group_name().unwrap_or_default());
        let mut out = vec![R::new("logs:CreateLogGroup", group.clone())];
        // Tags on create need logs:TagResource too, authorised on the bare group ARN (CreateLogGroup's
        // API reference; AccessDenied messages name "…:log-group:NAME").
        if i.tags().is_some_and(|t| !t.is_empty()) {
            let bare = format!("{ARN}:logs:{REGION}:{ACCOUNT}:log-group:{}", i.log_group_name().unwrap_or_default());
            out.push(R::new("logs:TagResource", bare));
        }
        if i.kms_key_id().is_some() {
            out.push(R::new("logs:AssociateKmsKey", group));
        }
        return Some(out);
    }
    if let Some(i) = input!(logs::put_retention_policy::PutRetentionPolicyInput) {
        return Some(vec![R::new("logs:PutRetentionPolicy", logs_group(i.log_group_name().unwrap_or_default()))]);
    }
    if let Some(i) = input!(logs::associate_kms_key::AssociateKmsKeyInput) {
        return Some(vec![R::new("logs:AssociateKmsKey", logs_group(i.log_group_name().unwrap_or_default()))]);
    }
    if let Some(i) = input!(logs::describe_subscription_filters::DescribeSubscriptionFiltersInput) {
        let group = logs_group(i.log_group_name().unwrap_or_default());
        return Some(vec![R::new("logs:DescribeSubscriptionFilters", group)]);
    }
    if let Some(i) = input!(logs::start_live_tail::StartLiveTailInput) {
        // Needs logs:StartLiveTail (AWS CLI reference, `logs start-live-tail`), asked here of each log
        // group the session names; the operator policy grants it on fleetlog's groups only.
        return Some(i.log_group_identifiers().iter().map(|arn| R::new("logs:StartLiveTail", arn.clone())).collect());
    }
    if let Some(i) = input!(logs::filter_log_events::FilterLogEventsInput) {
        return Some(vec![R::new("logs:FilterLogEvents", logs_group(i.log_group_name().unwrap_or_default()))]);
    }
    if let Some(i) = input!(logs::put_subscription_filter::PutSubscriptionFilterInput) {
        let mut out = vec![R::new("logs:PutSubscriptionFilter", logs_group(i.log_group_name().unwrap_or_default()))];
        // A Logs destination (another account's) is authorised too: cross-account, the sender's own
        // policy must allow the destination (CloudWatch Logs User Guide, "Step 3: Add/validate IAM
        // permissions for the cross-account destination").
        if let Some(destination) = i.destination_arn().filter(|arn| arn.contains(":destination:")) {
            out.push(R::new("logs:PutSubscriptionFilter", destination));
        }
        // Any destination but Lambda needs iam:PassRole on the role (PutSubscriptionFilter's API
        // reference), and the request carries no iam:PassedToService
        // (aws-cloudformation/cloudformation-coverage-roadmap issue 1784).
        if let Some(role) = i.role_arn() {
            out.push(R::new("iam:PassRole", role));
        }
        return Some(out);
    }
    if let Some(i) = input!(logs::delete_subscription_filter::DeleteSubscriptionFilterInput) {
        return Some(vec![R::new("logs:DeleteSubscriptionFilter", logs_group(i.log_group_name().unwrap_or_default()))]);
    }
    if input!(logs::describe_account_policies::DescribeAccountPoliciesInput).is_some() {
        // No resource-level permissions (Service Authorization Reference): "*" only.
        return Some(vec![R::new("logs:DescribeAccountPolicies", "*")]);
    }
    if input!(logs::describe_log_groups::DescribeLogGroupsInput).is_some() {
        // An action without resource-level permissions: only a statement on "*" grants it (the
        // Service Authorization Reference lists no resource type for it).
        return Some(vec![R::new("logs:DescribeLogGroups", "*")]);
    }
    let alarm = |name: &str| format!("{ARN}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}");
    if let Some(i) = input!(cw::put_metric_alarm::PutMetricAlarmInput) {
        return Some(vec![R::new("cloudwatch:PutMetricAlarm", alarm(i.alarm_name().unwrap_or_default()))]);
    }
    if let Some(i) = input!(cw::delete_alarms::DeleteAlarmsInput) {
        return Some(i.alarm_names().iter().map(|n| R::new("cloudwatch:DeleteAlarms", alarm(n))).collect());
    }
    if input!(cw::describe_alarms::DescribeAlarmsInput).is_some() {
        // Authorised on every alarm, whatever the prefix asked for (AccessDenied messages name
        // "…:alarm:*"; aws-samples/amazon-cloudwatch-auto-alarms issue 1).
        return Some(vec![R::new("cloudwatch:DescribeAlarms", alarm("*"))]);
    }
    let table = |action: &str, name: Option<&str>| {
        let mut out = vec![R::new(action, table_arn(name.unwrap_or_default()))];
        out.extend(via("dynamodb", &["kms:Decrypt"]));
        Some(out)
    };
    if let Some(i) = input!(ddb::get_item::GetItemInput) {
        return table("dynamodb:GetItem", i.table_name());
    }
    if let Some(i) = input!(ddb::put_item::PutItemInput) {
        return table("dynamodb:PutItem", i.table_name());
    }
    if let Some(i) = input!(ddb::update_item::UpdateItemInput) {
        return table("dynamodb:UpdateItem", i.table_name());
    }
    if let Some(i) = input!(ddb::delete_item::DeleteItemInput) {
        return table("dynamodb:DeleteItem", i.table_name());
    }
    if let Some(i) = input!(ddb::scan::ScanInput) {
        return table("dynamodb:Scan", i.table_name());
    }
    if let Some(i) = input!(ddb::batch_get_item::BatchGetItemInput) {
        let names: Vec<&String> = i.request_items().map(|m| m.keys().collect()).unwrap_or_default();
        let mut out: Vec<R> = names.iter().map(|n| R::new("dynamodb:BatchGetItem", table_arn(n))).collect();
        out.extend(via("dynamodb", &["kms:Decrypt"]));
        return Some(out);
    }
    let queue = |action: &str, url: Option<&str>, kms: &[&str]| {
        let mut out = vec![R::new(action, queue_arn(url.unwrap_or_default()))];
        out.extend(via("sqs", kms));
        Some(out)
    };
    if let Some(i) = input!(sqs::receive_message::ReceiveMessageInput) {
        return queue("sqs:ReceiveMessage", i.queue_url(), &["kms:Decrypt"]);
    }
    if let Some(i) = input!(sqs::send_message::SendMessageInput) {
        return queue("sqs:SendMessage", i.queue_url(), &["kms:GenerateDataKey", "kms:Decrypt"]);
    }
    // SQS authorises its batch actions by the single ones.
    if let Some(i) = input!(sqs::send_message_batch::SendMessageBatchInput) {
        return queue("sqs:SendMessage", i.queue_url(), &["kms:GenerateDataKey", "kms:Decrypt"]);
    }
    if let Some(i) = input!(sqs::delete_message::DeleteMessageInput) {
        return queue("sqs:DeleteMessage", i.queue_url(), &[]);
    }
    if let Some(i) = input!(sqs::delete_message_batch::DeleteMessageBatchInput) {
        return queue("sqs:DeleteMessage", i.queue_url(), &[]);
    }
    if let Some(i) = input!(sqs::change_message_visibility::ChangeMessageVisibilityInput) {
        return queue("sqs:ChangeMessageVisibility", i.queue_url(), &[]);
    }
    if let Some(i) = input!(sqs::change_message_visibility_batch::ChangeMessageVisibilityBatchInput) {
        return queue("sqs:ChangeMessageVisibility", i.queue_url(), &[]);
    }
    if let Some(i) = input!(sqs::get_queue_attributes::GetQueueAttributesInput) {
        return queue("sqs:GetQueueAttributes", i.queue_url(), &[]);
    }
    // The CLI's calls.
    let instance = |id: &String| format!("{ARN}:ec2:{REGION}:{ACCOUNT}:instance/{id}");
    if let Some(i) = input!(aws_sdk_ec2::operation::create_tags::CreateTagsInput) {
        return Some(i.resources().iter().map(|id| R::new("ec2:CreateTags", instance(id))).collect());
    }
    if let Some(i) = input!(aws_sdk_ec2::operation::delete_tags::DeleteTagsInput) {
        return Some(i.resources().iter().map(|id| R::new("ec2:DeleteTags", instance(id))).collect());
    }
    if let Some(i) = input!(aws_sdk_eventbridge::operation::put_events::PutEventsInput) {
        let default = format!("{ARN}:events:{REGION}:{ACCOUNT}:event-bus/default");
        // events:source and events:detail-type are checked per entry, on the bus it names (an ARN
        // names another account's).
        return Some(
            i.entries()
                .iter()
                .map(|e| {
                    let bus = match e.event_bus_name() {
                        Some(arn) if arn.starts_with("arn:") => arn.to_owned(),
                        Some(name) => format!("{ARN}:events:{REGION}:{ACCOUNT}:event-bus/{name}"),
                        None => default.clone(),
                    };
                    R::new("events:PutEvents", bus)
                        .with("events:source", e.source().unwrap_or_default())
                        .with("events:detail-type", e.detail_type().unwrap_or_default())
                })
                .collect(),
        );
    }
    if let Some(i) = input!(aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksInput) {
        // Authorised on the stack's id, `stack/NAME/UUID`.
        let stack = i.stack_name().unwrap_or_default();
        let id = format!("{ARN}:cloudformation:{REGION}:{ACCOUNT}:stack/{stack}/1b2c3d4e-0000-4000-8000-000000000000");
        return Some(vec![R::new("cloudformation:DescribeStacks", id)]);
    }
    let parameter = |name: Option<&str>| format!("{ARN}:ssm:{REGION}:{ACCOUNT}:parameter/{}", name.unwrap_or_default());
    if let Some(i) = input!(ssm::get_parameter::GetParameterInput) {
        return Some(vec![R::new("ssm:GetParameter", parameter(i.name()))]);
    }
    if let Some(i) = input!(ssm::put_parameter::PutParameterInput) {
        return Some(vec![R::new("ssm:PutParameter", parameter(i.name()))]);
    }
    // Neither takes a resource-level permission.
    if input!(ssm::list_command_invocations::ListCommandInvocationsInput).is_some() {
        return Some(vec![R::new("ssm:ListCommandInvocations", "*")]);
    }
    if input!(ssm::describe_instance_information::DescribeInstanceInformationInput).is_some() {
        return Some(vec![R::new("ssm:DescribeInstanceInformation", "*")]);
    }
    if let Some(i) = input!(aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Input) {
        return Some(vec![R::new("s3:ListBucket", format!("{ARN}:s3:::{}", i.bucket().unwrap_or_default()))]);
    }
    if let Some(i) = input!(aws_sdk_s3::operation::head_object::HeadObjectInput) {
        // HeadObject is authorised as s3:GetObject (S3 API reference, HeadObject).
        let object = format!("{ARN}:s3:::{}/{}", i.bucket().unwrap_or_default(), i.key().unwrap_or_default());
        return Some(vec![R::new("s3:GetObject", object)]);
    }
    if let Some(i) = input!(aws_sdk_s3::operation::restore_object::RestoreObjectInput) {
        let object = format!("{ARN}:s3:::{}/{}", i.bucket().unwrap_or_default(), i.key().unwrap_or_default());
        return Some(vec![R::new("s3:RestoreObject", object)]);
    }
    if let Some(i) = input!(aws_sdk_s3::operation::get_object::GetObjectInput) {
        let object = format!("{ARN}:s3:::{}/{}", i.bucket().unwrap_or_default(), i.key().unwrap_or_default());
        let mut out = vec![R::new("s3:GetObject", object)];
        out.extend(via("s3", &["kms:Decrypt"]));
        return Some(out);
    }
    if let Some(i) = input!(aws_sdk_firehose::operation::put_record_batch::PutRecordBatchInput) {
        let stream = i.delivery_stream_name().unwrap_or_default();
        return Some(vec![R::new(
            "firehose:PutRecordBatch",
            format!("{ARN}:firehose:{REGION}:{ACCOUNT}:deliverystream/{stream}"),
        )]);
    }
    if let Some(i) = input!(aws_sdk_kinesis::operation::put_records::PutRecordsInput) {
        // The stack's stream is KMS-encrypted: a producer needs a data key through Kinesis.
        let mut out = vec![R::new("kinesis:PutRecords", i.stream_arn().unwrap_or_default())];
        out.extend(via("kinesis", &["kms:GenerateDataKey"]));
        return Some(out);
    }
    None
}
