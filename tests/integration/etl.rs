//! The log path through the emulator: log events put into a subscribed log group travel the real
//! subscription → Firehose → S3 path, are transformed by the ETL's Firehose entry shape, and land in
//! S3 as the documented JSON records (the emulator never invokes transformation Lambdas, so the test
//! carries the raw objects to the handler, as the local runner does).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_firehose::types::{CompressionFormat, DeliveryStreamType, ExtendedS3DestinationConfiguration};
use fleetlog_etl::put::{RetryPolicy, Sink, put_all};
use fleetlog_etl::{EtlState, MetricsOutput};
use fleetlog_tests::calls::CallRecorder;
use fleetlog_tests::{ACCOUNT, REGION};
use serde_json::Value;

const BUCKET: &str = "fleetlog-logs";
const ROLE: &str = "arn:aws:iam::123456789012:role/fleetlog-firehose";
const INSTANCE: &str = "i-0123456789abcdef0";

async fn objects(s3: &aws_sdk_s3::Client, prefix: &str) -> Vec<Vec<u8>> {
    let listed = s3.list_objects_v2().bucket(BUCKET).prefix(prefix).send().await.unwrap();
    let mut out = Vec::new();
    for object in listed.contents() {
        let body = s3.get_object().bucket(BUCKET).key(object.key().unwrap()).send().await.unwrap().body;
        out.push(body.collect().await.unwrap().into_bytes().to_vec());
    }
    out
}

async fn wait_for_objects(s3: &aws_sdk_s3::Client, prefix: &str) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = objects(s3, prefix).await;
        if !found.is_empty() {
            return found;
        }
        assert!(Instant::now() < deadline, "nothing arrived under s3://{BUCKET}/{prefix}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn subscribed_log_events_land_in_s3_as_documented_json_records() {
    let emulator = fleetlog_tests::start_emulator();
    let config = emulator.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    let firehose = aws_sdk_firehose::Client::new(&config);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);

    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut raw_arn = String::new();
    for (stream, prefix) in [("fleetlog-raw", "raw/"), ("fleetlog-processed", "processed/")] {
        let created = firehose
            .create_delivery_stream()
            .delivery_stream_name(stream)
            .delivery_stream_type(DeliveryStreamType::DirectPut)
            .extended_s3_destination_configuration(
                ExtendedS3DestinationConfiguration::builder()
                    .bucket_arn(format!("arn:aws:s3:::{BUCKET}"))
                    .role_arn(ROLE)
                    .prefix(prefix)
                    .compression_format(CompressionFormat::Uncompressed)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        if stream == "fleetlog-raw" {
            raw_arn = created.delivery_stream_arn().unwrap().to_owned();
        }
    }

    let group = format!("CCP-logs-acme-{ACCOUNT}-{REGION}/security");
    logs.create_log_group().log_group_name(&group).send().await.unwrap();
    logs.create_log_stream().log_group_name(&group).log_stream_name(INSTANCE).send().await.unwrap();
    logs.put_subscription_filter()
        .log_group_name(&group)
        .filter_name("fleetlog")
        .filter_pattern("")
        .destination_arn(&raw_arn)
        .role_arn(ROLE)
        .send()
        .await
        .unwrap();

    let messages = [
        "Nov 22 10:00:01 ip-10-0-0-1 sshd[4242]: Failed password for root from 203.0.113.9 port 22 ssh2",
        r#"203.0.113.9 - - [22/Nov/2026:10:00:00 +0000] "GET /admin HTTP/1.1" 503 12 "-" "curl/8""#,
        r#"{"level":"error","msg":"payment failed","order":42}"#,
        "Traceback (most recent call last):\n  File \"app.py\", line 3\nKeyError: 'x'",
        "unicode żółć 🚀 and a tab\there",
    ];
    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let events: Vec<InputLogEvent> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| InputLogEvent::builder().timestamp(now + i as i64).message(*m).build().unwrap())
        .collect();
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name(INSTANCE)
        .set_log_events(Some(events))
        .send()
        .await
        .unwrap();

    // What Firehose would hand the transformation Lambda: the raw subscription payloads.
    let raw = wait_for_objects(&s3, "raw/").await;
    let mut event = KinesisFirehoseEvent::default();
    event.delivery_stream_arn = Some(raw_arn.clone());
    event.records = raw
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            let mut r = KinesisFirehoseEventRecord::default();
            r.record_id = Some(i.to_string());
            r.data.0 = data;
            r
        })
        .collect();
    // The ETL's own client: what it calls is checked against the role the stack gives it.
    let recorder = fleetlog_tests::calls::CallRecorder::default();
    let etl_firehose = aws_sdk_firehose::Client::from_conf(
        aws_sdk_firehose::config::Builder::from(&config).interceptor(recorder.clone()).build(),
    );
    // The instance's Application tag as the enroller recorded it, and a reference file naming the
    // client's application: read by the ETL through its own (recorded) clients.
    let table = fleetlog_local::stack::ENROLLMENT_TABLE;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let setup = fleetlog_aws::store::EnrollmentStore::new(dynamodb, table);
    setup.create_table_if_missing().await.unwrap();
    let enrolled = fleetlog_core::record::EnrollmentRecord {
        instance_id: INSTANCE.into(),
        application: Some("shop".into()),
        ..fleetlog_core::record::EnrollmentRecord::sample(fleetlog_core::record::EnrollmentStatus::Enrolled)
    };
    let now_s = now / 1000;
    let claim = setup.claim(INSTANCE, &enrolled.config_parameter, enrolled.config_version, "test", now_s).await;
    assert_eq!(claim.unwrap(), fleetlog_aws::store::Claim::Granted);
    assert!(setup.put_claimed(&enrolled, "test").await.unwrap());
    let (reference_bucket, reference_key) = ("fleetlog-reference", "fleet/applications.json");
    let reference = r#"[{"match": "203.0.113.0/24", "application": "scanner"}]"#;
    s3.create_bucket().bucket(reference_bucket).send().await.unwrap();
    let body = reference.as_bytes().to_vec().into();
    s3.put_object().bucket(reference_bucket).key(reference_key).body(body).send().await.unwrap();
    let etl_dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config).interceptor(recorder.clone()).build(),
    );
    let etl_s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config).force_path_style(true).interceptor(recorder.clone()).build(),
    );
    let applications = fleetlog_etl::applications::ApplicationSource::new(
        etl_s3.clone(),
        Some(fleetlog_aws::store::EnrollmentStore::new(etl_dynamodb, table)),
        Some((reference_bucket.to_owned(), reference_key.to_owned())),
    );
    let state = EtlState {
        firehose: etl_firehose.clone(),
        kinesis: aws_sdk_kinesis::Client::new(&config),
        s3: etl_s3,
        region: REGION.to_owned(),
        delivery_stream: None,
        retry: RetryPolicy::default(),
        metrics: MetricsOutput::Stderr,
        destination: fleetlog_etl::records::Destination::default(),
        splunk_stream: None,
        fan_out_stream: None,
        sightings: None,
        applications: std::sync::Arc::new(applications),
        access_metrics: true,
    };
    let response: aws_lambda_events::firehose::KinesisFirehoseResponse =
        serde_json::from_str(fleetlog_etl::handle_firehose(&state, &event).await.unwrap().get()).unwrap();
    assert!(response.records.iter().all(|r| r.result.as_deref() == Some("Ok")), "{response:?}");
    let lines: Vec<Vec<u8>> = response
        .records
        .iter()
        .flat_map(|r| r.data.0.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec).collect::<Vec<_>>())
        .collect();
    put_all(&Sink::Firehose { client: &etl_firehose, stream: "fleetlog-processed" }, lines, RetryPolicy::default())
        .await
        .unwrap();
    let requests = recorder.requests();
    fleetlog_tests::iam::assert_made(&requests, &["dynamodb:BatchGetItem", "s3:GetObject", "firehose:PutRecordBatch"]);
    let deployment = fleetlog_tests::iam::Deployment::local(&[
        ("ReferenceBucket", serde_json::json!(reference_bucket)),
        ("ReferenceKey", serde_json::json!(reference_key)),
    ]);
    deployment.assert_allows("EtlRole", &requests);

    let processed = wait_for_objects(&s3, "processed/").await;
    let mut by_message: BTreeMap<String, Value> = BTreeMap::new();
    for object in processed {
        for line in object.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let record: Value = serde_json::from_slice(line).unwrap();
            let message = record["message"].as_str().unwrap().to_owned();
            assert!(by_message.insert(message, record).is_none(), "a message arrived twice");
        }
    }
    assert_eq!(by_message.len(), messages.len());
    for m in messages {
        let record = &by_message[m];
        assert_eq!(record["instance_id"], INSTANCE);
        assert_eq!(record["source"], "security");
        assert_eq!(record["log_group"], group.as_str());
        assert_eq!(record["account"], ACCOUNT);
        assert_eq!(record["application"], "shop", "the instance's tag, read from the enrollment table");
        assert!(record["time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(by_message[messages[0]]["program"], "sshd");
    assert_eq!(by_message[messages[1]]["http_status"], 503);
    assert_eq!(by_message[messages[2]]["severity"], "ERROR");
    assert_eq!(by_message[messages[3]]["format"], "text");
}

/// Member accounts' subscriptions deliver to the central stream; the emulator is one account, so
/// the test lands two members' raw payloads (their envelopes' `owner`) where that stream would. The
/// pump stores each account's records under its own partition, a query for one account reads only
/// that account's objects, and carrying the same payloads again stores nothing twice.
#[tokio::test]
async fn records_of_each_source_account_land_under_their_own_partition() {
    use fleetlog_core::schema::{DATABASE, LOGS_PREFIX};
    use fleetlog_local::stack::{BUCKET as LOCAL_BUCKET, LocalStack, RAW_PREFIX};

    let emulator = fleetlog_tests::start_emulator();
    let stack = LocalStack::deploy(&emulator.sdk_config().await).await.unwrap();
    let (first, second) = ("111111111111", "222222222222");
    let now = i64::try_from(std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap().as_millis()).unwrap();
    for (owner, lines) in [(first, 2), (second, 1)] {
        let events: Vec<Value> = (0..lines)
            .map(|i| serde_json::json!({"id": format!("{owner}-{i}"), "timestamp": now, "message": format!("line {i} of {owner}")}))
            .collect();
        let envelope = serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": owner, "logGroup": format!("/fleetlog/{owner}/system"),
            "logStream": INSTANCE, "subscriptionFilters": ["fleetlog"], "logEvents": events,
        });
        let payload = fleetlog_etl::gzip::gzip(envelope.to_string().as_bytes());
        stack
            .s3
            .put_object()
            .bucket(LOCAL_BUCKET)
            .key(format!("{RAW_PREFIX}{owner}"))
            .body(payload.into())
            .send()
            .await
            .unwrap();
    }

    let report = fleetlog_local::pump::LogPump::default().pump(&stack).await.unwrap();
    assert_eq!((report.payloads, report.events, report.records), (2, 3, 3));
    let keys = fleetlog_aws::s3::list_keys(&stack.s3, LOCAL_BUCKET, LOGS_PREFIX).await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for owner in [first, second] {
        let prefix = format!("{LOGS_PREFIX}account={owner}/dt=");
        assert_eq!(keys.iter().filter(|k| k.starts_with(&prefix)).count(), 1, "{owner}: {keys:?}");
    }

    let objects = fleetlog_cli::query::LocalObjects::in_s3(&stack.s3, LOCAL_BUCKET, LOGS_PREFIX).await.unwrap();
    let table = objects.into_table(false);
    let ctx = fleetlog_cli::query::local_session(table.clone()).await.unwrap();
    let sql = fleetlog_cli::query::for_accounts(
        "SELECT account, count(*) AS lines FROM logs GROUP BY account",
        DATABASE,
        &[first.to_owned()],
    );
    let result = fleetlog_cli::query::run_local(&ctx, &sql).await.unwrap();
    assert_eq!(result.rows, vec![vec![serde_json::json!(first), serde_json::json!(2)]]);
    assert_eq!(table.objects_read(), 1, "the other account's object is not read");

    let again = fleetlog_local::pump::LogPump::default().pump(&stack).await.unwrap();
    assert_eq!(again.records, 3);
    assert_eq!(fleetlog_aws::s3::list_keys(&stack.s3, LOCAL_BUCKET, LOGS_PREFIX).await.unwrap(), keys, "nothing twice");
}

/// `fleetlog archive restore`: the Deep Archive objects of the asked days and account are restored,
/// the others are left alone, and a second run asks nothing again; what it asks is what the stack's
/// QueryRole allows.
#[tokio::test]
async fn archive_restore_asks_for_the_archived_objects_of_the_partitions_asked_once() {
    use aws_sdk_s3::types::StorageClass;
    use fleetlog_core::schema::LOGS_PREFIX;
    use fleetlog_local::stack::{BUCKET as LOCAL_BUCKET, LocalStack};

    let emulator = fleetlog_tests::start_emulator();
    let config = emulator.sdk_config().await;
    let stack = LocalStack::deploy(&config).await.unwrap();
    let (first, second) = ("111111111111", "222222222222");
    let objects = [
        (first, "2026-01-01", StorageClass::DeepArchive),
        (first, "2026-01-01", StorageClass::GlacierIr),
        (first, "2026-01-02", StorageClass::DeepArchive),
        (first, "2026-01-03", StorageClass::DeepArchive),
        (second, "2026-01-01", StorageClass::DeepArchive),
    ];
    for (i, (account, day, class)) in objects.iter().enumerate() {
        stack
            .s3
            .put_object()
            .bucket(LOCAL_BUCKET)
            .key(format!("{LOGS_PREFIX}account={account}/dt={day}/hour=00/part-{i}.gz"))
            .storage_class(class.clone())
            .body(b"{}".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let recorder = CallRecorder::default();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config).force_path_style(true).interceptor(recorder.clone()).build(),
    );
    let plan = fleetlog_cli::archive::RestorePlan {
        bucket: LOCAL_BUCKET.to_owned(),
        prefix: LOGS_PREFIX.to_owned(),
        from: "2026-01-01".parse().unwrap(),
        to: "2026-01-02".parse().unwrap(),
        accounts: vec![first.to_owned()],
        days: 7,
        tier: fleetlog_core::archive::RestoreTier::Bulk,
    };
    let report = fleetlog_cli::archive::restore(&s3, &plan, false).await.unwrap();
    let partitions = report.json["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2, "{}", report.json);
    let counts = |day: &str| partitions.iter().find(|p| p["dt"] == day).unwrap()["counts"].clone();
    assert_eq!(counts("2026-01-01"), serde_json::json!({"readable": 1, "restored": 0, "restoring": 0, "requested": 1}));
    assert_eq!(counts("2026-01-02")["requested"], 1);
    assert_eq!(report.json["within_hours"], 48);
    let restores: Vec<String> =
        recorder.requests().iter().filter(|r| r.action == "s3:RestoreObject").map(|r| r.resource.clone()).collect();
    assert_eq!(restores.len(), 2, "only the asked account's and days' Deep Archive objects: {restores:?}");
    assert!(restores.iter().all(|r| r.contains(&format!("account={first}/")) && !r.contains("2026-01-03")));
    fleetlog_tests::iam::Deployment::local(&[]).assert_allows("QueryRole", &recorder.requests());

    // Again: what was asked is restoring (or restored), nothing is asked twice.
    let again = fleetlog_cli::archive::restore(&s3, &plan, false).await.unwrap();
    let asked_again = again.json["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["counts"]["requested"].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(asked_again, 0, "{}", again.json);
    assert_eq!(recorder.requests().iter().filter(|r| r.action == "s3:RestoreObject").count(), 2);

    // Every account when none is named.
    let all = fleetlog_cli::archive::RestorePlan { accounts: vec![], ..plan };
    let report = fleetlog_cli::archive::restore(&s3, &all, false).await.unwrap();
    let accounts: std::collections::BTreeSet<&str> =
        report.json["partitions"].as_array().unwrap().iter().map(|p| p["account"].as_str().unwrap()).collect();
    assert_eq!(accounts, std::collections::BTreeSet::from([first, second]));
}
