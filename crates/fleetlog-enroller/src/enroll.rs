//! One enrollment run: read the instances named by a batch of events (or the whole fleet), decide, act.
//!
//! I/O is batched across the run: one DescribeInstances per 200 instances, one BatchGetItem per 100,
//! one GetParameters per 10 configs, each log group ensured once, and one SendCommand per
//! (document version, parameters) for up to 50 instances.

use std::collections::{BTreeMap, BTreeSet};

use fleetlog_aws::store::{Claim, EnrollmentStore};
use fleetlog_aws::{AwsError, Clients, alarms, ec2, logs, ssm};
use fleetlog_core::Instance;
use fleetlog_core::agent_config::{self, AgentConfigSummary};
use fleetlog_core::alarms::alarms_for;
use fleetlog_core::commands::{CommandSpec, ConfigParameterName};
use fleetlog_core::log_groups::LogGroupName;
use fleetlog_core::plan::{Decision, EnrollmentRecord, EnrollmentStatus, SkipReason, decide};
use fleetlog_core::settings::EnrollerSettings;
use fleetlog_core::tags::ManagementTag;
use futures::StreamExt;
use tracing::{info, warn};

use crate::outcome::Outcome;

/// How many instances get their alarms and records written at once.
const INSTANCE_CONCURRENCY: usize = 8;

/// What a batch of events asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Work {
    pub instance_ids: BTreeSet<String>,
    pub reconcile: bool,
}

/// What a run would do: the facts it read and the decision for each instance.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub instances: BTreeMap<String, Instance>,
    pub records: BTreeMap<String, EnrollmentRecord>,
    pub decisions: BTreeMap<String, Decision>,
}

/// Per-instance results of a run.
pub type Outcomes = BTreeMap<String, Outcome>;

#[derive(Debug, Clone)]
pub struct Enroller {
    pub settings: EnrollerSettings,
    pub clients: Clients,
    pub store: EnrollmentStore,
    /// Names this enroller's claims on instances (see [`EnrollmentStore::claim`]).
    claim_owner: String,
}

/// An instance on its way through enrollment.
struct Enrollee<'a> {
    instance: &'a Instance,
    parameter: ConfigParameterName,
    version: i64,
    config: &'a AgentConfigSummary,
    log_groups: Vec<LogGroupName>,
    command_ids: Vec<String>,
}

impl Enroller {
    pub fn new(settings: EnrollerSettings, clients: Clients) -> Self {
        let store = EnrollmentStore::new(clients.dynamodb.clone(), settings.enrollment_table.clone());
        let claim_owner = format!("{:016x}", fastrand::u64(..));
        Self { settings, clients, store, claim_owner }
    }

    /// Runs the work. An `Err` means nothing could be decided (the reads failed); per-instance
    /// failures are in the outcomes.
    pub async fn run(&self, work: &Work) -> Result<Outcomes, AwsError> {
        let plan = self.plan(work).await?;
        let mut outcomes = Outcomes::new();
        let mut to_enroll = Vec::new();
        let mut to_offboard = Vec::new();
        for (id, decision) in &plan.decisions {
            match decision {
                Decision::Enroll => to_enroll.extend(plan.instances.get(id)),
                Decision::Offboard => to_offboard.push(id.clone()),
                Decision::Skip(reason) => {
                    if let SkipReason::TagCaseMismatch { key, value } = reason {
                        warn!(instance_id = %id, tag_key = %key, tag_value = %value, "Instance tagged in the wrong case is not enrolled; fix the tag to enroll it");
                    }
                    outcomes.insert(id.clone(), Outcome::skipped(reason));
                }
            }
        }
        self.enroll(to_enroll, &plan.records, &mut outcomes).await;
        self.offboard(to_offboard, &plan.records, &mut outcomes).await;
        Ok(outcomes)
    }

    /// What this run would do, changing nothing.
    pub async fn plan(&self, work: &Work) -> Result<Plan, AwsError> {
        plan(&self.clients, &self.store, &self.settings.management_tag, work).await
    }

    async fn enroll(
        &self,
        instances: Vec<&Instance>,
        records: &BTreeMap<String, EnrollmentRecord>,
        outcomes: &mut Outcomes,
    ) {
        if instances.is_empty() {
            return;
        }
        // Which configuration each instance gets.
        let mut wanted: Vec<(&Instance, ConfigParameterName)> = Vec::new();
        for instance in instances {
            let profile = instance.tags.get(&self.settings.profile_tag_key).map(String::as_str);
            match ConfigParameterName::for_instance(&self.settings.config_parameter_prefix, instance.platform, profile)
            {
                Ok(name) => wanted.push((instance, name)),
                Err(e) => {
                    outcomes.insert(instance.id.clone(), Outcome::permanent(e.to_string()));
                }
            }
        }
        let names: Vec<String> =
            wanted.iter().map(|(_, n)| n.to_string()).collect::<BTreeSet<_>>().into_iter().collect();
        let stored = match ssm::get_parameters(&self.clients.ssm, &names).await {
            Ok(stored) => stored,
            Err(e) => {
                for (instance, _) in &wanted {
                    outcomes.insert(instance.id.clone(), Outcome::from_error(&e));
                }
                return;
            }
        };
        let configs: BTreeMap<&str, Result<(i64, AgentConfigSummary), String>> = stored
            .iter()
            .map(|(name, param)| {
                let parsed = match param {
                    None => Err(format!(
                        "agent config parameter {name} does not exist; publish it with `fleetlog configs publish`"
                    )),
                    Some(p) => agent_config::summarize(&p.value)
                        .and_then(|summary| self.settings.config_policy.check(&summary).map(|()| summary))
                        .map(|summary| (p.version, summary))
                        .map_err(|e| format!("parameter {name} (version {}): {e}", p.version)),
                };
                (name.as_str(), parsed)
            })
            .collect();

        let mut enrollees = Vec::new();
        for (instance, parameter) in wanted {
            let (version, config) = match configs.get(parameter.as_str()) {
                Some(Ok((version, config))) => (*version, config),
                Some(Err(reason)) => {
                    outcomes.insert(instance.id.clone(), Outcome::permanent(reason.clone()));
                    continue;
                }
                None => continue,
            };
            if records.get(&instance.id).is_some_and(|r| r.is_current(parameter.as_str(), version)) {
                info!(instance_id = %instance.id, config = %parameter, version, "Instance already enrolled with this config");
                outcomes.insert(
                    instance.id.clone(),
                    Outcome::AlreadyEnrolled { config_parameter: parameter.to_string(), config_version: version },
                );
                continue;
            }
            let log_groups: Result<Vec<_>, _> =
                config.log_groups.iter().map(|g| g.for_instance(&instance.id)).collect();
            match log_groups {
                Ok(log_groups) => enrollees.push(Enrollee {
                    instance,
                    parameter,
                    version,
                    config,
                    log_groups,
                    command_ids: Vec::new(),
                }),
                Err(e) => {
                    outcomes.insert(instance.id.clone(), Outcome::permanent(e.to_string()));
                }
            }
        }

        let enrollees = self.claim(enrollees, outcomes).await;
        let claimed: Vec<String> = enrollees.iter().map(|e| e.instance.id.clone()).collect();
        let enrollees = self.ensure_log_groups(enrollees, outcomes).await;
        let document = &self.settings.agent_document;
        let enrollees = self
            .send_commands(
                enrollees,
                |e| document.configure(e.instance.platform, &e.parameter, e.config.collects_collectd),
                outcomes,
            )
            .await;

        let finished: Vec<(String, Outcome)> = futures::stream::iter(enrollees)
            .map(|e| async move { (e.instance.id.clone(), self.finish_enrollment(e).await) })
            .buffer_unordered(INSTANCE_CONCURRENCY)
            .collect()
            .await;
        outcomes.extend(finished);
        // A written record ended its claim; the others end here, so their retries need not wait.
        let unfinished = claimed.iter().filter(|id| !matches!(outcomes.get(*id), Some(Outcome::Enrolled { .. })));
        futures::stream::iter(unfinished)
            .for_each_concurrent(INSTANCE_CONCURRENCY, |id| async move {
                if let Err(err) = self.store.release(id, &self.claim_owner).await {
                    warn!(instance_id = %id, error = %err, "Enrollment claim not released; it expires by itself");
                }
            })
            .await;
    }

    /// Claims each instance for this run. Those another run is enrolling are retried later; those it
    /// has just enrolled with the same config are done.
    async fn claim<'a>(&self, enrollees: Vec<Enrollee<'a>>, outcomes: &mut Outcomes) -> Vec<Enrollee<'a>> {
        let now = chrono::Utc::now().timestamp();
        let claims: Vec<(Enrollee<'a>, Result<Claim, AwsError>)> = futures::stream::iter(enrollees)
            .map(|e| async move {
                let claim =
                    self.store.claim(&e.instance.id, e.parameter.as_str(), e.version, &self.claim_owner, now).await;
                (e, claim)
            })
            .buffer_unordered(INSTANCE_CONCURRENCY)
            .collect()
            .await;
        let mut granted = Vec::new();
        for (e, claim) in claims {
            let id = e.instance.id.clone();
            match claim {
                Ok(Claim::Granted) => granted.push(e),
                Ok(Claim::AlreadyCurrent) => {
                    info!(instance_id = %id, config = %e.parameter, version = e.version, "Instance enrolled by another run meanwhile");
                    let outcome = Outcome::AlreadyEnrolled {
                        config_parameter: e.parameter.to_string(),
                        config_version: e.version,
                    };
                    outcomes.insert(id, outcome);
                }
                Ok(Claim::Held) => {
                    info!(instance_id = %id, "Instance is being enrolled by another run; retried later");
                    let reason = "another enrollment run holds this instance; retried later".to_owned();
                    outcomes.insert(id, Outcome::Deferred { reason });
                }
                Err(err) => {
                    outcomes.insert(id, Outcome::from_error(&err));
                }
            }
        }
        granted
    }

    /// Ensures each distinct log group once; instances whose groups failed drop out.
    async fn ensure_log_groups<'a>(&self, enrollees: Vec<Enrollee<'a>>, outcomes: &mut Outcomes) -> Vec<Enrollee<'a>> {
        let groups: BTreeSet<LogGroupName> = enrollees.iter().flat_map(|e| e.log_groups.iter().cloned()).collect();
        let mut failed: BTreeMap<LogGroupName, AwsError> = BTreeMap::new();
        for group in groups {
            let result = logs::ensure_log_group(
                &self.clients.logs,
                &group,
                self.settings.retention,
                self.settings.kms_key_arn.as_deref(),
                &self.settings.subscription,
            )
            .await;
            match result {
                Ok(changes) => info!(log_group = %group, ?changes, "Log group ready"),
                Err(e) => {
                    warn!(log_group = %group, error = %e, "Log group could not be prepared");
                    failed.insert(group, e);
                }
            }
        }
        let mut kept = Vec::new();
        for e in enrollees {
            match e.log_groups.iter().find_map(|g| failed.get(g)) {
                Some(err) => {
                    outcomes.insert(e.instance.id.clone(), Outcome::from_error(err));
                }
                None => kept.push(e),
            }
        }
        kept
    }

    /// Sends each enrollee its command ([`ssm::send_commands`]: batched, and split to find instances
    /// SSM does not manage yet); those whose command failed drop out.
    async fn send_commands<'a>(
        &self,
        enrollees: Vec<Enrollee<'a>>,
        spec_for: impl Fn(&Enrollee<'a>) -> CommandSpec,
        outcomes: &mut Outcomes,
    ) -> Vec<Enrollee<'a>> {
        let mut by_id: BTreeMap<String, Enrollee<'a>> = BTreeMap::new();
        let mut keyed = Vec::new();
        for e in enrollees {
            keyed.push((spec_for(&e), e.instance.id.clone()));
            by_id.insert(e.instance.id.clone(), e);
        }
        for (id, result) in ssm::send_commands(&self.clients.ssm, keyed).await {
            match result {
                Ok(command_id) => {
                    info!(instance_id = %id, command_id = %command_id, "Command sent");
                    if let Some(e) = by_id.get_mut(&id) {
                        e.command_ids.push(command_id);
                    }
                }
                Err(err) => {
                    by_id.remove(&id);
                    outcomes.insert(id, Outcome::from_error(&err));
                }
            }
        }
        by_id.into_values().collect()
    }

    async fn finish_enrollment(&self, e: Enrollee<'_>) -> Outcome {
        let alarms = alarms_for(&e.instance.id, e.config, &self.settings.thresholds);
        for alarm in &alarms {
            if let Err(err) =
                alarms::put_alarm(&self.clients.cloudwatch, alarm, self.settings.alarm_topic_arn.as_deref()).await
            {
                return Outcome::from_error(&err);
            }
        }
        let record = EnrollmentRecord {
            instance_id: e.instance.id.clone(),
            status: EnrollmentStatus::Enrolled,
            platform: e.instance.platform.to_string(),
            config_parameter: e.parameter.to_string(),
            config_version: e.version,
            command_ids: e.command_ids.clone(),
            log_groups: e.log_groups.iter().map(ToString::to_string).collect(),
            alarm_names: alarms.into_iter().map(|a| a.name).collect(),
            updated_at: now(),
        };
        if let Err(err) = self.store.put(&record).await {
            return Outcome::from_error(&err);
        }
        info!(instance_id = %e.instance.id, config = %e.parameter, version = e.version, "Instance enrolled");
        Outcome::Enrolled {
            config_parameter: record.config_parameter,
            config_version: e.version,
            command_ids: record.command_ids,
        }
    }

    async fn offboard(&self, ids: Vec<String>, records: &BTreeMap<String, EnrollmentRecord>, outcomes: &mut Outcomes) {
        let finished: Vec<(String, Outcome)> = futures::stream::iter(ids)
            .map(|id| async move {
                let outcome = self.offboard_one(&id, records.get(&id)).await;
                (id, outcome)
            })
            .buffer_unordered(INSTANCE_CONCURRENCY)
            .collect()
            .await;
        outcomes.extend(finished);
    }

    async fn offboard_one(&self, id: &str, record: Option<&EnrollmentRecord>) -> Outcome {
        let deleted = match alarms::delete_instance_alarms(&self.clients.cloudwatch, id).await {
            Ok(deleted) => deleted,
            Err(err) => return Outcome::from_error(&err),
        };
        if let Some(record) = record {
            let ended = EnrollmentRecord {
                status: EnrollmentStatus::Offboarded,
                alarm_names: Vec::new(),
                updated_at: now(),
                ..record.clone()
            };
            if let Err(err) = self.store.put(&ended).await {
                return Outcome::from_error(&err);
            }
        }
        info!(instance_id = %id, alarms_deleted = deleted.len(), "Instance offboarded; its logs are kept");
        Outcome::Offboarded { alarms_deleted: deleted }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Reads what the work names (or the whole fleet) and decides per instance, changing nothing.
/// The enroller acts on it; `fleetlog reconcile --dry-run` prints it.
pub async fn plan(
    clients: &Clients,
    store: &EnrollmentStore,
    tag: &ManagementTag,
    work: &Work,
) -> Result<Plan, AwsError> {
    let mut ids = work.instance_ids.clone();
    let mut instances: BTreeMap<String, Instance> = BTreeMap::new();
    let mut records: BTreeMap<String, EnrollmentRecord> = BTreeMap::new();
    if work.reconcile {
        for instance in ec2::list_managed_instances(&clients.ec2, tag).await? {
            instances.insert(instance.id.clone(), instance);
        }
        for record in store.list_enrolled().await? {
            records.insert(record.instance_id.clone(), record);
        }
        ids.extend(instances.keys().cloned());
        ids.extend(records.keys().cloned());
    }
    // Read only what the sweep did not already read.
    let unread: Vec<String> = ids.iter().filter(|id| !instances.contains_key(*id)).cloned().collect();
    for instance in ec2::describe_instances(&clients.ec2, &unread).await? {
        instances.insert(instance.id.clone(), instance);
    }
    let unrecorded: Vec<String> = ids.iter().filter(|id| !records.contains_key(*id)).cloned().collect();
    records.extend(store.get_many(&unrecorded).await?);
    let decisions = ids
        .into_iter()
        .map(|id| {
            let decision = decide(instances.get(&id), tag, records.get(&id));
            (id, decision)
        })
        .collect();
    Ok(Plan { instances, records, decisions })
}
