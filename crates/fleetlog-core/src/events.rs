//! EventBridge events the enroller reacts to, parsed into one small [`Trigger`] type.
//!
//! The event only says *which* instance to look at. What to do is decided from a fresh read of the
//! instance, so out-of-order and duplicate events cannot enroll an instance that no longer qualifies.

use aws_lambda_events::cloudwatch_events::ec2::InstanceStateChange;
use aws_lambda_events::cloudwatch_events::ssm::EC2CommandInvocationStatusChange;
use aws_lambda_events::cloudwatch_events::tag::TagChangeOnResource;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::Value;

use crate::command_outcome::{CommandReport, InvocationStatus};
use crate::freshness::{LOGS_SEEN, Sighting};
use crate::instance::{InstanceState, is_instance_id};

pub const EC2_STATE_CHANGE: &str = "EC2 Instance State-change Notification";
pub const TAG_CHANGE: &str = "Tag Change on Resource";
pub const SCHEDULED_EVENT: &str = "Scheduled Event";
/// Run Command's per-instance result of a command.
pub const COMMAND_INVOCATION_STATUS: &str = "EC2 Command Invocation Status-change Notification";
/// The invocation statuses the outcome rule forwards: the final ones.
pub const FORWARDED_COMMAND_STATUSES: [&str; 4] = ["Success", "Failed", "TimedOut", "Cancelled"];
/// Operators (the CLI) can ask for a sweep with a custom event of this detail-type.
pub const RECONCILE_REQUEST: &str = "fleetlog Reconcile Request";
pub const FLEETLOG_SOURCE: &str = "fleetlog";
/// Marks a request a sweep handed on to the queue, in its detail (see [`Trigger::Check`]).
pub const FROM_SWEEP: &str = "from-sweep";

/// Why the enroller was woken up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// An instance changed state.
    StateChange { instance_id: String, state: InstanceState },
    /// Tags on an instance changed; `changed_keys` names the keys that were added, changed or removed.
    TagChange { instance_id: String, changed_keys: Vec<String> },
    /// Look at this instance now: an operator asked (`fleetlog enroll`/`offboard`; `asked`), or a
    /// large sweep handed it on.
    Check { instance_id: String, asked: bool },
    /// fleetlog's agent command finished on an instance.
    CommandStatus(CommandReport),
    /// The log ETL carried these instances' logs.
    LogsSeen(Vec<Sighting>),
    /// Sweep the whole fleet (schedule or operator request).
    Reconcile,
}

impl Trigger {
    /// The instance this trigger is about, if it is about one.
    pub fn instance_id(&self) -> Option<&str> {
        match self {
            Trigger::StateChange { instance_id, .. }
            | Trigger::TagChange { instance_id, .. }
            | Trigger::Check { instance_id, .. } => Some(instance_id),
            Trigger::CommandStatus(report) => Some(&report.instance_id),
            Trigger::Reconcile | Trigger::LogsSeen(_) => None,
        }
    }
}

/// An event that cannot be acted on. These are permanent: retrying cannot fix them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is not an EventBridge event: {0}")]
    NotAnEvent(String),
    #[error("unsupported event: source {event_source:?}, detail-type {detail_type:?}")]
    Unsupported { event_source: String, detail_type: String },
    #[error("malformed {detail_type:?} event: {reason}")]
    Malformed { detail_type: String, reason: String },
}

/// Parses an EventBridge event (as delivered directly, or as the body of an SQS message).
pub fn parse_trigger(body: &str) -> Result<Trigger, EventError> {
    let event: EventBridgeEvent<Value> =
        serde_json::from_str(body).map_err(|e| EventError::NotAnEvent(e.to_string()))?;
    trigger_from_event(event)
}

pub fn trigger_from_event(event: EventBridgeEvent<Value>) -> Result<Trigger, EventError> {
    let malformed = |reason: String| EventError::Malformed { detail_type: event.detail_type.clone(), reason };
    match (event.source.as_str(), event.detail_type.as_str()) {
        ("aws.ec2", EC2_STATE_CHANGE) => {
            let detail: InstanceStateChange =
                serde_json::from_value(event.detail.clone()).map_err(|e| malformed(e.to_string()))?;
            let instance_id = checked_instance_id(&detail.instance_id).map_err(malformed)?;
            Ok(Trigger::StateChange { instance_id, state: InstanceState::parse(&detail.state) })
        }
        ("aws.tag", TAG_CHANGE) => {
            let detail: TagChangeOnResource =
                serde_json::from_value(event.detail.clone()).map_err(|e| malformed(e.to_string()))?;
            if detail.service != "ec2" || detail.resource_type != "instance" {
                return Err(EventError::Unsupported {
                    event_source: format!("aws.tag ({}/{})", detail.service, detail.resource_type),
                    detail_type: event.detail_type.clone(),
                });
            }
            let arn = event
                .resources
                .as_deref()
                .and_then(|r| r.first())
                .ok_or_else(|| malformed("no resource ARN".into()))?;
            let id = arn.rsplit_once("instance/").map(|(_, id)| id).unwrap_or_default();
            let instance_id = checked_instance_id(id).map_err(malformed)?;
            Ok(Trigger::TagChange { instance_id, changed_keys: detail.changed_tag_keys })
        }
        ("aws.ssm", COMMAND_INVOCATION_STATUS) => {
            let detail: EC2CommandInvocationStatusChange =
                serde_json::from_value(event.detail.clone()).map_err(|e| malformed(e.to_string()))?;
            if detail.command_id.is_empty() || detail.status.is_empty() {
                return Err(malformed("empty command-id or status".into()));
            }
            Ok(Trigger::CommandStatus(CommandReport {
                instance_id: checked_instance_id(&detail.instance_id).map_err(malformed)?,
                command_id: detail.command_id,
                status: InvocationStatus::parse(&detail.status),
            }))
        }
        ("aws.events", SCHEDULED_EVENT) => Ok(Trigger::Reconcile),
        (FLEETLOG_SOURCE, LOGS_SEEN) => {
            #[derive(serde::Deserialize)]
            struct Detail {
                sightings: Vec<Sighting>,
            }
            let detail: Detail = serde_json::from_value(event.detail.clone()).map_err(|e| malformed(e.to_string()))?;
            for s in &detail.sightings {
                checked_instance_id(&s.instance_id).map_err(malformed)?;
            }
            Ok(Trigger::LogsSeen(detail.sightings))
        }
        (FLEETLOG_SOURCE, RECONCILE_REQUEST) => match event.detail.get("instance-id") {
            None => Ok(Trigger::Reconcile),
            Some(id) => {
                let id = id.as_str().ok_or_else(|| malformed("instance-id is not a string".into()))?;
                let asked = event.detail.get(FROM_SWEEP).and_then(Value::as_bool) != Some(true);
                Ok(Trigger::Check { instance_id: checked_instance_id(id).map_err(malformed)?, asked })
            }
        },
        (source, detail_type) => {
            Err(EventError::Unsupported { event_source: source.to_owned(), detail_type: detail_type.to_owned() })
        }
    }
}

fn checked_instance_id(id: &str) -> Result<String, String> {
    if is_instance_id(id) { Ok(id.to_owned()) } else { Err(format!("{id:?} is not an EC2 instance id")) }
}

/// EC2 states the state-change rule forwards: `running` enrolls, the ending states offboard, and
/// `stopped` is read so an instance whose tag was removed while stopped is offboarded.
pub const FORWARDED_STATES: [&str; 4] = ["running", "stopped", "shutting-down", "terminated"];

/// The EventBridge pattern of the EC2 state-change rule (infra/ and the emulator tests use it).
pub fn state_change_rule_pattern() -> Value {
    serde_json::json!({
        "source": ["aws.ec2"],
        "detail-type": [EC2_STATE_CHANGE],
        "detail": { "state": FORWARDED_STATES }
    })
}

/// The EventBridge pattern of the tag-change rule: EC2 instances whose management, profile,
/// application or owner tag was added, changed or removed.
pub fn tag_change_rule_pattern(tag_keys: &[&str]) -> Value {
    serde_json::json!({
        "source": ["aws.tag"],
        "detail-type": [TAG_CHANGE],
        "detail": { "service": ["ec2"], "resource-type": ["instance"], "changed-tag-keys": tag_keys }
    })
}

/// An event as an AWS service emits it about one EC2 instance, timed now (the local runner and the
/// tests stand in for the services the emulator lacks with these).
struct InstanceEvent<'a> {
    source: &'a str,
    detail_type: &'a str,
    id: String,
    instance_id: &'a str,
    account: &'a str,
    region: &'a str,
}

impl InstanceEvent<'_> {
    fn with(self, detail: Value) -> Value {
        let Self { source, detail_type, id, instance_id, account, region } = self;
        serde_json::json!({
            "version": "0",
            "id": id,
            "detail-type": detail_type,
            "source": source,
            "account": account,
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "region": region,
            "resources": [format!("arn:aws:ec2:{region}:{account}:instance/{instance_id}")],
            "detail": detail
        })
    }
}

/// Builds the EventBridge event AWS emits for an EC2 state change (used by the local runner and tests).
pub fn ec2_state_change_event(instance_id: &str, state: &str, account: &str, region: &str) -> Value {
    let event = InstanceEvent {
        source: "aws.ec2",
        detail_type: EC2_STATE_CHANGE,
        id: format!("{instance_id}-{state}"),
        instance_id,
        account,
        region,
    };
    event.with(serde_json::json!({ "instance-id": instance_id, "state": state }))
}

/// The EventBridge pattern of the rule that follows fleetlog's agent commands: final statuses of
/// invocations of its own document only.
pub fn command_outcome_rule_pattern(document_name: &str) -> Value {
    serde_json::json!({
        "source": ["aws.ssm"],
        "detail-type": [COMMAND_INVOCATION_STATUS],
        "detail": { "document-name": [document_name], "status": FORWARDED_COMMAND_STATUSES }
    })
}

/// Builds the event Run Command emits when an invocation changes status (the local stack and tests
/// stand in for it; the emulator emits none).
pub fn command_invocation_event(
    instance_id: &str,
    command_id: &str,
    document_name: &str,
    status: &str,
    account: &str,
    region: &str,
) -> Value {
    let event = InstanceEvent {
        source: "aws.ssm",
        detail_type: COMMAND_INVOCATION_STATUS,
        id: format!("{command_id}-{instance_id}-{status}"),
        instance_id,
        account,
        region,
    };
    event.with(serde_json::json!({
        "command-id": command_id,
        "document-name": document_name,
        "instance-id": instance_id,
        "requested-date-time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "status": status
    }))
}

/// The EventBridge pattern of the rule for operators' requests (`fleetlog reconcile`, `enroll`, `offboard`).
pub fn reconcile_request_rule_pattern() -> Value {
    serde_json::json!({ "source": [FLEETLOG_SOURCE], "detail-type": [RECONCILE_REQUEST] })
}

/// The EventBridge pattern of a member stack's rule for the central stack's reports of whose logs
/// arrived (`LogsSeenRule`); the bus policy admits the central account for these alone.
pub fn logs_seen_rule_pattern() -> Value {
    serde_json::json!({ "source": [FLEETLOG_SOURCE], "detail-type": [crate::freshness::LOGS_SEEN] })
}

/// A request of fleetlog's own put straight on the enroll queue (a sweep's handed-on check, the
/// ETL's Logs Seen report): shaped like the events the rules forward, so it is read the same way.
pub fn queue_request(detail_type: &str, detail: Value) -> Value {
    serde_json::json!({ "version": "0", "source": FLEETLOG_SOURCE, "detail-type": detail_type, "detail": detail })
}

/// The detail of an operator's request: one instance, or (`None`) the whole fleet.
pub fn reconcile_request_detail(instance_id: Option<&str>) -> Value {
    match instance_id {
        Some(id) => serde_json::json!({ "instance-id": id }),
        None => serde_json::json!({}),
    }
}

/// An operator's request as the event the request rule matches: one instance, or the whole fleet.
pub fn reconcile_request(instance_id: Option<&str>) -> Value {
    queue_request(RECONCILE_REQUEST, reconcile_request_detail(instance_id))
}

/// Builds the `aws.tag` event AWS emits when tags on an EC2 instance change.
pub fn tag_change_event(
    instance_id: &str,
    changed_keys: &[&str],
    tags: &std::collections::BTreeMap<String, String>,
    account: &str,
    region: &str,
) -> Value {
    let event = InstanceEvent {
        source: "aws.tag",
        detail_type: TAG_CHANGE,
        id: format!("{instance_id}-tags-{}", changed_keys.join(",")),
        instance_id,
        account,
        region,
    };
    event.with(serde_json::json!({
        "changed-tag-keys": changed_keys,
        "service": "ec2",
        "resource-type": "instance",
        "version": 1,
        "tags": tags
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn state_change_event_parses() {
        let event = ec2_state_change_event("i-0123456789abcdef0", "running", "123456789012", "eu-west-1");
        assert_eq!(
            parse_trigger(&event.to_string()),
            Ok(Trigger::StateChange { instance_id: "i-0123456789abcdef0".into(), state: InstanceState::Running })
        );
    }

    #[test]
    fn aws_documented_state_change_example_parses() {
        // The example from the EC2 User Guide, verbatim apart from whitespace.
        let body = r#"{"id":"7bf73129-1428-4cd3-a780-95db273d1602","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","account":"123456789012","time":"2019-11-11T21:29:54Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],"detail":{"instance-id":"i-abcd1111","state":"pending"}}"#;
        assert_eq!(
            parse_trigger(body),
            Ok(Trigger::StateChange { instance_id: "i-abcd1111".into(), state: InstanceState::Pending })
        );
    }

    #[test]
    fn tag_change_event_parses_instance_from_resource_arn() {
        let tags = BTreeMap::from([("fleetlog:managed".to_string(), "true".to_string())]);
        let event = tag_change_event("i-0123456789abcdef0", &["fleetlog:managed"], &tags, "123456789012", "us-east-1");
        assert_eq!(
            parse_trigger(&event.to_string()),
            Ok(Trigger::TagChange {
                instance_id: "i-0123456789abcdef0".into(),
                changed_keys: vec!["fleetlog:managed".into()]
            })
        );
    }

    #[test]
    fn tag_change_on_other_resources_is_unsupported() {
        let mut event = tag_change_event("i-0123456789abcdef0", &["k"], &BTreeMap::new(), "1", "r");
        event["detail"]["resource-type"] = "volume".into();
        assert!(matches!(parse_trigger(&event.to_string()), Err(EventError::Unsupported { .. })));
    }

    #[test]
    fn schedule_and_operator_requests_reconcile() {
        let schedule = r#"{"detail-type":"Scheduled Event","source":"aws.events","detail":{}}"#;
        let request = r#"{"detail-type":"fleetlog Reconcile Request","source":"fleetlog","detail":{}}"#;
        assert_eq!(parse_trigger(schedule), Ok(Trigger::Reconcile));
        assert_eq!(parse_trigger(request), Ok(Trigger::Reconcile));
    }

    #[test]
    fn operator_requests_for_one_instance_check_it() {
        let event = serde_json::json!({
            "detail-type": RECONCILE_REQUEST, "source": FLEETLOG_SOURCE,
            "detail": reconcile_request_detail(Some("i-0123456789abcdef0")),
        });
        assert_eq!(
            parse_trigger(&event.to_string()),
            Ok(Trigger::Check { instance_id: "i-0123456789abcdef0".into(), asked: true })
        );
        let mut handed_on = event.clone();
        handed_on["detail"][FROM_SWEEP] = true.into();
        assert_eq!(
            parse_trigger(&handed_on.to_string()),
            Ok(Trigger::Check { instance_id: "i-0123456789abcdef0".into(), asked: false })
        );
        let bad = serde_json::json!({
            "detail-type": RECONCILE_REQUEST, "source": FLEETLOG_SOURCE, "detail": { "instance-id": "i-x; rm" },
        });
        assert!(matches!(parse_trigger(&bad.to_string()), Err(EventError::Malformed { .. })));
    }

    #[test]
    fn command_invocation_events_report_an_instance_s_outcome() {
        let event = command_invocation_event("i-0123456789abcdef0", "c-1", "fleetlog-agent", "Failed", "1", "r");
        assert_eq!(
            parse_trigger(&event.to_string()),
            Ok(Trigger::CommandStatus(CommandReport {
                instance_id: "i-0123456789abcdef0".into(),
                command_id: "c-1".into(),
                status: InvocationStatus::Failed("Failed".into()),
            }))
        );
        let mut no_command = event.clone();
        no_command["detail"].as_object_mut().unwrap().remove("command-id");
        let err = parse_trigger(&no_command.to_string()).unwrap_err();
        assert!(err.to_string().contains("command-id"), "{err}");
        let mut bad_instance = event;
        bad_instance["detail"]["instance-id"] = "mi-0123456789abcdef0".into();
        assert!(matches!(parse_trigger(&bad_instance.to_string()), Err(EventError::Malformed { .. })));
    }

    #[test]
    fn the_etls_reports_name_instances_and_times() {
        let sightings =
            vec![Sighting { instance_id: "i-0123456789abcdef0".into(), newest_ms: 42, account: String::new() }];
        let body = crate::freshness::logs_seen_request(&sightings);
        assert_eq!(parse_trigger(&body.to_string()), Ok(Trigger::LogsSeen(sightings)));
        let mut bad = body;
        bad["detail"]["sightings"][0]["instance_id"] = "host-1".into();
        assert!(matches!(parse_trigger(&bad.to_string()), Err(EventError::Malformed { .. })));
    }

    #[test]
    fn malformed_events_are_clear_errors() {
        assert!(matches!(parse_trigger("not json"), Err(EventError::NotAnEvent(_))));
        assert!(matches!(parse_trigger("{}"), Err(EventError::NotAnEvent(_))));
        let no_id = r#"{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{"state":"running"}}"#;
        assert!(matches!(parse_trigger(no_id), Err(EventError::Malformed { .. })));
        let bad_id = r#"{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{"instance-id":"i-1; reboot","state":"running"}}"#;
        let err = parse_trigger(bad_id).unwrap_err();
        assert!(err.to_string().contains("not an EC2 instance id"), "{err}");
        let other = r#"{"detail-type":"Object Created","source":"aws.s3","detail":{}}"#;
        assert!(matches!(parse_trigger(other), Err(EventError::Unsupported { .. })));
    }
}
