//! The ETL as Lambda runs it: the binary (`src/main.rs`, its allocator and the lambda_runtime wiring)
//! polls a fake Lambda Runtime API on 127.0.0.1 (`fleetlog-fake-runtime`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use aws_lambda_events::firehose::KinesisFirehoseResponse;
use fleetlog_etl::corpus::firehose_event;
use fleetlog_etl::firehose::{PROCESSING_FAILED, transform};
use fleetlog_fake_runtime::{Answer, run_function};

#[tokio::test]
async fn the_lambda_binary_answers_each_event_over_the_runtime_api() {
    let corpus = firehose_event(200_000, 11).event;
    let not_gzip = r#"{"records":[{"recordId":"r1","approximateArrivalTimestamp":1,"data":"bm90IGd6aXA="}]}"#;
    let env = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let events = vec![
        ("batch", serde_json::to_vec(&corpus).unwrap()),
        ("not-gzip", not_gzip.as_bytes().to_vec()),
        ("unknown", br#"{"hello":"world"}"#.to_vec()),
        ("not-an-object", b"[1,2]".to_vec()),
    ];
    let run = run_function(Path::new(env!("CARGO_BIN_EXE_fleetlog-etl")), &env, events).await;
    let (answers, stdout, stderr) = (run.answers, run.stdout, run.stderr);
    let ids: Vec<&str> = answers.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["batch", "not-gzip", "unknown", "not-an-object"]);

    // The body Firehose gets is exactly the transform's response, serialised once by the runtime.
    let Answer::Response(body) = &answers[0].1 else { panic!("{:?}", answers[0]) };
    let expected = serde_json::to_vec(&transform(&corpus, "us-east-1").response).unwrap();
    assert!(body == &expected, "the posted response differs from the transform's");
    let response: KinesisFirehoseResponse = serde_json::from_slice(body).unwrap();
    assert_eq!(response.records.len(), corpus.records.len());

    let Answer::Response(body) = &answers[1].1 else { panic!("{:?}", answers[1]) };
    let response: KinesisFirehoseResponse = serde_json::from_slice(body).unwrap();
    assert_eq!(
        response.records[0].result.as_deref(),
        Some(PROCESSING_FAILED),
        "a bad record is not a failed invocation"
    );

    for (id, answer) in &answers[2..] {
        let Answer::Error(body) = answer else { panic!("{id}: {answer:?}") };
        let error: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert!(error["errorType"].is_string() && error["errorMessage"].is_string(), "{id}: {error}");
    }
    let unknown: serde_json::Value = match &answers[2].1 {
        Answer::Error(body) => serde_json::from_slice(body).unwrap(),
        Answer::Response(_) => unreachable!(),
    };
    assert!(unknown["errorMessage"].as_str().unwrap().contains("neither a Firehose"), "{unknown}");

    assert!(stdout.contains(r#""LogEventsTransformed""#), "the batch's metrics are printed: {stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
