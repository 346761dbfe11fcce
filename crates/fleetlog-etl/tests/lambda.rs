//! The ETL as Lambda runs it: the binary (`src/main.rs`, its allocator, and `src/lambda.rs`, the
//! lambda_runtime wiring that posts responses itself) polls a fake Lambda Runtime API on 127.0.0.1
//! (`fleetlog-fake-runtime`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use aws_lambda_events::firehose::KinesisFirehoseResponse;
use fleetlog_etl::firehose::{PROCESSING_FAILED, transform};
use fleetlog_etl::gzip::gzip;
use fleetlog_etl_bench::firehose_event;
use fleetlog_fake_runtime::{Answer, NOWHERE, aws_at, deployment_bootstrap, run_function};

#[tokio::test]
async fn the_lambda_binary_answers_each_event_over_the_runtime_api() {
    answers_each_event(Path::new(env!("CARGO_BIN_EXE_fleetlog-etl"))).await;
}

/// The artifact that would be uploaded: the deployment zip's `bootstrap` answers the same way.
#[tokio::test]
#[ignore = "needs scripts/package's zips (FLEETLOG_LAMBDA_ZIPS); scripts/test runs it"]
async fn the_deployment_zip_answers_each_event_over_the_runtime_api() {
    answers_each_event(&deployment_bootstrap("fleetlog-etl")).await;
}

async fn answers_each_event(binary: &Path) {
    let corpus = firehose_event(200_000, 11).event;
    let not_gzip = r#"{"records":[{"recordId":"r1","approximateArrivalTimestamp":1,"data":"bm90IGd6aXA="}]}"#;
    // As a subscription-filter target it puts records to Firehose, here a port where nothing listens:
    // the invocation fails, so CloudWatch Logs delivers the payload again.
    let envelope = serde_json::json!({"messageType": "DATA_MESSAGE", "owner": "123456789012",
        "logGroup": "g", "logStream": "i-0123456789abcdef0", "subscriptionFilters": ["fleetlog"],
        "logEvents": [{"id": "1", "timestamp": 1_763_800_000_000i64, "message": "hello"}]});
    let data = base64_simd::STANDARD.encode_to_string(gzip(&serde_json::to_vec(&envelope).unwrap()));
    let awslogs = serde_json::json!({"awslogs": {"data": data}});
    let env = [&[("FLEETLOG_DELIVERY_STREAM", "fleetlog-logs")][..], &aws_at(NOWHERE)].concat();
    // A batch too big for one response: what does not fit must be re-ingested first, and cannot be.
    let mut too_big = firehose_event(1_000_000, 11).event;
    too_big.delivery_stream_arn = Some("arn:aws:firehose:us-east-1:123456789012:deliverystream/fleetlog-logs".into());
    let events = vec![
        ("batch", serde_json::to_vec(&corpus).unwrap()),
        ("not-gzip", not_gzip.as_bytes().to_vec()),
        ("unknown", br#"{"hello":"world"}"#.to_vec()),
        ("not-an-object", b"[1,2]".to_vec()),
        ("awslogs", serde_json::to_vec(&awslogs).unwrap()),
        ("too-big", serde_json::to_vec(&too_big).unwrap()),
    ];
    let run = run_function(binary, &env, events).await;
    let answers = &run.answers;
    let ids: Vec<&str> = answers.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["batch", "not-gzip", "unknown", "not-an-object", "awslogs", "too-big"]);

    // The body Firehose gets is exactly the transform's response (posted by the ETL itself, with the
    // invocation id the fake requires; failures are reported by lambda_runtime, with it too).
    let Answer::Response(body) = &answers[0].1 else { panic!("{:?}", answers[0]) };
    let expected = transform(&corpus, "us-east-1").response;
    assert!(body == expected.get().as_bytes(), "the posted response differs from the transform's");
    let response: KinesisFirehoseResponse = serde_json::from_slice(body).unwrap();
    assert_eq!(response.records.len(), corpus.records.len());

    let Answer::Response(body) = &answers[1].1 else { panic!("{:?}", answers[1]) };
    let response: KinesisFirehoseResponse = serde_json::from_slice(body).unwrap();
    assert_eq!(
        response.records[0].result.as_deref(),
        Some(PROCESSING_FAILED),
        "a bad record is not a failed invocation"
    );

    let unknown = answers[2].1.error_message();
    assert!(unknown.contains("neither a Firehose"), "{unknown}");
    let not_an_object = answers[3].1.error_message();
    assert!(not_an_object.contains("invalid type"), "{not_an_object}");
    let undelivered = answers[4].1.error_message();
    assert!(undelivered.contains("1 of 1 records could not be delivered to fleetlog-logs"), "{undelivered}");

    let unsettled = answers[5].1.error_message();
    assert!(unsettled.contains("could not be delivered to fleetlog-logs"), "{unsettled}");

    // Metrics count settled batches only: the first batch's events, none of the failed invocations'.
    let expected = transform(&corpus, "us-east-1").stats.events_out;
    assert_eq!(run.metric("LogEventsTransformed"), u64::try_from(expected).unwrap(), "{}", run.stdout);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}
