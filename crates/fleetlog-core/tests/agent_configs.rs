#![allow(clippy::unwrap_used, clippy::panic)]

//! The shipped agent configurations are valid and collect what the seed asks for.

use std::path::Path;

use fleetlog_core::agent_config::{DiskMetric, TemplateVars, render_template, summarize};
use fleetlog_core::log_groups::default_log_group_prefix;

fn render(name: &str) -> String {
    let path = Path::new("../../agent-configs").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let vars = TemplateVars { log_group_prefix: default_log_group_prefix("Acme Prod", "123456789012", "eu-west-1") };
    render_template(&text, &vars).unwrap()
}

#[test]
fn linux_config_collects_system_security_and_collectd() {
    let s = summarize(&render("linux.json")).unwrap();
    let groups: Vec<_> = s.log_groups.iter().map(|g| g.as_str().to_owned()).collect();
    assert_eq!(
        groups,
        [
            "CCP-logs-Acme-Prod-123456789012-eu-west-1/cloud-init",
            "CCP-logs-Acme-Prod-123456789012-eu-west-1/security",
            "CCP-logs-Acme-Prod-123456789012-eu-west-1/system",
        ]
    );
    assert!(s.collects_collectd);
    assert_eq!(s.memory_metric.as_deref(), Some("mem_used_percent"));
    assert_eq!(s.disk_metric, Some(DiskMetric::UsedPercent("disk_used_percent".into())));
}

#[test]
fn windows_config_collects_event_logs() {
    let s = summarize(&render("windows.json")).unwrap();
    let groups: Vec<_> =
        s.log_groups.iter().map(|g| g.as_str().rsplit('/').next().unwrap_or_default().to_owned()).collect();
    assert_eq!(groups, ["windows-application", "windows-security", "windows-system"]);
    assert!(!s.collects_collectd);
    assert_eq!(s.memory_metric.as_deref(), Some("Memory % Committed Bytes In Use"));
    assert_eq!(s.disk_metric, Some(DiskMetric::FreePercent("LogicalDisk % Free Space".into())));
}

#[test]
fn every_stream_is_named_after_the_instance() {
    for name in ["linux.json", "windows.json"] {
        let v: serde_json::Value = serde_json::from_str(&render(name)).unwrap();
        let collected = &v["logs"]["logs_collected"];
        let entries = collected["files"]["collect_list"]
            .as_array()
            .into_iter()
            .chain(collected["windows_events"]["collect_list"].as_array())
            .flatten();
        for entry in entries {
            assert_eq!(entry["log_stream_name"], "{instance_id}", "{name}: {entry}");
        }
    }
}

#[test]
fn rendered_configs_fit_a_standard_parameter() {
    for name in ["linux.json", "windows.json"] {
        assert!(render(name).len() <= 4096, "{name} exceeds the 4 KB standard tier");
    }
}
