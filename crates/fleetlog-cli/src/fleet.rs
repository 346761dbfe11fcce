//! `fleetlog enroll|offboard|status|reconcile`: acting on and showing instances.
//!
//! `enroll` and `offboard` change the management tag and ask the enroller (through the stack's
//! request rule) to look at the instances now; the enroller does the work, exactly as for a tag
//! change. `status` reads every place enrollment leaves a trace.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use fleetlog_aws::Clients;
use fleetlog_aws::store::EnrollmentStore;
use fleetlog_core::account_policy::Delivery;
use fleetlog_core::alarms::{AlarmThresholds, alarms_for};
use fleetlog_core::commands::{AgentDocument, ConfigParameterName};
use fleetlog_core::decision::{Decision, SkipReason, decide};
use fleetlog_core::drift::{Drift, alarm_drift, retention_drift};
use fleetlog_core::events::reconcile_request;
use fleetlog_core::freshness::Liveness;
use fleetlog_core::instance::is_instance_id;
use fleetlog_core::log_groups::RetentionDays;
use fleetlog_core::record::{EnrollmentRecord, EnrollmentStatus};
use fleetlog_core::settings::enroller_default;
use fleetlog_core::tags::ManagementTag;
use fleetlog_core::{Instance, InstanceState};
use fleetlog_enroller::{Work, plan};
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;

use crate::output::{Report, Table, progress_bar};

/// What the CLI needs to know about the deployment (flags or the enroller's own variables).
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub management_tag: ManagementTag,
    /// fleetlog's SSM document, which `offboard` sends to stop the agent.
    pub agent_document: AgentDocument,
    pub table: String,
    pub subscription_filter: String,
    /// How long an enrolled instance may go without logs before it is `silent`.
    pub freshness_window: std::time::Duration,
    /// The retention fleetlog sets on log groups (what `reconcile --dry-run` compares with).
    pub retention: RetentionDays,
}

impl FleetOptions {
    /// The local deployment's (`fleetlog local`), with the enroller's defaults.
    pub fn local() -> Self {
        use fleetlog_local::stack::{AGENT_DOCUMENT, ENROLLMENT_TABLE, MANAGEMENT_TAG};
        Self {
            management_tag: ManagementTag { key: MANAGEMENT_TAG.0.to_owned(), value: MANAGEMENT_TAG.1.to_owned() },
            agent_document: AgentDocument {
                name: AGENT_DOCUMENT.to_owned(),
                version: fleetlog_core::commands::DEFAULT_DOCUMENT_VERSION.to_owned(),
            },
            table: ENROLLMENT_TABLE.to_owned(),
            subscription_filter: enroller_default("FLEETLOG_SUBSCRIPTION_FILTER_NAME").to_owned(),
            freshness_window: fleetlog_core::freshness::DEFAULT_FRESHNESS_WINDOW,
            retention: RetentionDays::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Fleet {
    pub clients: Clients,
    pub events: aws_sdk_eventbridge::Client,
    pub store: EnrollmentStore,
    pub options: FleetOptions,
}

/// Parallel status reads per fleet-wide `status` (bounded so large fleets stay under API rates).
const STATUS_CONCURRENCY: usize = 8;

/// Checks the arguments are instance IDs; a usage error names the bad ones.
pub fn checked_ids(ids: &[String]) -> Result<Vec<String>> {
    let bad: Vec<&str> = ids.iter().map(String::as_str).filter(|id| !is_instance_id(id)).collect();
    if !bad.is_empty() {
        bail!("not EC2 instance IDs (expected i- and 8 or 17 hex digits): {}", bad.join(", "));
    }
    let mut unique: Vec<String> = ids.to_vec();
    unique.sort();
    unique.dedup();
    Ok(unique)
}

impl Fleet {
    pub fn new(config: &aws_config::SdkConfig, options: FleetOptions) -> Self {
        Self::with_clients(Clients::new(config), aws_sdk_eventbridge::Client::new(config), options)
    }

    /// On given clients (the tests record what each call asks of IAM).
    pub fn with_clients(clients: Clients, events: aws_sdk_eventbridge::Client, options: FleetOptions) -> Self {
        let store = EnrollmentStore::new(clients.dynamodb.clone(), options.table.clone());
        Self { events, clients, store, options }
    }

    /// Reads the instances, failing with their names if any does not exist.
    async fn existing(&self, ids: &[String]) -> Result<Vec<Instance>> {
        let found = fleetlog_aws::ec2::describe_instances(&self.clients.ec2, ids).await?;
        let known: BTreeSet<&str> = found.iter().map(|i| i.id.as_str()).collect();
        let missing: Vec<&str> = ids.iter().map(String::as_str).filter(|id| !known.contains(id)).collect();
        if !missing.is_empty() {
            bail!("no such instance in this account and region: {} (nothing was changed)", missing.join(", "));
        }
        Ok(found)
    }

    /// Asks the enroller to look at these instances (or, with none, the whole fleet) now.
    pub async fn request_check(&self, ids: &[String]) -> Result<()> {
        let requests: Vec<serde_json::Value> = if ids.is_empty() {
            vec![reconcile_request(None)]
        } else {
            ids.iter().map(|id| reconcile_request(Some(id))).collect()
        };
        Ok(fleetlog_aws::events::put_events(&self.events, &requests).await?)
    }

    /// `enroll`: set the management tag and ask the enroller to enroll them now.
    pub async fn enroll(&self, ids: &[String]) -> Result<Report> {
        let ids = checked_ids(ids)?;
        let instances = self.existing(&ids).await?;
        let tag = &self.options.management_tag;
        fleetlog_aws::ec2::set_tag(&self.clients.ec2, &ids, &tag.key, &tag.value).await?;
        self.request_check(&ids).await?;
        let mut table = Table::new(&["instance", "state", "action"]);
        let mut items = Vec::new();
        for i in &instances {
            let note = if i.state == InstanceState::Running {
                "tagged; the enroller enrolls it now".to_owned()
            } else {
                format!("tagged; enrolled when it is running (now {})", i.state.as_str())
            };
            table.row(vec![i.id.clone(), i.state.as_str().to_owned(), note.clone()]);
            items.push(json!({ "instance_id": i.id, "state": i.state.as_str(), "tagged": true, "note": note }));
        }
        Ok(Report {
            json: json!({ "instances": items, "tag": { "key": tag.key, "value": tag.value } }),
            tables: vec![table],
            notes: vec![format!(
                "Tagged {}={}. `fleetlog status {}` shows progress.",
                tag.key,
                tag.value,
                ids.join(" ")
            )],
        })
    }

    /// `offboard`: stop the agent on enrolled running instances (while they still carry the tag the
    /// role's SendCommand grant requires), remove the management tag and ask the enroller to offboard
    /// them now. Logs stay.
    pub async fn offboard(&self, ids: &[String]) -> Result<Report> {
        let ids = checked_ids(ids)?;
        let instances = self.existing(&ids).await?;
        let stopped = self.stop_agents(&instances).await?;
        let key = &self.options.management_tag.key;
        fleetlog_aws::ec2::remove_tag(&self.clients.ec2, &ids, key).await?;
        self.request_check(&ids).await?;
        let mut table = Table::new(&["instance", "agent", "action"]);
        let mut items = Vec::new();
        for i in &instances {
            let agent = stopped.get(&i.id).cloned().unwrap_or_else(|| "not enrolled here; left alone".to_owned());
            table.row(vec![
                i.id.clone(),
                agent.clone(),
                "tag removed; the enroller removes its alarms and ends its enrollment".into(),
            ]);
            items.push(json!({ "instance_id": i.id, "untagged": true, "agent": agent }));
        }
        Ok(Report {
            json: json!({ "instances": items }),
            tables: vec![table],
            notes: vec!["Log groups and the logs already collected are kept.".into()],
        })
    }

    /// Sends fleetlog's document with `action=stop` to each running instance enrolled with a config
    /// (batched like the enroller's commands), and says per instance what came of it. A failure to stop
    /// does not stop the offboarding.
    async fn stop_agents(&self, instances: &[Instance]) -> Result<BTreeMap<String, String>> {
        let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
        let records = self.store.get_many(&ids).await?;
        let mut said = BTreeMap::new();
        let mut targets = Vec::new();
        for instance in instances {
            let Some(record) = records.get(&instance.id).filter(|r| r.is_active()) else { continue };
            if instance.state != InstanceState::Running {
                said.insert(instance.id.clone(), format!("not stopped: the instance is {}", instance.state.as_str()));
                continue;
            }
            let Ok(parameter) = ConfigParameterName::new(record.config_parameter.clone()) else { continue };
            targets.push((self.options.agent_document.stop(&parameter), instance.id.clone()));
        }
        for (id, result) in fleetlog_aws::ssm::send_commands(&self.clients.ssm, targets).await {
            let outcome = match result {
                Ok(command_id) => format!("stop sent (command {command_id})"),
                Err(e) => format!("not stopped: {e}"),
            };
            said.insert(id, outcome);
        }
        Ok(said)
    }

    /// `reconcile`: ask for a sweep, or with `dry_run` print what a sweep would do.
    pub async fn reconcile(&self, dry_run: bool) -> Result<Report> {
        if !dry_run {
            self.request_check(&[]).await?;
            return Ok(Report {
                json: json!({ "requested": true }),
                notes: vec!["Asked the enroller for a reconcile sweep; `fleetlog status` shows the result.".into()],
                ..Report::default()
            });
        }
        let work = Work { reconcile: true, ..Work::default() };
        let plan = plan(&self.clients, &self.store, &self.options.management_tag, &work).await?;
        let checked: Vec<&EnrollmentRecord> = plan
            .decisions
            .iter()
            .filter(|(_, d)| **d == Decision::Enroll)
            .filter_map(|(id, _)| plan.records.get(id).filter(|r| r.is_active()))
            .collect();
        let drift = self.drift(&checked).await?;
        let mut table = Table::new(&["instance", "would", "why", "drift"]);
        let mut items = Vec::new();
        for (id, decision) in &plan.decisions {
            let (action, why) = describe_decision(decision, plan.records.get(id));
            let found = drift.get(id).cloned().unwrap_or_default();
            table.row(vec![id.clone(), action.to_owned(), why.clone(), found.join("\n")]);
            items.push(json!({ "instance_id": id, "action": action, "reason": why, "drift": found }));
        }
        Ok(Report {
            json: json!({ "dry_run": true, "plan": items }),
            tables: vec![table.titled("Reconcile plan (nothing was changed):")],
            notes: Vec::new(),
        })
    }

    /// What a sweep would find and repair for enrolled instances, per resource, changing nothing: the
    /// config version it would re-apply, log groups whose retention or fleetlog's filter changed, and
    /// alarms missing or left over ([`fleetlog_core::drift`]). Each group is read once, the alarms in
    /// one listing, the configs ten to a call.
    async fn drift(&self, records: &[&EnrollmentRecord]) -> Result<BTreeMap<String, Vec<String>>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if records.is_empty() {
            return Ok(out);
        }
        let names: Vec<String> =
            records.iter().map(|r| r.config_parameter.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let configs = fleetlog_aws::ssm::get_parameters(&self.clients.ssm, &names).await?;
        let alarms = fleetlog_aws::alarms::list_alarms_by_instance(&self.clients.cloudwatch).await?;
        let groups: BTreeSet<&str> = records.iter().flat_map(|r| r.log_groups.iter().map(String::as_str)).collect();
        let filter = &self.options.subscription_filter;
        let policy = self.account_policy().await?;
        let criteria = policy.as_ref().map(|p| p.selection_criteria.as_str());
        let observed: Vec<Result<(String, Vec<Drift>)>> = futures::stream::iter(groups)
            .map(|name| async move {
                let state = fleetlog_aws::logs::observe_log_group(&self.clients.logs, name, filter).await?;
                // The CLI knows the retention and the filter's name, not its destination; where
                // fleetlog's account policy delivers a group, it needs no filter.
                let drift = match state {
                    None => vec![Drift::GroupMissing],
                    Some(state) => {
                        let filter_drift = match Delivery::of(name, state.filter.is_some(), criteria) {
                            Delivery::Nothing => Some(Drift::FilterMissing),
                            Delivery::FilterAndAccountPolicy => Some(Drift::FilterLeftOver),
                            Delivery::Filter | Delivery::AccountPolicy => None,
                        };
                        retention_drift(&state, self.options.retention).into_iter().chain(filter_drift).collect()
                    }
                };
                Ok((name.to_owned(), drift))
            })
            .buffer_unordered(STATUS_CONCURRENCY)
            .collect()
            .await;
        let mut group_drift: BTreeMap<String, Vec<Drift>> = BTreeMap::new();
        for result in observed {
            let (name, drift) = result?;
            group_drift.insert(name, drift);
        }
        for record in records {
            let lines = out.entry(record.instance_id.clone()).or_default();
            let stored = configs.get(&record.config_parameter).and_then(Option::as_ref);
            match stored {
                None => lines.push(format!("config {} missing: nothing to re-apply", record.config_parameter)),
                Some(p) if p.version != record.config_version => {
                    lines.push(format!("config v{} → v{}: re-applied", record.config_version, p.version));
                }
                Some(p) => {
                    if let Ok(summary) = fleetlog_core::agent_config::summarize(&p.value) {
                        // Alarm names do not depend on thresholds.
                        let expected = alarms_for(&record.instance_id, &summary, &AlarmThresholds::default());
                        let there = alarms.get(&record.instance_id).into_iter().flatten().map(String::as_str);
                        let drift = alarm_drift(expected.iter().map(|a| a.name.as_str()), there);
                        lines.extend(drift.iter().map(ToString::to_string));
                    }
                }
            }
            for group in &record.log_groups {
                lines.extend(group_drift.get(group).into_iter().flatten().map(|d| format!("{group}: {d}")));
            }
        }
        out.retain(|_, lines| !lines.is_empty());
        Ok(out)
    }

    /// `status`: the named instances, or every instance in the region with a summary.
    pub async fn status(&self, ids: &[String]) -> Result<Report> {
        let whole_fleet = ids.is_empty();
        let instances: Vec<Instance> = if whole_fleet {
            fleetlog_aws::ec2::list_instances(&self.clients.ec2).await?
        } else {
            self.existing(&checked_ids(ids)?).await?
        };
        let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
        let records = self.store.get_many(&ids).await?;
        let ping = fleetlog_aws::ssm::ping_statuses(&self.clients.ssm, &ids).await?;
        let groups: BTreeSet<String> = records.values().flat_map(|r| r.log_groups.iter().cloned()).collect();
        let group_status = self.log_group_status(groups).await?;
        let enrolled: BTreeMap<&str, &EnrollmentRecord> =
            records.iter().filter(|(_, r)| r.is_active()).map(|(id, r)| (id.as_str(), r)).collect();
        let commands = self.command_statuses(&enrolled, whole_fleet).await?;
        let alarms = if whole_fleet {
            fleetlog_aws::alarms::list_alarms_by_instance(&self.clients.cloudwatch).await?
        } else {
            self.alarms_of(enrolled.keys().copied()).await?
        };
        let mut rows: Vec<InstanceStatus> = instances
            .iter()
            .map(|instance| {
                let record = records.get(&instance.id);
                let ping = ping.get(&instance.id).cloned();
                self.instance_status(instance, record, ping, &group_status, &commands, &alarms)
            })
            .collect();
        rows.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));

        let mut table = Table::new(&[
            "instance",
            "state",
            "platform",
            "status",
            "ssm",
            "agent commands",
            "config",
            "log groups",
            "alarms",
            "updated",
        ]);
        for r in &rows {
            table.row(vec![
                r.instance_id.clone(),
                r.state.clone(),
                r.platform.clone(),
                r.status.clone(),
                r.ssm.clone(),
                r.commands.iter().map(|c| format!("{}: {}", c.document, c.status)).collect::<Vec<_>>().join("\n"),
                r.config.clone().unwrap_or_default(),
                r.log_groups.iter().map(LogGroupStatus::summary).collect::<Vec<_>>().join("\n"),
                r.alarms.len().to_string(),
                r.updated_at.clone().unwrap_or_default(),
            ]);
        }
        let mut summary: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &rows {
            *summary.entry(r.status.as_str()).or_default() += 1;
        }
        let mut tables = Vec::new();
        if whole_fleet {
            let mut counts = Table::new(&["status", "instances"]).titled(format!("Fleet: {} instances", rows.len()));
            for (status, n) in &summary {
                counts.row(vec![(*status).to_owned(), n.to_string()]);
            }
            tables.push(counts);
        }
        tables.push(table);
        let notes = rows.iter().filter_map(|r| Some(format!("{}: {}", r.instance_id, r.failure.as_ref()?))).collect();
        Ok(Report { json: json!({ "summary": summary, "instances": rows }), tables, notes })
    }

    async fn log_group_status(&self, groups: BTreeSet<String>) -> Result<BTreeMap<String, LogGroupStatus>> {
        let filter_name = &self.options.subscription_filter;
        let policy = self.account_policy().await?;
        let criteria = policy.as_ref().map(|p| p.selection_criteria.as_str());
        let checked: Vec<Result<LogGroupStatus>> = futures::stream::iter(groups)
            .map(|name| async move {
                let Some(group) = fleetlog_aws::logs::observe_log_group(&self.clients.logs, &name, filter_name).await?
                else {
                    let delivery = Delivery::Nothing;
                    return Ok(LogGroupStatus {
                        name,
                        exists: false,
                        retention_days: None,
                        delivery,
                        subscribed: false,
                    });
                };
                let delivery = Delivery::of(&name, group.filter.is_some(), criteria);
                let subscribed = delivery != Delivery::Nothing;
                Ok(LogGroupStatus { retention_days: group.retention_days, name, exists: true, delivery, subscribed })
            })
            .buffer_unordered(STATUS_CONCURRENCY)
            .collect()
            .await;
        checked.into_iter().map(|r| r.map(|s| (s.name.clone(), s))).collect()
    }

    /// fleetlog's account subscription policy (account-policy mode), if the account has it.
    async fn account_policy(&self) -> Result<Option<fleetlog_aws::logs::SubscriptionPolicy>> {
        let policy = fleetlog_aws::logs::subscription_policy(&self.clients.logs).await?;
        Ok(policy.filter(|p| p.name == fleetlog_core::account_policy::POLICY_NAME))
    }

    /// Each agent command's status on each instance it went to, by instance and then command: one
    /// listing per command, however many instances it went to (up to 50).
    async fn command_statuses(
        &self,
        enrolled: &BTreeMap<&str, &EnrollmentRecord>,
        show_progress: bool,
    ) -> Result<CommandStatuses> {
        let command_ids: BTreeSet<&str> =
            enrolled.values().flat_map(|r| r.command_ids.iter().map(String::as_str)).collect();
        let progress = progress_bar(command_ids.len(), "checking agent commands".to_owned(), show_progress);
        let listed: Vec<Result<Vec<(String, CommandStatus)>>> = futures::stream::iter(command_ids)
            .map(|command_id| {
                let progress = progress.clone();
                async move {
                    let invocations: Vec<(String, CommandStatus)> =
                        fleetlog_aws::ssm::list_invocations(&self.clients.ssm, Some(command_id))
                            .await?
                            .into_iter()
                            .map(|i| {
                                let status =
                                    CommandStatus { command_id: i.command_id, document: i.document, status: i.status };
                                (i.instance_id, status)
                            })
                            .collect();
                    progress.inc(1);
                    Ok(invocations)
                }
            })
            .buffer_unordered(STATUS_CONCURRENCY)
            .collect()
            .await;
        progress.finish_and_clear();
        let mut statuses = CommandStatuses::new();
        for invocations in listed {
            for (instance_id, status) in invocations? {
                statuses.entry(instance_id).or_default().insert(status.command_id.clone(), status);
            }
        }
        Ok(statuses)
    }

    /// The alarms of a few instances, one listing each.
    async fn alarms_of(&self, instance_ids: impl Iterator<Item = &str>) -> Result<BTreeMap<String, Vec<String>>> {
        let listed: Vec<Result<(String, Vec<String>)>> = futures::stream::iter(instance_ids)
            .map(|id| async move {
                Ok((id.to_owned(), fleetlog_aws::alarms::list_instance_alarms(&self.clients.cloudwatch, id).await?))
            })
            .buffer_unordered(STATUS_CONCURRENCY)
            .collect()
            .await;
        listed.into_iter().collect()
    }

    /// One row of `status`, from what was read for the whole selection.
    fn instance_status(
        &self,
        instance: &Instance,
        record: Option<&EnrollmentRecord>,
        ping: Option<String>,
        groups: &BTreeMap<String, LogGroupStatus>,
        commands: &CommandStatuses,
        alarms: &BTreeMap<String, Vec<String>>,
    ) -> InstanceStatus {
        let decision = decide(Some(instance), &self.options.management_tag, record);
        let enrolled = record.filter(|r| r.is_active());
        InstanceStatus {
            instance_id: instance.id.clone(),
            state: instance.state.as_str().to_owned(),
            platform: instance.platform.to_string(),
            status: status_word(&decision, record, self.options.freshness_window).to_owned(),
            tag: instance.tags.get(&self.options.management_tag.key).cloned(),
            ssm: ping.unwrap_or_else(|| "not registered".to_owned()),
            commands: enrolled
                .map(|r| {
                    r.command_ids
                        .iter()
                        .filter_map(|command_id| commands.get(&instance.id)?.get(command_id).cloned())
                        .collect()
                })
                .unwrap_or_default(),
            config: enrolled.map(|r| format!("{} v{}", r.config_parameter, r.config_version)),
            log_groups: enrolled
                .map(|r| r.log_groups.iter().filter_map(|g| groups.get(g).cloned()).collect())
                .unwrap_or_default(),
            alarms: enrolled.and_then(|_| alarms.get(&instance.id).cloned()).unwrap_or_default(),
            failure: enrolled.and_then(describe_failure),
            updated_at: record.map(|r| r.updated_at.clone()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandStatus {
    pub command_id: String,
    pub document: String,
    pub status: String,
}

/// Agent command statuses by instance ID, then command ID.
type CommandStatuses = BTreeMap<String, BTreeMap<String, CommandStatus>>;

#[derive(Debug, Clone, Serialize)]
pub struct LogGroupStatus {
    pub name: String,
    pub exists: bool,
    pub retention_days: Option<i32>,
    /// What delivers the group: fleetlog's filter, its account policy, both, or nothing.
    pub delivery: Delivery,
    /// Whether anything delivers it.
    pub subscribed: bool,
}

impl LogGroupStatus {
    fn summary(&self) -> String {
        if !self.exists {
            return format!("{} (missing)", self.name);
        }
        let retention = self.retention_days.map_or("never expires".to_owned(), |d| format!("{d} d"));
        format!("{} ({retention}, {})", self.name, self.delivery.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceStatus {
    pub instance_id: String,
    pub state: String,
    pub platform: String,
    /// One word for where the instance stands; see [`status_word`].
    pub status: String,
    /// The management tag's value, if the key is set.
    pub tag: Option<String>,
    /// SSM PingStatus, or "not registered".
    pub ssm: String,
    pub commands: Vec<CommandStatus>,
    pub config: Option<String>,
    pub log_groups: Vec<LogGroupStatus>,
    pub alarms: Vec<String>,
    /// Why the agent command failed (status `failed`), and when it is tried again.
    pub failure: Option<String>,
    pub updated_at: Option<String>,
}

/// Where an instance stands, from the same decision the enroller makes.
pub fn status_word(
    decision: &Decision,
    record: Option<&EnrollmentRecord>,
    window: std::time::Duration,
) -> &'static str {
    let active = record.filter(|r| r.is_active());
    let now_ms = chrono::Utc::now().timestamp_millis();
    match decision {
        // delivering or silent once the agent is configured; else enrolling or failed.
        Decision::Enroll if let Some(r) = active => {
            Liveness::of(r, now_ms, window).map_or(r.status.as_str(), Liveness::as_str)
        }
        Decision::Enroll => "awaiting enrollment",
        Decision::Offboard => "awaiting offboarding",
        Decision::Skip(SkipReason::TagCaseMismatch { .. }) => "tag case mismatch",
        Decision::Skip(SkipReason::NotRunning(_)) => "managed, not running",
        Decision::Skip(SkipReason::NotManaged) if record.is_some() => "offboarded",
        Decision::Skip(SkipReason::NotManaged) => "not managed",
        Decision::Skip(SkipReason::Unknown) => "unknown",
    }
}

/// When a failed record's command is sent again (RFC 3339), if it is.
fn retry_time(record: &EnrollmentRecord) -> Option<String> {
    record.retry_at.and_then(|at| chrono::DateTime::from_timestamp(at, 0)).map(|at| at.to_rfc3339())
}

/// A failed record's failure and what happens next, in words.
fn describe_failure(record: &EnrollmentRecord) -> Option<String> {
    let failure = record.failure.as_ref()?;
    let next = match retry_time(record) {
        Some(at) => format!("attempt {} failed; retried at {at}", record.attempts),
        None => format!(
            "attempt {} failed; no attempts left: fix the cause, then `fleetlog enroll {}`",
            record.attempts, record.instance_id
        ),
    };
    Some(format!("{}; {next}", failure.describe()))
}

/// A plan entry in words: (action, why).
pub fn describe_decision(decision: &Decision, record: Option<&EnrollmentRecord>) -> (&'static str, String) {
    match decision {
        Decision::Enroll => match record.filter(|r| r.is_active()) {
            Some(r) if r.status == EnrollmentStatus::Failed => (
                "check",
                match retry_time(r) {
                    Some(at) => format!("failed (attempt {}); sent again from {at}", r.attempts),
                    None => format!("failed (attempt {}), no attempts left; `fleetlog enroll` tries again", r.attempts),
                },
            ),
            Some(r) => (
                "check",
                format!(
                    "{} with {} v{}; re-applied only if the config changed",
                    r.status.as_str(),
                    r.config_parameter,
                    r.config_version
                ),
            ),
            None => ("enroll", "managed and running, not enrolled yet".to_owned()),
        },
        Decision::Offboard => ("offboard", "enrolled but no longer managed or running".to_owned()),
        Decision::Skip(SkipReason::TagCaseMismatch { key, value }) => {
            ("skip", format!("tagged {key}={value}: the management tag must match exactly, case included"))
        }
        Decision::Skip(SkipReason::NotRunning(state)) => ("skip", format!("managed but {}", state.as_str())),
        Decision::Skip(SkipReason::NotManaged) => ("skip", "not managed".to_owned()),
        Decision::Skip(SkipReason::Unknown) => ("skip", "not found in EC2".to_owned()),
    }
}
