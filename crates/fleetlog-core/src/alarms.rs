//! Per-instance alarms (the seed's alarm function), named so offboarding can find them by prefix.

use crate::agent_config::{AgentConfigSummary, DiskMetric};

#[derive(Debug, Clone, PartialEq)]
pub struct AlarmThresholds {
    pub cpu_percent: f64,
    pub memory_percent: f64,
    pub disk_used_percent: f64,
}

impl Default for AlarmThresholds {
    fn default() -> Self {
        Self { cpu_percent: 90.0, memory_percent: 90.0, disk_used_percent: 90.0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    GreaterThanOrEqual,
    LessThanOrEqual,
}

/// One PutMetricAlarm request.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub metric: String,
    pub instance_id: String,
    pub statistic: &'static str,
    pub comparison: Comparison,
    pub threshold: f64,
    pub period_seconds: i32,
    pub evaluation_periods: i32,
}

/// Every alarm fleetlog creates starts with this, then the instance ID and a dash.
pub const ALARM_NAME_PREFIX: &str = "fleetlog-";

/// Every alarm fleetlog creates for an instance starts with this.
pub fn alarm_prefix(instance_id: &str) -> String {
    format!("{ALARM_NAME_PREFIX}{instance_id}-")
}

/// The instance a fleetlog alarm is for, read from its name.
pub fn alarm_instance(alarm_name: &str) -> Option<&str> {
    let rest = alarm_name.strip_prefix(ALARM_NAME_PREFIX)?;
    // An instance ID is `i-` and hex digits: the first dash after `i-` ends it.
    let end = rest.get(2..)?.find('-')? + 2;
    let instance_id = &rest[..end];
    crate::instance::is_instance_id(instance_id).then_some(instance_id)
}

pub fn alarms_for(instance_id: &str, config: &AgentConfigSummary, thresholds: &AlarmThresholds) -> Vec<AlarmSpec> {
    let prefix = alarm_prefix(instance_id);
    let alarm = |suffix: &str, description: String, namespace: &str, metric: &str, statistic, comparison, threshold| {
        AlarmSpec {
            name: format!("{prefix}{suffix}"),
            description,
            namespace: namespace.to_owned(),
            metric: metric.to_owned(),
            instance_id: instance_id.to_owned(),
            statistic,
            comparison,
            threshold,
            period_seconds: 300,
            evaluation_periods: 2,
        }
    };
    let mut alarms = vec![
        alarm(
            "status-check-failed",
            format!("{instance_id}: EC2 status check failed"),
            "AWS/EC2",
            "StatusCheckFailed",
            "Maximum",
            Comparison::GreaterThanOrEqual,
            1.0,
        ),
        alarm(
            "cpu-high",
            format!("{instance_id}: CPU at or above {}%", thresholds.cpu_percent),
            "AWS/EC2",
            "CPUUtilization",
            "Average",
            Comparison::GreaterThanOrEqual,
            thresholds.cpu_percent,
        ),
    ];
    if let Some(metric) = &config.memory_metric {
        alarms.push(alarm(
            "memory-high",
            format!("{instance_id}: memory use at or above {}%", thresholds.memory_percent),
            &config.metrics_namespace,
            metric,
            "Average",
            Comparison::GreaterThanOrEqual,
            thresholds.memory_percent,
        ));
    }
    match &config.disk_metric {
        Some(DiskMetric::UsedPercent(metric)) => alarms.push(alarm(
            "disk-high",
            format!("{instance_id}: disk use at or above {}%", thresholds.disk_used_percent),
            &config.metrics_namespace,
            metric,
            "Maximum",
            Comparison::GreaterThanOrEqual,
            thresholds.disk_used_percent,
        )),
        Some(DiskMetric::FreePercent(metric)) => alarms.push(alarm(
            "disk-high",
            format!("{instance_id}: disk free space at or below {}%", 100.0 - thresholds.disk_used_percent),
            &config.metrics_namespace,
            metric,
            "Minimum",
            Comparison::LessThanOrEqual,
            100.0 - thresholds.disk_used_percent,
        )),
        None => {}
    }
    alarms
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn config(memory: Option<&str>, disk: Option<DiskMetric>) -> AgentConfigSummary {
        AgentConfigSummary {
            log_groups: BTreeSet::new(),
            file_paths: BTreeSet::new(),
            redirects: Vec::new(),
            collects_collectd: false,
            metrics_namespace: "CWAgent".into(),
            memory_metric: memory.map(str::to_owned),
            disk_metric: disk,
        }
    }

    #[test]
    fn base_alarms_always_exist() {
        let alarms = alarms_for("i-01234567", &config(None, None), &AlarmThresholds::default());
        let names: Vec<_> = alarms.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["fleetlog-i-01234567-status-check-failed", "fleetlog-i-01234567-cpu-high"]);
        assert!(alarms.iter().all(|a| a.name.starts_with(&alarm_prefix("i-01234567"))));
    }

    #[test]
    fn agent_metrics_add_memory_and_disk_alarms() {
        let linux = alarms_for(
            "i-01234567",
            &config(Some("mem_used_percent"), Some(DiskMetric::UsedPercent("disk_used_percent".into()))),
            &AlarmThresholds::default(),
        );
        assert_eq!(linux.len(), 4);
        assert_eq!(linux[2].metric, "mem_used_percent");
        assert_eq!(linux[2].namespace, "CWAgent");
        let windows = alarms_for(
            "i-01234567",
            &config(None, Some(DiskMetric::FreePercent("LogicalDisk % Free Space".into()))),
            &AlarmThresholds::default(),
        );
        let disk = &windows[2];
        assert_eq!((disk.comparison, disk.threshold), (Comparison::LessThanOrEqual, 10.0));
    }

    #[test]
    fn alarm_names_give_back_their_instance() {
        let agent = config(Some("mem_used_percent"), Some(DiskMetric::UsedPercent("disk_used_percent".into())));
        for spec in alarms_for("i-0123456789abcdef0", &agent, &AlarmThresholds::default()) {
            assert_eq!(alarm_instance(&spec.name), Some("i-0123456789abcdef0"), "{}", spec.name);
        }
        for other in
            ["fleetlog-", "fleetlog-i-", "fleetlog-web-1-cpu", "other-i-0123456789abcdef0-cpu", "fleetlog-i-xyz-cpu"]
        {
            assert_eq!(alarm_instance(other), None, "{other}");
        }
    }
}
