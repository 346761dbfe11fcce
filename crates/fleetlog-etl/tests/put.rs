//! PutRecordBatch partial failures and the subscription-target shape, at request level
//! (the emulator's Firehose never reports FailedPutCount).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchOutput;
use aws_sdk_firehose::types::PutRecordBatchResponseEntry;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use fleetlog_etl::applications::ApplicationSource;
use fleetlog_etl::gzip::gzip;
use fleetlog_etl::put::{PutError, RetryPolicy, Sink, put_all};
use fleetlog_etl::{EtlError, EtlState, MetricsOutput, handle};

/// One invocation as Lambda makes it: JSON text in (read by the runtime into the payload type), JSON
/// text out.
async fn invoke(state: &EtlState, payload: serde_json::Value) -> Result<serde_json::Value, EtlError> {
    let payload = serde_json::from_slice(&serde_json::to_vec(&payload).unwrap()).unwrap();
    let answer = handle(state, payload).await?;
    Ok(serde_json::from_str(answer.get()).unwrap())
}

/// For the Firehose shape when nothing is re-ingested: no stream to put to, no request expected.
fn firehose_shape_state() -> EtlState {
    EtlState {
        firehose: mock_client!(aws_sdk_firehose, RuleMode::MatchAny, &[]),
        kinesis: mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, &[]),
        s3: mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[]),
        region: "eu-west-1".into(),
        delivery_stream: None,
        retry: FAST,
        metrics: MetricsOutput::Stderr,
        destination: fleetlog_etl::records::Destination::default(),
        splunk_stream: None,
        fan_out_stream: None,
        sightings: None,
        applications: Arc::new(ApplicationSource::new(mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[]), None, None)),
        access_metrics: true,
    }
}

const FAST: RetryPolicy = RetryPolicy { attempts: 3, first_delay: Duration::from_millis(1) };

fn entry(failed: bool) -> PutRecordBatchResponseEntry {
    if failed {
        PutRecordBatchResponseEntry::builder()
            .error_code("ServiceUnavailableException")
            .error_message("Slow down.")
            .build()
    } else {
        PutRecordBatchResponseEntry::builder().record_id("ok").build()
    }
}

/// Answers each call with per-record failures for the records whose data starts with `fail`
/// on the first call only; records every call's payloads.
fn flaky_firehose(calls: Arc<Mutex<Vec<Vec<Vec<u8>>>>>) -> Rule {
    mock!(aws_sdk_firehose::Client::put_record_batch).then_compute_output(move |input| {
        let data: Vec<Vec<u8>> = input.records().iter().map(|r| r.data().as_ref().to_vec()).collect();
        let mut calls = calls.lock().unwrap();
        let first_call = calls.is_empty();
        calls.push(data.clone());
        let entries: Vec<_> = data.iter().map(|d| entry(first_call && d.starts_with(b"fail"))).collect();
        let failed = i32::try_from(entries.iter().filter(|e| e.error_code().is_some()).count()).unwrap();
        PutRecordBatchOutput::builder().failed_put_count(failed).set_request_responses(Some(entries)).build().unwrap()
    })
}

#[tokio::test]
async fn exactly_the_failed_records_are_retried() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let rule = flaky_firehose(calls.clone());
    let client = mock_client!(aws_sdk_firehose, RuleMode::MatchAny, &[&rule]);
    let records = vec![b"ok-1".to_vec(), b"fail-2".to_vec(), b"ok-3".to_vec(), b"fail-4".to_vec()];

    let made = put_all(&Sink::Firehose { client: &client, stream: "s" }, records, FAST).await.unwrap();

    let calls = calls.lock().unwrap();
    assert_eq!(made, 2);
    assert_eq!(calls[0].len(), 4);
    assert_eq!(calls[1], vec![b"fail-2".to_vec(), b"fail-4".to_vec()], "only the failed records, in order");
}

#[tokio::test]
async fn records_that_keep_failing_are_reported_not_dropped() {
    let rule = mock!(aws_sdk_firehose::Client::put_record_batch).then_compute_output(|input| {
        let n = input.records().len();
        PutRecordBatchOutput::builder()
            .failed_put_count(i32::try_from(n).unwrap())
            .set_request_responses(Some((0..n).map(|_| entry(true)).collect()))
            .build()
            .unwrap()
    });
    let client = mock_client!(aws_sdk_firehose, RuleMode::MatchAny, &[&rule]);
    let err = put_all(
        &Sink::Firehose { client: &client, stream: "fleetlog-processed" },
        vec![b"a".to_vec(), b"b".to_vec()],
        FAST,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PutError::Undelivered { count: 2, total: 2, attempts: 3, .. }), "{err}");
    assert!(err.to_string().contains("ServiceUnavailableException"), "{err}");
    assert_eq!(rule.num_calls(), 3);
}

/// Entries answer records by position: an answer with fewer entries than records cannot say which
/// failed, so the whole call is sent again rather than any record being taken as delivered.
#[tokio::test]
async fn an_answer_without_an_entry_per_record_resends_the_whole_call() {
    let calls = Arc::new(Mutex::new(Vec::<Vec<Vec<u8>>>::new()));
    let seen = calls.clone();
    let rule = mock!(aws_sdk_firehose::Client::put_record_batch).then_compute_output(move |input| {
        let mut calls = seen.lock().unwrap();
        calls.push(input.records().iter().map(|r| r.data().as_ref().to_vec()).collect());
        let entries =
            if calls.len() == 1 { vec![entry(true)] } else { input.records().iter().map(|_| entry(false)).collect() };
        let failed = i32::try_from(entries.iter().filter(|e| e.error_code().is_some()).count()).unwrap();
        PutRecordBatchOutput::builder().failed_put_count(failed).set_request_responses(Some(entries)).build().unwrap()
    });
    let client = mock_client!(aws_sdk_firehose, RuleMode::MatchAny, &[&rule]);
    let records = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];

    put_all(&Sink::Firehose { client: &client, stream: "s" }, records.clone(), FAST).await.unwrap();

    assert_eq!(*calls.lock().unwrap(), vec![records.clone(), records]);
}

#[tokio::test]
async fn big_batches_are_split_within_firehose_limits() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let rule = flaky_firehose(calls.clone());
    let client = mock_client!(aws_sdk_firehose, RuleMode::MatchAny, &[&rule]);
    let records: Vec<Vec<u8>> = (0..1200).map(|i| format!("ok-{i}").into_bytes()).collect();
    put_all(&Sink::Firehose { client: &client, stream: "s" }, records, FAST).await.unwrap();
    let sizes: Vec<usize> = calls.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(sizes, [500, 500, 200]);
}

#[tokio::test]
async fn subscription_target_puts_one_record_per_event_and_ignores_control_messages() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let rule = flaky_firehose(calls.clone());
    let state = EtlState {
        firehose: mock_client!(aws_sdk_firehose, RuleMode::MatchAny, &[&rule]),
        delivery_stream: Some("fleetlog-processed".into()),
        ..firehose_shape_state()
    };
    let envelope = serde_json::json!({
        "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "g/security", "logStream": "i-01234567",
        "subscriptionFilters": ["fleetlog"],
        "logEvents": [{"id": "1", "timestamp": 1, "message": "a"}, {"id": "2", "timestamp": 2, "message": "b\nc"}]
    });
    let data = base64_simd::STANDARD.encode_to_string(gzip(envelope.to_string().as_bytes()));
    let answer = invoke(&state, serde_json::json!({"awslogs": {"data": data}})).await.unwrap();
    assert_eq!(answer["delivered"], 2);
    let sent = calls.lock().unwrap()[0].clone();
    let messages: Vec<String> = sent
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(r).unwrap()["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(messages, ["a", "b\nc"]);
    assert!(sent.iter().all(|r| r.ends_with(b"\n")), "newline-delimited for S3/Athena");

    let control = serde_json::json!({"messageType": "CONTROL_MESSAGE", "logEvents": []});
    let data = base64_simd::STANDARD.encode_to_string(gzip(control.to_string().as_bytes()));
    assert_eq!(invoke(&state, serde_json::json!({"awslogs": {"data": data}})).await.unwrap()["delivered"], 0);
    let err = invoke(&state, serde_json::json!({"awslogs": {"data": "%%%"}})).await.unwrap_err();
    assert!(err.to_string().contains("base64"), "{err}");
    assert!(invoke(&state, serde_json::json!({"other": 1})).await.is_err());
}

#[tokio::test]
async fn firehose_payloads_are_answered_with_what_serde_would_write() {
    let state = firehose_shape_state();
    let envelope = serde_json::json!({
        "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "g/app", "logStream": "i-01234567",
        "subscriptionFilters": ["fleetlog"], "logEvents": [{"id": "1", "timestamp": 1_763_805_600_000_i64, "message": "é \"q\""}]
    });
    let control = serde_json::json!({"messageType": "CONTROL_MESSAGE", "logEvents": []});
    let data = |v: &serde_json::Value| base64_simd::STANDARD.encode_to_string(gzip(v.to_string().as_bytes()));
    let payload = serde_json::json!({
        "invocationId": "i", "deliveryStreamArn": "arn:aws:firehose:eu-west-1:1:deliverystream/raw", "region": "eu-west-1",
        "records": [
            {"recordId": "ok", "approximateArrivalTimestamp": 1, "data": data(&envelope)},
            {"recordId": "control", "approximateArrivalTimestamp": 1, "data": data(&control)},
            {"recordId": "bad", "approximateArrivalTimestamp": 1, "data": "bm90IGd6aXA="},
            {"recordId": "not-base64", "approximateArrivalTimestamp": 1, "data": "not base64!"}
        ]
    });
    let answer = invoke(&state, payload.clone()).await.unwrap();
    let event = serde_json::from_value::<fleetlog_etl::Payload>(payload).unwrap().into_firehose_event().unwrap();
    let out = fleetlog_etl::firehose::transform(&event, "eu-west-1");
    // Read into the aws_lambda_events type and written back by serde: the same JSON.
    let typed: aws_lambda_events::firehose::KinesisFirehoseResponse = serde_json::from_str(out.response.get()).unwrap();
    let typed = serde_json::to_value(typed).unwrap();
    assert_eq!(answer, typed);
    assert_eq!(answer, serde_json::from_str::<serde_json::Value>(out.response.get()).unwrap());
    let results: Vec<&str> =
        answer["records"].as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["Ok", "Dropped", "ProcessingFailed", "ProcessingFailed"]);
    // What is not base64 goes back as the text it was, encoded.
    assert_eq!(answer["records"][3]["data"], base64_simd::STANDARD.encode_to_string("not base64!"));
    assert_eq!(
        answer["records"][0]["metadata"]["partitionKeys"],
        serde_json::json!({"account": "123456789012", "dt": "2025-11-22", "hour": "10"})
    );
}

#[tokio::test]
async fn payloads_of_neither_shape_are_refused_with_a_reason() {
    let state = firehose_shape_state();
    let unknown = invoke(&state, serde_json::json!({"detail-type": "EC2 Instance State-change Notification"})).await;
    assert!(matches!(unknown, Err(EtlError::UnknownPayload)), "{unknown:?}");
    // A Firehose event whose records are not records fails where the runtime reads the payload.
    let error = serde_json::from_str::<fleetlog_etl::Payload>(r#"{"records": [{"recordId": "1", "data": 7}]}"#)
        .expect_err("records must have base64 data");
    assert!(error.to_string().contains("invalid type"), "{error}");
}

/// A fan-out stack's Firehose streams read one Kinesis stream and take no puts: what a batch
/// re-ingests goes back into that Kinesis stream, keyed for the stream that re-ingested it, and the
/// other consumer drops it while this one answers it.
#[tokio::test]
async fn a_kinesis_fed_stream_reingests_into_its_kinesis_stream_for_itself() {
    use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
    use aws_sdk_kinesis::types::PutRecordsResultEntry;
    const SOURCE: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/fleetlog-logs";
    let sent = Arc::new(Mutex::new(Vec::<(String, String, Vec<u8>)>::new()));
    let seen = sent.clone();
    let rule = mock!(aws_sdk_kinesis::Client::put_records).then_compute_output(move |input| {
        let mut sent = seen.lock().unwrap();
        for r in input.records() {
            let stream = input.stream_arn().unwrap_or_default().to_owned();
            sent.push((stream, r.partition_key().unwrap_or_default().to_owned(), r.data().as_ref().to_vec()));
        }
        let entries = input
            .records()
            .iter()
            .map(|_| PutRecordsResultEntry::builder().shard_id("shardId-0").sequence_number("1").build());
        PutRecordsOutput::builder().failed_record_count(0).set_records(Some(entries.collect())).build().unwrap()
    });
    let splunk = fleetlog_etl::records::Destination::Splunk(fleetlog_etl::records::SplunkHec { index: None });
    let state = EtlState {
        kinesis: mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, &[&rule]),
        splunk_stream: Some(("fleetlog-splunk".into(), splunk)),
        fan_out_stream: None,
        ..firehose_shape_state()
    };
    // Ten records of one 500 KB event each: about eight fit a 6 MB response, the rest go back.
    let data = |i: usize| {
        let envelope = serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "g/app", "logStream": "i-01234567",
            "subscriptionFilters": ["fleetlog"],
            "logEvents": [{"id": format!("{i}"), "timestamp": 1_763_805_600_000_i64, "message": "x".repeat(500_000)}]
        });
        base64_simd::STANDARD.encode_to_string(gzip(envelope.to_string().as_bytes()))
    };
    let records: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            serde_json::json!({"recordId": format!("{i}"), "approximateArrivalTimestamp": 1, "data": data(i),
            "kinesisRecordMetadata": {"shardId": "shardId-0", "partitionKey": "cwl-7", "approximateArrivalTimestamp": 1,
                                      "sequenceNumber": "1", "subsequenceNumber": 0}})
        })
        .collect();
    let payload = serde_json::json!({
        "invocationId": "i", "deliveryStreamArn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/fleetlog-splunk",
        "sourceKinesisStreamArn": SOURCE, "region": "eu-west-1", "records": records,
    });
    let answer = invoke(&state, payload).await.unwrap();
    let results: Vec<&str> =
        answer["records"].as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    let dropped = results.iter().filter(|r| **r == "Dropped").count();
    assert!(dropped > 0 && results.iter().filter(|r| **r == "Ok").count() + dropped == 10, "{results:?}");
    // The Splunk stream's batches are answered with HEC events.
    let ok = answer["records"].as_array().unwrap().iter().find(|r| r["result"] == "Ok").unwrap();
    let event: serde_json::Value =
        serde_json::from_slice(&base64_simd::STANDARD.decode_to_vec(ok["data"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(
        (event["sourcetype"].as_str(), event["host"].as_str()),
        (Some("aws:cloudwatchlogs"), Some("i-01234567"))
    );
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), dropped);
    for (stream, key, _) in &sent {
        assert_eq!(stream, SOURCE);
        assert!(key.starts_with("fleetlog-reingest/fleetlog-splunk/"), "{key}");
    }

    // When the re-ingested records come round again, the other consumer drops them and this one
    // answers them.
    let again = |stream: &str| {
        let records: Vec<serde_json::Value> = sent
            .iter()
            .map(|(_, key, data)| serde_json::json!({"recordId": key, "approximateArrivalTimestamp": 1,
                "data": base64_simd::STANDARD.encode_to_string(data),
                "kinesisRecordMetadata": {"partitionKey": key, "approximateArrivalTimestamp": 1, "subsequenceNumber": 0}}))
            .collect();
        serde_json::json!({"invocationId": "j", "sourceKinesisStreamArn": SOURCE, "region": "eu-west-1", "records": records,
            "deliveryStreamArn": format!("arn:aws:firehose:eu-west-1:123456789012:deliverystream/{stream}")})
    };
    for (stream, expected) in
        [("fleetlog-logs", "Dropped"), ("fleetlog-splunk", "Ok"), ("fleetlog-splunk-2", "Dropped")]
    {
        let answer = invoke(&state, again(stream)).await.unwrap();
        let results: Vec<&str> =
            answer["records"].as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
        assert!(results.iter().all(|r| *r == expected), "{stream}: {results:?}");
    }
    // Any other stream's batches are the table's records.
    let mut table = again("fleetlog-logs");
    table["records"][0]["kinesisRecordMetadata"]["partitionKey"] = "cwl-1".into();
    let answer = invoke(&state, table).await.unwrap();
    let record = &answer["records"][0];
    assert_eq!(record["result"], "Ok");
    let line: serde_json::Value =
        serde_json::from_slice(&base64_simd::STANDARD.decode_to_vec(record["data"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(line["instance_id"], "i-01234567");
    assert_eq!(rule.num_calls(), 1, "nothing re-ingested the second time round");
}

#[tokio::test]
async fn kinesis_puts_retry_exactly_the_refused_records() {
    use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
    use aws_sdk_kinesis::types::PutRecordsResultEntry;
    let calls = Arc::new(Mutex::new(Vec::<Vec<Vec<u8>>>::new()));
    let seen = calls.clone();
    let rule = mock!(aws_sdk_kinesis::Client::put_records).then_compute_output(move |input| {
        let mut calls = seen.lock().unwrap();
        let first = calls.is_empty();
        calls.push(input.records().iter().map(|r| r.data().as_ref().to_vec()).collect());
        let entries: Vec<_> = input
            .records()
            .iter()
            .map(|r| {
                if first && r.data().as_ref().starts_with(b"fail") {
                    PutRecordsResultEntry::builder()
                        .error_code("ProvisionedThroughputExceededException")
                        .error_message("Rate exceeded")
                        .build()
                } else {
                    PutRecordsResultEntry::builder().shard_id("shardId-0").sequence_number("1").build()
                }
            })
            .collect();
        let failed = i32::try_from(entries.iter().filter(|e| e.error_code().is_some()).count()).unwrap();
        PutRecordsOutput::builder().failed_record_count(failed).set_records(Some(entries)).build().unwrap()
    });
    let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, &[&rule]);
    let sink =
        Sink::Kinesis { client: &client, stream_arn: "arn:aws:kinesis:eu-west-1:1:stream/s", partition_key: "k/" };
    let records = vec![b"ok-1".to_vec(), b"fail-2".to_vec(), b"ok-3".to_vec()];
    assert_eq!(put_all(&sink, records, FAST).await.unwrap(), 2);
    assert_eq!(calls.lock().unwrap()[1], vec![b"fail-2".to_vec()]);
    let too_big = put_all(&sink, vec![vec![0; 1024 * 1024]], FAST).await.unwrap_err();
    assert!(matches!(too_big, PutError::RecordTooLarge { .. }), "{too_big}");
}
