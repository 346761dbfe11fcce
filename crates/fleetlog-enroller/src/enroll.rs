//! One enrollment run: read the instances named by a batch of events (or the whole fleet), decide, act.
//!
//! I/O is batched across the run: one DescribeInstances per 200 instances, one BatchGetItem per 100,
//! one GetParameters per 10 configs, each log group ensured once, and one SendCommand per
//! (document version, parameters) for up to 50 instances.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fleetlog_aws::store::{Claim, EnrollmentStore};
use fleetlog_aws::{AwsError, Clients, alarms, ec2, logs, queue, ssm};
use fleetlog_core::Instance;
use fleetlog_core::agent_config::AgentConfigSummary;
use fleetlog_core::alarms::alarms_for;
use fleetlog_core::command_outcome::{CommandFailure, CommandReport, InvocationStatus, Transition, transition};
use fleetlog_core::commands::{CommandSpec, ConfigParameterName};
use fleetlog_core::decision::{Decision, SkipReason, decide};
use fleetlog_core::drift::{Drift, GroupSpec, alarm_drift};
use fleetlog_core::enrollment::{self, Step};
use fleetlog_core::events;
use fleetlog_core::freshness::{Liveness, Sighting, needs_write, newest_by_instance};
use fleetlog_core::log_groups::LogGroupName;
use fleetlog_core::metrics::Counter;
use fleetlog_core::record::{EnrollmentRecord, EnrollmentStatus};
use fleetlog_core::settings::EnrollerSettings;
use fleetlog_core::tags::{ManagementTag, Ownership};
use fleetlog_sdk::metrics::MetricsOutput;
use futures::StreamExt;
use tracing::{info, warn};

use crate::outcome::Outcome;

/// How many instances get their alarms and records written at once.
const INSTANCE_CONCURRENCY: usize = 8;
/// No new work starts this close to the invocation's deadline: the longest step (a batch of 50
/// commands sent, or 8 instances' alarms and records) fits in it with room to answer.
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);
/// A sweep that finds more instances than this to enroll (one queue batch) sends each a request of
/// its own instead, so the work spreads over invocations (and over the function's concurrency).
pub const FAN_OUT_ABOVE: usize = 100;

/// What a batch of events asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Work {
    pub instance_ids: BTreeSet<String>,
    /// Outcomes of agent commands to record.
    pub reports: Vec<CommandReport>,
    /// Instances whose logs the ETL carried.
    pub sightings: Vec<Sighting>,
    /// Instances an operator asked about (`fleetlog enroll`): one whose command failed is tried
    /// again at once, with a fresh set of attempts.
    pub asked: BTreeSet<String>,
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
    /// Where the run's embedded-metric lines go.
    pub metrics: MetricsOutput,
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
    /// The attempt number of the command this run sends (see [`EnrollmentRecord::next_attempt`]).
    attempt: u32,
    /// What the record knew of its logs: a new config does not forget they were arriving.
    last_log_at: Option<i64>,
    /// An operator asked to try this failed instance again.
    retry_asked: bool,
}

impl Enroller {
    pub fn new(settings: EnrollerSettings, clients: Clients) -> Self {
        let store = EnrollmentStore::new(clients.dynamodb.clone(), settings.enrollment_table.clone());
        let claim_owner = format!("{:016x}", fastrand::u64(..));
        Self { settings, clients, store, metrics: MetricsOutput::Stdout, claim_owner }
    }

    /// Runs the work. An `Err` means nothing could be decided (the reads failed); per-instance
    /// failures are in the outcomes.
    ///
    /// Command reports are recorded first; an instance whose failed command is due for another try
    /// joins the instances to enroll. A sweep also asks SSM about commands whose outcome is overdue.
    pub async fn run(&self, work: &Work) -> Result<Outcomes, AwsError> {
        self.run_until(work, None).await
    }

    /// [`Enroller::run`] within an invocation that ends at `deadline`: once it is near, nothing new
    /// is started and the instances left are [`Outcome::Deferred`] (their messages retried).
    pub async fn run_until(&self, work: &Work, deadline: Option<Instant>) -> Result<Outcomes, AwsError> {
        let now = chrono::Utc::now().timestamp();
        let deadline = Deadline(deadline);
        let mut outcomes = Outcomes::new();
        let mut work = work.clone();
        let reported = work.reports.iter().map(|r| &r.instance_id);
        if deadline.near() {
            for id in work.instance_ids.iter().chain(reported) {
                settle(&mut outcomes, id.clone(), Deadline::outcome());
            }
            return Ok(outcomes);
        }
        if !work.sightings.is_empty() {
            self.record_sightings(&work.sightings).await;
        }
        if !work.reports.is_empty() {
            let ids: Vec<String> = work.reports.iter().map(|r| r.instance_id.clone()).collect();
            let mut records = self.store.get_many(&ids).await?;
            let reports = work.reports.iter().map(|r| (r.clone(), None)).collect();
            let due = self.record_outcomes(reports, &mut records, now, deadline, &mut outcomes).await;
            work.instance_ids.extend(due);
        }
        let mut plan = self.plan(&work).await?;
        if work.reconcile {
            // A failure found now waits for its retry; a sweep after it sends the command again.
            let overdue = self.ask_overdue(&plan.records, now).await;
            self.record_outcomes(overdue, &mut plan.records, now, deadline, &mut outcomes).await;
            self.report_health(&plan.records, now);
        }
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
                    settle(&mut outcomes, id.clone(), Outcome::skipped(reason));
                }
            }
        }
        let mut acted = Outcomes::new();
        let enrolling = Enrolling { now, deadline, sweep: work.reconcile, asked: &work.asked };
        self.enroll(to_enroll, &plan.records, &enrolling, &mut acted).await;
        self.offboard(to_offboard, &plan.records, now, deadline, &mut acted).await;
        for (id, outcome) in acted {
            settle(&mut outcomes, id, outcome);
        }
        Ok(outcomes)
    }

    /// Records each report's outcome (see [`transition`]), in the table and in `records`, and returns
    /// the instances whose failed command is due to be sent again. `failure`, when given, is what SSM
    /// already said of it.
    async fn record_outcomes(
        &self,
        reports: Vec<(CommandReport, Option<CommandFailure>)>,
        records: &mut BTreeMap<String, EnrollmentRecord>,
        now: i64,
        deadline: Deadline,
        outcomes: &mut Outcomes,
    ) -> Vec<String> {
        let policy = &self.settings.command_retry;
        let mut due = Vec::new();
        for (report, failure) in reports {
            let id = report.instance_id.clone();
            if deadline.near() {
                settle(outcomes, id, Deadline::outcome());
                continue;
            }
            let record = records.get(&id).cloned();
            // The outcome, and the record to write for it (written only while the item still waits
            // for this command).
            let (outcome, update) = match (transition(record.as_ref(), &report, now, policy), record.as_ref()) {
                (Transition::RetryDue, _) => {
                    due.push(id);
                    continue;
                }
                (Transition::Ignore(why), _) => {
                    info!(instance_id = %id, command_id = %report.command_id, status = report.status.as_str(), why, "Command report changes nothing");
                    (Outcome::Skipped { reason: format!("command report: {why}") }, None)
                }
                (Transition::Pending, _) => {
                    (Outcome::Skipped { reason: "agent command still running".to_owned() }, None)
                }
                (Transition::RetryLater { seconds }, Some(record)) => {
                    let reason = record
                        .failure
                        .as_ref()
                        .map_or_else(|| report.status.as_str().to_owned(), CommandFailure::describe);
                    (Outcome::RetryPending { reason, retry_in_seconds: u64::try_from(seconds).unwrap_or(0) }, None)
                }
                (Transition::Succeeded, Some(record)) => {
                    let configured = EnrollmentRecord {
                        status: EnrollmentStatus::Enrolled,
                        failure: None,
                        retry_at: None,
                        updated_at: timestamp(),
                        ..record.clone()
                    };
                    (Outcome::Configured { command_id: report.command_id.clone() }, Some(configured))
                }
                (Transition::Failed { retry_at }, Some(record)) => {
                    let failure = match failure {
                        Some(failure) => failure,
                        None => self.failure_of(&report).await,
                    };
                    let outcome = Outcome::CommandFailed {
                        reason: failure.describe(),
                        retry_in_seconds: retry_at.map(|at| u64::try_from(at - now).unwrap_or(0)),
                    };
                    let failed = EnrollmentRecord {
                        status: EnrollmentStatus::Failed,
                        failure: Some(failure),
                        retry_at,
                        updated_at: timestamp(),
                        ..record.clone()
                    };
                    (outcome, Some(failed))
                }
                (_, None) => (Outcome::Skipped { reason: "command report: no enrollment record".into() }, None),
            };
            let outcome = match update {
                None => outcome,
                Some(updated) => match self.store.record_outcome(&updated, &report.command_id).await {
                    Ok(true) => {
                        match &outcome {
                            Outcome::CommandFailed { reason, .. } => {
                                warn!(instance_id = %id, attempt = updated.attempts, retry_at = updated.retry_at, %reason, "Agent command failed");
                            }
                            _ => info!(instance_id = %id, command_id = %report.command_id, "Agent configured"),
                        }
                        records.insert(id.clone(), updated);
                        outcome
                    }
                    Ok(false) => Outcome::Skipped { reason: "command report: the record changed meanwhile".into() },
                    Err(err) => Outcome::from_error(&err),
                },
            };
            settle(outcomes, id, outcome);
        }
        due
    }

    /// Keeps the newest log time of each instance the ETL reported, writing a record at most once per
    /// interval ([`needs_write`]): one BatchGetItem per 100 instances reported, one UpdateItem per
    /// record due.
    async fn record_sightings(&self, sightings: &[Sighting]) {
        let newest = newest_by_instance(sightings.iter().cloned());
        let ids: Vec<String> = newest.keys().cloned().collect();
        let records = match self.store.get_many(&ids).await {
            Ok(records) => records,
            Err(err) => {
                warn!(error = %err, instances = ids.len(), "Log arrivals not recorded; the next report brings them");
                return;
            }
        };
        let window = self.settings.freshness_window;
        let due = newest.into_iter().filter(|(id, t)| records.get(id).is_some_and(|r| needs_write(r, *t, window)));
        let written: Vec<bool> = futures::stream::iter(due)
            .map(|(id, t)| async move {
                self.store.record_logs_seen(&id, t).await.unwrap_or_else(|err| {
                    warn!(instance_id = %id, error = %err, "Could not record that the instance's logs arrived");
                    false
                })
            })
            .buffer_unordered(INSTANCE_CONCURRENCY)
            .collect()
            .await;
        let count = written.iter().filter(|w| **w).count();
        info!(reported = ids.len(), recorded = count, "Log arrivals recorded");
    }

    /// A sweep's view of the whole fleet, logged and published as gauges the stack alarms on.
    fn report_health(&self, records: &BTreeMap<String, EnrollmentRecord>, now: i64) {
        let now_ms = now.saturating_mul(1000);
        let window = self.settings.freshness_window;
        let mut silent = Vec::new();
        let mut failed = Vec::new();
        for record in records.values().filter(|r| r.is_active()) {
            if record.status == EnrollmentStatus::Failed {
                failed.push(record.instance_id.as_str());
            } else if Liveness::of(record, now_ms, window) == Some(Liveness::Silent) {
                silent.push(record.instance_id.as_str());
            }
        }
        if !silent.is_empty() || !failed.is_empty() {
            warn!(?silent, ?failed, "Instances whose logs are not arriving");
        }
        let count = |v: &Vec<&str>| u64::try_from(v.len()).unwrap_or(u64::MAX);
        self.metrics
            .emit_gauges(&[(Counter::InstancesSilent, count(&silent)), (Counter::InstancesFailed, count(&failed))]);
    }

    /// The failed step and its output, from SSM; only the status when SSM cannot say more.
    async fn failure_of(&self, report: &CommandReport) -> CommandFailure {
        let bare = || CommandFailure {
            command_id: report.command_id.clone(),
            status: report.status.as_str().to_owned(),
            step: None,
            output: String::new(),
        };
        match ssm::invocation_outcome(&self.clients.ssm, &report.command_id, &report.instance_id).await {
            Ok(Some((_, Some(failure)))) => failure,
            Ok(_) => bare(),
            Err(err) => {
                warn!(instance_id = %report.instance_id, error = %err, "Could not read the failed command's output");
                bare()
            }
        }
    }

    /// Asks SSM about each record still `enrolling` long after its command was sent: its
    /// status-change event may have been lost. One ListCommandInvocations per such instance.
    async fn ask_overdue(
        &self,
        records: &BTreeMap<String, EnrollmentRecord>,
        now: i64,
    ) -> Vec<(CommandReport, Option<CommandFailure>)> {
        let after = i64::try_from(self.settings.command_overdue.as_secs()).unwrap_or(i64::MAX);
        let overdue = records.values().filter(|r| r.outcome_overdue(now, after));
        futures::stream::iter(overdue)
            .filter_map(|record| async move {
                let command_id = record.command_ids.last()?.clone();
                let id = record.instance_id.clone();
                let (status, failure) =
                    match ssm::invocation_outcome(&self.clients.ssm, &command_id, &id).await {
                        Ok(Some(found)) => found,
                        Ok(None) => {
                            let failure = CommandFailure {
                                command_id: command_id.clone(),
                                status: "Missing".into(),
                                step: None,
                                output: "SSM has no record of this command on the instance".into(),
                            };
                            (InvocationStatus::Failed("Missing".into()), Some(failure))
                        }
                        Err(err) => {
                            warn!(instance_id = %id, error = %err, "Could not ask SSM about an overdue command");
                            return None;
                        }
                    };
                info!(instance_id = %id, command_id = %command_id, status = status.as_str(), "Asked SSM about an overdue command");
                Some((CommandReport { instance_id: id, command_id, status }, failure))
            })
            .collect()
            .await
    }

    /// What this run would do, changing nothing.
    pub async fn plan(&self, work: &Work) -> Result<Plan, AwsError> {
        plan(&self.clients, &self.store, &self.settings.management_tag, work).await
    }

    async fn enroll(
        &self,
        instances: Vec<&Instance>,
        records: &BTreeMap<String, EnrollmentRecord>,
        run: &Enrolling<'_>,
        outcomes: &mut Outcomes,
    ) {
        if instances.is_empty() {
            return;
        }
        let Enrolling { now, deadline, sweep, asked } = *run;
        // Which configuration each instance gets.
        let mut wanted: Vec<(&Instance, ConfigParameterName)> = Vec::new();
        for instance in instances {
            let prefix = &self.settings.config_parameter_prefix;
            match enrollment::config_parameter(instance, &self.settings.profile_tag_key, prefix) {
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
            .map(|(name, p)| {
                let stored = p.as_ref().map(|p| (p.version, p.value.as_str()));
                (name.as_str(), enrollment::usable_config(name, stored, &self.settings.config_policy))
            })
            .collect();

        let mut enrollees = Vec::new();
        let mut checks = Vec::new();
        let mut retagged = Vec::new();
        for (instance, parameter) in wanted {
            let (version, config) = match configs.get(parameter.as_str()) {
                Some(Ok((version, config))) => (*version, config),
                Some(Err(reason)) => {
                    outcomes.insert(instance.id.clone(), Outcome::permanent(reason.clone()));
                    continue;
                }
                None => continue,
            };
            let record = records.get(&instance.id);
            let asked = asked.contains(&instance.id);
            match enrollment::next_step(&instance.id, record, &parameter, version, config, now, asked) {
                Ok(Step::Current) => {
                    info!(instance_id = %instance.id, config = %parameter, version, "Instance already enrolled with this config");
                    outcomes.insert(
                        instance.id.clone(),
                        Outcome::AlreadyEnrolled { config_parameter: parameter.to_string(), config_version: version },
                    );
                    checks
                        .extend(record.filter(|r| r.status != EnrollmentStatus::Failed).map(|r| (instance, config, r)));
                    let ownership = self.settings.ownership_tags.read(&instance.tags);
                    if record.is_some_and(|r| !r.holds_ownership(&ownership)) {
                        retagged.push((instance.id.as_str(), ownership));
                    }
                }
                Ok(Step::Configure { log_groups, attempt, retry_asked }) => enrollees.push(Enrollee {
                    instance,
                    attempt,
                    last_log_at: record.and_then(|r| r.last_log_at),
                    retry_asked,
                    parameter,
                    version,
                    config,
                    log_groups,
                    command_ids: Vec::new(),
                }),
                Err(reason) => {
                    outcomes.insert(instance.id.clone(), Outcome::permanent(reason));
                }
            }
        }

        self.record_ownership(retagged, outcomes).await;
        if sweep {
            let checks = deadline.admit(checks, |(i, _, _)| &i.id, outcomes);
            self.repair_drift(checks, outcomes).await;
        }
        if sweep && enrollees.len() > FAN_OUT_ABOVE {
            return self.fan_out(enrollees.iter().map(|e| e.instance.id.clone()).collect(), outcomes).await;
        }
        let enrollees = deadline.admit(enrollees, |e| &e.instance.id, outcomes);
        let enrollees = self.claim(enrollees, now, outcomes).await;
        let claimed: Vec<String> = enrollees.iter().map(|e| e.instance.id.clone()).collect();
        let enrollees = self.ensure_log_groups(enrollees, outcomes).await;
        // Claimed but not sent: released below, retried by the message.
        let enrollees = deadline.admit(enrollees, |e| &e.instance.id, outcomes);
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

    /// Brings the records of enrolled instances whose application or owner tag changed up to date (the
    /// ETL reads them again within its tag cache's lifetime). A write that fails makes the instance's
    /// message retried.
    async fn record_ownership(&self, retagged: Vec<(&str, Ownership)>, outcomes: &mut Outcomes) {
        let written: Vec<(&str, Result<bool, AwsError>)> = futures::stream::iter(retagged)
            .map(|(id, ownership)| async move {
                let written = self.store.record_ownership(id, &ownership).await;
                if let Ok(true) = written {
                    info!(instance_id = %id, application = ownership.application.as_deref(), owner = ownership.owner.as_deref(), "Application and owner tags recorded");
                }
                (id, written)
            })
            .buffer_unordered(INSTANCE_CONCURRENCY)
            .collect()
            .await;
        for (id, written) in written {
            if let Err(err) = written {
                outcomes.insert(id.to_owned(), Outcome::from_error(&err));
            }
        }
    }

    /// Sends each instance a request of its own on the enroll queue (a large sweep's fan-out); without
    /// a queue to send to, they are enrolled here after all, on the next sweep's retry.
    async fn fan_out(&self, ids: Vec<String>, outcomes: &mut Outcomes) {
        let Some(url) = self.settings.enroll_queue_url.as_deref() else {
            for id in ids {
                outcomes.insert(id, Outcome::Deferred { reason: "no enroll queue to fan out to".into() });
            }
            return;
        };
        let bodies: Vec<String> = ids.iter().map(|id| check_request(id).to_string()).collect();
        let refused = queue::send_all(&self.clients.sqs, url, &bodies).await;
        let refused: BTreeMap<String, AwsError> = refused.into_iter().collect();
        info!(instances = ids.len(), refused = refused.len(), "Sweep fanned out into per-instance requests");
        for (id, body) in ids.into_iter().zip(bodies) {
            let outcome = match refused.get(&body) {
                Some(err) => Outcome::from_error(err),
                None => Outcome::FannedOut,
            };
            outcomes.insert(id, outcome);
        }
    }

    /// Claims each instance for this run. Those another run is enrolling are retried later; those it
    /// has just enrolled with the same config are done.
    async fn claim<'a>(&self, enrollees: Vec<Enrollee<'a>>, now: i64, outcomes: &mut Outcomes) -> Vec<Enrollee<'a>> {
        let claims: Vec<(Enrollee<'a>, Result<Claim, AwsError>)> = futures::stream::iter(enrollees)
            .map(|e| async move {
                let claim = if e.retry_asked {
                    self.store.claim_failed(&e.instance.id, &self.claim_owner, now).await
                } else {
                    self.store.claim(&e.instance.id, e.parameter.as_str(), e.version, &self.claim_owner, now).await
                };
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
            let result = logs::ensure_log_group(&self.clients.logs, &group, &self.group_spec()).await;
            match result {
                Ok(changes) => {
                    let changes: Vec<String> = changes.iter().map(ToString::to_string).collect();
                    info!(log_group = %group, ?changes, "Log group ready");
                }
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

    /// What every log group fleetlog manages must be.
    fn group_spec(&self) -> GroupSpec<'_> {
        GroupSpec {
            retention: self.settings.retention,
            kms_key_arn: self.settings.kms_key_arn.as_deref(),
            subscription: &self.settings.subscription,
        }
    }

    /// A sweep's look at instances that need no new command: their log groups and alarms are put back
    /// as enrollment left them ([`fleetlog_core::drift`]), each distinct group once and the alarms of
    /// the whole fleet in one listing. Every repair is logged; an instance with any is `Repaired`.
    async fn repair_drift(
        &self,
        checks: Vec<(&Instance, &AgentConfigSummary, &EnrollmentRecord)>,
        outcomes: &mut Outcomes,
    ) {
        if checks.is_empty() {
            return;
        }
        let groups: BTreeSet<LogGroupName> = checks
            .iter()
            .flat_map(|(_, _, r)| r.log_groups.iter().filter_map(|g| LogGroupName::new(g.as_str()).ok()))
            .collect();
        let spec = self.group_spec();
        let mut group_repairs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for group in groups {
            match logs::ensure_log_group(&self.clients.logs, &group, &spec).await {
                Ok(drift) if !drift.is_empty() => {
                    let repairs: Vec<String> = drift.iter().map(ToString::to_string).collect();
                    warn!(log_group = %group, ?repairs, "Log group drifted from what fleetlog set; repaired");
                    group_repairs.insert(group.to_string(), repairs);
                }
                Ok(_) => {}
                Err(err) => warn!(log_group = %group, error = %err, "Log group drift could not be repaired"),
            }
        }
        let existing = match alarms::list_alarms_by_instance(&self.clients.cloudwatch).await {
            Ok(existing) => existing,
            Err(err) => {
                warn!(error = %err, "Alarms could not be listed; their drift is checked by the next sweep");
                return;
            }
        };
        for (instance, config, record) in checks {
            let specs = alarms_for(&instance.id, config, &self.settings.thresholds);
            let there = existing.get(&instance.id).into_iter().flatten().map(String::as_str);
            let mut repairs: Vec<String> = record
                .log_groups
                .iter()
                .flat_map(|g| group_repairs.get(g).into_iter().flatten().map(move |r| format!("{g}: {r}")))
                .collect();
            let mut stale = Vec::new();
            for drift in alarm_drift(specs.iter().map(|a| a.name.as_str()), there) {
                let result = match &drift {
                    Drift::AlarmMissing(name) => match specs.iter().find(|a| a.name == *name) {
                        Some(spec) => {
                            alarms::put_alarm(&self.clients.cloudwatch, spec, self.settings.alarm_topic_arn.as_deref())
                                .await
                        }
                        None => Ok(()),
                    },
                    Drift::AlarmStale(name) => {
                        stale.push(name.clone());
                        Ok(())
                    }
                    _ => Ok(()),
                };
                match result {
                    Ok(()) => repairs.push(drift.to_string()),
                    Err(err) => {
                        warn!(instance_id = %instance.id, error = %err, %drift, "Alarm drift could not be repaired")
                    }
                }
            }
            if !stale.is_empty()
                && let Err(err) = alarms::delete_alarms(&self.clients.cloudwatch, &stale).await
            {
                warn!(instance_id = %instance.id, error = %err, "Stale alarms could not be deleted");
                repairs.retain(|r| !r.starts_with("alarm stale"));
            }
            if !repairs.is_empty() {
                warn!(instance_id = %instance.id, ?repairs, "Instance drifted from what fleetlog set; repaired");
                outcomes.insert(instance.id.clone(), Outcome::Repaired { repairs });
            }
        }
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
        let ownership = self.settings.ownership_tags.read(&e.instance.tags);
        for alarm in &alarms {
            if let Err(err) =
                alarms::put_alarm(&self.clients.cloudwatch, alarm, self.settings.alarm_topic_arn.as_deref()).await
            {
                return Outcome::from_error(&err);
            }
        }
        let record = EnrollmentRecord {
            instance_id: e.instance.id.clone(),
            status: EnrollmentStatus::Enrolling,
            platform: e.instance.platform.to_string(),
            config_parameter: e.parameter.to_string(),
            config_version: e.version,
            command_ids: e.command_ids.clone(),
            log_groups: e.log_groups.iter().map(ToString::to_string).collect(),
            alarm_names: alarms.into_iter().map(|a| a.name).collect(),
            updated_at: timestamp(),
            attempts: e.attempt,
            sent_at: Some(chrono::Utc::now().timestamp()),
            retry_at: None,
            failure: None,
            last_log_at: e.last_log_at,
            application: ownership.application,
            owner: ownership.owner,
        };
        match self.store.put_claimed(&record, &self.claim_owner).await {
            Ok(true) => {}
            Ok(false) => return lost_claim(),
            Err(err) => return Outcome::from_error(&err),
        }
        info!(instance_id = %e.instance.id, config = %e.parameter, version = e.version, attempt = e.attempt, "Agent command sent; instance enrolling");
        Outcome::Enrolled {
            config_parameter: record.config_parameter,
            config_version: e.version,
            command_ids: record.command_ids,
        }
    }

    async fn offboard(
        &self,
        ids: Vec<String>,
        records: &BTreeMap<String, EnrollmentRecord>,
        now: i64,
        deadline: Deadline,
        outcomes: &mut Outcomes,
    ) {
        let ids = deadline.admit(ids, |id| id, outcomes);
        let finished: Vec<(String, Outcome)> = futures::stream::iter(ids)
            .map(|id| async move {
                let outcome = match records.get(&id) {
                    Some(record) => self.offboard_claimed(record, now).await,
                    None => Outcome::Skipped { reason: "no enrollment record".into() },
                };
                (id, outcome)
            })
            .buffer_unordered(INSTANCE_CONCURRENCY)
            .collect()
            .await;
        outcomes.extend(finished);
    }

    /// Offboards under a claim, like enrollment, so the two cannot interleave their writes.
    async fn offboard_claimed(&self, record: &EnrollmentRecord, now: i64) -> Outcome {
        let id = &record.instance_id;
        match self.store.claim_for_offboarding(id, &self.claim_owner, now).await {
            Ok(true) => {}
            Ok(false) => {
                info!(instance_id = %id, "Instance is being enrolled or offboarded by another run; retried later");
                return Outcome::Deferred { reason: "another run holds this instance; retried later".into() };
            }
            Err(err) => return Outcome::from_error(&err),
        }
        let outcome = self.offboard_one(record).await;
        if !matches!(outcome, Outcome::Offboarded { .. })
            && let Err(err) = self.store.release(id, &self.claim_owner).await
        {
            warn!(instance_id = %id, error = %err, "Offboarding claim not released; it expires by itself");
        }
        outcome
    }

    async fn offboard_one(&self, record: &EnrollmentRecord) -> Outcome {
        let id = &record.instance_id;
        let deleted = match alarms::delete_instance_alarms(&self.clients.cloudwatch, id).await {
            Ok(deleted) => deleted,
            Err(err) => return Outcome::from_error(&err),
        };
        let ended = EnrollmentRecord {
            status: EnrollmentStatus::Offboarded,
            alarm_names: Vec::new(),
            retry_at: None,
            updated_at: timestamp(),
            ..record.clone()
        };
        match self.store.put_claimed(&ended, &self.claim_owner).await {
            Ok(true) => {}
            Ok(false) => return lost_claim(),
            Err(err) => return Outcome::from_error(&err),
        }
        info!(instance_id = %id, alarms_deleted = deleted.len(), "Instance offboarded; its logs are kept");
        Outcome::Offboarded { alarms_deleted: deleted }
    }
}

/// What one run's enrollment works within.
#[derive(Debug, Clone, Copy)]
struct Enrolling<'a> {
    now: i64,
    deadline: Deadline,
    /// A sweep: fan out when large, and repair drift of current instances.
    sweep: bool,
    asked: &'a BTreeSet<String>,
}

/// When the invocation ends, if it was told.
#[derive(Debug, Clone, Copy)]
struct Deadline(Option<Instant>);

/// Whether an invocation ending at `deadline` is too close to its end to start anything.
pub fn deadline_near(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|at| Instant::now() + DEADLINE_MARGIN >= at)
}

impl Deadline {
    fn near(self) -> bool {
        deadline_near(self.0)
    }

    /// All of `items` while there is time; none once the deadline is near (each then deferred).
    fn admit<T>(self, items: Vec<T>, id: impl Fn(&T) -> &String, outcomes: &mut Outcomes) -> Vec<T> {
        if !self.near() {
            return items;
        }
        for item in &items {
            outcomes.insert(id(item).clone(), Self::outcome());
        }
        if !items.is_empty() {
            warn!(instances = items.len(), "The invocation's deadline is near; the rest is retried");
        }
        Vec::new()
    }

    fn outcome() -> Outcome {
        Outcome::Deferred { reason: "the invocation's deadline is near; retried".into() }
    }
}

/// A sweep's request to look at one instance, as the enroll queue receives it: like an operator's,
/// but not one (a failed instance is not tried again for it).
fn check_request(instance_id: &str) -> serde_json::Value {
    let mut detail = events::reconcile_request_detail(Some(instance_id));
    detail[events::FROM_SWEEP] = serde_json::Value::Bool(true);
    events::queue_request(events::RECONCILE_REQUEST, detail)
}

/// Keeps the outcome that says most about an instance when one run produces two (a command report
/// and a decision): a decision that did nothing does not hide what the report recorded.
fn settle(outcomes: &mut Outcomes, id: String, outcome: Outcome) {
    let quiet = matches!(outcome, Outcome::AlreadyEnrolled { .. } | Outcome::Skipped { .. });
    if !(quiet && outcomes.contains_key(&id)) {
        outcomes.insert(id, outcome);
    }
}

/// This run's claim expired before its write and another run took the instance over: that run's
/// write stands, and this message is retried to see the result.
fn lost_claim() -> Outcome {
    Outcome::Deferred { reason: "the claim on this instance expired and another run took it; retried later".into() }
}

fn timestamp() -> String {
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
        for record in store.list_active().await? {
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

#[cfg(test)]
mod tests {
    use fleetlog_core::events::{Trigger, parse_trigger};

    use super::check_request;

    #[test]
    fn a_request_a_sweep_hands_on_is_not_an_operators() {
        let handed_on = parse_trigger(&check_request("i-0123456789abcdef0").to_string());
        assert_eq!(handed_on, Ok(Trigger::Check { instance_id: "i-0123456789abcdef0".into(), asked: false }));
    }
}
