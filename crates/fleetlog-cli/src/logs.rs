//! `fleetlog logs`: tail and grep the fleet's log lines in CloudWatch Logs, where developers keep
//! reading them (FilterLogEvents over each instance's stream in each of its log groups), interleaved
//! in time order, and `--follow` by polling.
//!
//! Which groups and streams: the enrollment records name each instance's log groups, and the agent
//! names an instance's stream after the instance.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Result, bail};
use fleetlog_aws::logs::{LogEvent, filter_events};
use fleetlog_core::record::EnrollmentRecord;
use futures::StreamExt;
use serde_json::json;

use crate::fleet::{Fleet, checked_ids};
use crate::output::OutputFormat;

/// Which instances' lines, and which of them.
#[derive(Debug, Clone, Default)]
pub struct LogsRequest {
    /// Instance IDs; none (and no tag): every instance fleetlog has enrolled.
    pub instances: Vec<String>,
    /// Instances carrying this tag (exact case).
    pub tag: Option<(String, String)>,
    /// Only groups whose last path segment is this (`system`, `security`, …).
    pub source: Option<String>,
    /// How far back before now to start.
    pub since: Duration,
    /// A CloudWatch Logs filter pattern.
    pub filter: Option<String>,
}

/// Log groups read at once.
const CONCURRENT_GROUPS: usize = 8;
/// How often `--follow` asks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);
/// `--follow` asks again for this much time before the newest line it saw: CloudWatch Logs makes
/// events searchable a moment after they are put, not always in time order.
const FOLLOW_OVERLAP_MS: i64 = 10_000;

/// The group → streams to read for these records: each instance's stream in each of its groups,
/// only the groups of `source` when one is given.
pub fn log_targets<'a>(
    records: impl IntoIterator<Item = &'a EnrollmentRecord>,
    source: Option<&str>,
) -> BTreeMap<String, Vec<String>> {
    let mut targets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for record in records {
        for group in &record.log_groups {
            if source.is_none_or(|s| group.rsplit('/').next() == Some(s)) {
                targets.entry(group.clone()).or_default().insert(record.instance_id.clone());
            }
        }
    }
    targets.into_iter().map(|(group, streams)| (group, streams.into_iter().collect())).collect()
}

/// Events from several groups in time order (ties in a fixed order, so output is stable).
pub fn interleave(mut events: Vec<LogEvent>) -> Vec<LogEvent> {
    events.sort_by(|a, b| {
        (a.timestamp, &a.log_group, &a.log_stream, &a.event_id).cmp(&(
            b.timestamp,
            &b.log_group,
            &b.log_stream,
            &b.event_id,
        ))
    });
    events
}

/// Parses `--since`: `90s`, `15m`, `1h`, `2d`.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 =
        number.parse().map_err(|_| format!("expected a number and a unit (90s, 15m, 1h, 2d), got {text:?}"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("unknown unit in {text:?}: use s, m, h or d")),
    };
    Ok(Duration::from_secs(seconds))
}

/// How lines are written: for people (one line each, the instance coloured on a terminal), as JSON
/// lines, or as CSV rows.
#[derive(Debug)]
pub struct LineWriter {
    format: OutputFormat,
    colour: bool,
    /// Each instance's colour, in order of first appearance.
    colours: BTreeMap<String, usize>,
    csv_header_written: bool,
}

const PALETTE: [&str; 6] = ["36", "33", "35", "32", "34", "31"];

impl LineWriter {
    pub fn new(format: OutputFormat, colour: bool) -> Self {
        Self { format, colour, colours: BTreeMap::new(), csv_header_written: false }
    }

    /// For stdout: coloured when it is a terminal and `NO_COLOR` is not set.
    pub fn for_stdout(format: OutputFormat) -> Self {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self::new(format, colour)
    }

    pub fn write(&mut self, event: &LogEvent, out: &mut dyn Write) -> std::io::Result<()> {
        let time = chrono::DateTime::from_timestamp_millis(event.timestamp)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default();
        let source = event.log_group.rsplit('/').next().unwrap_or_default();
        match self.format {
            OutputFormat::Json => {
                let line = json!({
                    "time": time, "timestamp": event.timestamp, "instance_id": event.log_stream,
                    "log_group": event.log_group, "source": source, "message": event.message, "event_id": event.event_id,
                });
                writeln!(out, "{line}")
            }
            OutputFormat::Csv => {
                let mut writer = csv::Writer::from_writer(out);
                if !self.csv_header_written {
                    writer.write_record(["time", "instance_id", "log_group", "message"])?;
                    self.csv_header_written = true;
                }
                writer.write_record([time.as_str(), &event.log_stream, &event.log_group, &event.message])?;
                writer.flush()
            }
            OutputFormat::Table => {
                let message = event.message.trim_end_matches('\n');
                if self.colour {
                    let next = self.colours.len();
                    let colour = PALETTE[*self.colours.entry(event.log_stream.clone()).or_insert(next) % PALETTE.len()];
                    writeln!(out, "{time} \x1b[{colour}m{}\x1b[0m {source}: {message}", event.log_stream)
                } else {
                    writeln!(out, "{time} {} {source}: {message}", event.log_stream)
                }
            }
        }
    }
}

impl Fleet {
    /// The records of the instances `request` names; an error when none has log groups.
    async fn log_records(&self, request: &LogsRequest) -> Result<Vec<EnrollmentRecord>> {
        let ids: Vec<String> = match (&request.tag, request.instances.is_empty()) {
            (Some(_), false) => bail!("give instance IDs or --tag, not both"),
            (Some((key, value)), true) => {
                fleetlog_aws::ec2::list_tagged(&self.clients.ec2, key, value).await?.into_iter().map(|i| i.id).collect()
            }
            (None, false) => checked_ids(&request.instances)?,
            (None, true) => return Ok(self.store.list_active().await?),
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.store.get_many(&ids).await?.into_values().collect())
    }

    /// Every matching line from `start_ms` on, in time order.
    async fn read_lines(
        &self,
        targets: &BTreeMap<String, Vec<String>>,
        start_ms: i64,
        filter: Option<&str>,
    ) -> Result<Vec<LogEvent>> {
        let read: Vec<Result<Vec<LogEvent>, fleetlog_aws::AwsError>> = futures::stream::iter(targets)
            .map(|(group, streams)| filter_events(&self.clients.logs, group, streams, start_ms, filter))
            .buffer_unordered(CONCURRENT_GROUPS)
            .collect()
            .await;
        let mut events = Vec::new();
        for result in read {
            events.extend(result?);
        }
        Ok(interleave(events))
    }

    async fn log_targets(&self, request: &LogsRequest) -> Result<BTreeMap<String, Vec<String>>> {
        let records = self.log_records(request).await?;
        let targets = log_targets(&records, request.source.as_deref());
        if targets.is_empty() {
            let which = request.source.as_deref().map_or(String::new(), |s| format!(" for source {s}"));
            bail!("no log groups{which}: the instances are not enrolled (`fleetlog status` says why)");
        }
        Ok(targets)
    }

    /// `logs`: the lines since `request.since`, written to `out`; returns how many.
    pub async fn logs(&self, request: &LogsRequest, writer: &mut LineWriter, out: &mut dyn Write) -> Result<usize> {
        let targets = self.log_targets(request).await?;
        let start = chrono::Utc::now().timestamp_millis() - millis(request.since);
        let events = self.read_lines(&targets, start, request.filter.as_deref()).await?;
        for event in &events {
            writer.write(event, out)?;
        }
        Ok(events.len())
    }

    /// `logs --follow`: the lines since `request.since`, then new ones as they come, until `stop`
    /// completes (Ctrl-C for the command). Returns how many were written.
    pub async fn follow_logs(
        &self,
        request: &LogsRequest,
        writer: &mut LineWriter,
        out: &mut dyn Write,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<usize> {
        let targets = self.log_targets(request).await?;
        let mut from = chrono::Utc::now().timestamp_millis() - millis(request.since);
        // Ids already written, of lines recent enough to be read again.
        let mut seen: BTreeMap<i64, HashSet<String>> = BTreeMap::new();
        let mut written = 0;
        tokio::pin!(stop);
        loop {
            for event in self.read_lines(&targets, from, request.filter.as_deref()).await? {
                if seen.entry(event.timestamp).or_default().insert(event.event_id.clone()) {
                    writer.write(&event, out)?;
                    written += 1;
                }
            }
            out.flush()?;
            if let Some(newest) = seen.keys().next_back().copied() {
                from = from.max(newest - FOLLOW_OVERLAP_MS);
                seen = seen.split_off(&from);
            }
            tokio::select! {
                () = &mut stop => return Ok(written),
                () = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetlog_core::record::EnrollmentStatus;

    fn record(id: &str, groups: &[&str]) -> EnrollmentRecord {
        EnrollmentRecord {
            instance_id: id.into(),
            log_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..EnrollmentRecord::sample(EnrollmentStatus::Enrolled)
        }
    }

    fn event(group: &str, stream: &str, timestamp: i64, id: &str) -> LogEvent {
        LogEvent {
            log_group: group.into(),
            log_stream: stream.into(),
            timestamp,
            message: format!("line {id}\n"),
            event_id: id.into(),
        }
    }

    #[test]
    fn each_instance_is_read_in_its_own_groups_and_a_source_narrows_them() {
        let records = [record("i-1", &["p/system", "p/security"]), record("i-2", &["p/system"])];
        let all = log_targets(&records, None);
        assert_eq!(all["p/system"], ["i-1", "i-2"]);
        assert_eq!(all["p/security"], ["i-1"]);
        let security = log_targets(&records, Some("security"));
        assert_eq!(security.keys().collect::<Vec<_>>(), ["p/security"]);
        assert!(log_targets(&records, Some("sys")).is_empty(), "the whole last segment, not a prefix");
    }

    #[test]
    fn lines_of_several_groups_come_out_in_time_order() {
        let merged =
            interleave(vec![event("b", "i-2", 30, "3"), event("a", "i-1", 10, "1"), event("b", "i-1", 20, "2")]);
        assert_eq!(merged.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["1", "2", "3"]);
    }

    #[test]
    fn since_takes_a_number_and_a_unit() {
        assert_eq!(parse_since("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_since("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_since("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_since("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_since("1w").unwrap_err().contains("unit"));
        assert!(parse_since("h").unwrap_err().contains("number"));
    }

    #[test]
    fn lines_are_written_for_people_in_colour_or_plain_and_as_json() {
        let line = event("CCP-logs-a/system", "i-1", 1_764_658_800_000, "7");
        let mut plain = Vec::new();
        LineWriter::new(OutputFormat::Table, false).write(&line, &mut plain).unwrap();
        assert_eq!(String::from_utf8(plain).unwrap(), "2025-12-02T07:00:00.000Z i-1 system: line 7\n");
        let mut coloured = Vec::new();
        LineWriter::new(OutputFormat::Table, true).write(&line, &mut coloured).unwrap();
        assert!(String::from_utf8(coloured).unwrap().contains("\x1b[36mi-1\x1b[0m"));
        let mut json = Vec::new();
        LineWriter::new(OutputFormat::Json, false).write(&line, &mut json).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["instance_id"], "i-1");
        assert_eq!(value["source"], "system");
        assert_eq!(value["message"], "line 7\n");
    }
}
