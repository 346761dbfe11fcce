//! Paths the emulator cannot serve, at request level (aws-smithy-mocks): SSM readiness (the emulator
//! accepts any instance id), agent commands that fail and status events that are lost (the emulator
//! runs every command to Success), throttling that outlasts the SDK's retries, and 5xx answers that
//! the SDK's retries absorb.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_cloudwatchlogs::types::{LogGroup, SubscriptionFilter};
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ec2::operation::describe_instances::{DescribeInstancesError, DescribeInstancesOutput};
use aws_sdk_ec2::types::{Instance, InstanceState, InstanceStateName, Reservation, Tag};
use aws_sdk_ssm::operation::get_parameters::GetParametersOutput;
use aws_sdk_ssm::operation::list_command_invocations::ListCommandInvocationsOutput;
use aws_sdk_ssm::operation::send_command::SendCommandError;
use aws_sdk_ssm::types::{CommandInvocation, CommandInvocationStatus, CommandPlugin, CommandPluginStatus, Parameter};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use fleetlog_aws::Clients;
use fleetlog_core::record::{EnrollmentRecord, EnrollmentStatus};
use fleetlog_core::settings::EnrollerSettings;
use fleetlog_enroller::outcome::Outcome;
use fleetlog_enroller::{Enroller, State, Work, handle_sqs};

const ID: &str = "i-0123456789abcdef0";
const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:fleetlog-enroll";
const QUEUE_URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/fleetlog-enroll";
const DLQ_URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/fleetlog-enroll-dlq";
const CONFIG: &str = r#"{"logs": {"logs_collected": {"files": {"collect_list": [
    {"file_path": "/var/log/messages", "log_group_name": "G/system", "log_stream_name": "{instance_id}"}]}}}}"#;

fn settings() -> EnrollerSettings {
    let env = HashMap::from([
        ("FLEETLOG_ENROLLMENT_TABLE", "t"),
        ("FLEETLOG_AGENT_DOCUMENT", "fleetlog-agent"),
        ("FLEETLOG_LOG_GROUP_PREFIX", "G"),
        ("FLEETLOG_SUBSCRIPTION_DESTINATION_ARN", "arn:aws:lambda:us-east-1:123456789012:function:etl"),
        ("FLEETLOG_DEAD_LETTER_QUEUE_URL", DLQ_URL),
    ]);
    EnrollerSettings::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap()
}

fn running_tagged_instance() -> DescribeInstancesOutput {
    DescribeInstancesOutput::builder()
        .reservations(
            Reservation::builder()
                .instances(
                    Instance::builder()
                        .instance_id(ID)
                        .state(InstanceState::builder().name(InstanceStateName::Running).build())
                        .tags(Tag::builder().key("fleetlog:managed").value("true").build())
                        .build(),
                )
                .build(),
        )
        .build()
}

fn describe_ok() -> Rule {
    mock!(aws_sdk_ec2::Client::describe_instances).then_output(running_tagged_instance)
}

/// Everything around SendCommand succeeds; `send_command` decides the SSM answer.
fn clients(ec2: &[&Rule], send_command: &Rule, sqs: &[&Rule]) -> Clients {
    let get_parameters = mock!(aws_sdk_ssm::Client::get_parameters).then_output(|| {
        GetParametersOutput::builder()
            .parameters(Parameter::builder().name("AmazonCloudWatch-fleetlog-linux").value(CONFIG).version(1).build())
            .build()
    });
    let batch_get =
        mock!(aws_sdk_dynamodb::Client::batch_get_item).then_output(|| BatchGetItemOutput::builder().build());
    // Claims are granted, and released (the item held only the claim).
    let claim = mock!(aws_sdk_dynamodb::Client::update_item).then_output(|| UpdateItemOutput::builder().build());
    let release = mock!(aws_sdk_dynamodb::Client::delete_item).then_output(|| DeleteItemOutput::builder().build());
    let groups = mock!(aws_sdk_cloudwatchlogs::Client::describe_log_groups).then_output(|| {
        aws_sdk_cloudwatchlogs::operation::describe_log_groups::DescribeLogGroupsOutput::builder()
            .log_groups(LogGroup::builder().log_group_name("G/system").retention_in_days(3).build())
            .build()
    });
    let filters = mock!(aws_sdk_cloudwatchlogs::Client::describe_subscription_filters).then_output(|| {
        aws_sdk_cloudwatchlogs::operation::describe_subscription_filters::DescribeSubscriptionFiltersOutput::builder()
            .subscription_filters(
                SubscriptionFilter::builder()
                    .filter_name("fleetlog")
                    .filter_pattern("")
                    .destination_arn("arn:aws:lambda:us-east-1:123456789012:function:etl")
                    .build(),
            )
            .build()
    });
    let retry = |b: aws_sdk_ec2::config::Builder| {
        b.retry_config(
            aws_sdk_ec2::config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1)),
        )
    };
    Clients {
        ec2: mock_client!(aws_sdk_ec2, RuleMode::Sequential, ec2, retry),
        ssm: mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &[&get_parameters, send_command]),
        logs: mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, &[&groups, &filters]),
        cloudwatch: mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[] as &[&Rule]),
        dynamodb: mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&batch_get, &claim, &release]),
        sqs: mock_client!(aws_sdk_sqs, RuleMode::MatchAny, sqs),
    }
}

fn state_change_message(message_id: &str, first_received_ms_ago: i64, receive_count: u32) -> SqsMessage {
    let first = chrono::Utc::now().timestamp_millis() - first_received_ms_ago;
    let mut m = SqsMessage::default();
    m.message_id = Some(message_id.to_owned());
    m.receipt_handle = Some(format!("receipt-{message_id}"));
    m.body =
        Some(fleetlog_core::events::ec2_state_change_event(ID, "running", "123456789012", "us-east-1").to_string());
    m.event_source = Some("aws:sqs".to_owned());
    m.event_source_arn = Some(QUEUE_ARN.to_owned());
    m.attributes = HashMap::from([
        ("ApproximateFirstReceiveTimestamp".to_owned(), first.to_string()),
        ("ApproximateReceiveCount".to_owned(), receive_count.to_string()),
    ]);
    m
}

fn event(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = messages;
    e
}

fn not_registered() -> Rule {
    mock!(aws_sdk_ssm::Client::send_command).then_error(|| {
        SendCommandError::InvalidInstanceId(
            aws_sdk_ssm::types::error::InvalidInstanceId::builder()
                .message("Instances not in a valid state for account")
                .build(),
        )
    })
}

#[tokio::test]
async fn an_instance_not_yet_managed_by_ssm_is_retried_with_growing_backoff() {
    let describe = describe_ok();
    let send = not_registered();
    let url = mock!(aws_sdk_sqs::Client::get_queue_url)
        .match_requests(|r| {
            r.queue_name() == Some("fleetlog-enroll") && r.queue_owner_aws_account_id() == Some("123456789012")
        })
        .then_output(|| {
            aws_sdk_sqs::operation::get_queue_url::GetQueueUrlOutput::builder().queue_url(QUEUE_URL).build()
        });
    let visibility = mock!(aws_sdk_sqs::Client::change_message_visibility)
        .match_requests(|r| {
            r.queue_url() == Some(QUEUE_URL)
                && r.receipt_handle() == Some("receipt-m1")
                && r.visibility_timeout() == Some(120)
        })
        .then_output(|| {
            aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityOutput::builder().build()
        });
    let state = State::new(Enroller::new(settings(), clients(&[&describe], &send, &[&url, &visibility])));

    // Third receive, two minutes in: 30 s × 2² = 120 s.
    let response = handle_sqs(&state, event(vec![state_change_message("m1", 120_000, 3)]), None).await;

    let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["m1"], "the message goes back to the queue");
    assert_eq!(send.num_calls(), 1, "one SendCommand, no sleeping or polling in the Lambda");
    assert_eq!(visibility.num_calls(), 1, "the retry delay was set from the readiness policy");
}

#[tokio::test]
async fn an_instance_that_never_registers_is_dead_lettered_with_a_reason() {
    let describe = describe_ok();
    let send = not_registered();
    let dead_letter = mock!(aws_sdk_sqs::Client::send_message)
        .match_requests(|r| {
            r.queue_url() == Some(DLQ_URL)
                && r.message_body().is_some_and(|b| b.contains(ID))
                && r.message_attributes()
                    .and_then(|a| a.get("fleetlog-reason"))
                    .and_then(|v| v.string_value())
                    .is_some_and(|reason| reason.contains("never became SSM-managed within 960 s"))
        })
        .then_output(|| aws_sdk_sqs::operation::send_message::SendMessageOutput::builder().build());
    let state = State::new(Enroller::new(settings(), clients(&[&describe], &send, &[&dead_letter])));

    let response = handle_sqs(&state, event(vec![state_change_message("m1", 960_000, 9)]), None).await;

    assert!(response.batch_item_failures.is_empty(), "settled: it is on the DLQ");
    assert_eq!(dead_letter.num_calls(), 1);
}

#[tokio::test]
async fn a_dlq_outage_keeps_the_message_on_the_queue() {
    let describe = describe_ok();
    let send = not_registered();
    let dead_letter = mock!(aws_sdk_sqs::Client::send_message).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(500).unwrap(),
            aws_smithy_types::body::SdkBody::from("{}"),
        )
    });
    let state = State::new(Enroller::new(settings(), clients(&[&describe], &send, &[&dead_letter])));
    let response = handle_sqs(&state, event(vec![state_change_message("m1", 960_000, 9)]), None).await;
    assert_eq!(response.batch_item_failures.len(), 1, "nothing is lost when the DLQ cannot be written");
}

#[tokio::test]
async fn throttling_that_outlasts_retries_fails_the_whole_batch_for_redelivery() {
    let throttled = mock!(aws_sdk_ec2::Client::describe_instances)
        .sequence()
        .error(|| {
            DescribeInstancesError::generic(
                aws_sdk_ec2::error::ErrorMetadata::builder()
                    .code("RequestLimitExceeded")
                    .message("Request limit exceeded.")
                    .build(),
            )
        })
        .times(3)
        .build();
    let send = not_registered();
    let state = State::new(Enroller::new(settings(), clients(&[&throttled], &send, &[])));

    let response =
        handle_sqs(&state, event(vec![state_change_message("m1", 0, 1), state_change_message("m2", 0, 1)]), None).await;

    let mut failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    failed.sort();
    assert_eq!(failed, ["m1", "m2"]);
    assert_eq!(throttled.num_calls(), 3, "the SDK retried throttling before giving up");
    assert_eq!(send.num_calls(), 0);
}

#[tokio::test]
async fn server_errors_are_absorbed_by_sdk_retries() {
    let flaky = mock!(aws_sdk_ec2::Client::describe_instances)
        .sequence()
        .http_status(503, None)
        .times(2)
        .output(running_tagged_instance)
        .build();
    let send = not_registered();
    let url = mock!(aws_sdk_sqs::Client::get_queue_url).then_output(|| {
        aws_sdk_sqs::operation::get_queue_url::GetQueueUrlOutput::builder().queue_url(QUEUE_URL).build()
    });
    let visibility = mock!(aws_sdk_sqs::Client::change_message_visibility).then_output(|| {
        aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityOutput::builder().build()
    });
    let state = State::new(Enroller::new(settings(), clients(&[&flaky], &send, &[&url, &visibility])));

    handle_sqs(&state, event(vec![state_change_message("m1", 0, 1)]), None).await;

    assert_eq!(flaky.num_calls(), 3, "two 503s, then the answer");
    assert_eq!(send.num_calls(), 1, "the run went on to SendCommand after the retries");
}

// ----------------------------------------------------------------------------- command outcomes
// The emulator runs every command to Success; failures, their output and lost events are played here.

const DOCUMENT: &str = "fleetlog-agent";

fn record(status: EnrollmentStatus, attempts: u32, retry_at: Option<i64>) -> EnrollmentRecord {
    EnrollmentRecord {
        instance_id: ID.into(),
        status,
        platform: "linux".into(),
        config_parameter: "AmazonCloudWatch-fleetlog-linux".into(),
        config_version: 1,
        command_ids: vec!["cmd-1".into()],
        log_groups: vec!["G/system".into()],
        alarm_names: vec![],
        updated_at: "2026-12-01T00:00:00Z".into(),
        attempts,
        sent_at: Some(chrono::Utc::now().timestamp() - 60),
        retry_at,
        failure: None,
        last_log_at: None,
        application: None,
        owner: None,
    }
}

fn stored(record: &EnrollmentRecord) -> Rule {
    let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(record).unwrap();
    mock!(aws_sdk_dynamodb::Client::batch_get_item)
        .then_output(move || BatchGetItemOutput::builder().responses("t", vec![item.clone()]).build())
}

/// SSM's detailed answer for a command that failed in the `agentLinux` step.
fn failed_in_agent_linux() -> Rule {
    mock!(aws_sdk_ssm::Client::list_command_invocations)
        .match_requests(|r| r.command_id() == Some("cmd-1") && r.instance_id() == Some(ID) && r.details() == Some(true))
        .then_output(|| {
            let plugin = |name: &str, status: CommandPluginStatus, output: &str| {
                CommandPlugin::builder().name(name).status(status).output(output).build()
            };
            ListCommandInvocationsOutput::builder()
                .command_invocations(
                    CommandInvocation::builder()
                        .command_id("cmd-1")
                        .instance_id(ID)
                        .status(CommandInvocationStatus::Failed)
                        .command_plugins(plugin("installAgent", CommandPluginStatus::Success, "installed"))
                        .command_plugins(plugin(
                            "agentLinux",
                            CommandPluginStatus::Failed,
                            "E! ssm:AmazonCloudWatch-fleetlog-linux: ParameterNotFound",
                        ))
                        .command_plugins(plugin(
                            "agentWindows",
                            CommandPluginStatus::Success,
                            "Step execution skipped due to unsatisfied preconditions",
                        ))
                        .build(),
                )
                .build()
        })
}

fn outcome_message(status: &str, receive_count: u32) -> SqsMessage {
    let mut m = state_change_message("m1", 0, receive_count);
    m.body = Some(
        fleetlog_core::events::command_invocation_event(ID, "cmd-1", DOCUMENT, status, "123456789012", "us-east-1")
            .to_string(),
    );
    m
}

fn queue_url() -> Rule {
    mock!(aws_sdk_sqs::Client::get_queue_url).then_output(|| {
        aws_sdk_sqs::operation::get_queue_url::GetQueueUrlOutput::builder().queue_url(QUEUE_URL).build()
    })
}

fn outcome_clients(dynamodb: &[&Rule], ssm: &[&Rule], sqs: &[&Rule]) -> Clients {
    let ec2 = mock!(aws_sdk_ec2::Client::describe_instances).then_output(running_tagged_instance);
    let base = clients(&[&ec2], &not_registered(), sqs);
    Clients {
        ssm: mock_client!(aws_sdk_ssm, RuleMode::MatchAny, ssm),
        dynamodb: mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, dynamodb),
        ..base
    }
}

#[tokio::test]
async fn a_failed_configure_step_is_recorded_with_its_output_and_retried_after_a_wait() {
    let read = stored(&record(EnrollmentStatus::Enrolling, 1, None));
    let details = failed_in_agent_linux();
    let write = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|r| {
            let values = r.expression_attribute_values().unwrap();
            let failure = values[":failure"].as_m().unwrap();
            values[":status"] == AttributeValue::S("failed".into())
                && failure["step"] == AttributeValue::S("agentLinux".into())
                && failure["output"].as_s().is_ok_and(|o| o.contains("ParameterNotFound"))
                && values.contains_key(":retry")
                && r.condition_expression().is_some_and(|c| c.contains("contains(command_ids, :command)"))
        })
        .then_output(|| UpdateItemOutput::builder().build());
    let url = queue_url();
    let visibility = mock!(aws_sdk_sqs::Client::change_message_visibility)
        .match_requests(|r| r.receipt_handle() == Some("receipt-m1") && r.visibility_timeout() == Some(121))
        .then_output(|| {
            aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityOutput::builder().build()
        });
    let state =
        State::new(Enroller::new(settings(), outcome_clients(&[&read, &write], &[&details], &[&url, &visibility])));

    let response = handle_sqs(&state, event(vec![outcome_message("Failed", 1)]), None).await;

    assert_eq!(response.batch_item_failures.len(), 1, "the message comes back when the retry is due");
    assert_eq!((details.num_calls(), write.num_calls()), (1, 1), "the failed step was read and recorded");
    assert_eq!(visibility.num_calls(), 1, "two minutes (and a second) before the second attempt");
}

#[tokio::test]
async fn a_failure_whose_wait_is_over_is_sent_again_as_the_next_attempt() {
    let read = stored(&record(EnrollmentStatus::Failed, 1, Some(chrono::Utc::now().timestamp() - 1)));
    let claim = mock!(aws_sdk_dynamodb::Client::update_item).then_output(|| UpdateItemOutput::builder().build());
    let write = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| {
            let item = r.item().unwrap();
            item["status"] == AttributeValue::S("enrolling".into())
                && item["attempts"] == AttributeValue::N("2".into())
                && item["command_ids"] == AttributeValue::L(vec![AttributeValue::S("cmd-2".into())])
                && !item.contains_key("failure")
        })
        .then_output(|| aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build());
    let parameters = mock!(aws_sdk_ssm::Client::get_parameters).then_output(|| {
        GetParametersOutput::builder()
            .parameters(Parameter::builder().name("AmazonCloudWatch-fleetlog-linux").value(CONFIG).version(1).build())
            .build()
    });
    let send = mock!(aws_sdk_ssm::Client::send_command).then_output(|| {
        aws_sdk_ssm::operation::send_command::SendCommandOutput::builder()
            .command(aws_sdk_ssm::types::Command::builder().command_id("cmd-2").build())
            .build()
    });
    let mut clients = outcome_clients(&[&read, &claim, &write], &[&parameters, &send], &[]);
    let alarm = mock!(aws_sdk_cloudwatch::Client::put_metric_alarm)
        .then_output(|| aws_sdk_cloudwatch::operation::put_metric_alarm::PutMetricAlarmOutput::builder().build());
    clients.cloudwatch = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&alarm]);
    let state = State::new(Enroller::new(settings(), clients));

    let response = handle_sqs(&state, event(vec![outcome_message("Failed", 2)]), None).await;

    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(send.num_calls(), 1, "the configure command went out again");
    assert_eq!(write.num_calls(), 1, "recorded as attempt 2, enrolling, with the new command");
}

#[tokio::test]
async fn the_last_failed_attempt_leaves_the_instance_failed_and_dead_letters_the_step() {
    let read = stored(&record(EnrollmentStatus::Enrolling, 3, None));
    let details = failed_in_agent_linux();
    let write = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|r| {
            let values = r.expression_attribute_values().unwrap();
            values[":status"] == AttributeValue::S("failed".into())
                && !values.contains_key(":retry")
                && r.update_expression().is_some_and(|e| e.contains("REMOVE retry_at"))
        })
        .then_output(|| UpdateItemOutput::builder().build());
    let dead_letter = mock!(aws_sdk_sqs::Client::send_message)
        .match_requests(|r| {
            r.queue_url() == Some(DLQ_URL)
                && r.message_attributes()
                    .and_then(|a| a.get("fleetlog-reason"))
                    .and_then(|v| v.string_value())
                    .is_some_and(|reason| {
                        reason.contains("every attempt")
                            && reason.contains("step agentLinux")
                            && reason.contains("ParameterNotFound")
                    })
        })
        .then_output(|| aws_sdk_sqs::operation::send_message::SendMessageOutput::builder().build());
    let state = State::new(Enroller::new(settings(), outcome_clients(&[&read, &write], &[&details], &[&dead_letter])));

    let response = handle_sqs(&state, event(vec![outcome_message("Failed", 1)]), None).await;

    assert!(response.batch_item_failures.is_empty(), "settled: on the DLQ with its reason");
    assert_eq!((write.num_calls(), dead_letter.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_lost_status_event_is_recovered_by_the_sweep_asking_ssm() {
    // Enrolling for an hour: the Failed event never arrived.
    let overdue = EnrollmentRecord {
        sent_at: Some(chrono::Utc::now().timestamp() - 3600),
        ..record(EnrollmentStatus::Enrolling, 1, None)
    };
    let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&overdue).unwrap();
    let scan = mock!(aws_sdk_dynamodb::Client::scan)
        .then_output(move || aws_sdk_dynamodb::operation::scan::ScanOutput::builder().items(item.clone()).build());
    let details = failed_in_agent_linux();
    let write = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|r| r.expression_attribute_values().unwrap()[":status"] == AttributeValue::S("failed".into()))
        .then_output(|| UpdateItemOutput::builder().build());
    let ec2 = mock!(aws_sdk_ec2::Client::describe_instances).then_output(running_tagged_instance);
    let parameters = mock!(aws_sdk_ssm::Client::get_parameters).then_output(|| {
        GetParametersOutput::builder()
            .parameters(Parameter::builder().name("AmazonCloudWatch-fleetlog-linux").value(CONFIG).version(1).build())
            .build()
    });
    let mut clients = outcome_clients(&[&scan, &write], &[&details, &parameters], &[]);
    clients.ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&ec2]);
    let enroller = Enroller::new(settings(), clients);

    let outcomes = enroller.run(&Work { reconcile: true, ..Work::default() }).await.unwrap();

    assert_eq!(details.num_calls(), 1, "one question to SSM for the one overdue command");
    assert_eq!(write.num_calls(), 1, "the failure is recorded");
    match &outcomes[ID] {
        Outcome::CommandFailed { reason, retry_in_seconds: Some(_) } => {
            assert!(reason.contains("agentLinux"), "{reason}")
        }
        other => panic!("expected a recorded failure with a retry, got {other:?}"),
    }
}

#[tokio::test]
async fn a_batch_near_its_deadline_returns_its_unstarted_messages_as_failures() {
    let describe = describe_ok();
    let send = not_registered();
    let state = State::new(Enroller::new(settings(), clients(&[&describe], &send, &[])));
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut outcome = outcome_message("Success", 1);
    outcome.message_id = Some("m2".into());

    let response = handle_sqs(&state, event(vec![state_change_message("m1", 0, 1), outcome]), Some(deadline)).await;

    let mut failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    failed.sort();
    assert_eq!(failed, ["m1", "m2"], "both messages come back for another invocation");
    assert_eq!((describe.num_calls(), send.num_calls()), (0, 0), "nothing was started");
}
