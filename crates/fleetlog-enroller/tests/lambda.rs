//! The enroller as Lambda runs it: the binary (`src/main.rs`: settings, SDK clients, the
//! lambda_runtime wiring) polls a fake Lambda Runtime API on 127.0.0.1 (`fleetlog-fake-runtime`),
//! with AWS either out of reach or the emulator with fleetlog deployed in it (`fleetlog-local`, a
//! dev-dependency that itself depends on this crate).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use fleetlog_aws::store::EnrollmentStore;
use fleetlog_core::Platform;
use fleetlog_core::events::ec2_state_change_event;
use fleetlog_core::record::EnrollmentStatus;
use fleetlog_fake_runtime::{Answer, NOWHERE, aws_at, deployment_bootstrap, run_function};
use fleetlog_local::emulator::{ACCOUNT, Emulator, REGION};
use fleetlog_local::stack::{AGENT_DOCUMENT, ENROLLMENT_TABLE, LocalStack, MANAGEMENT_TAG};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_fleetlog-enroller");
const DLQ_URL: &str = "http://127.0.0.1:9/123456789012/fleetlog-enroll-dlq";

/// The stack's settings (AWS itself is out of reach: [`NOWHERE`]).
const SETTINGS: [(&str, &str); 5] = [
    ("FLEETLOG_ENROLLMENT_TABLE", "fleetlog-enrollment"),
    ("FLEETLOG_AGENT_DOCUMENT", "fleetlog-agent"),
    ("FLEETLOG_LOG_GROUP_PREFIX", "CCP-logs-acme-123456789012-us-east-1"),
    ("FLEETLOG_SUBSCRIPTION_DESTINATION_ARN", "arn:aws:lambda:us-east-1:123456789012:function:etl"),
    ("FLEETLOG_DEAD_LETTER_QUEUE_URL", DLQ_URL),
];

#[tokio::test]
async fn missing_settings_stop_the_function_before_it_polls_with_a_clear_message() {
    let out = tokio::process::Command::new(BINARY)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("environment variable FLEETLOG_"), "{stderr}");
    assert!(stderr.contains("is required but not set"), "the message, not the error's debug form: {stderr}");
}

#[tokio::test]
async fn the_lambda_binary_answers_each_event_over_the_runtime_api() {
    // A queue message whose body is not an EventBridge event: permanent, so it is dead-lettered; the
    // dead-letter queue cannot be reached, so it stays on the queue (a batch item failure).
    let sqs = json!({"Records": [{
        "messageId": "m1", "receiptHandle": "r1", "body": "not an event",
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fleetlog-enroll", "awsRegion": "us-east-1",
    }]});
    let no_instance = json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
        "detail": {"state": "running"}});
    let events = vec![
        ("unknown", br#"{"hello":"world"}"#.to_vec()),
        ("no-instance", serde_json::to_vec(&no_instance).unwrap()),
        ("queue", serde_json::to_vec(&sqs).unwrap()),
    ];
    let run = run_function(Path::new(BINARY), &[&SETTINGS[..], &aws_at(NOWHERE)].concat(), events).await;
    let ids: Vec<&str> = run.answers.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["unknown", "no-instance", "queue"]);

    let unknown = run.answers[0].1.error_message();
    assert!(unknown.contains("neither an SQS batch nor an EventBridge event"), "{unknown}");
    let no_instance = run.answers[1].1.error_message();
    assert!(no_instance.contains("instance"), "{no_instance}");
    let Answer::Response(body) = &run.answers[2].1 else { panic!("{:?}", run.answers[2]) };
    let response: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(response, json!({"batchItemFailures": [{"itemIdentifier": "m1"}]}));
    // Nothing reached the dead-letter queue, so nothing is counted as dead-lettered.
    assert_eq!(run.metric("DeadLettered"), 0, "{}", run.stdout);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[tokio::test]
async fn the_lambda_binary_enrolls_an_instance_on_the_emulator() {
    enrolls_an_instance_on_the_emulator(Path::new(BINARY)).await;
}

/// The artifact that would be uploaded: the deployment zip's `bootstrap` enrolls the same way.
#[tokio::test]
#[ignore = "needs scripts/package's zips (FLEETLOG_LAMBDA_ZIPS); scripts/test runs it"]
async fn the_deployment_zip_enrolls_an_instance_on_the_emulator() {
    enrolls_an_instance_on_the_emulator(&deployment_bootstrap("fleetlog-enroller")).await;
}

async fn enrolls_an_instance_on_the_emulator(binary: &Path) {
    let emulator = Emulator::start().unwrap();
    let stack = LocalStack::deploy(&emulator.sdk_config().await).await.unwrap();
    let linux = stack.rendering().render("linux", include_str!("../../../agent-configs/linux.json")).unwrap();
    fleetlog_aws::ssm::put_config_parameter(
        &stack.clients.ssm,
        linux.parameter.as_str(),
        &linux.rendered,
        linux.tier,
        "agent-configs/linux.json",
    )
    .await
    .unwrap();
    let id = stack.launch(Platform::Linux, &[MANAGEMENT_TAG], 1).await.unwrap().remove(0);

    // The function's environment as the stack sets it, its AWS calls going to the emulator.
    let settings = stack.enroller_env();
    let mut env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend(aws_at(&emulator.endpoint));
    let event = ec2_state_change_event(&id, "running", ACCOUNT, REGION);
    let run = run_function(binary, &env, vec![("running", serde_json::to_vec(&event).unwrap())]).await;

    let Answer::Response(body) = &run.answers[0].1 else { panic!("{:?}\n{}", run.answers[0], run.stdout) };
    let answer: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(answer["outcomes"][&id]["outcome"], "enrolled", "{answer}");
    let record = EnrollmentStore::new(stack.clients.dynamodb.clone(), ENROLLMENT_TABLE).get(&id).await.unwrap();
    assert_eq!(record.map(|r| r.status), Some(EnrollmentStatus::Enrolling), "until its command reports back");
    let commands = stack.clients.ssm.list_commands().instance_id(&id).send().await.unwrap();
    let documents: Vec<&str> = commands.commands().iter().filter_map(|c| c.document_name()).collect();
    assert_eq!(documents, [AGENT_DOCUMENT], "one command: fleetlog's document");
    assert_eq!(run.metric("Enrolled"), 1, "{}", run.stdout);
}
