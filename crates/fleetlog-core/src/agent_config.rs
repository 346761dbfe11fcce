//! CloudWatch agent configurations: what fleetlog needs to know about one, and checks that it is one.
//!
//! The structure checked is the agent's own schema (agent / metrics / logs sections; every
//! `logs_collected` section it knows — files, Windows events, journald, application signals — with
//! their `log_group_name`s). fleetlog reads from it the log groups to create, whether collectd must be
//! installed, and which memory/disk metrics can carry alarms.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::Platform;
use crate::commands::{CommandError, ConfigParameterName};
use crate::log_groups::{LogGroupName, NameError};

/// Placeholder the CloudWatch agent replaces with the instance id in names.
pub const INSTANCE_ID_PLACEHOLDER: &str = "{instance_id}";
const TOP_LEVEL_SECTIONS: [&str; 4] = ["agent", "metrics", "logs", "traces"];
const WINDOWS_EVENT_LEVELS: [&str; 5] = ["INFORMATION", "WARNING", "ERROR", "CRITICAL", "VERBOSE"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentConfigError {
    #[error("agent config is not valid JSON: {0}")]
    NotJson(String),
    #[error("agent config: {path}: {problem}")]
    Invalid { path: String, problem: String },
    #[error("agent config: {0}")]
    LogGroup(#[from] NameError),
    #[error("agent config template uses unknown variable ${{fleetlog:{0}}}")]
    UnknownVariable(String),
    #[error("agent config: log group {group:?} is outside fleetlog's log groups: names must start with \"{prefix}/\"")]
    LogGroupOutsidePrefix { group: String, prefix: String },
    #[error(
        "agent config: {path}: {key:?} is refused: it would send the agent's data elsewhere than this account's CloudWatch"
    )]
    Redirect { path: String, key: String },
    #[error(
        "agent config: file {file:?} is outside the allowed paths {allowed:?} (the agent runs as root; extend the list with FLEETLOG_ALLOWED_LOG_PATHS or --allow-path)"
    )]
    FileOutsideAllowedPaths { file: String, allowed: Vec<String> },
}

fn invalid(path: impl Into<String>, problem: impl Into<String>) -> AgentConfigError {
    AgentConfigError::Invalid { path: path.into(), problem: problem.into() }
}

/// A log group named by the config; it may contain `{instance_id}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogGroupTemplate(String);

impl LogGroupTemplate {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_per_instance(&self) -> bool {
        self.0.contains(INSTANCE_ID_PLACEHOLDER)
    }

    /// The concrete group for one instance.
    pub fn for_instance(&self, instance_id: &str) -> Result<LogGroupName, NameError> {
        LogGroupName::new(self.0.replace(INSTANCE_ID_PLACEHOLDER, instance_id))
    }
}

/// What fleetlog acts on in an agent config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfigSummary {
    pub log_groups: BTreeSet<LogGroupTemplate>,
    /// Every `file_path` the agent is told to read.
    pub file_paths: BTreeSet<String>,
    /// Where the config names `endpoint_override` or `credentials` (JSON paths): either sends the
    /// agent's data, or the role it runs as, somewhere fleetlog does not control.
    pub redirects: Vec<(String, String)>,
    /// The config reads collectd metrics, so collectd must be installed (Linux).
    pub collects_collectd: bool,
    pub metrics_namespace: String,
    /// Metric name of memory use in percent, when collected and aggregated per instance.
    pub memory_metric: Option<String>,
    /// Metric name of disk use (Linux, percent used) or free space (Windows, percent free).
    pub disk_metric: Option<DiskMetric>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskMetric {
    UsedPercent(String),
    FreePercent(String),
}

/// Parses and checks a CloudWatch agent configuration.
pub fn summarize(text: &str) -> Result<AgentConfigSummary, AgentConfigError> {
    let value: Value = serde_json::from_str(text).map_err(|e| AgentConfigError::NotJson(e.to_string()))?;
    let root = value.as_object().ok_or_else(|| invalid("$", "must be a JSON object"))?;
    if let Some(unknown) = root.keys().find(|k| !TOP_LEVEL_SECTIONS.contains(&k.as_str())) {
        return Err(invalid(
            format!("$.{unknown}"),
            format!("unknown section; expected one of {TOP_LEVEL_SECTIONS:?}"),
        ));
    }
    if !root.contains_key("logs") && !root.contains_key("metrics") {
        return Err(invalid("$", "collects nothing: it needs a \"logs\" or a \"metrics\" section"));
    }
    if let Some(agent) = root.get("agent") {
        object(agent, "$.agent")?;
    }
    let (log_groups, file_paths) = match root.get("logs") {
        Some(logs) => log_groups(logs)?,
        None => (BTreeSet::new(), BTreeSet::new()),
    };
    let mut redirects = Vec::new();
    find_redirects(&value, "$", &mut redirects);
    let mut summary = AgentConfigSummary {
        log_groups,
        file_paths,
        redirects,
        collects_collectd: false,
        metrics_namespace: "CWAgent".into(),
        memory_metric: None,
        disk_metric: None,
    };
    if let Some(metrics) = root.get("metrics") {
        add_metrics(&mut summary, object(metrics, "$.metrics")?)?;
    }
    Ok(summary)
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, AgentConfigError> {
    value.as_object().ok_or_else(|| invalid(path, "must be a JSON object"))
}

fn string<'a>(entry: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, AgentConfigError> {
    match entry.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(invalid(format!("{path}.{key}"), "must be a non-empty string")),
        None => Err(invalid(path, format!("missing \"{key}\""))),
    }
}

/// Keys that send the agent's data, or its identity, elsewhere, wherever they appear.
const REDIRECT_KEYS: [&str; 2] = ["endpoint_override", "credentials"];

fn find_redirects(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let inner_path = format!("{path}.{key}");
                if REDIRECT_KEYS.contains(&key.as_str()) {
                    out.push((inner_path.clone(), key.clone()));
                }
                find_redirects(inner, &inner_path, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_redirects(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

type LogSources = (BTreeSet<LogGroupTemplate>, BTreeSet<String>);

fn log_groups(logs: &Value) -> Result<LogSources, AgentConfigError> {
    let logs = object(logs, "$.logs")?;
    let collected = logs.get("logs_collected").ok_or_else(|| invalid("$.logs", "missing \"logs_collected\""))?;
    let collected = object(collected, "$.logs.logs_collected")?;
    let mut groups = BTreeSet::new();
    let mut files = BTreeSet::new();
    for (kind, section) in collected {
        let path = format!("$.logs.logs_collected.{kind}");
        let section = object(section, &path)?;
        let required = match kind.as_str() {
            "files" => Some("file_path"),
            "windows_events" => Some("event_name"),
            "journald" => None,
            "application_signals" => {
                // One group, optional in the agent's schema (it then writes outside fleetlog's groups).
                let template = LogGroupTemplate(string(section, "log_group_name", &path)?.to_owned());
                groups.insert(checked_template(template, &path)?);
                continue;
            }
            _ => {
                return Err(invalid(
                    path,
                    format!(
                        "unknown section; the agent accepts only {LOGS_COLLECTED_SECTIONS:?} and refuses to start with any other"
                    ),
                ));
            }
        };
        let list = section
            .get("collect_list")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(&path, "missing \"collect_list\" array"))?;
        for (i, entry) in list.iter().enumerate() {
            let entry_path = format!("{path}.collect_list[{i}]");
            let entry = object(entry, &entry_path)?;
            if let Some(required) = required {
                let source = string(entry, required, &entry_path)?;
                if kind == "files" {
                    files.insert(source.to_owned());
                }
            }
            match kind.as_str() {
                "windows_events" => check_event_selection(entry, &entry_path)?,
                "journald" => check_journald_entry(entry, &entry_path)?,
                _ => {}
            }
            let template = LogGroupTemplate(string(entry, "log_group_name", &entry_path)?.to_owned());
            groups.insert(checked_template(template, &entry_path)?);
        }
    }
    Ok((groups, files))
}

/// Every section the agent's schema allows under `logs.logs_collected` (its `translator/config/
/// schema.json`, `additionalProperties: false`): the agent refuses a config with any other.
pub const LOGS_COLLECTED_SECTIONS: [&str; 4] = ["files", "windows_events", "journald", "application_signals"];

fn checked_template(template: LogGroupTemplate, path: &str) -> Result<LogGroupTemplate, AgentConfigError> {
    if template.as_str().replace(INSTANCE_ID_PLACEHOLDER, "").contains(['{', '}']) {
        return Err(invalid(
            format!("{path}.log_group_name"),
            "only the {instance_id} placeholder is supported in log group names",
        ));
    }
    // Validate with a sample id so `{instance_id}` names are checked like concrete ones.
    template.for_instance("i-0123456789abcdef0")?;
    Ok(template)
}

/// journald priorities, by name or number, as the agent's schema lists them.
const JOURNALD_PRIORITIES: [&str; 16] =
    ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "0", "1", "2", "3", "4", "5", "6", "7"];

/// A journald entry's selectors, as the agent's schema types them: `units` (unit names), `priority`,
/// `matches` (journal field → value, each object one alternative) and `filters` (include/exclude
/// regular expressions on the message).
fn check_journald_entry(entry: &Map<String, Value>, path: &str) -> Result<(), AgentConfigError> {
    if let Some(units) = entry.get("units") {
        let units = units
            .as_array()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| invalid(format!("{path}.units"), "must be a non-empty array of unit names"))?;
        if let Some(bad) = units.iter().find(|u| !u.as_str().is_some_and(|u| !u.is_empty() && u.len() <= 256)) {
            return Err(invalid(format!("{path}.units"), format!("{bad} is not a unit name")));
        }
    }
    if let Some(priority) = entry.get("priority")
        && !priority.as_str().is_some_and(|p| JOURNALD_PRIORITIES.contains(&p))
    {
        return Err(invalid(format!("{path}.priority"), format!("{priority} is not one of {JOURNALD_PRIORITIES:?}")));
    }
    if let Some(matches) = entry.get("matches") {
        let ok = matches.as_array().is_some_and(|m| {
            !m.is_empty() && m.iter().all(|group| group.as_object().is_some_and(|g| g.values().all(Value::is_string)))
        });
        if !ok {
            return Err(invalid(
                format!("{path}.matches"),
                "must be a non-empty array of objects mapping journal fields to string values",
            ));
        }
    }
    check_filters(entry, path)
}

/// `filters`: `{"type": "include" | "exclude", "expression": REGEX}` entries.
fn check_filters(entry: &Map<String, Value>, path: &str) -> Result<(), AgentConfigError> {
    let Some(filters) = entry.get("filters") else { return Ok(()) };
    let ok = filters.as_array().is_some_and(|f| {
        f.iter().all(|filter| {
            filter.get("type").and_then(Value::as_str).is_some_and(|t| t == "include" || t == "exclude")
                && filter.get("expression").is_some_and(Value::is_string)
        })
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            format!("{path}.filters"),
            "each filter must be {\"type\": \"include\" or \"exclude\", \"expression\": a regular expression}",
        ))
    }
}

/// A Windows event log entry must select events: by level, id or filter (the agent's schema asks
/// for at least one).
fn check_event_selection(entry: &Map<String, Value>, path: &str) -> Result<(), AgentConfigError> {
    if !["event_levels", "event_ids", "filters"].iter().any(|k| entry.contains_key(*k)) {
        return Err(invalid(path, "select events with \"event_levels\", \"event_ids\" or \"filters\""));
    }
    if let Some(levels) = entry.get("event_levels") {
        let levels = levels
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| invalid(format!("{path}.event_levels"), "must be a non-empty array"))?;
        for level in levels {
            if !level.as_str().is_some_and(|l| WINDOWS_EVENT_LEVELS.contains(&l)) {
                return Err(invalid(
                    format!("{path}.event_levels"),
                    format!("{level} is not one of {WINDOWS_EVENT_LEVELS:?}"),
                ));
            }
        }
    }
    if let Some(ids) = entry.get("event_ids")
        && !ids.as_array().is_some_and(|ids| ids.iter().all(|id| id.as_u64().is_some_and(|id| id <= 65_535)))
    {
        return Err(invalid(format!("{path}.event_ids"), "must be an array of event ids from 0 to 65535"));
    }
    check_filters(entry, path)
}

/// What the metrics section means for fleetlog: collectd, the namespace, and the per-instance metrics
/// alarms can use.
fn add_metrics(summary: &mut AgentConfigSummary, metrics: &Map<String, Value>) -> Result<(), AgentConfigError> {
    let collected =
        metrics.get("metrics_collected").ok_or_else(|| invalid("$.metrics", "missing \"metrics_collected\""))?;
    let collected = object(collected, "$.metrics.metrics_collected")?;
    match metrics.get("namespace") {
        None => {}
        Some(Value::String(ns)) if !ns.is_empty() => summary.metrics_namespace.clone_from(ns),
        Some(_) => return Err(invalid("$.metrics.namespace", "must be a non-empty string")),
    }
    // Alarms use the InstanceId dimension alone, which exists only when the agent aggregates by it.
    let per_instance = metrics
        .get("aggregation_dimensions")
        .and_then(Value::as_array)
        .is_some_and(|dims| dims.iter().any(|d| d == &serde_json::json!(["InstanceId"])));
    let measured = |section: &str, measurement: &str| {
        collected
            .get(section)
            .and_then(|s| s.get("measurement"))
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|x| measurement_name(x) == Some(measurement)))
    };
    let memory_metric = if !per_instance {
        None
    } else if measured("mem", "mem_used_percent") || measured("mem", "used_percent") {
        Some("mem_used_percent".to_owned())
    } else if measured("Memory", "% Committed Bytes In Use") {
        Some("Memory % Committed Bytes In Use".to_owned())
    } else {
        None
    };
    let disk_metric = if !per_instance {
        None
    } else if measured("disk", "used_percent") || measured("disk", "disk_used_percent") {
        Some(DiskMetric::UsedPercent("disk_used_percent".to_owned()))
    } else if measured("LogicalDisk", "% Free Space") {
        Some(DiskMetric::FreePercent("LogicalDisk % Free Space".to_owned()))
    } else {
        None
    };
    summary.collects_collectd = collected.contains_key("collectd");
    summary.memory_metric = memory_metric;
    summary.disk_metric = disk_metric;
    Ok(())
}

/// Files the shipped configs read, and the agent's own logs: what a config may read by default.
pub const DEFAULT_ALLOWED_PATHS: [&str; 3] =
    ["/var/log/", "/opt/aws/amazon-cloudwatch-agent/logs/", "C:\\ProgramData\\Amazon\\"];

/// What a config may do beyond being well formed: the checks IAM cannot make, since the agent runs
/// as root (or SYSTEM) and reads whatever files, and writes to whatever groups, its config names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPolicy {
    /// Every log group must be `{prefix}/…`: the enroller's role may manage only those.
    pub log_group_prefix: String,
    /// Every `file_path` must start with one of these (case-insensitively for Windows paths).
    pub allowed_paths: Vec<String>,
}

impl ConfigPolicy {
    /// The defaults plus `extra_paths` as an operator wrote them (surrounding spaces and empty
    /// entries of a comma-separated list are ignored).
    pub fn new(log_group_prefix: impl Into<String>, extra_paths: &[String]) -> Self {
        let mut allowed_paths: Vec<String> = DEFAULT_ALLOWED_PATHS.iter().map(|p| (*p).to_owned()).collect();
        allowed_paths.extend(extra_paths.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).map(str::to_owned));
        Self { log_group_prefix: log_group_prefix.into(), allowed_paths }
    }

    /// The first way the config breaks the policy, if any.
    pub fn check(&self, summary: &AgentConfigSummary) -> Result<(), AgentConfigError> {
        if let Some((path, key)) = summary.redirects.first() {
            return Err(AgentConfigError::Redirect { path: path.clone(), key: key.clone() });
        }
        let prefix = format!("{}/", self.log_group_prefix);
        if let Some(group) = summary.log_groups.iter().find(|g| !g.as_str().starts_with(&prefix)) {
            return Err(AgentConfigError::LogGroupOutsidePrefix {
                group: group.as_str().to_owned(),
                prefix: self.log_group_prefix.clone(),
            });
        }
        if let Some(file) = summary.file_paths.iter().find(|f| !self.allows_file(f)) {
            return Err(AgentConfigError::FileOutsideAllowedPaths {
                file: file.clone(),
                allowed: self.allowed_paths.clone(),
            });
        }
        Ok(())
    }

    fn allows_file(&self, file: &str) -> bool {
        // `..` would climb out of an allowed folder; the agent does not resolve it away.
        let climbs = file.split(['/', '\\']).any(|part| part == "..");
        let windows = file.as_bytes().get(1) == Some(&b':');
        !climbs
            && self.allowed_paths.iter().any(|allowed| {
                if windows {
                    file.len() >= allowed.len()
                        && file.is_char_boundary(allowed.len())
                        && file[..allowed.len()].eq_ignore_ascii_case(allowed)
                } else {
                    file.starts_with(allowed.as_str())
                }
            })
    }
}

/// A measurement is a name or `{"name": …, "rename": …}`.
fn measurement_name(value: &Value) -> Option<&str> {
    value.as_str().or_else(|| value.get("name").and_then(Value::as_str))
}

/// Parameter Store tiers, chosen by the size of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterTier {
    Standard,
    Advanced,
}

impl ParameterTier {
    pub const STANDARD_MAX_BYTES: usize = 4096;
    pub const ADVANCED_MAX_BYTES: usize = 8192;

    /// The cheapest tier that holds `bytes`; larger values cannot be stored at all.
    pub fn for_size(bytes: usize) -> Result<Self, ConfigTooLarge> {
        if bytes <= Self::STANDARD_MAX_BYTES {
            Ok(Self::Standard)
        } else if bytes <= Self::ADVANCED_MAX_BYTES {
            Ok(Self::Advanced)
        } else {
            Err(ConfigTooLarge { bytes })
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "Standard",
            Self::Advanced => "Advanced",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "agent config is {bytes} bytes; Parameter Store holds at most {} bytes (advanced tier): remove sections or split it into profiles",
    ParameterTier::ADVANCED_MAX_BYTES
)]
pub struct ConfigTooLarge {
    pub bytes: usize,
}

/// How one deployment names, renders and checks agent configs: its parameter prefix, the values of
/// the template variables, and the policy the enroller applies at enrollment (so a config that
/// publishes is one the enroller accepts).
#[derive(Debug, Clone)]
pub struct Rendering {
    pub parameter_prefix: String,
    pub vars: TemplateVars,
    pub policy: ConfigPolicy,
}

/// One agent config file, checked and rendered as Parameter Store will hold it.
#[derive(Debug, Clone)]
pub struct RenderedConfig {
    pub parameter: ConfigParameterName,
    pub platform: Platform,
    pub profile: Option<String>,
    /// The file with `${fleetlog:…}` variables replaced, compact, as stored.
    pub rendered: String,
    pub summary: AgentConfigSummary,
    pub tier: ParameterTier,
}

/// Why a config file cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Name(#[from] CommandError),
    #[error(transparent)]
    Config(#[from] AgentConfigError),
    #[error(transparent)]
    TooLarge(#[from] ConfigTooLarge),
}

impl Rendering {
    /// Configs named under `parameter_prefix`, rendered with `log_group_prefix` and held to it, reading
    /// files under the default paths and `extra_paths`.
    pub fn new(parameter_prefix: &str, log_group_prefix: &str, extra_paths: &[String]) -> Self {
        Self {
            parameter_prefix: parameter_prefix.to_owned(),
            vars: TemplateVars { log_group_prefix: log_group_prefix.to_owned() },
            policy: ConfigPolicy::new(log_group_prefix, extra_paths),
        }
    }

    /// Checks and renders the config file named `file_stem` (`linux`, `windows-web`, …) whose text is
    /// `template`: its name, template variables, structure, policy and stored size.
    pub fn render(&self, file_stem: &str, template: &str) -> Result<RenderedConfig, RenderError> {
        let (platform, profile, parameter) = ConfigParameterName::for_config_file(&self.parameter_prefix, file_stem)?;
        let text = render_template(template, &self.vars)?;
        let summary = summarize(&text)?;
        self.policy.check(&summary)?;
        // Stored compact: the size that counts against the tier limit is the stored one.
        let value: Value = serde_json::from_str(&text).map_err(|e| AgentConfigError::NotJson(e.to_string()))?;
        let rendered = value.to_string();
        let tier = ParameterTier::for_size(rendered.len())?;
        Ok(RenderedConfig { parameter, platform, profile, rendered, summary, tier })
    }
}

/// Values substituted into `agent-configs/` templates when they are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVars {
    pub log_group_prefix: String,
}

/// Replaces `${fleetlog:LogGroupPrefix}`; the agent's own `${aws:…}` variables are left alone.
pub fn render_template(template: &str, vars: &TemplateVars) -> Result<String, AgentConfigError> {
    const OPEN: &str = "${fleetlog:";
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after.find('}').ok_or_else(|| AgentConfigError::UnknownVariable(after.chars().take(20).collect()))?;
        match &after[..end] {
            "LogGroupPrefix" => out.push_str(&vars.log_group_prefix),
            other => return Err(AgentConfigError::UnknownVariable(other.to_owned())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_is_chosen_by_size() {
        assert_eq!(ParameterTier::for_size(10), Ok(ParameterTier::Standard));
        assert_eq!(ParameterTier::for_size(4096), Ok(ParameterTier::Standard));
        assert_eq!(ParameterTier::for_size(4097), Ok(ParameterTier::Advanced));
        assert_eq!(ParameterTier::for_size(8192), Ok(ParameterTier::Advanced));
        let err = ParameterTier::for_size(8193).unwrap_err();
        assert!(err.to_string().contains("8193 bytes"), "{err}");
    }

    const LINUX: &str = r#"{
      "agent": {"metrics_collection_interval": 60},
      "metrics": {
        "append_dimensions": {"InstanceId": "${aws:InstanceId}"},
        "aggregation_dimensions": [["InstanceId"]],
        "metrics_collected": {
          "collectd": {},
          "mem": {"measurement": ["mem_used_percent"]},
          "disk": {"measurement": [{"name": "used_percent"}], "resources": ["*"]}
        }
      },
      "logs": {"logs_collected": {"files": {"collect_list": [
        {"file_path": "/var/log/messages", "log_group_name": "G/system", "log_stream_name": "{instance_id}"},
        {"file_path": "/var/log/secure", "log_group_name": "G/security", "log_stream_name": "{instance_id}"},
        {"file_path": "/var/log/x", "log_group_name": "G/{instance_id}", "log_stream_name": "{instance_id}"}
      ]}}}
    }"#;

    #[test]
    fn linux_config_summary() {
        let s = summarize(LINUX).unwrap();
        let groups: Vec<_> = s.log_groups.iter().map(LogGroupTemplate::as_str).collect();
        assert_eq!(groups, ["G/security", "G/system", "G/{instance_id}"]);
        assert!(s.collects_collectd);
        assert_eq!(s.metrics_namespace, "CWAgent");
        assert_eq!(s.memory_metric.as_deref(), Some("mem_used_percent"));
        assert_eq!(s.disk_metric, Some(DiskMetric::UsedPercent("disk_used_percent".into())));
        let per_instance = s.log_groups.iter().find(|g| g.is_per_instance()).unwrap();
        assert_eq!(per_instance.for_instance("i-01234567").unwrap().as_str(), "G/i-01234567");
    }

    #[test]
    fn metrics_without_instance_aggregation_get_no_memory_alarm() {
        let cfg = r#"{"metrics": {"metrics_collected": {"mem": {"measurement": ["mem_used_percent"]}}}}"#;
        let s = summarize(cfg).unwrap();
        assert_eq!(s.memory_metric, None);
        assert!(s.log_groups.is_empty());
    }

    #[test]
    fn windows_events_are_checked() {
        let good = r#"{"logs": {"logs_collected": {"windows_events": {"collect_list": [
            {"event_name": "System", "event_levels": ["ERROR", "WARNING"], "log_group_name": "W/system"}]}}}}"#;
        assert_eq!(summarize(good).unwrap().log_groups.len(), 1);
        let bad_level = good.replace("WARNING", "LOUD");
        assert!(summarize(&bad_level).unwrap_err().to_string().contains("LOUD"));
        let by_id = good.replace(r#""event_levels": ["ERROR", "WARNING"]"#, r#""event_ids": [4624, 4625]"#);
        assert_eq!(summarize(&by_id).unwrap().log_groups.len(), 1);
        let unselected = good.replace(r#""event_levels": ["ERROR", "WARNING"], "#, "");
        assert!(summarize(&unselected).unwrap_err().to_string().contains("event_ids"));
        let bad_id = good.replace(r#""event_levels": ["ERROR", "WARNING"]"#, r#""event_ids": [70000]"#);
        assert!(summarize(&bad_id).unwrap_err().to_string().contains("65535"));
    }

    #[test]
    fn journald_sections_name_groups_and_their_selectors_are_checked() {
        let good = r#"{"logs": {"logs_collected": {"journald": {"collect_list": [
            {"log_group_name": "G/system", "log_stream_name": "{instance_id}", "priority": "info"},
            {"log_group_name": "G/security", "matches": [{"SYSLOG_FACILITY": "4"}, {"SYSLOG_FACILITY": "10"}]},
            {"log_group_name": "G/ssh", "units": ["sshd.service"],
             "filters": [{"type": "exclude", "expression": "Connection closed"}]}]}}}}"#;
        let s = summarize(good).unwrap();
        let groups: Vec<_> = s.log_groups.iter().map(LogGroupTemplate::as_str).collect();
        assert_eq!(groups, ["G/security", "G/ssh", "G/system"], "every journald group gets retention and a filter");
        assert!(s.file_paths.is_empty(), "journald reads no files");
        for (from, to, needle) in [
            (r#""priority": "info""#, r#""priority": "loud""#, "priority"),
            (r#""units": ["sshd.service"]"#, r#""units": []"#, "units"),
            (r#"{"SYSLOG_FACILITY": "4"}"#, r#"{"SYSLOG_FACILITY": 4}"#, "matches"),
            (r#""type": "exclude""#, r#""type": "drop""#, "filters"),
            (r#"{"log_group_name": "G/ssh", "#, "{", "log_group_name"),
        ] {
            let bad = good.replace(from, to);
            assert_ne!(bad, good);
            let err = summarize(&bad).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("journald"), "{to}: {err}");
        }
    }

    #[test]
    fn every_section_the_agent_knows_is_understood_and_others_are_refused() {
        let signals = r#"{"logs": {"logs_collected": {"application_signals": {"log_group_name": "G/signals"}}}}"#;
        let groups: Vec<_> = summarize(signals).unwrap().log_groups.iter().map(|g| g.as_str().to_owned()).collect();
        assert_eq!(groups, ["G/signals"]);
        let unnamed = r#"{"logs": {"logs_collected": {"application_signals": {}}}}"#;
        assert!(summarize(unnamed).unwrap_err().to_string().contains("log_group_name"));
        let unknown = r#"{"logs": {"logs_collected": {"syslog": {"collect_list": []}}}}"#;
        let err = summarize(unknown).unwrap_err().to_string();
        assert!(err.contains("$.logs.logs_collected.syslog") && err.contains("journald"), "{err}");
    }

    #[test]
    fn broken_configs_say_where() {
        let cases = [
            ("nope", "not valid JSON"),
            ("[]", "must be a JSON object"),
            ("{}", "collects nothing"),
            (r#"{"logz": {}}"#, "unknown section"),
            (r#"{"logs": {}}"#, "logs_collected"),
            (r#"{"logs": {"logs_collected": {"files": {}}}}"#, "collect_list"),
            (r#"{"logs": {"logs_collected": {"files": {"collect_list": [{"log_group_name": "g"}]}}}}"#, "file_path"),
            (r#"{"logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "/f"}]}}}}"#, "log_group_name"),
            (
                r#"{"logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "/f", "log_group_name": "bad name"}]}}}}"#,
                "invalid",
            ),
            (
                r#"{"logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "/f", "log_group_name": "g/{hostname}"}]}}}}"#,
                "placeholder",
            ),
        ];
        for (text, needle) in cases {
            let err = summarize(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn policy_keeps_groups_under_the_prefix_files_in_allowed_paths_and_data_at_home() {
        let policy = ConfigPolicy::new("G", &["/srv/app/".to_owned()]);
        assert_eq!(policy.check(&summarize(LINUX).unwrap()), Ok(()));
        let with_file = |file: &str| {
            let text = format!(
                r#"{{"logs": {{"logs_collected": {{"files": {{"collect_list": [
                {{"file_path": {file:?}, "log_group_name": "G/app"}}]}}}}}}}}"#
            );
            policy.check(&summarize(&text).unwrap())
        };
        for ok in ["/var/log/app/*.log", "/srv/app/x.log", "c:\\programdata\\amazon\\agent.log"] {
            assert_eq!(with_file(ok), Ok(()), "{ok}");
        }
        for refused in
            ["/etc/shadow", "/var/log/../../etc/shadow", "/root/.aws/credentials", "C:\\Users\\x", "var/log/x"]
        {
            let err = with_file(refused).unwrap_err().to_string();
            assert!(err.contains(refused.replace('\\', "\\\\").as_str()) && err.contains("allowed paths"), "{err}");
        }
        let outside = r#"{"logs": {"logs_collected": {"files": {"collect_list": [
            {"file_path": "/var/log/x", "log_group_name": "web/{instance_id}"}]}}}}"#;
        let err = policy.check(&summarize(outside).unwrap()).unwrap_err().to_string();
        assert!(err.contains("\"web/{instance_id}\"") && err.contains("\"G/\""), "{err}");
        // A group named like the prefix but not under it.
        let sibling = outside.replace("web/{instance_id}", "Gx/app");
        assert!(policy.check(&summarize(&sibling).unwrap()).is_err());
        for (text, path) in [
            (
                r#"{"agent": {"credentials": {"role_arn": "arn:aws:iam::999999999999:role/x"}}, "metrics": {"metrics_collected": {}}}"#,
                "$.agent.credentials",
            ),
            (
                r#"{"logs": {"endpoint_override": "https://example.invalid", "logs_collected": {}}}"#,
                "$.logs.endpoint_override",
            ),
            (r#"{"metrics": {"endpoint_override": "x", "metrics_collected": {}}}"#, "$.metrics.endpoint_override"),
        ] {
            let err = policy.check(&summarize(text).unwrap()).unwrap_err().to_string();
            assert!(err.contains(path) && err.contains("refused"), "{err}");
        }
    }

    #[test]
    fn templates_render_fleetlog_variables_only() {
        let vars = TemplateVars { log_group_prefix: "CCP-logs-a-1-r".into() };
        let text = r#"{"g": "${fleetlog:LogGroupPrefix}/system", "d": "${aws:InstanceId}"}"#;
        assert_eq!(
            render_template(text, &vars).unwrap(),
            r#"{"g": "CCP-logs-a-1-r/system", "d": "${aws:InstanceId}"}"#
        );
        assert_eq!(render_template("${fleetlog:Nope}", &vars), Err(AgentConfigError::UnknownVariable("Nope".into())));
    }
}
