//! A fleetlog deployment inside the emulator: the enroll queue and its DLQ, the EventBridge rules of
//! infra/ targeting it, the enrollment table, the published agent configs, and EC2 instances.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_ec2::types::Tag;
use aws_sdk_ssm::types::ParameterType;
use fleetlog_aws::Clients;
use fleetlog_core::Platform;
use fleetlog_core::agent_config::{TemplateVars, render_template};
use fleetlog_core::events;
use fleetlog_core::record::EnrollmentRecord;
use fleetlog_enroller::State;
use fleetlog_local::event_source::{DEFAULT_BATCH_SIZE, DrainReport, drain_queue};
use serde_json::Value;

use crate::calls::{CallCounter, CallRecorder};
use crate::iam::Deployment;
use crate::{ACCOUNT, Emulator, REGION};
use fleetlog_local::stack::LocalStack;

pub use fleetlog_local::stack::MANAGEMENT_TAG as MANAGED;
pub use fleetlog_local::stack::{ENROLLMENT_TABLE as TABLE, SUBSCRIPTION_ROLE_ARN as ROLE_ARN};

/// A command as SSM recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCommand {
    pub document: String,
    pub instance_ids: Vec<String>,
    pub parameters: BTreeMap<String, Vec<String>>,
}

#[derive(Debug)]
pub struct Fleet {
    pub emulator: Emulator,
    pub config: SdkConfig,
    pub clients: Clients,
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
    pub log_group_prefix: String,
    /// Where subscription filters send log events (the local subscriptions stream).
    pub destination_arn: String,
    /// fleetlog as deployed into the emulator (`fleetlog local` uses the same).
    pub stack: LocalStack,
    pub state: State,
    /// The AWS calls the enroller (not the fixture) made.
    pub enroller_calls: CallCounter,
    /// What IAM authorises for each of them; when the fleet is dropped, every one is evaluated
    /// against the role the stack gives the enroller, so each scenario is also an IAM test.
    pub enroller_requests: CallRecorder,
    /// The stack as deployed: a single one, or a member.
    pub deployment: Deployment,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let requests = self.enroller_requests.requests();
        if !requests.is_empty() {
            self.deployment.assert_allows("EnrollerRole", &requests);
        }
    }
}

impl Fleet {
    /// Starts an emulator and deploys fleetlog's enrollment side into it.
    pub async fn new() -> Self {
        Self::with_settings(&[]).await
    }

    /// Like [`Fleet::new`], with enroller environment variables overridden.
    pub async fn with_settings(overrides: &[(&str, &str)]) -> Self {
        let emulator = crate::start_emulator();
        let config = emulator.sdk_config().await;
        let stack = LocalStack::deploy(&config).await.expect("deploy fleetlog into the emulator");
        Self::build(emulator, config, stack, overrides, Deployment::local(&[])).await
    }

    /// A member stack's enroller, subscribing groups to a central destination with its sender role.
    /// The emulator is one account: the destination (in front of the local subscriptions stream)
    /// lives in it, so the member's CentralAccountId is that account.
    pub async fn member() -> Self {
        let emulator = crate::start_emulator();
        let config = emulator.sdk_config().await;
        let stack = LocalStack::deploy(&config).await.expect("deploy fleetlog into the emulator");
        let destination = stack.create_destination(&[ACCOUNT]).await.expect("the central destination");
        let deployment = Deployment::local(&[
            ("StackRole", serde_json::json!("member")),
            ("CentralAccountId", serde_json::json!(ACCOUNT)),
        ]);
        let sender = deployment.arn("CentralSenderRole");
        let overrides = [
            ("FLEETLOG_SUBSCRIPTION_DESTINATION_ARN", destination.as_str()),
            ("FLEETLOG_SUBSCRIPTION_ROLE_ARN", sender.as_str()),
        ];
        let mut fleet = Self::build(emulator, config, stack, &overrides, deployment).await;
        fleet.destination_arn = destination;
        fleet
    }

    async fn build(
        emulator: Emulator,
        config: SdkConfig,
        stack: LocalStack,
        overrides: &[(&str, &str)],
        deployment: Deployment,
    ) -> Self {
        let enroller_calls = CallCounter::default();
        let enroller_requests = CallRecorder::default();
        let enroller =
            stack.enroller(overrides, enroller_calls.clients(&config, &enroller_requests)).expect("enroller settings");
        let fleet = Self {
            emulator,
            config,
            clients: stack.clients.clone(),
            queue_url: stack.queue_url.clone(),
            queue_arn: stack.queue_arn.clone(),
            dlq_url: stack.dlq_url.clone(),
            log_group_prefix: stack.log_group_prefix.clone(),
            destination_arn: stack.raw_stream_arn.clone(),
            stack,
            state: State::new(enroller),
            enroller_calls,
            enroller_requests,
            deployment,
        };
        fleet.publish_config("linux.json", "AmazonCloudWatch-fleetlog-linux").await;
        fleet.publish_config("windows.json", "AmazonCloudWatch-fleetlog-windows").await;
        fleet
    }

    /// Renders and stores an agent config from agent-configs/ (what `fleetlog configs publish` does).
    pub async fn publish_config(&self, file: &str, parameter: &str) {
        let path = Path::new("../agent-configs").join(file);
        let template = std::fs::read_to_string(&path).expect("agent config");
        let text =
            render_template(&template, &TemplateVars { log_group_prefix: self.log_group_prefix.clone() }).unwrap();
        self.put_parameter(parameter, &text).await;
    }

    pub async fn put_parameter(&self, name: &str, value: &str) {
        self.clients
            .ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .expect("PutParameter");
    }

    /// Creates a log group that already has two subscription filters someone else made (`team-a`,
    /// `team-b`): CloudWatch Logs allows no third, so fleetlog cannot subscribe it.
    pub async fn create_group_with_two_foreign_filters(&self, group: &str) {
        self.clients.logs.create_log_group().log_group_name(group).send().await.expect("CreateLogGroup");
        for name in ["team-a", "team-b"] {
            self.clients
                .logs
                .put_subscription_filter()
                .log_group_name(group)
                .filter_name(name)
                .filter_pattern("")
                .destination_arn("arn:aws:lambda:us-east-1:123456789012:function:other")
                .send()
                .await
                .expect("PutSubscriptionFilter");
        }
    }

    /// Launches `count` instances and waits until EC2 reports them running.
    pub async fn launch(&self, platform: Platform, tags: &[(&str, &str)], count: i32) -> Vec<String> {
        let ids = self.stack.launch(platform, tags, count).await.expect("RunInstances");
        assert_eq!(ids.len(), usize::try_from(count).unwrap());
        if let Ok(mut known) = self.enroller_requests.tags.lock() {
            for id in &ids {
                known.insert(id.clone(), tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
            }
        }
        self.wait_for_state(&ids, "running").await;
        ids
    }

    /// Launches one managed instance and lets the enroller enroll it from its `running` event; its
    /// command's outcome is not reported yet (it is `enrolling`).
    pub async fn enrolled(&self, platform: Platform) -> String {
        let id = self.launch(platform, &[MANAGED], 1).await.remove(0);
        self.put_state_changes(std::slice::from_ref(&id), "running").await;
        let report = self.deliver(1).await;
        assert_eq!((report.messages, report.retried), (1, 0), "{id} enrolled");
        id
    }

    pub async fn wait_for_state(&self, ids: &[String], state: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let instances =
                fleetlog_aws::ec2::describe_instances(&self.clients.ec2, ids).await.expect("DescribeInstances");
            let ready = instances.iter().filter(|i| i.state == fleetlog_core::InstanceState::parse(state)).count();
            if ready == ids.len() {
                return;
            }
            assert!(Instant::now() < deadline, "instances did not reach {state}: {instances:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Puts the events AWS would emit onto the default bus (EC2 emits none inside the emulator).
    pub async fn put_events(&self, events: Vec<Value>) {
        self.stack.put_events(&events).await.expect("PutEvents");
    }

    pub async fn put_state_changes(&self, ids: &[String], state: &str) {
        self.put_events(ids.iter().map(|id| events::ec2_state_change_event(id, state, ACCOUNT, REGION)).collect())
            .await;
    }

    /// Sets (or with `None` deletes) a tag and emits the tag-change event.
    pub async fn change_tag(&self, id: &str, key: &str, value: Option<&str>) {
        match value {
            Some(v) => {
                self.clients
                    .ec2
                    .create_tags()
                    .resources(id)
                    .tags(Tag::builder().key(key).value(v).build())
                    .send()
                    .await
                    .expect("CreateTags");
            }
            None => {
                self.clients
                    .ec2
                    .delete_tags()
                    .resources(id)
                    .tags(Tag::builder().key(key).build())
                    .send()
                    .await
                    .expect("DeleteTags");
            }
        }
        let instance =
            fleetlog_aws::ec2::describe_instances(&self.clients.ec2, &[id.to_owned()]).await.unwrap().remove(0);
        if let Ok(mut known) = self.enroller_requests.tags.lock() {
            known.insert(id.to_owned(), instance.tags.clone());
        }
        self.put_events(vec![events::tag_change_event(id, &[key], &instance.tags, ACCOUNT, REGION)]).await;
    }

    /// Waits until `expected` messages are on the queue, then lets the enroller consume them the way
    /// Lambda's event source mapping would.
    pub async fn deliver(&self, expected: usize) -> DrainReport {
        self.wait_for_messages(&self.queue_url, expected).await;
        drain_queue(&self.state, &self.queue_url, &self.queue_arn, REGION, DEFAULT_BATCH_SIZE).await.expect("drain")
    }

    /// Stands in for Run Command's status-change events (the emulator emits none): waits until
    /// `expected` agent commands have a final status in SSM, puts their events on the bus, and lets
    /// the enroller record them.
    pub async fn report_command_outcomes(&self, expected: usize) -> DrainReport {
        self.stack.await_command_outcomes(expected, Duration::from_secs(10)).await.expect("agent command outcomes");
        self.deliver(expected).await
    }

    pub async fn wait_for_messages(&self, queue_url: &str, expected: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = self.visible_messages(queue_url).await;
            if n >= expected {
                return;
            }
            assert!(Instant::now() < deadline, "expected {expected} messages on {queue_url}, found {n}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn visible_messages(&self, queue_url: &str) -> usize {
        self.stack.visible_messages(queue_url).await.expect("GetQueueAttributes")
    }

    /// Every command SSM has recorded.
    pub async fn commands(&self) -> Vec<SentCommand> {
        let mut pages = self.clients.ssm.list_commands().into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            for c in page.expect("ListCommands").commands() {
                out.push(SentCommand {
                    document: c.document_name().unwrap_or_default().to_owned(),
                    instance_ids: c.instance_ids().to_vec(),
                    parameters: c
                        .parameters()
                        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default(),
                });
            }
        }
        out
    }

    pub async fn commands_for(&self, id: &str) -> Vec<SentCommand> {
        self.commands().await.into_iter().filter(|c| c.instance_ids.iter().any(|i| i == id)).collect()
    }

    pub async fn record(&self, id: &str) -> Option<EnrollmentRecord> {
        self.state.enroller.store.get(id).await.expect("GetItem")
    }

    pub async fn alarms(&self, id: &str) -> Vec<String> {
        fleetlog_aws::alarms::list_instance_alarms(&self.clients.cloudwatch, id).await.expect("DescribeAlarms")
    }

    /// Messages on the DLQ with their fleetlog reason.
    pub async fn dead_letters(&self) -> Vec<(String, String)> {
        let out = self
            .clients
            .sqs
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage");
        out.messages()
            .iter()
            .map(|m| {
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get(fleetlog_aws::queue::REASON_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .unwrap_or_default()
                    .to_owned();
                (m.body().unwrap_or_default().to_owned(), reason)
            })
            .collect()
    }
}
