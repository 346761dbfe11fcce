//! `fleetlog configs validate|publish|diff`: agent configs from `agent-configs/` (or given paths),
//! checked, rendered and stored in Parameter Store under the names the enroller looks up.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fleetlog_core::agent_config::{RenderedConfig, Rendering};
use serde_json::{Value, json};

use crate::output::{Report, Table};

/// One agent config file, checked and rendered for publishing.
#[derive(Debug, Clone)]
pub struct AgentConfigFile {
    pub path: PathBuf,
    pub config: RenderedConfig,
}

/// A file that failed its checks, and why.
#[derive(Debug, Clone)]
pub struct InvalidConfig {
    pub path: PathBuf,
    pub problem: String,
}

/// The `.json` files of a directory, or the files given.
pub fn config_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read directory {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            found.sort();
            out.extend(found);
        } else if path.exists() {
            out.push(path.clone());
        } else {
            bail!("{} does not exist", path.display());
        }
    }
    if out.is_empty() {
        bail!(
            "no agent configs (*.json) found in {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(out)
}

/// Checks and renders one file: structure, name, template variables, policy (log groups under the
/// prefix, files in the allowed paths, no redirection) and size for Parameter Store.
pub fn load(path: &Path, rendering: &Rendering) -> Result<AgentConfigFile, InvalidConfig> {
    let invalid = |problem: String| InvalidConfig { path: path.to_owned(), problem };
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let template = std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read: {e}")))?;
    let config = rendering.render(stem, &template).map_err(|e| invalid(e.to_string()))?;
    Ok(AgentConfigFile { path: path.to_owned(), config })
}

pub fn load_all(paths: &[PathBuf], rendering: &Rendering) -> Result<(Vec<AgentConfigFile>, Vec<InvalidConfig>)> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for path in config_paths(paths)? {
        match load(&path, rendering) {
            Ok(config) => good.push(config),
            Err(e) => bad.push(e),
        }
    }
    Ok((good, bad))
}

fn invalid_table(bad: &[InvalidConfig]) -> Table {
    let mut table = Table::new(&["file", "problem"]).titled("Invalid agent configs:");
    for b in bad {
        table.row(vec![b.path.display().to_string(), b.problem.clone()]);
    }
    table
}

fn invalid_json(bad: &[InvalidConfig]) -> Vec<Value> {
    bad.iter().map(|b| json!({ "file": b.path.display().to_string(), "problem": b.problem })).collect()
}

/// `configs validate`: `Err` when any file is invalid (after reporting all of them).
pub fn validate(paths: &[PathBuf], rendering: &Rendering) -> Result<(Report, bool)> {
    let (good, bad) = load_all(paths, rendering)?;
    let mut table = Table::new(&["file", "parameter", "platform", "log groups", "bytes", "tier"]);
    let mut items = Vec::new();
    for file in &good {
        let c = &file.config;
        let groups: Vec<&str> = c.summary.log_groups.iter().map(|g| g.as_str()).collect();
        table.row(vec![
            file.path.display().to_string(),
            c.parameter.to_string(),
            c.platform.to_string(),
            groups.join("\n"),
            c.rendered.len().to_string(),
            c.tier.as_str().to_owned(),
        ]);
        items.push(json!({
            "file": file.path.display().to_string(), "parameter": c.parameter.as_str(), "platform": c.platform.to_string(),
            "profile": c.profile, "log_groups": groups, "bytes": c.rendered.len(), "tier": c.tier.as_str(),
        }));
    }
    let mut report = Report { json: json!({ "valid": items, "invalid": invalid_json(&bad) }), ..Report::default() };
    report.tables.push(table);
    if !bad.is_empty() {
        report.tables.push(invalid_table(&bad));
    }
    Ok((report, bad.is_empty()))
}

/// What Parameter Store holds for a name: (value, version), or None.
async fn stored(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<Option<(String, i64)>> {
    Ok(fleetlog_aws::ssm::get_parameter(ssm, name).await?.map(|p| (p.value, p.version)))
}

/// Same JSON, whatever the formatting.
fn same_config(a: &str, b: &str) -> bool {
    match (serde_json::from_str::<Value>(a), serde_json::from_str::<Value>(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `configs publish`: stores every valid config whose content changed (a new Parameter Store
/// version, which the next reconcile re-applies). Refuses to publish anything if any file is invalid.
pub async fn publish(
    ssm: &aws_sdk_ssm::Client,
    paths: &[PathBuf],
    rendering: &Rendering,
    force: bool,
) -> Result<(Report, bool)> {
    let (good, bad) = load_all(paths, rendering)?;
    if !bad.is_empty() {
        let report = Report {
            json: json!({ "published": [], "invalid": invalid_json(&bad) }),
            tables: vec![invalid_table(&bad)],
            notes: vec!["Nothing was published: fix the configs above first.".into()],
        };
        return Ok((report, false));
    }
    let mut table = Table::new(&["parameter", "file", "tier", "version", "result"]);
    let mut items = Vec::new();
    for file in &good {
        let c = &file.config;
        let current = stored(ssm, c.parameter.as_str()).await?;
        let (version, result) = match &current {
            Some((value, version)) if !force && same_config(value, &c.rendered) => (*version, "unchanged"),
            _ => {
                let description = format!("fleetlog CloudWatch agent config from {}", file.path.display());
                let version = fleetlog_aws::ssm::put_config_parameter(
                    ssm,
                    c.parameter.as_str(),
                    &c.rendered,
                    c.tier,
                    &description,
                )
                .await?;
                (version, if current.is_some() { "updated" } else { "created" })
            }
        };
        table.row(vec![
            c.parameter.to_string(),
            file.path.display().to_string(),
            c.tier.as_str().to_owned(),
            version.to_string(),
            result.to_owned(),
        ]);
        items.push(json!({
            "parameter": c.parameter.as_str(), "file": file.path.display().to_string(), "tier": c.tier.as_str(),
            "version": version, "result": result,
        }));
    }
    let report = Report {
        json: json!({ "published": items, "invalid": [] }),
        tables: vec![table],
        notes: vec![
            "Enrolled instances get a changed config at the next reconcile (`fleetlog reconcile` runs one now).".into(),
        ],
    };
    Ok((report, true))
}

/// `configs diff`: local (rendered) against stored, as a unified diff of pretty-printed JSON.
pub async fn diff(ssm: &aws_sdk_ssm::Client, paths: &[PathBuf], rendering: &Rendering) -> Result<(Report, bool)> {
    let (good, bad) = load_all(paths, rendering)?;
    let mut table = Table::new(&["parameter", "file", "stored version", "status"]);
    let mut items = Vec::new();
    let mut notes = Vec::new();
    for file in &good {
        let c = &file.config;
        let current = stored(ssm, c.parameter.as_str()).await?;
        let local = pretty(&c.rendered);
        let (status, version, text) = match &current {
            None => ("not stored", None, String::new()),
            Some((value, version)) if same_config(value, &c.rendered) => ("same", Some(*version), String::new()),
            Some((value, version)) => {
                let remote = pretty(value);
                let text = similar::TextDiff::from_lines(&remote, &local)
                    .unified_diff()
                    .header(&format!("{} (stored v{version})", c.parameter), &file.path.display().to_string())
                    .to_string();
                ("differs", Some(*version), text)
            }
        };
        table.row(vec![
            c.parameter.to_string(),
            file.path.display().to_string(),
            version.map(|v| v.to_string()).unwrap_or_default(),
            status.to_owned(),
        ]);
        if !text.is_empty() {
            notes.push(text.clone());
        }
        items.push(json!({
            "parameter": c.parameter.as_str(), "file": file.path.display().to_string(), "stored_version": version,
            "status": status, "diff": text,
        }));
    }
    let mut report =
        Report { json: json!({ "configs": items, "invalid": invalid_json(&bad) }), tables: vec![table], notes };
    if !bad.is_empty() {
        report.tables.push(invalid_table(&bad));
    }
    Ok((report, bad.is_empty()))
}

fn pretty(text: &str) -> String {
    let mut out = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned());
    out.push('\n');
    out
}
