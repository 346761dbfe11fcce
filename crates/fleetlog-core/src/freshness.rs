//! Whether an enrolled instance's logs are arriving, from what fleetlog's own pipeline carried.
//!
//! The log ETL knows, per batch, which instances' streams it carried and the newest event time of
//! each (a stream is named after its instance). It reports them to the enroller as a "fleetlog Logs
//! Seen" request on the enroll queue, each instance at most once per [`REPORT_INTERVAL_DIVISOR`]th of
//! the freshness window per ETL container ([`SightingThrottle`]); the enroller keeps the newest time
//! in the instance's record (`last_log_at`), written at most as often. Stream metadata
//! (`lastIngestionTime`) would cost no ETL work but is eventually consistent "typically in less
//! than an hour" (CloudWatch Logs API reference, LogStream), longer than the window.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::record::{EnrollmentRecord, EnrollmentStatus};

/// How long an enrolled instance may go without a log event reaching fleetlog before it is `silent`
/// ([`crate::settings::FRESHNESS_WINDOW_SECONDS`] says the same for the settings tables).
pub const DEFAULT_FRESHNESS_WINDOW: Duration = Duration::from_secs(30 * 60);
/// Reports and record writes per instance happen at most every window / this.
pub const REPORT_INTERVAL_DIVISOR: u32 = 4;
/// Instances per "Logs Seen" request: about 100 bytes each, well inside SQS's 256 KiB.
pub const MAX_SIGHTINGS_PER_REPORT: usize = 1000;

/// The detail-type of the ETL's report.
pub const LOGS_SEEN: &str = "fleetlog Logs Seen";

/// One instance's logs, as one batch of the pipeline carried them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    pub instance_id: String,
    /// The newest event time carried (epoch milliseconds).
    pub newest_ms: i64,
    /// The account the logs came from (the envelope's `owner`), whose enroller is told.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
}

/// Where a report of sightings goes: this stack's enroll queue, or (a central stack, for its members)
/// the default event bus of the account the logs came from, where the member's rule hands it on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReportTo {
    EnrollQueue,
    MemberBus { account: String },
}

/// The reports of `sightings`, each at most [`MAX_SIGHTINGS_PER_REPORT`] long: to the enroll queue,
/// unless `members_of` names this (central) account, when other accounts' sightings go to their own
/// buses. Sightings without an account ID are this account's.
pub fn reports(sightings: Vec<Sighting>, members_of: Option<&str>) -> Vec<(ReportTo, Vec<Sighting>)> {
    let mut by_route: BTreeMap<ReportTo, Vec<Sighting>> = BTreeMap::new();
    for sighting in sightings {
        let route = match members_of {
            Some(own) if sighting.account != own && crate::schema::is_account_id(&sighting.account) => {
                ReportTo::MemberBus { account: sighting.account.clone() }
            }
            _ => ReportTo::EnrollQueue,
        };
        by_route.entry(route).or_default().push(sighting);
    }
    by_route
        .into_iter()
        .flat_map(|(route, all)| {
            all.chunks(MAX_SIGHTINGS_PER_REPORT).map(|chunk| (route.clone(), chunk.to_vec())).collect::<Vec<_>>()
        })
        .collect()
}

/// The ARN of `account`'s default event bus in `region` (its partition told from the Region).
pub fn default_bus_arn(region: &str, account: &str) -> String {
    let partition = if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    };
    format!("arn:{partition}:events:{region}:{account}:event-bus/default")
}

/// Where an enrolled instance's logs stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Logs reached fleetlog within the window.
    Delivering,
    /// Nothing for longer than the window (counted from enrollment when nothing ever came).
    Silent,
    /// Enrolled less than a window ago and nothing yet: too early to say.
    Awaiting,
}

impl Liveness {
    /// `None` for records that are not `enrolled` (their status says more).
    pub fn of(record: &EnrollmentRecord, now_ms: i64, window: Duration) -> Option<Self> {
        if record.status != EnrollmentStatus::Enrolled {
            return None;
        }
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        if let Some(last) = record.last_log_at {
            return Some(if now_ms - last <= window_ms { Self::Delivering } else { Self::Silent });
        }
        let sent_ms = record.sent_at.map(|s| s.saturating_mul(1000));
        Some(match sent_ms {
            Some(sent) if now_ms - sent <= window_ms => Self::Awaiting,
            _ => Self::Silent,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivering => "delivering",
            Self::Silent => "silent",
            Self::Awaiting => "enrolled",
        }
    }
}

/// The interval between two reports, or two record writes, for one instance (milliseconds).
fn report_interval_ms(window: Duration) -> i64 {
    i64::try_from((window / REPORT_INTERVAL_DIVISOR).as_millis()).unwrap_or(i64::MAX)
}

/// Whether a record needs `newest_ms` written: it has no time yet, or one older by an interval.
pub fn needs_write(record: &EnrollmentRecord, newest_ms: i64, window: Duration) -> bool {
    let interval = report_interval_ms(window);
    record.is_active() && record.last_log_at.is_none_or(|last| newest_ms - last >= interval)
}

/// The newest time of each instance among `sightings`, by instance.
pub fn newest_by_instance(sightings: impl IntoIterator<Item = Sighting>) -> BTreeMap<String, i64> {
    let mut newest: BTreeMap<String, i64> = BTreeMap::new();
    for s in sightings {
        let t = newest.entry(s.instance_id).or_insert(s.newest_ms);
        *t = (*t).max(s.newest_ms);
    }
    newest
}

/// Keeps an ETL container's reports to one per instance per interval: its memory of what it last
/// reported, by instance.
#[derive(Debug, Clone)]
pub struct SightingThrottle {
    interval_ms: i64,
    reported: HashMap<String, i64>,
}

impl SightingThrottle {
    pub fn new(window: Duration) -> Self {
        Self { interval_ms: report_interval_ms(window), reported: HashMap::new() }
    }

    /// The sightings of a batch worth reporting (newer by an interval than the last report of the
    /// instance), remembered as reported, in instance order, each the instance's newest.
    pub fn admit(&mut self, batch: impl IntoIterator<Item = Sighting>) -> Vec<Sighting> {
        let mut newest: BTreeMap<String, Sighting> = BTreeMap::new();
        for s in batch {
            match newest.get(&s.instance_id) {
                Some(kept) if kept.newest_ms >= s.newest_ms => {}
                _ => {
                    newest.insert(s.instance_id.clone(), s);
                }
            }
        }
        let mut out = Vec::new();
        for (instance_id, sighting) in newest {
            let due = self.reported.get(&instance_id).is_none_or(|last| sighting.newest_ms - last >= self.interval_ms);
            if due {
                self.reported.insert(instance_id, sighting.newest_ms);
                out.push(sighting);
            }
        }
        out
    }
}

/// The report as the enroll queue receives it (an EventBridge-shaped body, like operators' requests).
pub fn logs_seen_request(sightings: &[Sighting]) -> serde_json::Value {
    crate::events::queue_request(LOGS_SEEN, serde_json::json!({ "sightings": sightings }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: EnrollmentStatus, last_log_at: Option<i64>) -> EnrollmentRecord {
        EnrollmentRecord { last_log_at, ..EnrollmentRecord::sample(status) }
    }

    const WINDOW: Duration = Duration::from_secs(1800);

    #[test]
    fn enrolled_instances_are_delivering_silent_or_too_new_to_tell() {
        let now = 10_000_000;
        let seen = record(EnrollmentStatus::Enrolled, Some(now - 1_800_000));
        assert_eq!(Liveness::of(&seen, now, WINDOW), Some(Liveness::Delivering), "the window's edge is inside");
        assert_eq!(Liveness::of(&seen, now + 1, WINDOW), Some(Liveness::Silent));
        let never = record(EnrollmentStatus::Enrolled, None);
        assert_eq!(Liveness::of(&never, 1_000_000 + 1_800_000, WINDOW), Some(Liveness::Awaiting));
        assert_eq!(Liveness::of(&never, 1_000_000 + 1_800_001, WINDOW), Some(Liveness::Silent));
        for status in [EnrollmentStatus::Enrolling, EnrollmentStatus::Failed, EnrollmentStatus::Offboarded] {
            assert_eq!(Liveness::of(&record(status, Some(now)), now, WINDOW), None, "{status:?}");
        }
    }

    #[test]
    fn the_default_window_is_the_settings_default() {
        assert_eq!(DEFAULT_FRESHNESS_WINDOW.as_secs().to_string(), crate::settings::FRESHNESS_WINDOW_SECONDS);
    }

    #[test]
    fn records_are_written_once_per_interval() {
        let r = record(EnrollmentStatus::Enrolled, Some(1_000_000));
        assert!(!needs_write(&r, 1_000_000 + 449_999, WINDOW));
        assert!(needs_write(&r, 1_000_000 + 450_000, WINDOW), "a quarter of the window later");
        assert!(needs_write(&record(EnrollmentStatus::Enrolling, None), 1, WINDOW), "logs before the outcome count");
        assert!(!needs_write(&record(EnrollmentStatus::Offboarded, None), 1, WINDOW));
    }

    #[test]
    fn a_container_reports_each_instance_once_per_interval_with_its_newest_time() {
        let mut throttle = SightingThrottle::new(WINDOW);
        let s = |id: &str, t: i64| Sighting { instance_id: id.into(), newest_ms: t, account: String::new() };
        let first = throttle.admit([s("i-2", 5), s("i-1", 10), s("i-1", 30)]);
        assert_eq!(first, [s("i-1", 30), s("i-2", 5)]);
        assert!(throttle.admit([s("i-1", 30 + 449_999)]).is_empty(), "reported a moment ago");
        assert_eq!(throttle.admit([s("i-1", 30 + 450_000), s("i-3", 1)]), [s("i-1", 450_030), s("i-3", 1)]);
    }

    /// The README's cost figures, from the throttles themselves: an hour of a fleet whose every
    /// instance logs all the time, carried by two ETL containers that each answer a batch every 30 s.
    #[test]
    fn an_hour_of_steady_logs_costs_at_most_eight_reports_per_container_and_eight_writes_per_instance() {
        const INSTANCES: usize = 1000;
        let mut containers = [SightingThrottle::new(WINDOW), SightingThrottle::new(WINDOW)];
        let mut records: Vec<EnrollmentRecord> = (0..INSTANCES)
            .map(|i| EnrollmentRecord { instance_id: format!("i-{i:08x}"), ..record(EnrollmentStatus::Enrolled, None) })
            .collect();
        let (mut reported, mut messages, mut writes) = (0, 0, 0);
        for second in (0..3600).step_by(30) {
            let now_ms = second * 1000;
            for container in &mut containers {
                let batch = records.iter().map(|r| Sighting {
                    instance_id: r.instance_id.clone(),
                    newest_ms: now_ms,
                    account: String::new(),
                });
                let due = container.admit(batch);
                reported += due.len();
                messages += due.len().div_ceil(MAX_SIGHTINGS_PER_REPORT);
                for s in due {
                    let r = records.iter_mut().find(|r| r.instance_id == s.instance_id).unwrap();
                    if needs_write(r, s.newest_ms, WINDOW) {
                        r.last_log_at = Some(s.newest_ms);
                        writes += 1;
                    }
                }
            }
        }
        let per_instance = |n: usize| n as f64 / INSTANCES as f64;
        assert!(per_instance(reported) <= 2.0 * 8.0, "{} reports per instance-hour", per_instance(reported));
        assert!(per_instance(writes) <= 8.0, "{} writes per instance-hour", per_instance(writes));
        assert!(messages <= 2 * 8, "{messages} messages for {INSTANCES} instances");
    }

    #[test]
    fn a_central_stack_reports_each_members_sightings_to_that_member() {
        let s = |id: &str, account: &str| Sighting { instance_id: id.into(), newest_ms: 1, account: account.into() };
        let (own, member) = ("210987654321", "111111111111");
        let batch = vec![s("i-1", own), s("i-2", member), s("i-3", ""), s("i-4", member), s("i-5", "not-an-account")];
        let routes = |members_of| {
            reports(batch.clone(), members_of)
                .into_iter()
                .map(|(to, sightings)| (to, sightings.into_iter().map(|s| s.instance_id).collect::<Vec<_>>()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            routes(Some(own)),
            vec![
                (ReportTo::EnrollQueue, vec!["i-1".to_owned(), "i-3".into(), "i-5".into()]),
                (ReportTo::MemberBus { account: member.into() }, vec!["i-2".to_owned(), "i-4".into()]),
            ]
        );
        assert_eq!(
            routes(None),
            vec![(
                ReportTo::EnrollQueue,
                vec!["i-1".to_owned(), "i-2".into(), "i-3".into(), "i-4".into(), "i-5".into()]
            )]
        );
        let many: Vec<Sighting> = (0..MAX_SIGHTINGS_PER_REPORT + 1).map(|i| s(&format!("i-{i}"), member)).collect();
        let sizes: Vec<usize> = reports(many, Some(own)).iter().map(|(_, r)| r.len()).collect();
        assert_eq!(sizes, [MAX_SIGHTINGS_PER_REPORT, 1]);
        assert_eq!(default_bus_arn("eu-west-1", member), "arn:aws:events:eu-west-1:111111111111:event-bus/default");
        assert_eq!(
            default_bus_arn("cn-north-1", member),
            "arn:aws-cn:events:cn-north-1:111111111111:event-bus/default"
        );
        assert_eq!(
            default_bus_arn("us-gov-west-1", member),
            "arn:aws-us-gov:events:us-gov-west-1:111111111111:event-bus/default"
        );
    }

    #[test]
    fn the_throttle_keeps_each_instances_newest_sighting_with_its_account() {
        let mut throttle = SightingThrottle::new(WINDOW);
        let s = |t: i64, account: &str| Sighting { instance_id: "i-1".into(), newest_ms: t, account: account.into() };
        assert_eq!(
            throttle.admit([s(5, "111111111111"), s(9, "222222222222"), s(7, "333333333333")]),
            vec![s(9, "222222222222")]
        );
    }

    #[test]
    fn reports_are_eventbridge_shaped_requests() {
        let body = logs_seen_request(&[Sighting {
            instance_id: "i-0123456789abcdef0".into(),
            newest_ms: 7,
            account: String::new(),
        }]);
        assert_eq!(body["detail-type"], LOGS_SEEN);
        assert_eq!(body["detail"]["sightings"][0]["newest_ms"], 7);
    }
}
