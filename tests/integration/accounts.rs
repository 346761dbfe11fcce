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

/// account-policy mode: the account's policy delivers, so the enroller creates groups with their
/// retention but no filter, removes fleetlog's filter left from filter mode (each event would come
/// twice), and `status` and `reconcile --dry-run` say what delivers each group. The policy leaves
/// the pipeline's own groups out.
#[tokio::test]
async fn under_the_account_policy_the_enroller_adds_no_filters_and_status_says_what_delivers() {
    use fleetlog_core::account_policy::{POLICY_NAME, excludes, own_log_groups};
    let fleet = Fleet::with_settings(&[("FLEETLOG_SUBSCRIPTION_MODE", "account-policy")]).await;
    fleet.stack.put_account_policy().await.unwrap();
    let id = fleet.enrolled(Platform::Linux).await;
    fleet.report_command_outcomes(1).await;
    let logs = &fleet.clients.logs;
    let system = format!("{}/system", fleet.log_group_prefix);
    for group in ["system", "security", "cloud-init"] {
        let name = format!("{}/{group}", fleet.log_group_prefix);
        let found = logs.describe_log_groups().log_group_name_prefix(&name).send().await.unwrap();
        assert_eq!(found.log_groups()[0].retention_in_days(), Some(3), "{name}");
        let filters = logs.describe_subscription_filters().log_group_name(&name).send().await.unwrap();
        assert!(filters.subscription_filters().is_empty(), "{name}: {:?}", filters.subscription_filters());
    }
    let policy = fleetlog_aws::logs::subscription_policy(logs).await.unwrap().expect("the account policy");
    assert_eq!(policy.name, POLICY_NAME);
    assert_eq!(policy.destination_arn, fleet.stack.raw_stream_arn);
    for own in own_log_groups(fleetlog_local::stack::STACK) {
        assert!(excludes(&policy.selection_criteria, &own), "{own} must not feed the pipeline");
    }
    assert!(!excludes(&policy.selection_criteria, &system));

    let cli = fleetlog_cli::fleet::Fleet::new(&fleet.config, fleetlog_cli::fleet::FleetOptions::local());
    let status = cli.status(std::slice::from_ref(&id)).await.unwrap();
    let groups = status.json["instances"][0]["log_groups"].as_array().unwrap().clone();
    assert_eq!(groups.len(), 3);
    assert!(groups.iter().all(|g| g["delivery"] == "account-policy" && g["subscribed"] == true), "{groups:?}");

    // fleetlog's filter from filter mode: each event would arrive twice; a sweep removes it.
    logs.put_subscription_filter()
        .log_group_name(&system)
        .filter_name("fleetlog")
        .filter_pattern("")
        .destination_arn(&fleet.destination_arn)
        .role_arn(fleetlog_tests::fleet::ROLE_ARN)
        .send()
        .await
        .unwrap();
    let status = cli.status(std::slice::from_ref(&id)).await.unwrap();
    let twice = status.json["instances"][0]["log_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == system.as_str())
        .unwrap()
        .clone();
    assert_eq!(twice["delivery"], "filter-and-account-policy");
    let plan = cli.reconcile(true).await.unwrap();
    assert!(plan.json.to_string().contains(&format!("{system}: filter left over")), "{}", plan.json);
    fleet.state.enroller.run(&fleetlog_enroller::Work { reconcile: true, ..Default::default() }).await.unwrap();
    let filters = logs.describe_subscription_filters().log_group_name(&system).send().await.unwrap();
    assert!(filters.subscription_filters().is_empty(), "{:?}", filters.subscription_filters());
}
