//! The enroller end to end: EC2 events put on EventBridge, routed by the real rules to the real SQS
//! queue, consumed through the same handler Lambda runs, acting on the emulator's SSM, Logs,
//! CloudWatch and DynamoDB.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue::S;
use fleetlog_aws::store::{CLAIM_SECONDS, Claim};
use fleetlog_core::Platform;
use fleetlog_core::record::{EnrollmentRecord, EnrollmentStatus};
use fleetlog_enroller::Work;
use fleetlog_enroller::outcome::{Outcome, Verdict, verdict};
use fleetlog_local::stack::AGENT_DOCUMENT;
use fleetlog_tests::ACCOUNT;
use fleetlog_tests::fleet::{Fleet, MANAGED, ROLE_ARN, TABLE};

/// Now, as claims count time.
fn epoch_seconds() -> i64 {
    epoch_millis() / 1000
}

/// Now, as log events are stamped.
fn epoch_millis() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(now.as_millis()).unwrap()
}

const LINUX_GROUPS: [&str; 3] = ["system", "security", "cloud-init"];
const WINDOWS_GROUPS: [&str; 3] = ["windows-system", "windows-application", "windows-security"];

#[tokio::test]
async fn tagged_linux_and_windows_instances_are_enrolled() {
    let fleet = Fleet::new().await;
    let linux = fleet.launch(Platform::Linux, &[MANAGED], 1).await.remove(0);
    let windows = fleet.launch(Platform::Windows, &[MANAGED], 1).await.remove(0);
    fleet.put_state_changes(&[linux.clone(), windows.clone()], "running").await;

    let report = fleet.deliver(2).await;
    assert_eq!((report.messages, report.retried), (2, 0));

    // One command per instance: fleetlog's own document, with only fenced parameters.
    let linux_commands = fleet.commands_for(&linux).await;
    assert_eq!(linux_commands.len(), 1, "{linux_commands:?}");
    assert_eq!(linux_commands[0].document, AGENT_DOCUMENT);
    let parameters = &linux_commands[0].parameters;
    assert_eq!(parameters["action"], ["configure"]);
    assert_eq!(parameters["configParameter"], ["AmazonCloudWatch-fleetlog-linux"]);
    assert_eq!(parameters["collectd"], ["install"], "the Linux config collects collectd metrics");
    let windows_commands = fleet.commands_for(&windows).await;
    assert_eq!(windows_commands.len(), 1, "{windows_commands:?}");
    assert_eq!(windows_commands[0].document, AGENT_DOCUMENT);
    assert_eq!(windows_commands[0].parameters["configParameter"], ["AmazonCloudWatch-fleetlog-windows"]);
    assert_eq!(windows_commands[0].parameters["collectd"], ["skip"]);
    assert!(linux_commands.iter().chain(&windows_commands).all(|c| !c.instance_ids.is_empty()));

    for group in LINUX_GROUPS.iter().chain(&WINDOWS_GROUPS) {
        let name = format!("{}/{group}", fleet.log_group_prefix);
        let groups = fleet.clients.logs.describe_log_groups().log_group_name_prefix(&name).send().await.unwrap();
        let found = groups
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(found.retention_in_days(), Some(3), "{name}");
        let filters = fleet.clients.logs.describe_subscription_filters().log_group_name(&name).send().await.unwrap();
        let filter = &filters.subscription_filters()[0];
        assert_eq!(filter.filter_name(), Some("fleetlog"));
        assert_eq!(filter.destination_arn(), Some(fleet.destination_arn.as_str()));
        assert_eq!(filter.role_arn(), Some(ROLE_ARN));
    }

    // Enrolling until the commands report back; the status-change events then say they succeeded.
    for id in [&linux, &windows] {
        assert_eq!(fleet.record(id).await.map(|r| r.status), Some(EnrollmentStatus::Enrolling));
    }
    let outcomes = fleet.report_command_outcomes(2).await;
    assert_eq!((outcomes.messages, outcomes.retried), (2, 0));
    for (id, platform, parameter) in [
        (&linux, "linux", "AmazonCloudWatch-fleetlog-linux"),
        (&windows, "windows", "AmazonCloudWatch-fleetlog-windows"),
    ] {
        let record = fleet.record(id).await.expect("enrollment recorded");
        assert_eq!(record.status, EnrollmentStatus::Enrolled);
        assert_eq!((record.attempts, record.failure.clone()), (1, None));
        assert_eq!(record.platform, platform);
        assert_eq!(record.config_parameter, parameter);
        assert_eq!(record.config_version, 1);
        assert_eq!(record.command_ids.len(), 1, "one command: install and configure, in order");
        assert_eq!(record.log_groups.len(), 3);
        let mut alarms = fleet.alarms(id).await;
        alarms.sort();
        let mut recorded = record.alarm_names.clone();
        recorded.sort();
        assert_eq!(alarms, recorded);
        assert_eq!(alarms.len(), 4, "status, CPU, memory and disk alarms: {alarms:?}");
    }
    assert_eq!(fleet.visible_messages(&fleet.queue_url).await, 0);
    assert!(fleet.dead_letters().await.is_empty());
}

#[tokio::test]
async fn untagged_and_wrong_case_instances_are_not_enrolled() {
    let fleet = Fleet::new().await;
    let untagged = fleet.launch(Platform::Linux, &[("Name", "web")], 1).await.remove(0);
    let wrong_case = fleet.launch(Platform::Linux, &[("Fleetlog:Managed", "true")], 1).await.remove(0);
    let wrong_value_case = fleet.launch(Platform::Windows, &[("fleetlog:managed", "True")], 1).await.remove(0);
    fleet.put_state_changes(&[untagged.clone(), wrong_case.clone(), wrong_value_case.clone()], "running").await;

    let report = fleet.deliver(3).await;
    assert_eq!((report.messages, report.retried), (3, 0));
    assert!(fleet.commands().await.is_empty());
    for id in [&untagged, &wrong_case, &wrong_value_case] {
        assert_eq!(fleet.record(id).await, None);
        assert!(fleet.alarms(id).await.is_empty());
    }
    assert!(fleet.dead_letters().await.is_empty(), "not being tagged is not an error");
}

#[tokio::test]
async fn a_changed_application_tag_reaches_the_record_without_a_new_command() {
    let fleet = Fleet::new().await;
    let id = fleet.launch(Platform::Linux, &[MANAGED, ("Application", "shop"), ("Owner", "team-a")], 1).await.remove(0);
    fleet.put_state_changes(std::slice::from_ref(&id), "running").await;
    fleet.deliver(1).await;
    let enrolled = fleet.record(&id).await.unwrap();
    assert_eq!((enrolled.application.as_deref(), enrolled.owner.as_deref()), (Some("shop"), Some("team-a")));

    // Retagged, then its owner tag removed: each change reaches the record, through the rule.
    fleet.change_tag(&id, "Application", Some("search")).await;
    fleet.deliver(1).await;
    fleet.change_tag(&id, "Owner", None).await;
    fleet.deliver(1).await;
    let retagged = fleet.record(&id).await.unwrap();
    assert_eq!((retagged.application.as_deref(), retagged.owner.as_deref()), (Some("search"), None));
    assert_eq!(fleet.commands().await.len(), 1, "no new command for a new owner");
    assert_eq!(
        EnrollmentRecord { application: None, owner: None, ..retagged },
        EnrollmentRecord { application: None, owner: None, ..enrolled },
        "nothing else in the record changed"
    );
}

#[tokio::test]
async fn the_same_event_three_times_has_one_set_of_side_effects() {
    let fleet = Fleet::new().await;
    let id = fleet.launch(Platform::Linux, &[MANAGED], 1).await.remove(0);
    // Twice in one batch, then once more later (at-least-once delivery does both).
    fleet.put_state_changes(&[id.clone(), id.clone()], "running").await;
    fleet.deliver(2).await;
    let after_first = fleet.record(&id).await.unwrap();
    fleet.put_state_changes(std::slice::from_ref(&id), "running").await;
    let report = fleet.deliver(1).await;
    assert_eq!(report.retried, 0);

    assert_eq!(fleet.commands().await.len(), 1, "one command, sent once");
    assert_eq!(fleet.record(&id).await.unwrap(), after_first, "the record is untouched by the duplicate");
    assert_eq!(fleet.alarms(&id).await.len(), 4);
}

#[tokio::test]
async fn two_runs_at_once_on_the_same_instance_send_its_commands_once() {
    // Duplicate deliveries can land in two batches that two enroller instances (reserved concurrency 2)
    // handle at the same time; both read the instance as not enrolled.
    let fleet = Fleet::new().await;
    let id = fleet.launch(Platform::Linux, &[MANAGED], 1).await.remove(0);
    let other = fleet.stack.enroller(&[], fleet.clients.clone()).unwrap();
    let work = Work { instance_ids: BTreeSet::from([id.clone()]), ..Work::default() };
    let (first, second) = tokio::join!(fleet.state.enroller.run(&work), other.run(&work));
    let outcomes = [first.unwrap().remove(&id).unwrap(), second.unwrap().remove(&id).unwrap()];

    assert_eq!(fleet.commands().await.len(), 1, "one command, sent once: {outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Outcome::Enrolled { .. })).count(), 1, "{outcomes:?}");
    // The other run either waited for nothing (already enrolled) or is told to retry later, when the
    // record is there.
    if let Some(held) = outcomes.iter().find(|o| matches!(o, Outcome::Deferred { .. })) {
        assert!(format!("{held:?}").contains("another enrollment run"), "{held:?}");
        assert!(matches!(verdict(held), Verdict::Retry(_)), "retried later, not dead-lettered: {held:?}");
        let again = other.run(&work).await.unwrap().remove(&id).unwrap();
        assert!(matches!(again, Outcome::AlreadyEnrolled { .. }), "{again:?}");
    }
    assert_eq!(fleet.commands().await.len(), 1);
    assert_eq!(fleet.record(&id).await.unwrap().status, EnrollmentStatus::Enrolling);
}

#[tokio::test]
async fn an_instance_another_run_holds_is_retried_later_not_failed() {
    let fleet = Fleet::new().await;
    let id = fleet.launch(Platform::Linux, &[MANAGED], 1).await.remove(0);
    let store = &fleet.state.enroller.store;
    let config = "AmazonCloudWatch-fleetlog-linux";
    assert_eq!(store.claim(&id, config, 1, "another-run", epoch_seconds()).await.unwrap(), Claim::Granted);

    fleet.put_state_changes(std::slice::from_ref(&id), "running").await;
    let report = fleet.deliver(1).await;
    assert_eq!(report.retried, 1, "left on the queue for a later try");
    assert!(fleet.commands().await.is_empty());
    assert!(fleet.dead_letters().await.is_empty());
    assert_eq!(fleet.record(&id).await, None);

    // The other run gives up its claim (or it expires): the retry enrolls.
    store.release(&id, "another-run").await.unwrap();
    let work = Work { instance_ids: BTreeSet::from([id.clone()]), ..Work::default() };
    let outcome = fleet.state.enroller.run(&work).await.unwrap().remove(&id).unwrap();
    assert!(matches!(outcome, Outcome::Enrolled { .. }), "{outcome:?}");
    assert_eq!(fleet.commands().await.len(), 1);
}

#[tokio::test]
async fn enrollment_claims_exclude_each_other_expire_and_yield_to_a_current_record() {
    let fleet = Fleet::new().await;
    let store = &fleet.state.enroller.store;
    let (id, config, now) = ("i-0aaaaaaaaaaaaaaa1", "AmazonCloudWatch-fleetlog-linux", 1_764_000_000);

    assert_eq!(store.claim(id, config, 1, "a", now).await.unwrap(), Claim::Granted);
    assert_eq!(store.get(id).await.unwrap(), None, "a claim alone is no record");
    assert_eq!(store.claim(id, config, 1, "b", now + 1).await.unwrap(), Claim::Held);
    assert_eq!(store.claim(id, config, 1, "a", now + 1).await.unwrap(), Claim::Held, "not re-entrant");
    // Only its owner ends a claim.
    store.release(id, "b").await.unwrap();
    assert_eq!(store.claim(id, config, 1, "b", now + 2).await.unwrap(), Claim::Held);
    store.release(id, "a").await.unwrap();
    let item = |id: &str| fleet.clients.dynamodb.get_item().table_name(TABLE).key("instance_id", S(id.into())).send();
    assert_eq!(item(id).await.unwrap().item(), None, "an item that held only the claim is gone");
    assert_eq!(store.claim(id, config, 1, "b", now + 3).await.unwrap(), Claim::Granted);
    // An owner that never comes back: its claim expires.
    assert_eq!(store.claim(id, config, 1, "c", now + 3 + CLAIM_SECONDS).await.unwrap(), Claim::Held);
    assert_eq!(store.claim(id, config, 1, "c", now + 4 + CLAIM_SECONDS).await.unwrap(), Claim::Granted);

    // Writing the record ends the claim; the same config version is then current, a new one is not.
    let record = fleetlog_core::record::EnrollmentRecord {
        instance_id: id.into(),
        status: EnrollmentStatus::Enrolled,
        platform: "linux".into(),
        config_parameter: config.into(),
        config_version: 1,
        command_ids: vec!["c-1".into()],
        log_groups: vec![],
        alarm_names: vec![],
        updated_at: "2026-11-30T00:00:00Z".into(),
        attempts: 1,
        sent_at: Some(now),
        retry_at: None,
        failure: None,
        last_log_at: None,
        application: None,
        owner: None,
    };
    assert!(!store.put_claimed(&record, "b").await.unwrap(), "only the claim's owner writes the record");
    assert!(store.put_claimed(&record, "c").await.unwrap());
    assert_eq!(store.claim(id, config, 1, "d", now + 5 + CLAIM_SECONDS).await.unwrap(), Claim::AlreadyCurrent);
    assert_eq!(store.claim(id, config, 2, "d", now + 5 + CLAIM_SECONDS).await.unwrap(), Claim::Granted);
    assert_eq!(store.get(id).await.unwrap(), Some(record.clone()), "a claim leaves the record as it was");
    assert_eq!(store.list_active().await.unwrap().len(), 1);
    // Released from a record: the claim goes, the record stays.
    store.release(id, "d").await.unwrap();
    let attributes = item(id).await.unwrap().item().cloned().unwrap();
    assert!(!attributes.contains_key("claim_owner") && !attributes.contains_key("claim_expires"), "{attributes:?}");
    assert_eq!(store.get(id).await.unwrap(), Some(record));
}

#[tokio::test]
async fn a_burst_of_120_instances_is_batched_50_per_command() {
    let fleet = Fleet::new().await;
    let ids = fleet.launch(Platform::Linux, &[MANAGED], 120).await;
    fleet.put_state_changes(&ids, "running").await;
    fleet.enroller_calls.reset();
    let report = fleet.deliver(120).await;
    assert_eq!((report.messages, report.retried), (120, 0));

    // The enroller's own AWS calls (the queue's receive/delete are the event source mapping's).
    let calls: std::collections::BTreeMap<String, usize> =
        fleet.enroller_calls.snapshot().into_iter().filter(|(op, _)| !op.starts_with("SQS:")).collect();
    let total: usize = calls.values().sum();
    println!("enroller AWS calls for 120 instances: {total} ({:.2} per instance): {calls:?}", total as f64 / 120.0);
    assert_eq!(calls.get("EC2:DescribeInstances"), Some(&2), "one read per handler invocation");
    assert_eq!(calls.get("SSM:SendCommand"), Some(&3));
    assert_eq!(calls.get("CloudWatch:PutMetricAlarm"), Some(&480), "four alarms per instance");
    assert_eq!(calls.get("DynamoDB:UpdateItem"), Some(&120), "one claim per instance, none released");
    // Per instance: four alarms, its claim and its record; the reads, log groups and commands are batched.
    assert!(total <= 120 * 6 + 40, "{total} calls");

    let commands = fleet.commands().await;
    assert!(
        commands.iter().all(|c| c.instance_ids.len() <= 50),
        "{:?}",
        commands.iter().map(|c| c.instance_ids.len()).collect::<Vec<_>>()
    );
    assert!(commands.iter().all(|c| c.document == AGENT_DOCUMENT), "{commands:?}");
    let targets: Vec<&String> = commands.iter().flat_map(|c| &c.instance_ids).collect();
    let unique: BTreeSet<&String> = targets.iter().copied().collect();
    assert_eq!(targets.len(), 120, "every instance exactly once");
    assert_eq!(unique.len(), 120);
    // Two handler invocations (100 + 20 messages) → 50 + 50 + 20.
    assert_eq!(commands.len(), 3, "batched into 3 calls");
    for id in &ids {
        assert_eq!(fleet.record(id).await.map(|r| r.status), Some(EnrollmentStatus::Enrolling), "{id}");
    }
}

#[tokio::test]
async fn tag_removal_and_termination_offboard_and_keep_logs() {
    let fleet = Fleet::new().await;
    let ids = fleet.launch(Platform::Linux, &[MANAGED], 2).await;
    fleet.put_state_changes(&ids, "running").await;
    fleet.deliver(2).await;
    for id in &ids {
        assert_eq!(fleet.alarms(id).await.len(), 4);
    }

    fleet.change_tag(&ids[0], "fleetlog:managed", None).await;
    fleet.clients.ec2.terminate_instances().instance_ids(&ids[1]).send().await.unwrap();
    fleet.wait_for_state(&ids[1..], "terminated").await;
    fleet.put_state_changes(&ids[1..], "terminated").await;
    let report = fleet.deliver(2).await;
    assert_eq!((report.messages, report.retried), (2, 0));

    for id in &ids {
        assert!(fleet.alarms(id).await.is_empty(), "{id}: alarms deleted");
        let record = fleet.record(id).await.unwrap();
        assert_eq!(record.status, EnrollmentStatus::Offboarded, "{id}");
        assert!(record.alarm_names.is_empty());
    }
    let system = format!("{}/system", fleet.log_group_prefix);
    let groups = fleet.clients.logs.describe_log_groups().log_group_name_prefix(&system).send().await.unwrap();
    assert_eq!(groups.log_groups().len(), 1, "log groups are kept after offboarding");

    // Tagging it again enrolls it again.
    fleet.change_tag(&ids[0], "fleetlog:managed", Some("true")).await;
    fleet.deliver(1).await;
    assert_eq!(fleet.record(&ids[0]).await.unwrap().status, EnrollmentStatus::Enrolling);
}

#[tokio::test]
async fn reconcile_enrolls_missed_instances_and_applies_new_config_versions() {
    let fleet = Fleet::new().await;
    let enrolled = fleet.launch(Platform::Linux, &[MANAGED], 1).await.remove(0);
    fleet.put_state_changes(std::slice::from_ref(&enrolled), "running").await;
    fleet.deliver(1).await;
    // An instance whose event was lost, and a config change since.
    let missed = fleet.launch(Platform::Windows, &[MANAGED], 1).await.remove(0);
    let untagged = fleet.launch(Platform::Linux, &[], 1).await.remove(0);
    fleet.publish_config("linux.json", "AmazonCloudWatch-fleetlog-linux").await;

    let request = serde_json::json!({"source": "fleetlog", "detail-type": "fleetlog Reconcile Request", "detail": {}});
    fleet
        .clients
        .sqs
        .send_message()
        .queue_url(&fleet.queue_url)
        .message_body(request.to_string())
        .send()
        .await
        .unwrap();
    let report = fleet.deliver(1).await;
    assert_eq!((report.messages, report.retried), (1, 0));

    let missed_record = fleet.record(&missed).await.expect("missed instance enrolled by reconcile");
    assert_eq!(missed_record.status, EnrollmentStatus::Enrolling);
    let drifted = fleet.record(&enrolled).await.unwrap();
    assert_eq!(drifted.config_version, 2, "re-applied with the new config version");
    assert_eq!(fleet.commands_for(&enrolled).await.len(), 2, "configured twice");
    assert_eq!(fleet.record(&untagged).await, None);
}

#[tokio::test]
async fn permanent_failures_reach_the_dlq_with_a_reason() {
    let fleet = Fleet::new().await;
    // A profile with no published config, and an event that is not JSON.
    let id = fleet.launch(Platform::Linux, &[MANAGED, ("fleetlog:profile", "web")], 1).await.remove(0);
    fleet.put_state_changes(std::slice::from_ref(&id), "running").await;
    fleet.clients.sqs.send_message().queue_url(&fleet.queue_url).message_body("{not json").send().await.unwrap();
    let report = fleet.deliver(2).await;
    assert_eq!((report.messages, report.retried), (2, 0), "permanent failures are not retried");

    let mut dead = fleet.dead_letters().await;
    dead.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter().any(|(body, reason)| body == "{not json" && reason.contains("not an EventBridge event")),
        "{dead:?}"
    );
    assert!(
        dead.iter().any(|(body, reason)| body.contains(&id)
            && reason.contains("AmazonCloudWatch-fleetlog-linux-web does not exist")),
        "{dead:?}"
    );
    assert_eq!(fleet.record(&id).await, None);
    assert_eq!(fleet.visible_messages(&fleet.queue_url).await, 0);
}

/// A config written to Parameter Store by hand (not through `configs publish`) is checked as policy
/// at enrollment: groups outside the prefix the role may manage, files outside the allowed paths and
/// redirection of the agent's data are refused with the reason, and nothing is created or sent.
#[tokio::test]
async fn configs_that_break_policy_are_refused_at_enrollment() {
    let fleet = Fleet::with_settings(&[("FLEETLOG_ALLOWED_LOG_PATHS", "/srv/app/")]).await;
    let prefix = fleet.log_group_prefix.clone();
    let files = |path: &str, group: &str| {
        format!(
            r#"{{"logs": {{"logs_collected": {{"files": {{"collect_list": [
            {{"file_path": "{path}", "log_group_name": "{group}", "log_stream_name": "{{instance_id}}"}}]}}}}}}}}"#
        )
    };
    let cases = [
        ("outside", files("/var/log/app.log", "web/{instance_id}"), "outside fleetlog's log groups"),
        ("shadow", files("/etc/shadow", &format!("{prefix}/x")), "outside the allowed paths"),
        (
            "redirect",
            r#"{"agent": {"credentials": {"role_arn": "arn:aws:iam::999999999999:role/x"}}, "logs": {"logs_collected": {}}}"#
                .to_owned(),
            "$.agent.credentials",
        ),
        ("extended", files("/srv/app/app.log", &format!("{prefix}/app")), ""),
    ];
    let mut ids = Vec::new();
    for (profile, config, _) in &cases {
        fleet.put_parameter(&format!("AmazonCloudWatch-fleetlog-linux-{profile}"), config).await;
        ids.push(fleet.launch(Platform::Linux, &[MANAGED, ("fleetlog:profile", profile)], 1).await.remove(0));
    }
    fleet.put_state_changes(&ids, "running").await;
    fleet.deliver(ids.len()).await;

    let dead = fleet.dead_letters().await;
    for ((_, _, reason), id) in cases.iter().zip(&ids) {
        if reason.is_empty() {
            // A folder the operator allowed: enrolled.
            assert_eq!(fleet.record(id).await.map(|r| r.status), Some(EnrollmentStatus::Enrolling));
            continue;
        }
        assert!(dead.iter().any(|(body, r)| body.contains(id.as_str()) && r.contains(reason)), "{reason}: {dead:?}");
        assert_eq!(fleet.record(id).await, None);
        assert!(fleet.commands_for(id).await.is_empty(), "nothing was sent to {id}");
    }
    let stray = fleet.clients.logs.describe_log_groups().log_group_name_prefix("web/").send().await.unwrap();
    assert!(stray.log_groups().is_empty(), "no group outside the prefix was created");
}

#[tokio::test]
async fn a_group_with_two_foreign_filters_is_a_clear_permanent_error() {
    let fleet = Fleet::new().await;
    let system = format!("{}/system", fleet.log_group_prefix);
    fleet.create_group_with_two_foreign_filters(&system).await;
    let id = fleet.enrolled(Platform::Linux).await;

    let dead = fleet.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].1.contains("already has 2 subscription filters"), "{dead:?}");
    let filters = fleet.clients.logs.describe_subscription_filters().log_group_name(&system).send().await.unwrap();
    let names: BTreeSet<_> = filters.subscription_filters().iter().filter_map(|f| f.filter_name()).collect();
    assert_eq!(names, BTreeSet::from(["team-a", "team-b"]), "foreign filters untouched");
    // The failed run released its claim: once the group is fixed, a retry need not wait for it to expire.
    let claim =
        fleet.state.enroller.store.claim(&id, "AmazonCloudWatch-fleetlog-linux", 1, "next", epoch_seconds()).await;
    assert_eq!(claim.unwrap(), Claim::Granted);
}

#[tokio::test]
async fn direct_eventbridge_invocation_enrolls_and_bad_payloads_are_errors() {
    let fleet = Fleet::new().await;
    let id = fleet.launch(Platform::Windows, &[MANAGED], 1).await.remove(0);
    let event = fleetlog_core::events::ec2_state_change_event(&id, "running", "123456789012", "us-east-1");

    let answer = fleetlog_enroller::handle(&fleet.state, event, None).await.unwrap();
    assert_eq!(answer["outcomes"][&id]["outcome"], "enrolled", "{answer}");
    assert_eq!(fleet.record(&id).await.unwrap().status, EnrollmentStatus::Enrolling);

    let err = fleetlog_enroller::handle(&fleet.state, serde_json::json!({"hello": "world"}), None).await.unwrap_err();
    assert!(err.to_string().contains("neither an SQS batch nor an EventBridge event"), "{err}");
    let unsupported = serde_json::json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}});
    let err = fleetlog_enroller::handle(&fleet.state, unsupported, None).await.unwrap_err();
    assert!(err.to_string().contains("unsupported event"), "{err}");
}

#[tokio::test]
async fn a_profile_tag_selects_its_own_config_and_retention_and_kms_settings_apply() {
    let fleet = Fleet::with_settings(&[
        ("FLEETLOG_LOG_RETENTION_DAYS", "14"),
        (
            "FLEETLOG_LOG_GROUP_KMS_KEY_ARN",
            "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555",
        ),
    ])
    .await;
    let web = format!(
        r#"{{"logs": {{"logs_collected": {{"files": {{"collect_list": [
        {{"file_path": "/var/log/nginx/access.log", "log_group_name": "{}/web/{{instance_id}}", "log_stream_name": "{{instance_id}}"}}]}}}}}}}}"#,
        fleet.log_group_prefix
    );
    fleet.put_parameter("AmazonCloudWatch-fleetlog-linux-web", &web).await;
    let id = fleet.launch(Platform::Linux, &[MANAGED, ("fleetlog:profile", "web")], 1).await.remove(0);
    fleet.put_state_changes(std::slice::from_ref(&id), "running").await;
    fleet.deliver(1).await;

    let record = fleet.record(&id).await.unwrap();
    assert_eq!(record.config_parameter, "AmazonCloudWatch-fleetlog-linux-web");
    let group_name = format!("{}/web/{id}", fleet.log_group_prefix);
    assert_eq!(record.log_groups, std::slice::from_ref(&group_name), "{{instance_id}} resolved per instance");
    let commands = fleet.commands_for(&id).await;
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert_eq!(commands[0].parameters["configParameter"], ["AmazonCloudWatch-fleetlog-linux-web"]);
    assert_eq!(commands[0].parameters["collectd"], ["skip"], "this profile collects no collectd metrics");
    let groups = fleet.clients.logs.describe_log_groups().log_group_name_prefix(&group_name).send().await.unwrap();
    let group = &groups.log_groups()[0];
    assert_eq!(group.retention_in_days(), Some(14));
    assert_eq!(group.kms_key_id(), Some("arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"));
    assert_eq!(fleet.alarms(&id).await.len(), 2, "no memory/disk metrics in this config: status and CPU alarms only");
}

#[tokio::test]
async fn a_sweep_asks_ssm_about_commands_whose_status_event_never_came() {
    let fleet = Fleet::new().await;
    let id = fleet.enrolled(Platform::Linux).await;
    // The emulator runs the command to Success; no event reports it.
    let command = fleet.record(&id).await.unwrap().command_ids[0].clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) =
            fleetlog_aws::ssm::invocation_outcome(&fleet.clients.ssm, &command, &id).await.unwrap().unwrap();
        if status == fleetlog_core::command_outcome::InvocationStatus::Success {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the emulator did not finish the command: {status:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let sweep = Work { reconcile: true, ..Work::default() };
    let early = fleet.state.enroller.run(&sweep).await.unwrap();
    assert!(matches!(early[&id], Outcome::AlreadyEnrolled { .. }), "not overdue yet, not asked: {early:?}");
    // Sent an hour ago, as far as the record knows.
    fleet
        .clients
        .dynamodb
        .update_item()
        .table_name(TABLE)
        .key("instance_id", S(id.clone()))
        .update_expression("SET sent_at = :sent")
        .expression_attribute_values(
            ":sent",
            aws_sdk_dynamodb::types::AttributeValue::N((epoch_seconds() - 3600).to_string()),
        )
        .send()
        .await
        .unwrap();
    fleet.enroller_calls.reset();

    let outcomes = fleet.state.enroller.run(&sweep).await.unwrap();

    assert!(matches!(outcomes[&id], Outcome::Configured { .. }), "{outcomes:?}");
    assert_eq!(fleet.record(&id).await.unwrap().status, EnrollmentStatus::Enrolled);
    let calls = fleet.enroller_calls.snapshot();
    assert_eq!(
        calls.get("SSM:ListCommandInvocations"),
        Some(&1),
        "one question for the one overdue command: {calls:?}"
    );
    assert_eq!(calls.get("SSM:SendCommand"), None, "nothing was sent again");
}

#[tokio::test]
async fn enrollment_and_offboarding_at_once_leave_a_consistent_record() {
    let fleet = Fleet::new().await;
    let id = fleet.enrolled(Platform::Linux).await;
    // A new config version for one run to enroll with, while another run, told that the management
    // tag's value is now "off", offboards the same instance at the same time.
    fleet.publish_config("linux.json", "AmazonCloudWatch-fleetlog-linux").await;
    let enroller = fleet.stack.enroller(&[], fleet.clients.clone()).unwrap();
    let offboarder = fleet.stack.enroller(&[("FLEETLOG_MANAGEMENT_TAG_VALUE", "off")], fleet.clients.clone()).unwrap();
    let work = Work { instance_ids: BTreeSet::from([id.clone()]), ..Work::default() };

    for round in 0..5 {
        let (enrolled, offboarded) = tokio::join!(enroller.run(&work), offboarder.run(&work));
        let (enrolled, offboarded) = (enrolled.unwrap().remove(&id).unwrap(), offboarded.unwrap().remove(&id).unwrap());
        // Whichever claimed first acted; the other was deferred, so no write interleaved.
        let record = fleet.record(&id).await.unwrap();
        let mut alarms = fleet.alarms(&id).await;
        alarms.sort();
        let mut recorded = record.alarm_names.clone();
        recorded.sort();
        assert_eq!(alarms, recorded, "round {round}: {:?} after {enrolled:?} / {offboarded:?}", record.status);
        if record.status == EnrollmentStatus::Offboarded {
            assert!(alarms.is_empty());
        } else {
            assert_eq!(record.config_version, 2, "round {round}: {enrolled:?} / {offboarded:?}");
        }
    }
    // Settled: the offboarder, alone, ends it.
    offboarder.run(&work).await.unwrap();
    assert_eq!(fleet.record(&id).await.unwrap().status, EnrollmentStatus::Offboarded);
    assert!(fleet.alarms(&id).await.is_empty());
}

#[tokio::test]
async fn a_sweep_over_a_large_fleet_fans_out_into_per_instance_requests() {
    let fleet = Fleet::new().await;
    let n = fleetlog_enroller::enroll::FAN_OUT_ABOVE + 1;
    let ids = fleet.launch(Platform::Linux, &[MANAGED], i32::try_from(n).unwrap()).await;
    fleet.enroller_calls.reset();

    let outcomes = fleet.state.enroller.run(&Work { reconcile: true, ..Work::default() }).await.unwrap();

    assert!(ids.iter().all(|id| matches!(outcomes[id], Outcome::FannedOut)), "{outcomes:?}");
    let calls = fleet.enroller_calls.snapshot();
    assert_eq!(calls.get("SQS:SendMessageBatch"), Some(&n.div_ceil(10)), "{calls:?}");
    assert_eq!(calls.get("SSM:SendCommand"), None, "the sweep itself enrolled nothing");
    let report = fleet.deliver(n).await;
    assert_eq!((report.messages, report.retried), (n, 0));
    for id in &ids {
        assert_eq!(fleet.record(id).await.map(|r| r.status), Some(EnrollmentStatus::Enrolling), "{id}");
    }
}

#[tokio::test]
async fn an_instance_is_delivering_while_the_pipeline_carries_its_logs_and_silent_when_they_stop() {
    // The enroller writes a record at most once per quarter window (here 0.25 s). `status` is read
    // with an hour's window (nothing can age out while the test runs) and with a second's, after
    // waiting longer than that: no outcome depends on how fast this machine is.
    let fleet = Fleet::with_settings(&[("FLEETLOG_FRESHNESS_WINDOW_SECONDS", "1")]).await;
    let id = fleet.enrolled(Platform::Linux).await;
    let view = |seconds| {
        let options = fleetlog_cli::fleet::FleetOptions {
            freshness_window: std::time::Duration::from_secs(seconds),
            ..fleetlog_cli::fleet::FleetOptions::local()
        };
        fleetlog_cli::fleet::Fleet::new(&fleet.config, options)
    };
    let (cli, strict) = (view(3600), view(1));
    let status =
        |report: fleetlog_cli::output::Report| report.json["instances"][0]["status"].as_str().unwrap().to_owned();
    assert_eq!(status(cli.status(std::slice::from_ref(&id)).await.unwrap()), "enrolling");
    fleet.report_command_outcomes(1).await;
    assert_eq!(
        status(cli.status(std::slice::from_ref(&id)).await.unwrap()),
        "enrolled",
        "nothing yet, too early to say"
    );

    // A line as the agent would write it, carried by the subscription, Firehose and the ETL, which
    // reports the instance on the enroll queue.
    let group = format!("{}/system", fleet.log_group_prefix);
    let logs = &fleet.clients.logs;
    logs.create_log_stream().log_group_name(&group).log_stream_name(&id).send().await.unwrap();
    let event = aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
        .timestamp(epoch_millis())
        .message("Dec  2 05:00:00 ip-10-0-0-1 systemd[1]: Started Session 1 of user ec2-user.")
        .build()
        .unwrap();
    logs.put_log_events().log_group_name(&group).log_stream_name(&id).log_events(event).send().await.unwrap();
    let mut pump = fleetlog_local::pump::LogPump::default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while pump.pump(&fleet.stack).await.unwrap().events == 0 {
        assert!(std::time::Instant::now() < deadline, "the log line never came through the subscription");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    fleet.deliver(1).await;
    let seen = fleet.record(&id).await.unwrap().last_log_at.expect("the enroller kept when its logs arrived");
    assert_eq!(status(cli.status(std::slice::from_ref(&id)).await.unwrap()), "delivering");

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(status(strict.status(std::slice::from_ref(&id)).await.unwrap()), "silent");
    assert_eq!(status(cli.status(std::slice::from_ref(&id)).await.unwrap()), "delivering", "within an hour");
    let fleet_view = strict.status(&[]).await.unwrap();
    assert_eq!(fleet_view.json["summary"]["silent"], 1, "{}", fleet_view.json["summary"]);

    // What the ETL's report asks of IAM, as its role in the stack grants it.
    let recorder = fleetlog_tests::calls::CallRecorder::default();
    let clients = fleetlog_tests::calls::CallCounter::default().clients(&fleet.config, &recorder);
    let reports =
        fleetlog_etl::SightingReports::new(clients.sqs, fleet.queue_url.clone(), std::time::Duration::from_secs(1));
    let sighting = fleetlog_core::freshness::Sighting {
        instance_id: id.clone(),
        newest_ms: epoch_millis(),
        account: ACCOUNT.to_owned(),
    };
    reports.report(vec![sighting]).await;
    fleetlog_tests::iam::Deployment::local(&[]).assert_allows("EtlRole", &recorder.requests());
    fleet.deliver(1).await;
    assert!(fleet.record(&id).await.unwrap().last_log_at > Some(seen), "the newer arrival is kept");
}

#[tokio::test]
async fn a_sweep_repairs_what_was_changed_by_hand() {
    let fleet = Fleet::new().await;
    let id = fleet.enrolled(Platform::Linux).await;
    fleet.report_command_outcomes(1).await;
    let system = format!("{}/system", fleet.log_group_prefix);
    let security = format!("{}/security", fleet.log_group_prefix);
    let logs = &fleet.clients.logs;
    let cloudwatch = &fleet.clients.cloudwatch;
    // By hand: retention changed, fleetlog's filter deleted, an alarm deleted, and an alarm for a
    // metric the config does not collect.
    logs.put_retention_policy().log_group_name(&system).retention_in_days(7).send().await.unwrap();
    logs.delete_subscription_filter().log_group_name(&security).filter_name("fleetlog").send().await.unwrap();
    let alarms = fleet.alarms(&id).await;
    let cpu = alarms.iter().find(|a| a.ends_with("cpu-high")).unwrap().clone();
    cloudwatch.delete_alarms().alarm_names(&cpu).send().await.unwrap();
    let stale = format!("fleetlog-{id}-swap-high");
    cloudwatch
        .put_metric_alarm()
        .alarm_name(&stale)
        .namespace("CWAgent")
        .metric_name("swap_used_percent")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .threshold(90.0)
        .period(300)
        .evaluation_periods(1)
        .send()
        .await
        .unwrap();

    // The dry run names each of them, per resource, and changes nothing.
    let cli = fleetlog_cli::fleet::Fleet::new(&fleet.config, fleetlog_cli::fleet::FleetOptions::local());
    let drift_of = |report: fleetlog_cli::output::Report| -> Vec<String> {
        let plan = report.json["plan"].as_array().unwrap().clone();
        let entry = plan.into_iter().find(|p| p["instance_id"] == id.as_str()).unwrap();
        entry["drift"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect()
    };
    let drifted = [
        format!("{system}: retention 7 → 3"),
        format!("{security}: filter missing"),
        format!("alarm missing: {cpu}"),
        format!("alarm stale: {stale}"),
    ];
    let planned = drift_of(cli.reconcile(true).await.unwrap());
    for expected in &drifted {
        assert!(planned.contains(expected), "{expected} not in {planned:?}");
    }
    assert_eq!(drift_of(cli.reconcile(true).await.unwrap()), planned, "the dry run changed nothing");

    let outcomes = fleet.state.enroller.run(&Work { reconcile: true, ..Work::default() }).await.unwrap();

    let Outcome::Repaired { repairs } = &outcomes[&id] else { panic!("{outcomes:?}") };
    for expected in &drifted {
        assert!(repairs.contains(expected), "{expected} not in {repairs:?}");
    }
    let groups = logs.describe_log_groups().log_group_name_prefix(&system).send().await.unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(3));
    let filters = logs.describe_subscription_filters().log_group_name(&security).send().await.unwrap();
    assert_eq!(filters.subscription_filters()[0].filter_name(), Some("fleetlog"));
    let mut now = fleet.alarms(&id).await;
    now.sort();
    let mut before = alarms;
    before.sort();
    assert_eq!(now, before, "the deleted alarm is back, the stale one gone");
    // Nothing left to repair.
    let again = fleet.state.enroller.run(&Work { reconcile: true, ..Work::default() }).await.unwrap();
    assert!(matches!(again[&id], Outcome::AlreadyEnrolled { .. }), "{again:?}");
    assert!(drift_of(cli.reconcile(true).await.unwrap()).is_empty());
    // A new config version: the dry run says it will be re-applied.
    fleet.publish_config("linux.json", "AmazonCloudWatch-fleetlog-linux").await;
    assert_eq!(drift_of(cli.reconcile(true).await.unwrap()), ["config v1 → v2: re-applied"]);
}

#[tokio::test]
async fn an_instance_left_failed_is_tried_again_when_an_operator_asks() {
    let fleet = Fleet::new().await;
    let id = fleet.enrolled(Platform::Linux).await;
    // Its last attempt failed (as the enroller records it; the emulator runs every command to Success).
    let store = &fleet.state.enroller.store;
    let sent = store.get(&id).await.unwrap().unwrap();
    let failed = fleetlog_core::record::EnrollmentRecord {
        status: EnrollmentStatus::Failed,
        attempts: 3,
        failure: Some(fleetlog_core::command_outcome::CommandFailure {
            command_id: sent.command_ids[0].clone(),
            status: "Failed".into(),
            step: Some("installAgent".into()),
            output: "Failed to download the package".into(),
        }),
        ..sent.clone()
    };
    assert!(store.record_outcome(&failed, &sent.command_ids[0]).await.unwrap());
    let cli = fleetlog_cli::fleet::Fleet::new(&fleet.config, fleetlog_cli::fleet::FleetOptions::local());
    let plan = cli.reconcile(true).await.unwrap();
    assert!(plan.json.to_string().contains("no attempts left"), "{}", plan.json);
    let status = cli.status(std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(status.json["instances"][0]["status"], "failed");
    assert!(
        status.notes[0].contains("installAgent") && status.notes[0].contains("Failed to download"),
        "{:?}",
        status.notes
    );

    // A sweep leaves it failed: its attempts are used up.
    fleet.state.enroller.run(&Work { reconcile: true, ..Work::default() }).await.unwrap();
    assert_eq!(fleet.commands_for(&id).await.len(), 1);
    // `fleetlog enroll` asks again: one more command, a fresh set of attempts.
    cli.enroll(std::slice::from_ref(&id)).await.unwrap();
    fleet.deliver(1).await;
    assert_eq!(fleet.commands_for(&id).await.len(), 2);
    let retried = fleet.record(&id).await.unwrap();
    assert_eq!((retried.status, retried.attempts, retried.failure), (EnrollmentStatus::Enrolling, 1, None));
}

/// `fleetlog logs` reads what the agent wrote: each enrolled instance's lines in its groups,
/// interleaved in time order, narrowed by source and filter pattern, and `--follow` prints lines
/// written after it started, each once.
#[tokio::test]
async fn logs_reads_filters_and_follows_the_lines_of_enrolled_instances() {
    use fleetlog_cli::logs::{LineWriter, LogsRequest};
    use fleetlog_cli::output::OutputFormat;

    let fleet = Fleet::new().await;
    let first = fleet.enrolled(Platform::Linux).await;
    let second = fleet.enrolled(Platform::Linux).await;
    let groups = fleet.record(&first).await.unwrap().log_groups;
    let system = groups.iter().find(|g| g.ends_with("/system")).unwrap().clone();
    let security = groups.iter().find(|g| g.ends_with("/security")).unwrap().clone();
    let write = |group: &str, id: &str, lines: &[&str]| {
        let lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        let (group, id, stack) = (group.to_owned(), id.to_owned(), &fleet.stack);
        async move { stack.write_agent_logs(&group, &id, &lines).await.unwrap() }
    };
    write(&system, &first, &["first boot", "first ready"]).await;
    write(&security, &first, &["Failed password for root from 203.0.113.9"]).await;
    write(&system, &second, &["second boot"]).await;

    let cli = fleetlog_cli::fleet::Fleet::new(&fleet.config, fleetlog_cli::fleet::FleetOptions::local());
    let read = |request: LogsRequest| {
        let cli = cli.clone();
        async move {
            let mut out = Vec::new();
            let mut writer = LineWriter::new(OutputFormat::Json, false);
            cli.logs(&request, &mut writer, &mut out).await.unwrap();
            String::from_utf8(out)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .map(|v| (v["instance_id"].as_str().unwrap().to_owned(), v["message"].as_str().unwrap().to_owned()))
                .collect::<Vec<_>>()
        }
    };
    let hour = LogsRequest { since: std::time::Duration::from_secs(3600), ..LogsRequest::default() };
    let everything = read(hour.clone()).await;
    assert_eq!(everything.len(), 4, "{everything:?}");
    let at = |message: &str| everything.iter().position(|(_, m)| m == message);
    assert!(at("first boot") < at("first ready"), "in time order: {everything:?}");
    let mine = read(LogsRequest { instances: vec![second.clone()], ..hour.clone() }).await;
    assert_eq!(mine, [(second.clone(), "second boot".to_owned())]);
    let security_only = read(LogsRequest { source: Some("security".into()), ..hour.clone() }).await;
    assert_eq!(security_only, [(first.clone(), "Failed password for root from 203.0.113.9".to_owned())]);
    let filtered = read(LogsRequest { filter: Some("boot".into()), ..hour.clone() }).await;
    assert_eq!(filtered.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>(), ["first boot", "second boot"]);
    let nobody = LogsRequest { tag: Some(("team".into(), "none".into())), ..hour.clone() };
    let untagged = cli.logs(&nobody, &mut LineWriter::new(OutputFormat::Json, false), &mut Vec::new()).await;
    assert!(untagged.unwrap_err().to_string().contains("no log groups"));

    // Follow: what was there, then a line written meanwhile, each once; stopped after a few polls.
    let later = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        write(&system, &second, &["second later"]).await;
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    };
    let mut out = Vec::new();
    let mut writer = LineWriter::new(OutputFormat::Table, false);
    let followed = cli.follow_logs(&hour, &mut writer, &mut out, later).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(followed, 5, "{text}");
    assert_eq!(text.matches("second later").count(), 1, "{text}");
    assert!(text.lines().all(|l| l.contains(" system: ") || l.contains(" security: ")), "{text}");
    // The emulator has no Live Tail endpoint: the follow said so and polled.
    assert!(writer.notices().iter().any(|n| n.starts_with("Live Tail is not available")), "{:?}", writer.notices());
}

/// Where the endpoint serves Live Tail, `--follow` streams: a session on the group's instance
/// streams (by the group's ARN), the lines before it once though both the read and the session
/// bring them, a sampling notice, and after the session's three hours a new session and a read of
/// what came between. The operator role may do all of it.
#[tokio::test]
async fn logs_follow_streams_through_live_tail_and_starts_a_new_session_when_one_ends() {
    use fleetlog_cli::logs::{LineWriter, LogsRequest};
    use fleetlog_cli::output::OutputFormat;
    use fleetlog_tests::calls::CallRecorder;
    use fleetlog_tests::live_tail::{LiveTailEndpoint, Push};

    let fleet = Fleet::new().await;
    let id = fleet.enrolled(Platform::Linux).await;
    let system = fleet.record(&id).await.unwrap().log_groups.into_iter().find(|g| g.ends_with("/system")).unwrap();
    let write = |lines: &[&str]| {
        let lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        let (group, id, stack) = (system.clone(), id.clone(), &fleet.stack);
        async move { stack.write_agent_logs(&group, &id, &lines).await.unwrap() }
    };
    write(&["before"]).await;

    let endpoint = LiveTailEndpoint::start().await;
    let recorder = CallRecorder::default();
    let routed = endpoint.route(&fleet.config);
    let mut cli = fleetlog_cli::fleet::Fleet::new(&fleet.config, fleetlog_cli::fleet::FleetOptions::local());
    cli.clients.logs = aws_sdk_cloudwatchlogs::Client::from_conf(
        aws_sdk_cloudwatchlogs::config::Builder::from(&routed).interceptor(recorder.clone()).build(),
    );
    let request = LogsRequest {
        source: Some("system".into()),
        since: std::time::Duration::from_secs(600),
        ..LogsRequest::default()
    };
    let mut before = Vec::new();
    cli.logs(&request, &mut LineWriter::new(OutputFormat::Json, false), &mut before).await.unwrap();
    let before: serde_json::Value = serde_json::from_slice(&before).unwrap();
    let before_at = before["timestamp"].as_i64().unwrap();

    let sessions = |n: usize| {
        let endpoint = &endpoint;
        async move {
            for _ in 0..100 {
                if endpoint.requests().len() >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("{n} Live Tail sessions expected, {} started", endpoint.requests().len());
        }
    };
    let now = i64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_millis()).unwrap();
    let script = async {
        sessions(1).await;
        // The session pushes the line the first read wrote too, then a new one, sampled.
        endpoint.push(Push::Lines {
            lines: vec![(id.clone(), before_at, "before".into()), (id.clone(), now, "live one".into())],
            sampled: true,
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // Written while no session runs: the read after the new session's start brings it.
        write(&["between sessions"]).await;
        endpoint.push(Push::TimeOut);
        sessions(2).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        endpoint.push(Push::Lines { lines: vec![(id.clone(), now + 5_000, "live two".into())], sampled: false });
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let mut out = Vec::new();
    let mut writer = LineWriter::new(OutputFormat::Table, false);
    let followed = cli.follow_logs(&request, &mut writer, &mut out, script).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let messages: Vec<&str> = text.lines().map(|l| l.rsplit(": ").next().unwrap()).collect();
    assert_eq!(messages, ["before", "live one", "between sessions", "live two"], "{text}");
    assert_eq!(followed, 4);
    let notices = writer.notices();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices[0].starts_with("Live Tail is sampling"), "{notices:?}");
    assert!(notices[1].contains("ended (") && notices[1].ends_with("): started another"), "{notices:?}");
    assert!(notices[1].contains("Session timed out"), "the server's reason is told: {notices:?}");

    let requests = endpoint.requests();
    assert_eq!(requests.len(), 2);
    let arn = format!("arn:aws:logs:{}:{ACCOUNT}:log-group:{system}", fleetlog_tests::REGION);
    assert_eq!(requests[0]["logGroupIdentifiers"], serde_json::json!([arn]), "by ARN, without the :*");
    assert_eq!(requests[0]["logStreamNames"], serde_json::json!([id]));
    assert!(requests[0].get("logEventFilterPattern").is_none());

    let recorded = recorder.requests();
    fleetlog_tests::iam::assert_made(&recorded, &["logs:StartLiveTail", "logs:FilterLogEvents"]);
    let operator = format!("arn:aws:iam::{ACCOUNT}:role/Operator");
    let refused =
        fleetlog_tests::iam::Deployment::local(&[]).refusals_with_policy("OperatorPolicy", &operator, &recorded);
    assert!(refused.is_empty(), "a real account would refuse:\n{}", refused.join("\n"));
}
