//! The `fleetlog` binary against a real emulator on 127.0.0.1: every command, its `--output json`
//! shape, bad input (a clear message and a non-zero exit), and the local demo end to end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;

use aws_sdk_ec2::types::InstanceType;
use fleetlog_core::Platform;
use fleetlog_enroller::State;
use fleetlog_local::emulator::{Emulator, REGION};
use fleetlog_local::event_source::{DEFAULT_BATCH_SIZE, drain_queue};
use fleetlog_local::stack::{AGENT_DOCUMENT, LocalStack};
use serde_json::Value;

/// `agent-configs/`, found from the folder cargo runs tests in (the package's): a path compiled in
/// names the checkout that built the test, which in a target folder shared by checkouts may be another.
fn configs_dir() -> PathBuf {
    std::fs::canonicalize("../../agent-configs").expect("tests run in the package's folder")
}

/// Runs the binary with the emulator's endpoint and dummy credentials.
fn fleetlog(endpoint: Option<&str>, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fleetlog"));
    command
        .args(args)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    if let Some(endpoint) = endpoint {
        command.env("AWS_ENDPOINT_URL", endpoint);
    }
    command.output().expect("run fleetlog")
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}

fn fails_with(output: &Output, needle: &str) {
    assert_eq!(output.status.code(), Some(1), "stdout: {}", String::from_utf8_lossy(&output.stdout));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stderr.contains(needle) || stdout.contains(needle), "expected {needle:?} in\n{stderr}\n{stdout}");
}

struct Local {
    emulator: Emulator,
    stack: LocalStack,
}

impl Local {
    async fn new() -> Self {
        let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
        let stack = LocalStack::deploy(&emulator.sdk_config().await).await.unwrap();
        Self { emulator, stack }
    }

    fn run(&self, args: &[&str]) -> Output {
        fleetlog(Some(&self.emulator.endpoint), args)
    }

    fn prefix_arg(&self) -> String {
        format!("--log-group-prefix={}", self.stack.log_group_prefix)
    }

    async fn launch(&self, tags: &[(&str, &str)]) -> String {
        self.stack.launch(Platform::Linux, tags, 1).await.unwrap().remove(0)
    }

    /// Puts the agent commands' status-change events on the bus (the emulator emits none) once
    /// `expected` have finished, and lets the enroller record them.
    async fn report_command_outcomes(&self, expected: usize) {
        let reported = self.stack.await_command_outcomes(expected, std::time::Duration::from_secs(5)).await.unwrap();
        assert_eq!(reported, expected, "agent commands that reached a final status");
        assert_eq!(self.deliver().await, expected);
    }

    /// Lets the enroller consume the queue, as Lambda's SQS trigger would.
    async fn deliver(&self) -> usize {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let state = State::new(self.stack.enroller(&[], self.stack.clients.clone()).unwrap());
        drain_queue(&state, &self.stack.queue_url, &self.stack.queue_arn, REGION, DEFAULT_BATCH_SIZE)
            .await
            .unwrap()
            .messages
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// agent-configs/linux.json grown with extra log files until its stored form exceeds `bytes`.
fn linux_config_larger_than(bytes: usize) -> String {
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(configs_dir().join("linux.json")).unwrap()).unwrap();
    let list = config["logs"]["logs_collected"]["files"]["collect_list"].as_array_mut().unwrap();
    let mut i = 0;
    while serde_json::to_string(&list).unwrap().len() < bytes {
        list.push(serde_json::json!({
            "file_path": format!("/var/log/app/service-{i}.log"),
            "log_group_name": "${fleetlog:LogGroupPrefix}/system",
            "log_stream_name": "{instance_id}"
        }));
        i += 1;
    }
    config.to_string()
}

#[test]
fn help_and_completions() {
    let help = fleetlog(None, &["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for command in ["configs", "enroll", "offboard", "status", "reconcile", "query", "local", "completions"] {
        assert!(text.contains(command), "--help lacks {command}:\n{text}");
    }
    let completions = fleetlog(None, &["completions", "bash"]);
    assert!(completions.status.success());
    assert!(String::from_utf8_lossy(&completions.stdout).contains("fleetlog"));
    let usage = fleetlog(None, &["enroll"]);
    assert_eq!(usage.status.code(), Some(2), "a missing argument is a usage error");
}

#[test]
fn configs_validate_reports_tiers_and_refuses_bad_configs() {
    let ok = json_of(&fleetlog(None, &["configs", "validate", "-o", "json", configs_dir().to_str().unwrap()]));
    let valid = ok["valid"].as_array().unwrap();
    assert_eq!(valid.len(), 3, "linux, linux-web, windows");
    assert!(valid.iter().all(|c| c["tier"] == "Standard"));
    assert_eq!(ok["invalid"], serde_json::json!([]));

    let dir = tempfile::tempdir().unwrap();
    let advanced = write(dir.path(), "linux-big.json", &linux_config_larger_than(5000));
    let out = json_of(&fleetlog(None, &["configs", "validate", "-o", "json", advanced.to_str().unwrap()]));
    assert_eq!(out["valid"][0]["tier"], "Advanced");
    assert_eq!(out["valid"][0]["parameter"], "AmazonCloudWatch-fleetlog-linux-big");

    let too_big = write(dir.path(), "linux-huge.json", &linux_config_larger_than(9000));
    fails_with(&fleetlog(None, &["configs", "validate", too_big.to_str().unwrap()]), "at most 8192 bytes");
    let broken = write(dir.path(), "linux.json", "{ not json");
    fails_with(&fleetlog(None, &["configs", "validate", broken.to_str().unwrap()]), "not valid JSON");
    let misnamed = write(dir.path(), "macos.json", "{}");
    fails_with(&fleetlog(None, &["configs", "validate", misnamed.to_str().unwrap()]), "must be named linux");
    fails_with(&fleetlog(None, &["configs", "validate", "/no/such/path.json"]), "does not exist");

    // Policy: groups under the prefix, files in the allowed paths, nothing sent elsewhere.
    let group_outside = write(
        dir.path(),
        "linux-outside.json",
        r#"{"logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "/var/log/x", "log_group_name": "web/{instance_id}"}]}}}}"#,
    );
    fails_with(
        &fleetlog(None, &["configs", "validate", group_outside.to_str().unwrap()]),
        "outside fleetlog's log groups",
    );
    let shadow = write(
        dir.path(),
        "linux-shadow.json",
        r#"{"logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "/etc/shadow", "log_group_name": "${fleetlog:LogGroupPrefix}/x"}]}}}}"#,
    );
    let shadow_arg = shadow.to_str().unwrap();
    fails_with(&fleetlog(None, &["configs", "validate", shadow_arg]), "outside the allowed paths");
    // An operator can allow a folder.
    json_of(&fleetlog(None, &["configs", "validate", "-o", "json", "--allow-path", "/etc/", shadow_arg]));
    let redirect = write(
        dir.path(),
        "linux-redirect.json",
        r#"{"logs": {"endpoint_override": "https://logs.example.invalid", "logs_collected": {}}}"#,
    );
    fails_with(&fleetlog(None, &["configs", "validate", redirect.to_str().unwrap()]), "$.logs.endpoint_override");
}

#[tokio::test]
async fn configs_publish_is_versioned_idempotent_and_diffable() {
    let local = Local::new().await;
    let prefix = local.prefix_arg();
    let dir = configs_dir();
    let dir = dir.to_str().unwrap();
    let first = json_of(&local.run(&["configs", "publish", "-o", "json", &prefix, dir]));
    let results: Vec<&str> =
        first["published"].as_array().unwrap().iter().map(|p| p["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["created", "created", "created"]);
    let again = json_of(&local.run(&["configs", "publish", "-o", "json", &prefix, dir]));
    assert!(again["published"].as_array().unwrap().iter().all(|p| p["result"] == "unchanged" && p["version"] == 1));
    let same = json_of(&local.run(&["configs", "diff", "-o", "json", &prefix, dir]));
    assert!(same["configs"].as_array().unwrap().iter().all(|c| c["status"] == "same"), "{same}");

    // A changed config shows as a diff, then publishes as version 2 in the advanced tier.
    let changed = tempfile::tempdir().unwrap();
    let path = write(changed.path(), "linux.json", &linux_config_larger_than(5000));
    let diff = json_of(&local.run(&["configs", "diff", "-o", "json", &prefix, path.to_str().unwrap()]));
    assert_eq!(diff["configs"][0]["status"], "differs");
    assert!(
        diff["configs"][0]["diff"].as_str().unwrap().contains("\"file_path\": \"/var/log/app/service-0.log\""),
        "{diff}"
    );
    let published = json_of(&local.run(&["configs", "publish", "-o", "json", &prefix, path.to_str().unwrap()]));
    assert_eq!(published["published"][0]["version"], 2);
    assert_eq!(published["published"][0]["tier"], "Advanced");
    let filter = aws_sdk_ssm::types::ParameterStringFilter::builder()
        .key("Name")
        .values("AmazonCloudWatch-fleetlog-linux")
        .build()
        .unwrap();
    let described = local.stack.clients.ssm.describe_parameters().parameter_filters(filter).send().await.unwrap();
    assert_eq!(described.parameters()[0].tier().map(|t| t.as_str()), Some("Advanced"));

    // Nothing is published when any file is invalid.
    write(changed.path(), "windows.json", "[]");
    fails_with(&local.run(&["configs", "publish", &prefix, changed.path().to_str().unwrap()]), "Nothing was published");
    let version = local.stack.clients.ssm.get_parameter().name("AmazonCloudWatch-fleetlog-linux").send().await.unwrap();
    assert_eq!(version.parameter().unwrap().version(), 2);
}

#[tokio::test]
async fn enroll_status_offboard_and_reconcile() {
    let local = Local::new().await;
    json_of(&local.run(&["configs", "publish", "-o", "json", &local.prefix_arg(), configs_dir().to_str().unwrap()]));
    let id = local.launch(&[]).await;

    let before = json_of(&local.run(&["status", "-o", "json", &id]));
    assert_eq!(before["instances"][0]["status"], "not managed");

    let enrolled = json_of(&local.run(&["enroll", "-o", "json", &id]));
    assert_eq!(enrolled["instances"][0]["tagged"], true);
    assert_eq!(local.deliver().await, 1, "enroll asks the enroller through the request rule");
    let status = json_of(&local.run(&["status", "-o", "json", &id]));
    assert_eq!(status["instances"][0]["status"], "enrolling", "until the agent command reports back");
    local.report_command_outcomes(1).await;
    let status = json_of(&local.run(&["status", "-o", "json", &id]));
    let row = &status["instances"][0];
    assert_eq!(row["status"], "enrolled");
    assert_eq!(row["config"], "AmazonCloudWatch-fleetlog-linux v1");
    assert_eq!(row["alarms"].as_array().unwrap().len(), 4);
    let groups = row["log_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    assert!(
        groups.iter().all(|g| g["exists"] == true && g["retention_days"] == 3 && g["subscribed"] == true),
        "{groups:?}"
    );
    assert!(!row["commands"].as_array().unwrap().is_empty());
    assert_eq!(row["ssm"], "not registered", "the emulator cannot register managed instances");

    // A tagged instance nobody told the enroller about: the dry run plans it, the sweep enrolls it.
    let missed = local.launch(&[("fleetlog:managed", "true")]).await;
    let plan = json_of(&local.run(&["reconcile", "--dry-run", "-o", "json"]));
    let planned: Vec<(&str, &str)> = plan["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["instance_id"].as_str().unwrap(), p["action"].as_str().unwrap()))
        .collect();
    assert!(planned.contains(&(missed.as_str(), "enroll")), "{planned:?}");
    assert!(planned.contains(&(id.as_str(), "check")), "{planned:?}");
    assert_eq!(local.deliver().await, 0, "a dry run changes nothing");
    json_of(&local.run(&["reconcile", "-o", "json"]));
    assert_eq!(local.deliver().await, 1);
    let fleet = json_of(&local.run(&["status", "-o", "json"]));
    assert_eq!(fleet["summary"]["enrolled"], 1, "{}", fleet["summary"]);
    assert_eq!(fleet["summary"]["enrolling"], 1, "{}", fleet["summary"]);
    // The whole-fleet view reads alarms in one listing and each command once: same answer per row.
    let rows = fleet["instances"].as_array().unwrap();
    for row in rows.iter().filter(|r| r["status"] == "enrolled" || r["status"] == "enrolling") {
        assert_eq!(row["alarms"].as_array().unwrap().len(), 4, "{row}");
        assert!(!row["commands"].as_array().unwrap().is_empty(), "{row}");
    }

    let offboarded = json_of(&local.run(&["offboard", "-o", "json", &id]));
    assert_eq!(offboarded["instances"][0]["untagged"], true);
    // The agent is stopped through fleetlog's document while the tag still admits the command.
    let agent = offboarded["instances"][0]["agent"].as_str().unwrap();
    assert!(agent.starts_with("stop sent"), "{offboarded}");
    let commands = local.stack.clients.ssm.list_commands().instance_id(&id).send().await.unwrap();
    let stops = commands
        .commands()
        .iter()
        .filter(|c| c.document_name() == Some(AGENT_DOCUMENT))
        .filter(|c| c.parameters().and_then(|p| p.get("action")).is_some_and(|a| a == &["stop"]))
        .count();
    assert_eq!(stops, 1, "{commands:?}");
    assert_eq!(local.deliver().await, 1);
    let after = json_of(&local.run(&["status", "-o", "json", &id]));
    assert_eq!(after["instances"][0]["status"], "offboarded");
    assert_eq!(after["instances"][0]["alarms"], serde_json::json!([]));

    fails_with(&local.run(&["enroll", "i-0123456789abcdef0"]), "no such instance");
    fails_with(&local.run(&["status", "web-1"]), "not EC2 instance IDs");
    fails_with(&local.run(&["offboard", &id, "i-1"]), "not EC2 instance IDs");
}

#[tokio::test]
async fn query_runs_locally_on_folders_and_on_athena() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let time = now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let record = |id: &str, instance: &str| {
        serde_json::json!({"event_id": id, "timestamp": now.timestamp_millis(), "time": time, "instance_id": instance,
            "source": "system", "format": "text", "message": "hello"})
        .to_string()
            + "\n"
    };
    std::fs::create_dir_all(dir.path().join("dt=x")).unwrap();
    write(dir.path(), "plain.json", &(record("1", "i-01234567") + &record("2", "i-01234567")));
    std::fs::write(dir.path().join("dt=x/gz.json.gz"), fleetlog_etl::gzip::gzip(record("3", "i-89abcdef").as_bytes()))
        .unwrap();
    let folder = dir.path().to_str().unwrap();

    let out = json_of(&fleetlog(None, &["query", "--local", "--source", folder, "-o", "json", "log-volume"]));
    assert_eq!(out["columns"], serde_json::json!(["instance_id", "source", "lines", "bytes"]));
    assert_eq!(
        out["rows"][0],
        serde_json::json!({"instance_id": "i-01234567", "source": "system", "lines": 2, "bytes": 10})
    );
    assert_eq!(out["rows"][1]["lines"], 1);
    let csv = fleetlog(
        None,
        &["query", "--local", "--source", folder, "-o", "csv", "SELECT count(*) AS n FROM fleetlog.logs"],
    );
    assert_eq!(String::from_utf8_lossy(&csv.stdout), "n\n3\n");
    fails_with(&fleetlog(None, &["query", "--local", "--source", folder, "SELEC x"]), "SQL error");
    fails_with(&fleetlog(None, &["query", "--local", "--source", folder, "SELECT nope FROM logs"]), "SQL error");
    fails_with(&fleetlog(None, &["query", "--local", "--source", "/no/such/folder", "log-volume"]), "is not a folder");
    // A folder needs no AWS configuration: no region, and nothing looked up (an instance metadata
    // endpoint that refuses connections would be warned about on stderr).
    let offline = std::process::Command::new(env!("CARGO_BIN_EXE_fleetlog"))
        .args(["query", "--local", "--source", folder, "-o", "json", "log-volume"])
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(json_of(&offline)["rows"], out["rows"]);
    assert_eq!(String::from_utf8_lossy(&offline.stderr), "", "nothing on stderr");
    let listed = json_of(&fleetlog(None, &["query", "--list", "-o", "json"]));
    let names: Vec<&str> = listed["queries"].as_array().unwrap().iter().map(|q| q["name"].as_str().unwrap()).collect();
    let shipped: Vec<&str> = fleetlog_cli::query::NAMED_QUERIES.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, shipped);

    // Athena through the emulator: it runs only trivial SELECTs, which is enough to exercise
    // start, poll, paginate and the header row.
    let local = Local::new().await;
    let athena = json_of(&local.run(&["query", "--workgroup", "primary", "-o", "json", "SELECT 1 AS one"]));
    assert_eq!(athena["rows"], serde_json::json!([{"one": "1"}]));
    assert_eq!(athena["stats"]["engine"], "athena");
    fails_with(&local.run(&["query", "SELECT 1"]), "Workgroup fleetlog not found");

    // From S3, many objects: fetched several at a time, every one of them read once.
    for n in 0..25 {
        let body = fleetlog_etl::gzip::gzip(record(&n.to_string(), "i-01234567").as_bytes());
        let put = local.stack.s3.put_object().bucket(fleetlog_local::stack::BUCKET);
        put.key(format!("many/dt=x/{n:02}.json.gz")).body(body.into()).send().await.unwrap();
    }
    let source = format!("s3://{}/many/", fleetlog_local::stack::BUCKET);
    let sql = "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM logs";
    let from_s3 = json_of(&local.run(&["query", "--local", "--source", &source, "-o", "json", sql]));
    assert_eq!(from_s3["rows"][0], serde_json::json!({"n": 25, "ids": 25}));
    assert_eq!(from_s3["stats"]["objects"], 25);
    assert_eq!(from_s3["stats"]["objects_read"], 25);
}

#[test]
fn local_demo_runs_the_whole_pipeline() {
    let out = json_of(&fleetlog(None, &["local", "demo", "-o", "json"]));
    let written: u64 = out["stats"]["written"].as_array().unwrap().iter().map(|w| w["lines"].as_u64().unwrap()).sum();
    assert_eq!(written, out["stats"]["lines_written"].as_u64().unwrap());
    let answered: u64 = out["rows"].as_array().unwrap().iter().map(|r| r["lines"].as_u64().unwrap()).sum();
    assert_eq!(answered, written);
    let instances: std::collections::BTreeSet<&str> =
        out["rows"].as_array().unwrap().iter().map(|r| r["instance_id"].as_str().unwrap()).collect();
    assert_eq!(instances.len(), 3, "two Linux and one Windows instance are enrolled; untagged and wrong-case are not");
    for w in out["stats"]["written"].as_array().unwrap() {
        let row = out["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["instance_id"] == w["instance_id"] && r["source"] == w["source"])
            .unwrap_or_else(|| panic!("no answer row for {w}"));
        assert_eq!(row["lines"], w["lines"]);
    }
}

/// `local up` keeps the pipeline running: an instance enrolled with the CLI against it is enrolled by
/// its queue loop, and Ctrl-C stops it and its emulator.
#[tokio::test]
async fn local_up_serves_the_other_commands_until_interrupted() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetlog"))
        .args(["local", "up"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let endpoint = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("AWS_ENDPOINT_URL=").map(str::to_owned)))
        .expect("local up prints the endpoint");
    let config = fleetlog_local::emulator::sdk_config_for(&endpoint).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let launched = ec2
        .run_instances()
        .image_id(fleetlog_local::stack::LINUX_AMI)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let id = launched.instances()[0].instance_id().unwrap().to_owned();
    json_of(&fleetlog(Some(&endpoint), &["enroll", "-o", "json", &id]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = json_of(&fleetlog(Some(&endpoint), &["status", "-o", "json", &id]));
        if status["instances"][0]["status"] == "enrolled" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not enrolled by local up: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(130), "Ctrl-C ends local up");
    let after = fleetlog(Some(&endpoint), &["status", "-o", "json"]);
    assert!(!after.status.success(), "the emulator is stopped with it");
}

/// `deploy` creates the stack in the emulator from placeholder zips, and `--stack` then names every
/// resource: `status` reads the stack's table, `configs publish` renders with the stack's prefix.
#[tokio::test]
async fn deploy_then_commands_find_everything_through_the_stack() {
    let emulator = Emulator::start().unwrap_or_else(|e| panic!("{e}"));
    let config = emulator.sdk_config().await;
    fleetlog_aws::s3::client(&config).create_bucket().bucket("code").send().await.unwrap();
    let zips = tempfile::tempdir().unwrap();
    for function in ["fleetlog-enroller", "fleetlog-etl"] {
        std::fs::create_dir_all(zips.path().join(function)).unwrap();
        std::fs::write(zips.path().join(function).join("bootstrap.zip"), b"PK\x05\x06").unwrap();
    }
    let run = |args: &[&str]| fleetlog(Some(&emulator.endpoint), args);
    let zips_arg = zips.path().to_str().unwrap();
    let deployed = json_of(&run(&[
        "deploy",
        "--stack",
        "fleetlog",
        "--code-bucket",
        "code",
        "--zips",
        zips_arg,
        "-p",
        "AccountName=acme",
        "-o",
        "json",
    ]));
    assert_eq!(deployed["action"], "created", "{deployed}");
    let table = deployed["outputs"]["EnrollmentTable"].as_str().unwrap();
    assert_ne!(table, "fleetlog-enrollments", "the stack names its own table");

    let status = json_of(&run(&["status", "--stack", "fleetlog", "-o", "json"]));
    assert!(status["summary"].is_object(), "{status}");
    let published =
        json_of(&run(&["configs", "publish", "--stack", "fleetlog", "-o", "json", configs_dir().to_str().unwrap()]));
    assert_eq!(published["invalid"], serde_json::json!([]), "{published}");
    let ssm = aws_sdk_ssm::Client::new(&config);
    let stored = ssm.get_parameter().name("AmazonCloudWatch-fleetlog-linux").send().await.unwrap();
    let value = stored.parameter().unwrap().value().unwrap();
    assert!(value.contains("CCP-logs-acme-123456789012-us-east-1/system"), "{value}");
    // A flag still wins over the stack's output; an unknown stack is a clear error.
    let dir = configs_dir();
    let validate = |extra: &[&str]| {
        let mut args = vec!["configs", "validate", "--stack", "fleetlog", "-o", "json"];
        args.extend_from_slice(extra);
        args.push(dir.to_str().unwrap());
        let out = json_of(&run(&args));
        out["valid"][0]["log_groups"][0].as_str().unwrap().to_owned()
    };
    assert!(validate(&[]).starts_with("CCP-logs-acme-123456789012-us-east-1/"));
    assert!(validate(&["--log-group-prefix", "Other"]).starts_with("Other/"));
    fails_with(&run(&["status", "--stack", "no-such-stack"]), "DescribeStacks");
    fails_with(&run(&["deploy", "--code-bucket", "code"]), "--stack");
}

/// A `credential_process` profile supplies the CLI's credentials (aws-config's feature, enabled for
/// the CLI only): the process runs, and the command works with what it printed.
#[tokio::test]
async fn a_credential_process_profile_supplies_credentials() {
    let local = Local::new().await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let script = write(
        dir.path(),
        "creds.sh",
        &format!(
            "#!/bin/sh\ntouch '{}'\necho '{{\"Version\": 1, \"AccessKeyId\": \"test\", \"SecretAccessKey\": \"test\"}}'\n",
            marker.display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = write(
        dir.path(),
        "config",
        &format!("[profile operator]\nregion = {REGION}\ncredential_process = {}\n", script.display()),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetlog"))
        .args(["--profile", "operator", "status", "-o", "json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", &local.emulator.endpoint)
        .output()
        .unwrap();
    let status = json_of(&out);
    assert!(status["summary"].is_object(), "{status}");
    assert!(marker.exists(), "the credential process was not run");
}

/// An IAM Identity Center (SSO) profile supplies the CLI's credentials: with a cached `aws sso login`
/// token, the CLI asks the SSO portal (here a small fake on 127.0.0.1, `AWS_ENDPOINT_URL_SSO`) for the
/// role's credentials with that token, then the command works with them.
#[tokio::test]
async fn an_sso_profile_supplies_credentials() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let local = Local::new().await;
    let home = tempfile::tempdir().unwrap();
    let config = write(
        home.path(),
        "config",
        &format!(
            "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = LogReaders\nregion = {REGION}\n\n\
             [sso-session corp]\nsso_start_url = https://example.awsapps.com/start\nsso_region = {REGION}\n"
        ),
    );
    // Where `aws sso login` caches the token: ~/.aws/sso/cache/<sha1 of the session name>.json.
    let cache = home.path().join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let token = r#"{"accessToken": "cached-token", "expiresAt": "2099-01-01T00:00:00Z", "region": "us-east-1", "startUrl": "https://example.awsapps.com/start"}"#;
    write(&cache, "ee0bfd2552fbd840c02cc48b6e823320543c450f.json", token);

    let portal = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let portal_url = format!("http://{}", portal.local_addr().unwrap());
    let served = tokio::spawn(async move {
        let (mut stream, _) = portal.accept().await.unwrap();
        let mut request = vec![0u8; 8192];
        let n = stream.read(&mut request).await.unwrap();
        let request = String::from_utf8_lossy(&request[..n]).to_string();
        let expiration = (chrono::Utc::now() + chrono::Duration::hours(1)).timestamp_millis();
        let body = format!(
            r#"{{"roleCredentials":{{"accessKeyId":"test","secretAccessKey":"test","sessionToken":"t","expiration":{expiration}}}}}"#
        );
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
        request
    });
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetlog"))
        .args(["--profile", "dev", "status", "-o", "json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", &local.emulator.endpoint)
        .env("AWS_ENDPOINT_URL_SSO", &portal_url)
        .output()
        .await
        .unwrap();
    let status = json_of(&out);
    assert!(status["summary"].is_object(), "{status}");
    let request = served.await.unwrap().to_lowercase();
    assert!(request.starts_with("get /federation/credentials"), "{request}");
    assert!(request.contains("role_name=logreaders") && request.contains("account_id=123456789012"), "{request}");
    assert!(request.contains("x-amz-sso_bearer_token: cached-token"), "{request}");
}
