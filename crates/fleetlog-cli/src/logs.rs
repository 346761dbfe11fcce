//! `fleetlog logs`: tail and grep the fleet's log lines in CloudWatch Logs, where developers keep
//! reading them (FilterLogEvents over each instance's stream in each of its log groups), interleaved
//! in time order; `--follow` by Live Tail sessions, or by polling where the endpoint has none.
//!
//! Which groups and streams: the enrollment records name each instance's log groups, and the agent
//! names an instance's stream after the instance.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Result, bail};
use fleetlog_aws::logs::{LiveTail, LiveTailUpdate, LogEvent, MAX_LIVE_TAIL_STREAMS, filter_events, start_live_tail};
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
/// How often `--follow` asks for new lines when it polls.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);
/// Live Tail sessions one `--follow` opens at most; a fleet that needs more is polled.
const MAX_LIVE_TAIL_SESSIONS: usize = 10;
/// When a Live Tail session ends (after three hours), lines from this long before are read, so none
/// is lost between the sessions.
const CATCH_UP_MS: i64 = 60_000;
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
    /// What the command said about itself (how it follows, what it missed); also on stderr for
    /// [`LineWriter::for_stdout`].
    notices: Vec<String>,
    notices_to_stderr: bool,
}

const PALETTE: [&str; 6] = ["36", "33", "35", "32", "34", "31"];

impl LineWriter {
    pub fn new(format: OutputFormat, colour: bool) -> Self {
        Self {
            format,
            colour,
            colours: BTreeMap::new(),
            csv_header_written: false,
            notices: Vec::new(),
            notices_to_stderr: false,
        }
    }

    /// For stdout: coloured when it is a terminal and `NO_COLOR` is not set.
    pub fn for_stdout(format: OutputFormat) -> Self {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { notices_to_stderr: true, ..Self::new(format, colour) }
    }

    /// Says something about the command, not a log line: on stderr, so scripts reading stdout see
    /// only lines.
    pub fn notice(&mut self, text: &str) {
        if self.notices_to_stderr {
            eprintln!("{text}");
        }
        self.notices.push(text.to_owned());
    }

    pub fn notices(&self) -> &[String] {
        &self.notices
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
    /// completes (Ctrl-C for the command). New lines come from Live Tail sessions where the endpoint
    /// serves them (one a group, [`MAX_LIVE_TAIL_STREAMS`] streams each), else by polling
    /// FilterLogEvents; [`LineWriter::notice`] says which. Returns how many lines were written.
    pub async fn follow_logs(
        &self,
        request: &LogsRequest,
        writer: &mut LineWriter,
        out: &mut dyn Write,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<usize> {
        let targets = self.log_targets(request).await?;
        let filter = request.filter.as_deref();
        let since = chrono::Utc::now().timestamp_millis() - millis(request.since);
        let mut follow = Follow { written: Written::default(), count: 0, writer, out };
        tokio::pin!(stop);
        let sessions = live_tail_sessions(&targets);
        if sessions.len() > MAX_LIVE_TAIL_SESSIONS {
            follow.writer.notice(&format!(
                "{} Live Tail sessions would be needed (at most {MAX_LIVE_TAIL_SESSIONS}): polling every {}s instead",
                sessions.len(),
                FOLLOW_EVERY.as_secs()
            ));
            return self.poll(&targets, since, filter, &mut follow, stop).await;
        }
        let mut tails = tokio::task::JoinSet::new();
        let (updates, mut received) = tokio::sync::mpsc::channel(sessions.len());
        // Each session starts before the first read, so no line falls between the two.
        let started = futures::future::try_join_all(
            sessions.iter().map(|(group, streams)| start_live_tail(&self.clients.logs, group, streams, filter)),
        )
        .await;
        match started {
            Ok(started) => {
                for (index, tail) in started.into_iter().enumerate() {
                    tails.spawn(pump(index, tail, updates.clone()));
                }
            }
            Err(e) => {
                follow
                    .writer
                    .notice(&format!("Live Tail is not available ({e}): polling every {}s", FOLLOW_EVERY.as_secs()));
                return self.poll(&targets, since, filter, &mut follow, stop).await;
            }
        }
        follow.read(self.read_lines(&targets, since, filter).await?)?;
        let mut sampling_said = false;
        loop {
            let (index, update) = tokio::select! {
                () = &mut stop => return Ok(follow.count),
                Some(next) = received.recv() => next,
            };
            let (group, streams) = &sessions[index];
            match update {
                LiveTailUpdate::Lines { events, sampled } => {
                    follow.written.forget_before(chrono::Utc::now().timestamp_millis() - 2 * CATCH_UP_MS);
                    if sampled && !sampling_said {
                        follow.writer.notice(
                            "Live Tail is sampling (more than 500 lines a second match): narrow with --filter or --source",
                        );
                        sampling_said = true;
                    }
                    follow.live(interleave(events))?;
                }
                LiveTailUpdate::Ended(why) => {
                    let now = chrono::Utc::now().timestamp_millis();
                    follow.written.forget_before(now - 2 * CATCH_UP_MS);
                    match start_live_tail(&self.clients.logs, group, streams, filter).await {
                        Ok(tail) => {
                            follow
                                .writer
                                .notice(&format!("Live Tail session on {group} ended ({why}): started another"));
                            tails.spawn(pump(index, tail, updates.clone()));
                            let one = BTreeMap::from([(group.clone(), streams.clone())]);
                            follow.read(self.read_lines(&one, now - CATCH_UP_MS, filter).await?)?;
                        }
                        Err(e) => {
                            follow.writer.notice(&format!(
                                "Live Tail session on {group} ended ({why}) and cannot start again ({e}): polling every {}s",
                                FOLLOW_EVERY.as_secs()
                            ));
                            tails.abort_all();
                            return self.poll(&targets, now - CATCH_UP_MS, filter, &mut follow, stop).await;
                        }
                    }
                }
            }
        }
    }

    /// Follows by reading every [`FOLLOW_EVERY`], from `from` on, until `stop`.
    async fn poll(
        &self,
        targets: &BTreeMap<String, Vec<String>>,
        mut from: i64,
        filter: Option<&str>,
        follow: &mut Follow<'_>,
        mut stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<usize> {
        loop {
            if let Some(newest) = follow.read(self.read_lines(targets, from, filter).await?)? {
                from = from.max(newest - FOLLOW_OVERLAP_MS);
                follow.written.forget_before(from);
            }
            tokio::select! {
                () = &mut stop => return Ok(follow.count),
                () = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
        }
    }
}

/// The Live Tail sessions that follow `targets`: one for each group and [`MAX_LIVE_TAIL_STREAMS`] of
/// its streams (a session names streams only when it tails one group).
pub fn live_tail_sessions(targets: &BTreeMap<String, Vec<String>>) -> Vec<(String, Vec<String>)> {
    targets
        .iter()
        .flat_map(|(group, streams)| streams.chunks(MAX_LIVE_TAIL_STREAMS).map(|chunk| (group.clone(), chunk.to_vec())))
        .collect()
}

/// Hands a session's updates to the follower until the session ends or nobody listens.
async fn pump(index: usize, mut tail: LiveTail, updates: tokio::sync::mpsc::Sender<(usize, LiveTailUpdate)>) {
    loop {
        let update = tail.next().await;
        let ended = matches!(update, LiveTailUpdate::Ended(_));
        if updates.send((index, update)).await.is_err() || ended {
            return;
        }
    }
}

/// A `--follow` in progress: what it has written, and where.
struct Follow<'a> {
    written: Written,
    count: usize,
    writer: &'a mut LineWriter,
    out: &'a mut dyn Write,
}

impl Follow<'_> {
    /// Writes what a read found that is not written yet; returns the newest line's time.
    fn read(&mut self, events: Vec<LogEvent>) -> Result<Option<i64>> {
        let newest = events.iter().map(|e| e.timestamp).max();
        for event in self.written.read(events) {
            self.writer.write(&event, self.out)?;
            self.count += 1;
        }
        self.out.flush()?;
        Ok(newest)
    }

    /// Writes the lines a session pushed that no read wrote already.
    fn live(&mut self, events: Vec<LogEvent>) -> Result<()> {
        for event in events {
            if self.written.live(&event) {
                self.writer.write(&event, self.out)?;
                self.count += 1;
            }
        }
        Ok(self.out.flush()?)
    }
}

/// Which lines `--follow` has written, so each is written once whether a read (FilterLogEvents), a
/// session's push (Live Tail) or both brought it. A line is its time, group, stream and message; the
/// same line twice in one millisecond is written twice.
#[derive(Debug, Default)]
pub struct Written {
    /// Event time → line → how often it was written, and how many of those a session has not pushed.
    by_time: BTreeMap<i64, HashMap<u64, Copies>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Copies {
    written: u32,
    not_pushed: u32,
}

impl Written {
    /// The lines of a read (every matching line of its streams from some time on, remembered
    /// here) that were not written yet, in the read's order.
    pub fn read(&mut self, events: Vec<LogEvent>) -> Vec<LogEvent> {
        let mut in_read: HashMap<(i64, u64), u32> = HashMap::new();
        events
            .into_iter()
            .filter(|event| {
                let key = line_key(event);
                let seen = in_read.entry((event.timestamp, key)).or_default();
                *seen += 1;
                let copies = self.by_time.entry(event.timestamp).or_default().entry(key).or_default();
                let new = *seen > copies.written;
                if new {
                    copies.written += 1;
                    copies.not_pushed += 1;
                }
                new
            })
            .collect()
    }

    /// Whether a line a session pushed is new (a read has not written it).
    pub fn live(&mut self, event: &LogEvent) -> bool {
        let copies = self.by_time.entry(event.timestamp).or_default().entry(line_key(event)).or_default();
        if copies.not_pushed > 0 {
            copies.not_pushed -= 1;
            false
        } else {
            copies.written += 1;
            true
        }
    }

    /// Forgets lines older than `ms`: reads from then on only.
    pub fn forget_before(&mut self, ms: i64) {
        self.by_time = self.by_time.split_off(&ms);
    }
}

fn line_key(event: &LogEvent) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&event.log_group, &event.log_stream, &event.message).hash(&mut hasher);
    hasher.finish()
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
            event_id: Some(id.into()),
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
        assert_eq!(
            merged.iter().map(|e| e.event_id.as_deref().unwrap_or_default()).collect::<Vec<_>>(),
            ["1", "2", "3"]
        );
    }

    fn pushed(group: &str, stream: &str, timestamp: i64, message: &str) -> LogEvent {
        LogEvent { event_id: None, message: message.into(), ..event(group, stream, timestamp, "") }
    }

    #[test]
    fn each_line_is_written_once_whether_a_read_a_push_or_both_brought_it() {
        let mut written = Written::default();
        let read = vec![event("g", "i-1", 10, "a"), event("g", "i-1", 20, "b")];
        assert_eq!(written.read(read.clone()).len(), 2);
        assert!(written.read(read.clone()).is_empty(), "a read again writes nothing");
        // The session pushes one line the read wrote, and one it did not.
        assert!(!written.live(&pushed("g", "i-1", 20, "line b\n")));
        assert!(written.live(&pushed("g", "i-1", 30, "line c\n")));
        // A catch-up read after the session sees all three: nothing new.
        let caught_up = [read, vec![event("g", "i-1", 30, "c")]].concat();
        assert!(written.read(caught_up).is_empty());
        // Pushed before a read finds it: the read does not write it again.
        assert!(written.live(&pushed("g", "i-2", 40, "line d\n")));
        assert!(written.read(vec![event("g", "i-2", 40, "d")]).is_empty());
    }

    #[test]
    fn the_same_line_twice_in_one_millisecond_is_written_twice() {
        let mut written = Written::default();
        let twice = vec![event("g", "i-1", 10, "tick"), event("g", "i-1", 10, "tick")];
        assert_eq!(written.read(twice.clone()).len(), 2);
        let thrice = [twice, vec![event("g", "i-1", 10, "tick")]].concat();
        assert_eq!(written.read(thrice).len(), 1, "the third copy only");
        assert!(!written.live(&pushed("g", "i-1", 10, "line tick\n")));
        assert!(written.live(&pushed("g", "i-1", 10, "line tock\n")), "another message is another line");
        assert!(written.live(&pushed("g", "i-2", 10, "line tick\n")), "another stream is another line");
    }

    #[test]
    fn forgotten_lines_are_written_again_by_a_read_that_reaches_back_to_them() {
        let mut written = Written::default();
        written.read(vec![event("g", "i-1", 10, "old"), event("g", "i-1", 50, "new")]);
        written.forget_before(50);
        let again = written.read(vec![event("g", "i-1", 10, "old"), event("g", "i-1", 50, "new")]);
        assert_eq!(again.iter().map(|e| e.timestamp).collect::<Vec<_>>(), [10], "reads start at the horizon");
    }

    #[test]
    fn live_tail_takes_a_session_per_group_and_hundred_streams() {
        let many: Vec<String> = (0..150).map(|n| format!("i-{n:08x}")).collect();
        let targets = BTreeMap::from([("a".to_owned(), many.clone()), ("b".to_owned(), vec!["i-1".to_owned()])]);
        let sessions = live_tail_sessions(&targets);
        let shape: Vec<(&str, usize)> = sessions.iter().map(|(g, s)| (g.as_str(), s.len())).collect();
        assert_eq!(shape, [("a", 100), ("a", 50), ("b", 1)]);
        assert_eq!(sessions[1].1[0], many[100]);
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
