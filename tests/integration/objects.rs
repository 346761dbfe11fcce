//! CloudFront standard logs through the emulator: a log object put into S3 is announced by the
//! bucket's real notification to an SQS queue; the test hands the received messages to the ETL's
//! SQS entry shape (the emulator invokes no Lambdas: this is the hop Lambda's event source mapping
//! performs), whose records land through the delivery stream in S3 and answer a named query.
//! Redelivering the notification adds nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aws_lambda_events::sqs::SqsMessage;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
    S3KeyFilter,
};
use fleetlog_core::schema::LOGS_PREFIX;
use fleetlog_local::stack::{BUCKET as LOG_BUCKET, LocalStack};

const CLOUDFRONT_BUCKET: &str = "fleetlog-cloudfront";
const KEY: &str = "cf/E2EXAMPLE.2026-12-03-10.a1b2c3d4.gz";

/// A CloudFront standard log object: the two directives, then one request per (edge, status, bytes),
/// served today (the named queries look at the last day).
fn log_object(requests: &[(&str, u16, u64)]) -> Vec<u8> {
    let now = chrono::Utc::now();
    let mut text = String::from(
        "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken\n",
    );
    for (edge, status, bytes) in requests {
        let result = if *status >= 500 { "Error" } else { "Hit" };
        text.push_str(&format!(
            "{}\t{}\t{edge}\t{bytes}\t192.0.2.10\tGET\td111111abcdef8.cloudfront.net\t/index.html\t{status}\t-\tcurl/8.5.0\t-\t-\t{result}\tid==\twww.example.com\thttps\t90\t0.002\n",
            now.format("%Y-%m-%d"),
            now.format("%H:%M:%S"),
        ));
    }
    fleetlog_etl::gzip::gzip(text.as_bytes())
}

/// The messages on the queue as Lambda's event source mapping hands them to a function, waiting
/// until `count` have arrived.
async fn received(sqs: &aws_sdk_sqs::Client, queue_url: &str, queue_arn: &str, count: usize) -> Vec<SqsMessage> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut messages = Vec::new();
    while messages.len() < count {
        assert!(Instant::now() < deadline, "{} of {count} notifications arrived", messages.len());
        for m in fleetlog_aws::queue::receive(sqs, queue_url, 10).await.unwrap() {
            let mut message = SqsMessage::default();
            message.message_id = m.message_id().map(str::to_owned);
            message.receipt_handle = m.receipt_handle().map(str::to_owned);
            message.body = m.body().map(str::to_owned);
            message.event_source_arn = Some(queue_arn.to_owned());
            message.event_source = Some("aws:sqs".into());
            messages.push(message);
        }
    }
    messages
}

/// The CloudFront log bucket, notifying a queue of its `.gz` objects as the stack configures it:
/// the queue's URL and ARN.
async fn notifying_bucket(stack: &LocalStack) -> (String, String) {
    let (s3, sqs) = (&stack.s3, &stack.clients.sqs);
    s3.create_bucket().bucket(CLOUDFRONT_BUCKET).send().await.unwrap();
    let queue_url = sqs.create_queue().queue_name("fleetlog-objects").send().await.unwrap().queue_url.unwrap();
    let queue_arn = format!("arn:aws:sqs:{}:{}:fleetlog-objects", fleetlog_tests::REGION, fleetlog_tests::ACCOUNT);
    // As the stack configures it: created objects ending in .gz (markers do not), to the queue.
    let gz_only = NotificationConfigurationFilter::builder()
        .key(
            S3KeyFilter::builder()
                .filter_rules(FilterRule::builder().name(FilterRuleName::Suffix).value(".gz").build())
                .build(),
        )
        .build();
    let to_queue = QueueConfiguration::builder()
        .queue_arn(&queue_arn)
        .events(Event::S3ObjectCreated)
        .filter(gz_only)
        .build()
        .unwrap();
    s3.put_bucket_notification_configuration()
        .bucket(CLOUDFRONT_BUCKET)
        .notification_configuration(NotificationConfiguration::builder().queue_configurations(to_queue).build())
        .send()
        .await
        .unwrap();

    (queue_url, queue_arn)
}

#[tokio::test]
async fn a_cloudfront_log_object_is_read_once_from_its_notification_and_answers_a_named_query() {
    let emulator = fleetlog_tests::start_emulator();
    let stack = LocalStack::deploy(&emulator.sdk_config().await).await.unwrap();
    let (s3, sqs) = (&stack.s3, &stack.clients.sqs);
    let (queue_url, queue_arn) = notifying_bucket(&stack).await;
    let requests = [("SFO5-C1", 503, 1_200), ("SFO5-C1", 200, 3_400), ("FRA56-C2", 200, 5_000), ("SFO5-C1", 504, 800)];
    s3.put_object().bucket(CLOUDFRONT_BUCKET).key(KEY).body(log_object(&requests).into()).send().await.unwrap();
    let messages = received(sqs, &queue_url, &queue_arn, 1).await;

    let state = stack.etl_state();
    let response = fleetlog_etl::objects::handle_sqs(&state, &messages).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let keys = fleetlog_aws::s3::list_keys(s3, LOG_BUCKET, LOGS_PREFIX).await.unwrap();
    assert!(!keys.is_empty(), "no records landed");

    let objects = fleetlog_cli::query::LocalObjects::in_s3(s3, LOG_BUCKET, LOGS_PREFIX).await.unwrap();
    let ctx = fleetlog_cli::query::local_session(objects.into_table(false)).await.unwrap();
    let edges =
        fleetlog_cli::query::run_local(&ctx, fleetlog_cli::query::resolve_sql("cloudfront-edges")).await.unwrap();
    use serde_json::json;
    assert_eq!(
        edges.rows,
        vec![
            vec![json!("SFO5-C1"), json!(3), json!(2), json!(5_400)],
            vec![json!("FRA56-C2"), json!(1), json!(0), json!(5_000)]
        ]
    );
    let ids = fleetlog_cli::query::run_local(
        &ctx,
        "SELECT event_id, source, log_stream, account FROM logs ORDER BY event_id",
    )
    .await
    .unwrap();
    assert_eq!(ids.rows.len(), 4);
    assert_eq!(ids.rows[0][1], json!("E2EXAMPLE"), "the distribution is the source");
    assert_eq!(ids.rows[0][2], json!(KEY));
    assert_eq!(ids.rows[0][3], json!(fleetlog_tests::ACCOUNT), "the queue's account");

    // The object's marker says it was read; writing it notified nothing.
    let markers =
        fleetlog_aws::s3::list_keys(s3, CLOUDFRONT_BUCKET, fleetlog_core::ingest::MARKER_PREFIX).await.unwrap();
    assert_eq!(markers.len(), 1, "{markers:?}");
    let marker = s3.get_object().bucket(CLOUDFRONT_BUCKET).key(&markers[0]).send().await.unwrap();
    let marker: fleetlog_core::ingest::Marker =
        serde_json::from_slice(&marker.body.collect().await.unwrap().into_bytes()).unwrap();
    assert!(matches!(marker, fleetlog_core::ingest::Marker::Done { records: 4, .. }), "{marker:?}");
    assert!(fleetlog_aws::queue::receive(sqs, &queue_url, 10).await.unwrap().is_empty(), "the marker notified");

    // The same notification again (S3 delivers at least once): nothing more lands.
    sqs.send_message().queue_url(&queue_url).message_body(messages[0].body.clone().unwrap()).send().await.unwrap();
    let again = received(sqs, &queue_url, &queue_arn, 1).await;
    let response = fleetlog_etl::objects::handle_sqs(&state, &again).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(fleetlog_aws::s3::list_keys(s3, LOG_BUCKET, LOGS_PREFIX).await.unwrap(), keys, "nothing twice");

    // A notification of an object since overwritten is superseded (the new one has its own), and a
    // message that is no notification is retried (and, past the receive count, dead-lettered).
    let mut stale = again[0].clone();
    stale.body = Some(stale.body.unwrap().replace(&messages_etag(&messages[0]), "0123456789abcdef0123456789abcdef"));
    let mut junk = again[0].clone();
    junk.message_id = Some("junk".into());
    junk.body = Some("not a notification".into());
    let response = fleetlog_etl::objects::handle_sqs(&state, &[stale, junk]).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["junk"]);
    assert_eq!(fleetlog_aws::s3::list_keys(s3, LOG_BUCKET, LOGS_PREFIX).await.unwrap(), keys);
}

/// A Splunk stack's Splunk stream is Kinesis-fed and takes no puts: a CloudFront object's HEC events
/// go into the Kinesis stream (the emulator's), keyed for the Splunk stream, beside its table records
/// in the records stream. The Splunk stream's transformation answers them as they are; the archive's
/// drops them. What the ETL calls is checked against the Splunk stack's EtlRole.
#[tokio::test]
async fn in_a_splunk_stack_a_cloudfront_object_reaches_the_splunk_stream_through_the_kinesis_stream() {
    use fleetlog_etl::records::Destination;
    let emulator = fleetlog_tests::start_emulator();
    let config = emulator.sdk_config().await;
    let stack = LocalStack::deploy(&config).await.unwrap();
    let (s3, sqs) = (&stack.s3, &stack.clients.sqs);
    let (queue_url, queue_arn) = notifying_bucket(&stack).await;
    // Named as the stack names its FanOutStream.
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    kinesis.create_stream().stream_name("fleetlog-logs").shard_count(1).send().await.unwrap();
    let stream_arn =
        format!("arn:aws:kinesis:{}:{}:stream/fleetlog-logs", fleetlog_tests::REGION, fleetlog_tests::ACCOUNT);
    let recorder = fleetlog_tests::calls::CallRecorder::default();
    let etl_kinesis = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(&config).interceptor(recorder.clone()).build(),
    );
    let hec = Destination::new(&fleetlog_core::settings::RecordFormatSetting::SplunkHec, Some("aws".into()));
    let state = fleetlog_etl::EtlState {
        kinesis: etl_kinesis,
        splunk_stream: Some(("fleetlog-splunk".into(), hec.clone())),
        fan_out_stream: Some(stream_arn.clone()),
        ..stack.etl_state()
    };

    let requests = [("SFO5-C1", 503, 1_200), ("FRA56-C2", 200, 5_000), ("SFO5-C1", 200, 800)];
    s3.put_object().bucket(CLOUDFRONT_BUCKET).key(KEY).body(log_object(&requests).into()).send().await.unwrap();
    let messages = received(sqs, &queue_url, &queue_arn, 1).await;
    let response = fleetlog_etl::objects::handle_sqs(&state, &messages).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert!(
        !fleetlog_aws::s3::list_keys(s3, LOG_BUCKET, LOGS_PREFIX).await.unwrap().is_empty(),
        "the archive's records"
    );
    let markers =
        fleetlog_aws::s3::list_keys(s3, CLOUDFRONT_BUCKET, fleetlog_core::ingest::MARKER_PREFIX).await.unwrap();
    let marker = s3.get_object().bucket(CLOUDFRONT_BUCKET).key(&markers[0]).send().await.unwrap();
    let marker: fleetlog_core::ingest::Marker =
        serde_json::from_slice(&marker.body.collect().await.unwrap().into_bytes()).unwrap();
    assert!(
        matches!(marker, fleetlog_core::ingest::Marker::Done { records: 3, .. }),
        "the archive's count: {marker:?}"
    );

    // What the Kinesis stream holds, as a Kinesis-fed Firehose stream hands it to its transformation.
    let shards = kinesis.list_shards().stream_arn(&stream_arn).send().await.unwrap();
    let shard = shards.shards()[0].shard_id();
    let iterator = kinesis
        .get_shard_iterator()
        .stream_arn(&stream_arn)
        .shard_id(shard)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap();
    let got = kinesis.get_records().shard_iterator(iterator.shard_iterator().unwrap()).send().await.unwrap();
    let made = fleetlog_etl::firehose::made_partition_key("fleetlog-splunk");
    let mut batch = aws_lambda_events::firehose::KinesisFirehoseEvent::default();
    for (i, record) in got.records().iter().enumerate() {
        let key = record.partition_key().unwrap_or_default();
        assert!(key.starts_with(&made), "{key}");
        let mut r = aws_lambda_events::firehose::KinesisFirehoseEventRecord::default();
        r.record_id = Some(i.to_string());
        r.data.0 = record.data().as_ref().to_vec();
        let mut metadata = aws_lambda_events::firehose::KinesisFirehoseRecordMetadata::default();
        metadata.partition_key = Some(key.to_owned());
        r.kinesis_firehose_record_metadata = Some(metadata);
        batch.records.push(r);
    }
    let events: Vec<serde_json::Value> = batch
        .records
        .iter()
        .flat_map(|r| {
            r.data.0.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap())
        })
        .collect();
    assert_eq!(events.len(), requests.len(), "one HEC event per request line: {events:?}");
    assert_eq!(batch.records.len(), 1, "whole lines packed into records (Kinesis bills each as at least 1 KB)");
    assert!(events.iter().all(|e| e["sourcetype"] == "aws:cloudfront:accesslogs" && e["index"] == "aws"), "{events:?}");

    let answered = |stream: &str, destination: &Destination| {
        let mut event = batch.clone();
        event.delivery_stream_arn = Some(format!(
            "arn:aws:firehose:{}:{}:deliverystream/{stream}",
            fleetlog_tests::REGION,
            fleetlog_tests::ACCOUNT
        ));
        let context = fleetlog_etl::firehose::Context::unknown(fleetlog_tests::REGION);
        let out = fleetlog_etl::firehose::transform_for(destination, &event, &context);
        let response: aws_lambda_events::firehose::KinesisFirehoseResponse =
            serde_json::from_str(out.response.get()).unwrap();
        response.records
    };
    for (answer, sent) in answered("fleetlog-splunk", &hec).iter().zip(&batch.records) {
        assert_eq!(answer.result.as_deref(), Some("Ok"));
        assert_eq!(answer.data.0, sent.data.0, "answered as made");
    }
    assert!(answered("fleetlog-logs", &Destination::Table).iter().all(|a| a.result.as_deref() == Some("Dropped")));

    let requests = recorder.requests();
    fleetlog_tests::iam::assert_made(&requests, &["kinesis:PutRecords", "kms:GenerateDataKey"]);
    let splunk = fleetlog_tests::iam::Deployment::local(&[
        ("SplunkHecEndpoint", serde_json::json!("https://hec.splunk.example.com:443")),
        (
            "SplunkHecTokenSecretArn",
            serde_json::json!("arn:aws:secretsmanager:us-east-1:123456789012:secret:fleetlog-hec-AbCdEf"),
        ),
        ("ReadCloudFrontLogs", serde_json::json!("true")),
    ]);
    splunk.assert_allows("EtlRole", &requests);
}

/// The ETag a notification names.
fn messages_etag(message: &SqsMessage) -> String {
    let body: serde_json::Value = serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
    body["Records"][0]["s3"]["object"]["eTag"].as_str().unwrap().trim_matches('"').to_owned()
}
