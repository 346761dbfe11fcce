//! Many accounts, one log archive: a member stack's enroller subscribes its groups to the central
//! destination with its sender role, and the central ETL tells the member's enroller whose logs
//! arrived, on the member's default bus. The emulator is one account per process, so the central
//! destination and the member's groups share it; what each role's IAM allows is evaluated against
//! that role's stack. The emulator accepts filters to a destination but delivers nothing through
//! one: the central side's handling of other accounts' payloads (their `owner`) is tested by landing
//! them where the destination's stream would (`etl::records_of_each_source_account_…`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fleetlog_core::Platform;
use fleetlog_core::freshness::Sighting;
use fleetlog_tests::calls::{CallCounter, CallRecorder};
use fleetlog_tests::fleet::Fleet;
use fleetlog_tests::iam::Deployment;
use fleetlog_tests::{ACCOUNT, REGION};

/// The log archive account, as the central ETL knows itself.
const CENTRAL: &str = "210987654321";

fn epoch_millis() -> i64 {
    i64::try_from(std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap().as_millis()).unwrap()
}

#[tokio::test]
async fn a_member_subscribes_to_the_central_destination_and_hears_whose_logs_arrived() {
    let fleet = Fleet::member().await;
    let id = fleet.enrolled(Platform::Linux).await;
    fleet.report_command_outcomes(1).await;
    let sender = fleet.deployment.arn("CentralSenderRole");
    for group in ["system", "security", "cloud-init"] {
        let name = format!("{}/{group}", fleet.log_group_prefix);
        let filters = fleet.clients.logs.describe_subscription_filters().log_group_name(&name).send().await.unwrap();
        let filter = &filters.subscription_filters()[0];
        assert_eq!(filter.destination_arn(), Some(fleet.destination_arn.as_str()), "{name}");
        assert!(fleet.destination_arn.contains(":destination:"), "{}", fleet.destination_arn);
        assert_eq!(filter.role_arn(), Some(sender.as_str()), "{name}");
    }

    // The central ETL reports the member's instance on the member's default bus; the member's rule
    // hands it to its enroller, which records the arrival.
    let recorder = CallRecorder::default();
    let clients = CallCounter::default().clients(&fleet.config, &recorder);
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&fleet.config).interceptor(recorder.clone()).build(),
    );
    let reports = fleetlog_etl::SightingReports::new(clients.sqs, fleet.queue_url.clone(), Duration::from_secs(1800))
        .to_members(events, REGION.to_owned(), CENTRAL.to_owned());
    reports
        .report(vec![Sighting { instance_id: id.clone(), newest_ms: epoch_millis(), account: ACCOUNT.to_owned() }])
        .await;
    let central = Deployment::local(&[
        ("StackRole", serde_json::json!("central")),
        ("MemberOrganizationId", serde_json::json!("o-abc123def4")),
    ]);
    let requests = recorder.requests();
    fleetlog_tests::iam::assert_made(&requests, &["events:PutEvents"]);
    central.assert_allows("EtlRole", &requests);
    fleet.deliver(1).await;
    let record = fleet.record(&id).await.unwrap();
    assert!(record.last_log_at.is_some(), "the member's enroller heard its logs arrived: {record:?}");
}
