//! `fleetlog local demo` and `fleetlog local up`: the whole pipeline on one machine, against the
//! emulator on 127.0.0.1.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fleetlog_core::Platform;
use fleetlog_core::events::ec2_state_change_event;
use fleetlog_enroller::{MetricsOutput, State};
use fleetlog_local::emulator::{ACCOUNT, Emulator, REGION};
use fleetlog_local::event_source::{DEFAULT_BATCH_SIZE, drain_queue};
use fleetlog_local::pump::{LogPump, PumpReport};
use fleetlog_local::stack::{BUCKET, ENROLL_QUEUE, ENROLLMENT_TABLE, LOGS_PREFIX, LocalStack, MANAGEMENT_TAG};
use serde_json::Value;

use crate::fleet::{Fleet, FleetOptions};
use crate::output::{OutputFormat, Report};
use crate::query::{LocalObjects, local_session, resolve_sql, run_local};

/// Prints numbered steps in plain words: on stdout for people, on stderr when stdout carries JSON.
struct Narrator {
    step: usize,
    total: usize,
    to_stdout: bool,
}

impl Narrator {
    fn line(&self, text: &str) {
        if self.to_stdout {
            println!("{text}");
        } else {
            eprintln!("{text}");
        }
    }

    fn step(&mut self, text: &str) {
        self.step += 1;
        self.line(&format!("\n[{}/{}] {text}", self.step, self.total));
    }

    fn say(&self, text: &str) {
        for line in text.lines() {
            self.line(&format!("      {line}"));
        }
    }

    fn report(&self, report: &Report) -> Result<()> {
        let mut buf = Vec::new();
        report.print(OutputFormat::Table, &mut buf)?;
        self.say(&String::from_utf8_lossy(&buf));
        Ok(())
    }
}

/// One demo instance.
struct DemoInstance {
    name: &'static str,
    platform: Platform,
    tags: &'static [(&'static str, &'static str)],
    why: &'static str,
}

const DEMO_FLEET: &[DemoInstance] = &[
    DemoInstance {
        name: "web-1",
        platform: Platform::Linux,
        tags: &[MANAGEMENT_TAG, WEB_PROFILE, ("Application", "shop")],
        why: "tagged: will be enrolled (web profile, application shop)",
    },
    DemoInstance {
        name: "web-2",
        platform: Platform::Linux,
        tags: &[MANAGEMENT_TAG, WEB_PROFILE, ("Application", "search")],
        why: "tagged: will be enrolled (web profile, application search)",
    },
    DemoInstance {
        name: "win-1",
        platform: Platform::Windows,
        tags: &[MANAGEMENT_TAG],
        why: "tagged: will be enrolled",
    },
    DemoInstance { name: "legacy-1", platform: Platform::Linux, tags: &[], why: "untagged: left alone" },
    DemoInstance {
        name: "typo-1",
        platform: Platform::Linux,
        tags: &[("fleetlog:managed", "True")],
        why: "tag value in the wrong case: reported, not enrolled",
    },
];

/// Web servers collect their access logs too (agent-configs/linux-web.json).
const WEB_PROFILE: (&str, &str) = ("fleetlog:profile", "web");

/// The emulator with fleetlog deployed and its configs published.
async fn bring_up(n: &mut Narrator, configs: &Path) -> Result<(Emulator, LocalStack)> {
    n.step("Starting the AWS API emulator (fakecloud) on 127.0.0.1");
    let emulator = Emulator::start()?;
    n.say(&format!(
        "Listening on {}. It speaks the real AWS wire protocols; no AWS account is used.",
        emulator.endpoint
    ));
    let config = emulator.sdk_config().await;

    n.step("Creating fleetlog's resources in it (what the CloudFormation stack in infra/ creates)");
    let stack = LocalStack::deploy(&config).await?;
    n.say(&format!(
        "EventBridge rules for EC2 state changes, tag changes and operator requests → SQS queue {} (with a dead-letter queue)\n\
         DynamoDB table {ENROLLMENT_TABLE} for enrollment records\n\
         Firehose streams and the S3 bucket {BUCKET} the logs land in",
        ENROLL_QUEUE
    ));

    n.step("Publishing the CloudWatch agent configs from agent-configs/ to Parameter Store");
    let (report, ok) =
        crate::configs::publish(&stack.clients.ssm, &[configs.to_owned()], &stack.rendering(), false).await?;
    n.report(&report)?;
    if !ok {
        bail!("the agent configs in {} are invalid", configs.display());
    }
    Ok((emulator, stack))
}

async fn launch(stack: &LocalStack, instance: &DemoInstance) -> Result<String> {
    let mut tags = vec![("Name", instance.name)];
    tags.extend_from_slice(instance.tags);
    stack.launch(instance.platform, &tags, 1).await?.pop().context("RunInstances returned no instance")
}

/// Agent-like lines for one log group, by its source (the last part of its name).
fn sample_lines(source: &str, host: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match source {
            "security" => format!(
                "Nov 22 10:{:02}:{:02} {host} sshd[{}]: Failed password for invalid user admin from 203.0.113.{} port 22 ssh2",
                i / 60,
                i % 60,
                4000 + i,
                10 + i % 3
            ),
            // Mostly answered, some not found, one in seven a server error, from a few clients.
            "access" => format!(
                "198.51.100.{} - - [22/Nov/2026:10:{:02}:{:02} +0000] \"GET /{} HTTP/1.1\" {} {} \"-\" \"curl/8.5\"",
                1 + i % 3,
                i / 60,
                i % 60,
                ["cart", "search?q=boots", "checkout"][i % 3],
                if i % 7 == 3 { 503 } else if i % 5 == 4 { 404 } else { 200 },
                100 + i
            ),
            "cloud-init" => format!("Cloud-init v. 23.4 running 'modules:final' at step {i}. Up {}.{:02} seconds.", 10 + i, i),
            "windows-security" => format!(
                "<Event xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\"><System><Provider Name=\"Microsoft-Windows-Security-Auditing\"/><EventID>{}</EventID><Level>0</Level><Channel>Security</Channel><Computer>{host}</Computer></System></Event>",
                if i % 2 == 0 { 4625 } else { 4624 }
            ),
            s if s.starts_with("windows-") => format!(
                "<Event xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\"><System><Provider Name=\"Service Control Manager\"/><EventID>7036</EventID><Level>4</Level><Channel>System</Channel><Computer>{host}</Computer></System><EventData><Data>service {i} entered the running state</Data></EventData></Event>"
            ),
            _ => format!("Nov 22 10:{:02}:{:02} {host} systemd[1]: Started session {i} of user ec2-user.", i / 60, i % 60),
        })
        .collect()
}

/// The whole pipeline, narrated, ending in a query answer checked against what was written.
pub async fn demo(configs: &Path, narrate_on_stdout: bool) -> Result<Report> {
    let mut n = Narrator { step: 0, total: 10, to_stdout: narrate_on_stdout };
    n.line("fleetlog local demo: the whole pipeline on this machine, step by step.");
    let (emulator, stack) = bring_up(&mut n, configs).await?;

    n.step("Launching five EC2 instances");
    let mut ids: BTreeMap<&str, String> = BTreeMap::new();
    for instance in DEMO_FLEET {
        let id = launch(&stack, instance).await?;
        n.say(&format!("{id}  {:<8} {:<7}  {}", instance.name, instance.platform.to_string(), instance.why));
        ids.insert(instance.name, id);
    }

    n.step("Emitting the EC2 \"running\" events AWS would emit");
    n.say("The emulator's EC2 emits no events, so they are put on the event bus here. The real\nEventBridge rules route them to the enroll queue.");
    let events: Vec<Value> = ids.values().map(|id| ec2_state_change_event(id, "running", ACCOUNT, REGION)).collect();
    stack.put_events(&events).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.visible_messages(&stack.queue_url).await? < events.len() {
        if Instant::now() > deadline {
            bail!("the events did not reach the enroll queue");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    n.say(&format!("{} messages are waiting on the enroll queue.", events.len()));

    n.step("Running the enroller on the queue");
    n.say("The emulator invokes no Lambdas, so this does what Lambda's SQS trigger does: receive a batch,\ncall the enroller's handler (the same entry point the Lambda uses), delete what it finished.\nThe enroller's own log lines and metrics (JSON) appear on stderr as it runs.");
    let mut enroller = stack.enroller(&[], stack.clients.clone())?;
    enroller.metrics = MetricsOutput::Stderr;
    let state = State::new(enroller);
    let drained = drain_queue(&state, &stack.queue_url, &stack.queue_arn, REGION, DEFAULT_BATCH_SIZE).await?;
    n.say(&format!(
        "{} messages in {} invocation(s); {} left for retry.",
        drained.messages, drained.invocations, drained.retried
    ));
    n.say("Each enrolled instance is `enrolling` until its agent command reports back. The emulator runs\ncommands but emits no status-change events, so they are put on the bus here from SSM's answer;\nthe stack's rule routes them to the same queue, and the enroller records each outcome.");
    let sent = state.enroller.store.get_many(&ids.values().cloned().collect::<Vec<_>>()).await?.len();
    let reported = stack.await_command_outcomes(sent, Duration::from_secs(20)).await?;
    let drained = drain_queue(&state, &stack.queue_url, &stack.queue_arn, REGION, DEFAULT_BATCH_SIZE).await?;
    n.say(&format!("{reported} command outcomes recorded ({} messages).", drained.messages));
    let fleet = Fleet::new(&stack.config, FleetOptions::local());
    let all_ids: Vec<String> = ids.values().cloned().collect();
    let status = fleet.status(&all_ids).await?;
    n.say("What `fleetlog status` now shows:");
    n.report(&Report { tables: status.tables.clone(), ..Report::default() })?;

    n.step("Writing agent-like log lines into the enrolled instances' log groups");
    n.say("On a real instance the CloudWatch agent does this; streams are named after the instance.");
    let records = state.enroller.store.get_many(&all_ids).await?;
    let mut written: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (k, (name, id)) in ids.iter().enumerate() {
        let Some(record) = records.get(id).filter(|r| r.is_active()) else { continue };
        for (g, group) in record.log_groups.iter().enumerate() {
            let source = group.rsplit('/').next().unwrap_or(group).to_owned();
            let count = 5 + (k * 7 + g * 3) % 11;
            stack.write_agent_logs(group, id, &sample_lines(&source, name, count)).await?;
            n.say(&format!("{count:>3} lines → {group} (stream {id})"));
            written.insert((id.clone(), source), count);
        }
    }
    let total: usize = written.values().sum();

    n.step("Carrying the logs: subscription filter → Firehose → log ETL → Firehose → S3");
    n.say("The subscription filters deliver to Firehose for real. The emulator's Firehose cannot call a\ntransformation Lambda, so each raw payload is handed to the ETL's Firehose handler here, and\nits JSON records are put to the stream that writes them to S3.");
    let mut pump = LogPump::default();
    let mut carried = PumpReport::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while carried.events < total {
        let report = pump.pump(&stack).await?;
        carried.payloads += report.payloads;
        carried.events += report.events;
        carried.records += report.records;
        if Instant::now() > deadline {
            bail!("only {} of {total} log events arrived through the subscription", carried.events);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    n.say(&format!(
        "{} subscription payloads, {} log events → {} JSON records under s3://{BUCKET}/{LOGS_PREFIX}",
        carried.payloads, carried.events, carried.records
    ));

    n.step("Querying the records with the embedded SQL engine (the same table and columns as Athena's)");
    let ctx = local_session(LocalObjects::in_s3(&stack.s3, BUCKET, LOGS_PREFIX).await?.into_table(true)).await?;
    let sql = resolve_sql("log-volume");
    n.say(&format!("fleetlog query --local log-volume\n{sql}"));
    let answer = run_local(&ctx, sql).await?;
    let ssh = run_local(&ctx, resolve_sql("failed-ssh-logins")).await?;
    n.say("and fleetlog query --local access-windows: the web servers' requests per application in\nfive-minute windows, the application read from each instance's Application tag (the ETL also\nwrote these windows as CloudWatch metrics: the EMF lines on stderr)");
    let windows = run_local(&ctx, resolve_sql("access-windows")).await?;
    drop(emulator);

    n.step("Checking the answer against the lines written, and stopping the emulator");
    let mut found: BTreeMap<(String, String), usize> = BTreeMap::new();
    for row in &answer.rows {
        let text = |i: usize| row.get(i).and_then(Value::as_str).unwrap_or_default().to_owned();
        let lines = row.get(2).and_then(Value::as_u64).unwrap_or(0);
        found.insert((text(0), text(1)), usize::try_from(lines).unwrap_or(usize::MAX));
    }
    if found != written {
        bail!("the query answer does not match the lines written:\n  written {written:?}\n  answer  {found:?}");
    }
    // Every access line once, under its instance's application, whichever windows they fell in.
    let mut requests: BTreeMap<String, usize> = BTreeMap::new();
    for row in &windows.rows {
        let application = row.first().and_then(Value::as_str).unwrap_or_default().to_owned();
        *requests.entry(application).or_default() +=
            row.get(2).and_then(Value::as_u64).map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    }
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for ((instance, source), lines) in &written {
        if source == "access" {
            let application = records.get(instance).and_then(|r| r.application.clone()).unwrap_or_default();
            *expected.entry(application).or_default() += lines;
        }
    }
    if requests != expected || expected.is_empty() {
        bail!(
            "the windowed answer does not match the access lines written:\n  written {expected:?}\n  answer  {requests:?}"
        );
    }
    n.say(&format!(
        "The answer matches: {total} lines from {} instances in {} log groups. The emulator is stopped.",
        written.keys().map(|(i, _)| i).collect::<std::collections::BTreeSet<_>>().len(),
        written.len()
    ));
    let written_json: Vec<Value> = written
        .iter()
        .map(|((instance, source), lines)| serde_json::json!({ "instance_id": instance, "source": source, "lines": lines }))
        .collect();
    let mut report = answer.report(serde_json::json!({ "lines_written": total, "written": written_json }), Vec::new());
    report.tables[0].title = Some("\nLog lines per instance and source (the answer):".into());
    let mut ssh_report = ssh.report(Value::Null, Vec::new());
    ssh_report.tables[0].title = Some("Failed SSH logins (named query failed-ssh-logins):".into());
    report.tables.push(ssh_report.tables.remove(0));
    let mut windows_report = windows.report(Value::Null, Vec::new());
    windows_report.tables[0].title =
        Some("Requests per application in five-minute windows (named query access-windows):".into());
    report.tables.push(windows_report.tables.remove(0));
    Ok(report)
}

/// The emulator with fleetlog deployed, kept running: the enroll queue is drained and logs are
/// carried every two seconds, so every `fleetlog` command works against it until Ctrl-C.
pub async fn up(configs: &Path) -> Result<()> {
    let mut n = Narrator { step: 0, total: 4, to_stdout: true };
    let (emulator, stack) = bring_up(&mut n, configs).await?;
    n.step("Ready. In another terminal:");
    n.say(&format!(
        "export AWS_ENDPOINT_URL={} AWS_REGION={REGION} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test\n\
         fleetlog status\n\
         fleetlog query --local --source s3://{BUCKET}/{LOGS_PREFIX} log-volume\n\
         Launch instances with the AWS CLI or SDK; `fleetlog enroll ID` enrolls them.\n\
         The enroll queue is drained and logs are carried every 2 s. Ctrl-C stops the emulator.",
        emulator.endpoint
    ));
    let mut enroller = stack.enroller(&[], stack.clients.clone())?;
    enroller.metrics = MetricsOutput::Stderr;
    let state = State::new(enroller);
    let mut pump = LogPump::default();
    loop {
        let drained = drain_queue(&state, &stack.queue_url, &stack.queue_arn, REGION, DEFAULT_BATCH_SIZE).await?;
        if drained.messages > 0 {
            println!("enroller: {} message(s), {} left for retry", drained.messages, drained.retried);
        }
        stack.report_command_outcomes().await?;
        let carried = pump.pump(&stack).await?;
        if carried.payloads > 0 {
            println!(
                "logs: {} event(s) → {} record(s) in s3://{BUCKET}/{LOGS_PREFIX}",
                carried.events, carried.records
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
