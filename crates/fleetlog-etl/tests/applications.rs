//! Where sources' applications come from, at the request level: the reference file is read again
//! only when its ETag changed (S3 answers 304 otherwise), a file that cannot be used leaves the one in
//! use, and a container remembers a bounded number of instances.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use fleetlog_aws::store::EnrollmentStore;
use fleetlog_etl::applications::ApplicationSource;

fn file(etag: &'static str, body: &'static str) -> impl Fn() -> GetObjectOutput + Send + Sync {
    move || GetObjectOutput::builder().e_tag(etag).body(ByteStream::from_static(body.as_bytes())).build()
}

/// The first reading: no ETag yet.
fn first_reading() -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.if_none_match().is_none())
        .then_output(file("\"1\"", r#"[{"match": "10.0.0.0/8", "application": "billing"}]"#))
}

#[tokio::test]
async fn the_reference_file_is_read_again_only_when_its_etag_changed() {
    let first = first_reading();
    let unchanged = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.if_none_match() == Some("\"1\""))
        .then_http_response(|| Response::new(StatusCode::try_from(304).unwrap(), SdkBody::empty()));
    let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, &[&first, &unchanged]);
    let source = ApplicationSource::new(s3, None, Some(("bucket".into(), "reference/apps.json".into())))
        .checking_every(Duration::ZERO);
    assert_eq!(source.for_instances(None).await.of_client("10.1.2.3"), Some("billing"));
    assert_eq!(source.for_instances(None).await.of_client("10.1.2.3"), Some("billing"), "304: kept");
    assert_eq!((first.num_calls(), unchanged.num_calls()), (1, 1));

    let changed = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.if_none_match() == Some("\"1\""))
        .then_output(file("\"2\"", r#"[{"match": "10.0.0.0/8", "application": "payments"}]"#));
    let broken = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.if_none_match() == Some("\"2\""))
        .then_output(file("\"3\"", "not json"));
    let first = first_reading();
    let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, &[&first, &changed, &broken]);
    let source = ApplicationSource::new(s3, None, Some(("bucket".into(), "k".into()))).checking_every(Duration::ZERO);
    assert_eq!(source.for_instances(None).await.of_client("10.9.9.9"), Some("billing"));
    assert_eq!(source.for_instances(None).await.of_client("10.9.9.9"), Some("payments"), "a new ETag: read");
    assert_eq!(source.for_instances(None).await.of_client("10.9.9.9"), Some("payments"), "a bad file: refused");
    assert_eq!(broken.num_calls(), 1);

    // Within the interval, no call at all.
    let first = first_reading();
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[&first]);
    let source = ApplicationSource::new(s3, None, Some(("bucket".into(), "k".into())));
    source.for_instances(None).await;
    source.for_instances(None).await;
    assert_eq!(first.num_calls(), 1);
}

#[tokio::test]
async fn unknown_instances_are_unknown_and_remembered_within_a_bound() {
    // The table knows none of them.
    let lookup = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_output(|| BatchGetItemOutput::builder().build());
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&lookup]);
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[]);
    let source = ApplicationSource::new(s3, Some(EnrollmentStore::new(dynamodb, "table")), None).remembering(4);
    for batch in 0..10 {
        let ids: Vec<String> = (0..3).map(|i| format!("i-{batch:04}{i:04}")).collect();
        let applications = source.for_instances(ids.clone()).await;
        assert!(ids.iter().all(|id| applications.of(Some(id), None) == "unknown"));
        assert!(source.remembered().await <= 4 + ids.len());
    }
    assert_eq!(lookup.num_calls(), 10, "one read per batch of new instances");
    // Remembered: asking again for the last batch reads nothing.
    source.for_instances((0..3).map(|i| format!("i-{:04}{i:04}", 9))).await;
    assert_eq!(lookup.num_calls(), 10);
}
