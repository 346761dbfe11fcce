//! infra/fleetlog.yaml against the code it deploys: the Glue table is the ETL's schema, the rules are
//! the enroller's patterns, each Lambda gets exactly the variables it reads, the agent-config
//! parameters are agent-configs/ rendered, the named queries are infra/queries/, the enroller's role
//! allows every call it makes. Then the whole stack is deployed into the emulator's CloudFormation and
//! the resources it made are checked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};
use fleetlog_core::Platform;
use fleetlog_core::agent_config::{TemplateVars, render_template};
use fleetlog_core::commands::ConfigParameterName;
use fleetlog_core::events::{reconcile_request_rule_pattern, state_change_rule_pattern, tag_change_rule_pattern};
use fleetlog_core::metrics::{Counter, NAMESPACE};
use fleetlog_core::settings::ENROLLER_VARIABLES;
use fleetlog_enroller::Work;
use fleetlog_etl::schema::{COLUMNS, DATABASE, PARTITION_KEYS, TABLE};
use fleetlog_tests::fleet::{Fleet, MANAGED};
use fleetlog_tests::{ACCOUNT, REGION, start_emulator};
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

/// A file of the repository, from the folder cargo runs tests in (this package's): a path compiled in
/// names the checkout that built the test, which in a target folder shared by checkouts may be another.
fn repo(path: &str) -> PathBuf {
    Path::new("..").join(path)
}

fn template_text() -> String {
    std::fs::read_to_string(repo("infra/fleetlog.yaml")).unwrap()
}

fn template() -> Yaml {
    serde_yaml_ng::from_str(&template_text()).unwrap()
}

fn resource<'a>(t: &'a Yaml, name: &str) -> &'a Yaml {
    let r = &t["Resources"][name];
    assert!(!r.is_null(), "resource {name} missing from infra/fleetlog.yaml");
    &r["Properties"]
}

fn json(y: &Yaml) -> Value {
    serde_json::to_value(y).unwrap()
}

fn columns(list: &Yaml) -> Vec<(String, String)> {
    list.as_sequence()
        .unwrap()
        .iter()
        .map(|c| (c["Name"].as_str().unwrap().to_owned(), c["Type"].as_str().unwrap().to_owned()))
        .collect()
}

/// Alarms on fleetlog's own metrics name counters the Lambdas emit.
#[test]
fn alarms_on_fleetlog_metrics_name_emitted_counters() {
    let t = template();
    let emitted: BTreeSet<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
    let mut checked = 0;
    for (name, r) in t["Resources"].as_mapping().unwrap() {
        let props = &r["Properties"];
        if r["Type"].as_str() == Some("AWS::CloudWatch::Alarm") && props["Namespace"].as_str() == Some(NAMESPACE) {
            let metric = props["MetricName"].as_str().unwrap();
            assert!(emitted.contains(metric), "{name:?} alarms on {metric}, which nothing emits");
            checked += 1;
        }
    }
    assert!(checked >= 2, "the enroller's and the ETL's failure alarms");
}

#[test]
fn glue_table_is_the_etl_schema() {
    let t = template();
    let table = &resource(&t, "LogsTable")["TableInput"];
    assert_eq!(table["Name"].as_str(), Some(TABLE));
    assert_eq!(resource(&t, "Database")["DatabaseInput"]["Name"].as_str(), Some(DATABASE));
    let expected: Vec<(String, String)> = COLUMNS.iter().map(|c| (c.name.into(), c.glue_type.into())).collect();
    assert_eq!(columns(&table["StorageDescriptor"]["Columns"]), expected);
    let partitions: Vec<(String, String)> =
        PARTITION_KEYS.iter().map(|c| (c.name.into(), c.glue_type.into())).collect();
    assert_eq!(columns(&table["PartitionKeys"]), partitions);
    // The delivery stream writes the partitions the table projects.
    let prefix = resource(&t, "DeliveryStream")["ExtendedS3DestinationConfiguration"]["Prefix"].as_str().unwrap();
    for key in PARTITION_KEYS {
        assert!(prefix.contains(&format!("{0}=!{{partitionKeyFromLambda:{0}}}", key.name)), "{prefix}");
        assert!(!table["Parameters"][format!("projection.{}.type", key.name).as_str()].is_null());
    }
}

#[test]
fn rules_are_the_enrollers_patterns() {
    let t = template();
    let pattern = |name: &str| json(&resource(&t, name)["EventPattern"]);
    assert_eq!(pattern("StateChangeRule"), state_change_rule_pattern());
    assert_eq!(pattern("TagChangeRule"), tag_change_rule_pattern(&["fleetlog:managed", "fleetlog:profile"]));
    assert_eq!(pattern("RequestRule"), reconcile_request_rule_pattern());
    // The local deployment uses the same patterns.
    let local: BTreeMap<&str, Value> = fleetlog_cli::local::enroll_rules().into_iter().collect();
    assert_eq!(local["fleetlog-ec2-state"], pattern("StateChangeRule"));
    assert_eq!(local["fleetlog-ec2-tags"], pattern("TagChangeRule"));
    assert_eq!(local["fleetlog-requests"], pattern("RequestRule"));
    // Every rule targets the enroll queue, and only these rules may send to it.
    let policy = json(&resource(&t, "EnrollQueuePolicy")["PolicyDocument"]);
    let allowed = policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"].as_array().unwrap().len();
    assert_eq!(allowed, 4);
    let source = resource(&t, "EnrollerQueueSource");
    assert_eq!(source["BatchSize"].as_u64(), Some(fleetlog_enroller::local::DEFAULT_BATCH_SIZE as u64));
    assert_eq!(json(&source["FunctionResponseTypes"]), serde_json::json!(["ReportBatchItemFailures"]));
    let redrive = &resource(&t, "EnrollQueue")["RedrivePolicy"];
    assert_eq!(redrive["maxReceiveCount"].as_u64(), Some(u64::from(fleetlog_cli::local::MAX_RECEIVE_COUNT)));
}

fn variables(t: &Yaml, function: &str) -> BTreeSet<String> {
    resource(t, function)["Environment"]["Variables"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn each_lambda_gets_exactly_the_variables_it_reads() {
    let t = template();
    let enroller: BTreeSet<String> = ENROLLER_VARIABLES.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(variables(&t, "Enroller"), enroller);
    let etl: BTreeSet<String> = fleetlog_etl::ENV_VARIABLES.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(variables(&t, "Etl"), etl);
    for function in ["Enroller", "Etl"] {
        let f = resource(&t, function);
        assert_eq!(f["Runtime"].as_str(), Some("provided.al2023"));
        assert_eq!(json(&f["Architectures"]), serde_json::json!(["arm64"]));
    }
}

/// The `!Sub` text of an agent-config parameter, rendered with `prefix` the way CloudFormation would.
fn rendered_parameter(t: &Yaml, resource_name: &str, prefix: &str) -> (String, Value) {
    let props = resource(t, resource_name);
    let Yaml::Tagged(sub) = &props["Value"] else { panic!("{resource_name}.Value is not !Sub") };
    let text = sub.value[0].as_str().unwrap().replace("${LogGroupPrefix}", prefix).replace("${!", "${");
    (props["Name"].as_str().unwrap().to_owned(), serde_json::from_str(&text).unwrap())
}

fn rendered_file(stem: &str, prefix: &str) -> (String, Value) {
    let template = std::fs::read_to_string(repo(&format!("agent-configs/{stem}.json"))).unwrap();
    let text = render_template(&template, &TemplateVars { log_group_prefix: prefix.to_owned() }).unwrap();
    let (_, _, name) = ConfigParameterName::for_config_file(fleetlog_cli::DEFAULT_PARAMETER_PREFIX, stem).unwrap();
    (name.to_string(), serde_json::from_str(&text).unwrap())
}

#[test]
fn agent_config_parameters_are_agent_configs_rendered() {
    let t = template();
    for (resource_name, stem) in [("LinuxAgentConfig", "linux"), ("WindowsAgentConfig", "windows")] {
        assert_eq!(rendered_parameter(&t, resource_name, "P"), rendered_file(stem, "P"), "{resource_name}");
    }
}

#[test]
fn named_queries_are_the_clis() {
    let t = template();
    let mut in_template = BTreeMap::new();
    for (_, r) in t["Resources"].as_mapping().unwrap() {
        if r["Type"].as_str() == Some("AWS::Athena::NamedQuery") {
            let p = &r["Properties"];
            in_template.insert(p["Name"].as_str().unwrap().to_owned(), p["QueryString"].as_str().unwrap().to_owned());
        }
    }
    let cli: BTreeMap<String, String> =
        fleetlog_cli::query::NAMED_QUERIES.iter().map(|(n, q)| ((*n).to_owned(), (*q).to_owned())).collect();
    assert_eq!(in_template, cli);
}

/// Every Allow statement of every policy in the template, with the resource it belongs to.
fn allow_statements(node: &Yaml, owner: &str, out: &mut Vec<(String, Value)>) {
    match node {
        Yaml::Mapping(map) => {
            for (key, value) in map {
                if key.as_str() == Some("Statement") {
                    for statement in value.as_sequence().into_iter().flatten() {
                        if statement["Effect"].as_str() == Some("Allow") {
                            out.push((owner.to_owned(), json(statement)));
                        }
                    }
                } else {
                    allow_statements(value, owner, out);
                }
            }
        }
        Yaml::Sequence(items) => items.iter().for_each(|i| allow_statements(i, owner, out)),
        Yaml::Tagged(tagged) => allow_statements(&tagged.value, owner, out),
        _ => {}
    }
}

/// A statement's `Action`: one action or a list of them.
fn statement_actions<'a>(owner: &str, statement: &'a Value) -> Vec<&'a str> {
    match &statement["Action"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        other => panic!("{owner}: unexpected Action {other}"),
    }
}

#[test]
fn no_allowed_action_is_a_wildcard_and_wildcard_resources_are_explained() {
    let t = template();
    let mut statements = Vec::new();
    for (name, r) in t["Resources"].as_mapping().unwrap() {
        allow_statements(r, name.as_str().unwrap(), &mut statements);
    }
    assert!(statements.len() > 20, "found only {} statements", statements.len());
    for (owner, statement) in &statements {
        for action in statement_actions(owner, statement) {
            // The one exception: the account administering its own key, in the key policy.
            let key_admin = owner == "Key" && action == "kms:*";
            assert!(!action.contains('*') || key_admin, "{owner}: wildcard action {action}");
        }
    }
    let text = template_text();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == "Resource: \"*\"" {
            let explained = lines[i.saturating_sub(3)..i].iter().any(|l| l.trim_start().starts_with('#'));
            assert!(explained, "line {}: a wildcard resource without a comment explaining it", i + 1);
        }
    }
}

/// The actions a role's policies allow.
fn allowed_actions(t: &Yaml, role: &str) -> BTreeSet<String> {
    let mut statements = Vec::new();
    allow_statements(resource(t, role), role, &mut statements);
    statements.iter().flat_map(|(owner, statement)| statement_actions(owner, statement)).map(str::to_owned).collect()
}

/// The enroller's role allows every AWS call the enroller makes (the emulator does not enforce IAM, so
/// a missing action would only show in AWS): enrollment of both platforms, a duplicate, an enrollment
/// that fails after its claim, offboarding and a reconcile sweep, every call counted.
#[tokio::test]
async fn the_enrollers_role_allows_every_call_it_makes() {
    let fleet = Fleet::new().await;
    let linux = fleet.launch(Platform::Linux, &[MANAGED], 1).await.remove(0);
    let windows = fleet.launch(Platform::Windows, &[MANAGED], 1).await.remove(0);
    // Its profile's log group already has two foreign subscription filters: it fails once claimed.
    let failing = fleet.launch(Platform::Linux, &[MANAGED, ("fleetlog:profile", "full")], 1).await.remove(0);
    let full = r#"{"logs": {"logs_collected": {"files": {"collect_list": [
        {"file_path": "/var/log/app.log", "log_group_name": "full/{instance_id}", "log_stream_name": "{instance_id}"}]}}}}"#;
    fleet.put_parameter("AmazonCloudWatch-fleetlog-linux-full", full).await;
    fleet.create_group_with_two_foreign_filters(&format!("full/{failing}")).await;
    fleet.put_state_changes(&[linux.clone(), windows.clone(), linux.clone(), failing], "running").await;
    fleet.deliver(4).await;
    fleet.change_tag(&windows, MANAGED.0, None).await;
    fleet.deliver(1).await;
    fleet.state.enroller.run(&Work { instance_ids: BTreeSet::new(), reconcile: true }).await.unwrap();

    let allowed = allowed_actions(&template(), "EnrollerRole");
    let calls = fleet.enroller_calls.snapshot();
    assert!(calls.len() >= 12, "{calls:?}");
    assert!(calls.contains_key("DynamoDB:DeleteItem"), "the failed enrollment released its claim: {calls:?}");
    for operation in calls.keys() {
        let (service, name) = operation.split_once(':').unwrap();
        let prefix = match service {
            "EC2" => "ec2",
            "SSM" => "ssm",
            "CloudWatch Logs" => "logs",
            "CloudWatch" => "cloudwatch",
            "DynamoDB" => "dynamodb",
            "SQS" => "sqs",
            other => panic!("a call to a service this test does not know: {other} ({operation})"),
        };
        // SQS authorises its batch actions by the single ones (DeleteMessageBatch by DeleteMessage).
        let name = if prefix == "sqs" { name.strip_suffix("Batch").unwrap_or(name) } else { name };
        let action = format!("{prefix}:{name}");
        assert!(allowed.contains(&action), "the enroller calls {action}, which EnrollerRole does not allow");
    }
}

/// The emulator's CloudFormation creates every resource of the stack (it checks the Lambda code
/// exists, so placeholder zips are uploaded first).
#[tokio::test]
async fn the_stack_deploys_into_the_emulator() {
    let emulator = start_emulator();
    let config = emulator.sdk_config().await;
    let s3 = fleetlog_cli::local::s3_client(&config);
    s3.create_bucket().bucket("fleetlog-code").send().await.unwrap();
    for key in ["fleetlog/fleetlog-enroller.zip", "fleetlog/fleetlog-etl.zip"] {
        let zip = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        s3.put_object().bucket("fleetlog-code").key(key).body(zip.into()).send().await.unwrap();
    }
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    cfn.create_stack()
        .stack_name("fleetlog")
        .template_body(template_text())
        .parameters(Parameter::builder().parameter_key("CodeBucket").parameter_value("fleetlog-code").build())
        .parameters(Parameter::builder().parameter_key("AccountName").parameter_value("acme").build())
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let stack = loop {
        let out = cfn.describe_stacks().stack_name("fleetlog").send().await.unwrap();
        let stack = out.stacks()[0].clone();
        let status = stack.stack_status().unwrap().clone();
        if status == StackStatus::CreateComplete {
            break stack;
        }
        assert!(
            !status.as_str().ends_with("FAILED") && Instant::now() < deadline,
            "{status:?}: {:?}",
            stack.stack_status_reason()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let resources = cfn.list_stack_resources().stack_name("fleetlog").send().await.unwrap();
    let made: BTreeSet<String> =
        resources.stack_resource_summaries().iter().map(|r| r.logical_resource_id().unwrap().to_owned()).collect();
    let declared: BTreeSet<String> = template()["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| {
            r["Condition"].as_str() != Some("CrawlerEnabled") && r["Condition"].as_str() != Some("HasAlarmEmail")
        })
        .map(|(k, _)| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(made, declared);

    // The agent configs as the enroller will read them.
    let prefix = format!("CCP-logs-acme-{ACCOUNT}-{REGION}");
    let ssm = aws_sdk_ssm::Client::new(&config);
    for stem in ["linux", "windows"] {
        let (name, expected) = rendered_file(stem, &prefix);
        let stored = ssm.get_parameter().name(&name).send().await.unwrap();
        let value: Value = serde_json::from_str(stored.parameter().unwrap().value().unwrap()).unwrap();
        assert_eq!(value, expected, "{name}");
    }
    // The rules route to the queue with the enroller's patterns.
    let events = aws_sdk_eventbridge::Client::new(&config);
    let rules = events.list_rules().send().await.unwrap();
    let patterns: BTreeSet<String> = rules
        .rules()
        .iter()
        .filter_map(|r| r.event_pattern())
        .map(|p| serde_json::from_str::<Value>(p).unwrap().to_string())
        .collect();
    assert!(patterns.contains(&state_change_rule_pattern().to_string()), "{patterns:?}");
    // Athena: the workgroup and the named queries exist; the CLI's default workgroup now answers.
    let athena = aws_sdk_athena::Client::new(&config);
    athena.get_work_group().work_group("fleetlog").send().await.unwrap();
    let named = athena.list_named_queries().work_group("fleetlog").send().await.unwrap();
    assert_eq!(named.named_query_ids().len(), fleetlog_cli::query::NAMED_QUERIES.len());
    let outputs: BTreeMap<String, String> = stack
        .outputs()
        .iter()
        .map(|o| (o.output_key().unwrap().to_owned(), o.output_value().unwrap_or_default().to_owned()))
        .collect();
    let table = &outputs["EnrollmentTable"];
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let described = dynamodb.describe_table().table_name(table).send().await.unwrap();
    assert_eq!(described.table().unwrap().key_schema()[0].attribute_name(), "instance_id");
}
