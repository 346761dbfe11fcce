//! `fleetlog archive restore`: restores of the archived objects of a date range's partitions, and
//! where each partition stands. What an object needs is decided in `fleetlog_core::archive`; the
//! listing and the requests are `fleetlog_aws::s3`'s.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use fleetlog_aws::s3::{self, RestoreRequest};
use fleetlog_core::archive::{
    ObjectState, RestoreTier, account_of_prefix, day_prefix, days, object_state, parse_restore_header, restore_hours,
};
use serde_json::json;

use crate::output::{Report, Table, progress_bar};

/// What to restore, and how.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub bucket: String,
    /// The records' prefix (the stack's `logs/`).
    pub prefix: String,
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    /// Empty: every account under the prefix.
    pub accounts: Vec<String>,
    pub days: i32,
    pub tier: RestoreTier,
}

/// Counts of one partition's objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PartitionCounts {
    pub readable: usize,
    pub restored: usize,
    pub restoring: usize,
    pub requested: usize,
}

impl PartitionCounts {
    /// Whether Athena can read all of it now.
    fn ready(&self) -> bool {
        self.restoring == 0 && self.requested == 0
    }
}

pub async fn restore(client: &aws_sdk_s3::Client, plan: &RestorePlan, show_progress: bool) -> Result<Report> {
    let days = days(plan.from, plan.to).map_err(anyhow::Error::msg)?;
    let accounts = if plan.accounts.is_empty() {
        let prefixes = s3::list_prefixes(client, &plan.bucket, &plan.prefix).await?;
        prefixes.iter().filter_map(|p| account_of_prefix(&plan.prefix, p).map(str::to_owned)).collect()
    } else {
        plan.accounts.clone()
    };
    if accounts.is_empty() {
        bail!("no account=… partitions under s3://{}/{}: nothing to restore", plan.bucket, plan.prefix);
    }
    let mut objects = Vec::new();
    for account in &accounts {
        for day in &days {
            let listed = s3::list_objects(client, &plan.bucket, &day_prefix(&plan.prefix, account, day)).await?;
            objects.extend(listed.into_iter().map(|o| ((account.clone(), day.clone()), o)));
        }
    }
    let progress = progress_bar(objects.len(), "restoring".into(), show_progress);
    let mut partitions: BTreeMap<(String, String), PartitionCounts> = BTreeMap::new();
    for ((account, day), object) in objects {
        let counts = partitions.entry((account, day)).or_default();
        let mut state = object_state(object.storage_class.as_deref(), object.restore_in_progress);
        if state == ObjectState::Archived {
            // The listing may carry no restore status (not every store returns it): ask the object,
            // so a restore under way or done is not asked again (which would reset its expiry).
            let header = s3::restore_header(client, &plan.bucket, &object.key).await?;
            let restore = header.as_deref().and_then(parse_restore_header);
            state = object_state(object.storage_class.as_deref(), restore);
        }
        match state {
            ObjectState::Readable => counts.readable += 1,
            ObjectState::Restored => counts.restored += 1,
            ObjectState::Restoring => counts.restoring += 1,
            ObjectState::Archived => {
                match s3::restore_object(client, &plan.bucket, &object.key, plan.days, plan.tier.as_str()).await? {
                    RestoreRequest::Started => counts.requested += 1,
                    RestoreRequest::AlreadyInProgress => counts.restoring += 1,
                }
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();

    let mut table = Table::new(&["account", "dt", "objects", "readable", "restored", "restoring", "requested now"]);
    let mut rows = Vec::new();
    for ((account, day), c) in &partitions {
        let total = c.readable + c.restored + c.restoring + c.requested;
        table.row(vec![
            account.clone(),
            day.clone(),
            total.to_string(),
            c.readable.to_string(),
            c.restored.to_string(),
            c.restoring.to_string(),
            c.requested.to_string(),
        ]);
        rows.push(json!({ "account": account, "dt": day, "objects": total, "ready": c.ready(), "counts": c }));
    }
    let waiting: usize = partitions.values().map(|c| c.restoring + c.requested).sum();
    let hours = restore_hours(plan.tier);
    let mut notes = Vec::new();
    if partitions.is_empty() {
        notes.push(format!("No objects for {} to {} under s3://{}/{}.", plan.from, plan.to, plan.bucket, plan.prefix));
    } else if waiting == 0 {
        notes.push("Every object is readable: Athena and fleetlog query --local can read these partitions now.".into());
    } else {
        notes.push(format!(
            "{waiting} object(s) restoring: at the {} tier a Deep Archive restore takes up to {hours} hours. Athena \
             reads restored copies (the table sets read_restored_glacier_objects) for {} day(s) after they are \
             ready. Run this again to see progress; nothing is requested twice.",
            plan.tier.as_str(),
            plan.days
        ));
    }
    let json = json!({
        "partitions": rows,
        "waiting": waiting,
        "ready": waiting == 0,
        "tier": plan.tier.as_str(),
        "within_hours": (waiting > 0).then_some(hours),
    });
    Ok(Report { json, tables: vec![table], notes })
}
