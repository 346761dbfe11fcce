//! Live access-log analytics without a stream processor: access requests folded into per-minute
//! aggregates per (application, status class) and written as CloudWatch Embedded Metric Format
//! lines timed by the requests' own minute. CloudWatch sums the lines of every batch and every Lambda
//! container into one data point per minute and dimension set, so a 300-second period of these
//! metrics is a five-minute tumbling window of event time.
//!
//! Limits respected (the EMF specification; see the ETL README's "Live analytics"):
//! - a value array holds at most [`MAX_VALUES`] entries: a latency distribution with more distinct
//!   values is written over several lines (CloudWatch adds them up);
//! - a directive declares at most 100 metrics and a dimension set at most 30 dimensions: these lines
//!   declare at most three metrics in two sets of at most two, and [`Metric::ServerErrorRatio`] in a
//!   second directive of one set;
//! - a line is a log event of at most 256 KB: a line holds at most [`MAX_VALUES`] values, far less;
//! - CloudWatch takes data points up to two weeks old and two hours ahead: requests timed outside
//!   that are counted in [`Windows::outside`] and left out of the lines.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// Requests per client address or path. The keys live in one buffer and the table holds their
/// spans, so a new key allocates nothing of its own and is hashed once. Senders choose the keys: a
/// seeded fast hash (foldhash, as hashbrown's default), where SipHash would cost more than the
/// counting.
#[derive(Debug, Clone, Default)]
struct Counts {
    keys: String,
    table: hashbrown::HashTable<Count>,
    hasher: foldhash::fast::RandomState,
}

#[derive(Debug, Clone, Copy)]
struct Count {
    start: usize,
    end: usize,
    n: u64,
    /// Kept: growing the table rehashes every key, which would read them all again.
    hash: u64,
}

impl Counts {
    fn add(&mut self, key: &str, n: u64) {
        let hash = self.hasher.hash_one(key);
        let keys = &self.keys;
        if let Some(count) = self.table.find_mut(hash, |c| &keys[c.start..c.end] == key) {
            count.n += n;
            return;
        }
        let start = self.keys.len();
        self.keys.push_str(key);
        self.table.insert_unique(hash, Count { start, end: self.keys.len(), n, hash }, |c| c.hash);
    }

    fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.table.iter().map(|c| (&self.keys[c.start..c.end], c.n))
    }

    fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

impl PartialEq for Counts {
    fn eq(&self, other: &Self) -> bool {
        self.table.len() == other.table.len() && {
            let theirs: BTreeMap<&str, u64> = other.iter().collect();
            self.iter().all(|(key, n)| theirs.get(key) == Some(&n))
        }
    }
}

/// The namespace of the access metrics.
pub const NAMESPACE: &str = "fleetlog/access";
/// Aggregates are per minute of event time: the finest period a standard-resolution metric has.
pub const WINDOW_MS: i64 = 60_000;
/// What the alarms and the dashboard read: five one-minute windows.
pub const PERIOD_SECONDS: u32 = 300;
/// The application of a source no tag and no reference entry names: one value, so the metrics'
/// cardinality stays bounded by the applications users name.
pub const UNKNOWN: &str = "unknown";
/// The most entries of one EMF value array.
pub const MAX_VALUES: usize = 100;
/// The longest dimension value CloudWatch takes.
pub const MAX_DIMENSION_VALUE: usize = 1024;
/// How old a data point CloudWatch still takes.
const OLDEST_MS: i64 = 14 * 24 * 3600 * 1000;
/// How far ahead of now a data point may be.
const NEWEST_MS: i64 = 2 * 3600 * 1000;

/// The dimension names.
pub const APPLICATION: &str = "Application";
pub const STATUS_CLASS: &str = "StatusClass";

/// The metrics each line declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Requests answered.
    Requests,
    /// Response bytes.
    Bytes,
    /// The distribution of the request latency the format carries (milliseconds).
    Latency,
    /// 1 for each request answered 5xx, 0 for every other: its average over a period is the
    /// application's 5xx ratio (a value per request, written as one value with its count). Per
    /// application only: per status class it would be constant.
    ServerErrorRatio,
}

impl Metric {
    pub const ALL: [Metric; 4] = [Metric::Requests, Metric::Bytes, Metric::Latency, Metric::ServerErrorRatio];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Requests => "Requests",
            Metric::Bytes => "Bytes",
            Metric::Latency => "Latency",
            Metric::ServerErrorRatio => "ServerErrorRatio",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::Requests => "Count",
            Metric::Bytes => "Bytes",
            Metric::Latency => "Milliseconds",
            Metric::ServerErrorRatio => "None",
        }
    }
}

/// An HTTP status's class: a dimension of few values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusClass {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
    /// No status, or one outside 100–599.
    Other,
}

impl StatusClass {
    pub const ALL: [StatusClass; 6] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Other,
    ];

    pub fn of(status: Option<u16>) -> Self {
        match status {
            Some(100..=199) => StatusClass::Informational,
            Some(200..=299) => StatusClass::Success,
            Some(300..=399) => StatusClass::Redirection,
            Some(400..=499) => StatusClass::ClientError,
            Some(500..=599) => StatusClass::ServerError,
            _ => StatusClass::Other,
        }
    }

    /// The `StatusClass` dimension's value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Other => "other",
        }
    }
}

/// One request, as an access record says it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Request<'a> {
    /// Event time, epoch milliseconds.
    pub timestamp_ms: i64,
    pub status: Option<u16>,
    pub bytes: Option<u64>,
    /// Milliseconds, when the format carries a latency.
    pub latency_ms: Option<f64>,
    /// Who asked (the client address as the line spells it).
    pub client_ip: Option<&'a str>,
    /// What was asked for (the query string is left out of contributors).
    pub path: Option<&'a str>,
}

/// The start of the minute `timestamp_ms` falls in (before 1970 too).
pub fn window_start(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(WINDOW_MS) * WINDOW_MS
}

/// What one (minute, application, status class) adds up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub requests: u64,
    pub bytes: u64,
    /// Latency in microseconds, rounded to two significant digits (CloudWatch's own percentiles are
    /// approximate to a few per cent), and how many requests took it.
    pub latency_us: BTreeMap<u64, u64>,
}

impl Totals {
    fn add(&mut self, request: &Request) {
        self.requests += 1;
        self.bytes += request.bytes.unwrap_or(0);
        if let Some(ms) = request.latency_ms.filter(|ms| ms.is_finite() && *ms >= 0.0) {
            *self.latency_us.entry(two_digits(ms * 1000.0)).or_default() += 1;
        }
    }

    fn merge(&mut self, other: &Totals) {
        self.requests += other.requests;
        self.bytes += other.bytes;
        for (value, count) in &other.latency_us {
            *self.latency_us.entry(*value).or_default() += count;
        }
    }
}

/// `value` rounded to two significant digits, as an integer.
fn two_digits(value: f64) -> u64 {
    // A float's integer part: saturating, and latencies are far below 2^53.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let mut n = value.round() as u64;
    let mut scale = 1;
    while n >= 100 {
        // Round half up on the digit dropped.
        n = (n + 5) / 10;
        scale *= 10;
    }
    n * scale
}

/// What one application's requests add up to: its windows and who asked most.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceWindows {
    windows: BTreeMap<(i64, StatusClass), Totals>,
    /// Requests per client address and per path.
    clients: Counts,
    paths: Counts,
}

impl SourceWindows {
    pub fn add(&mut self, request: &Request<'_>) {
        self.windows.entry(window_key(request)).or_default().add(request);
        if let Some(ip) = request.client_ip {
            self.clients.add(ip, 1);
        }
        if let Some(path) = request.path {
            self.paths.add(contributor_path(path), 1);
        }
    }

    /// Adds the requests `pending` holds.
    pub fn add_pending(&mut self, pending: &PendingRequests) {
        for held in &pending.requests {
            self.add(&held.request(&pending.text));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Adds `other`'s requests (moved whole into an empty one).
    fn absorb(&mut self, other: SourceWindows) {
        if self.windows.is_empty() && self.clients.is_empty() && self.paths.is_empty() {
            *self = other;
            return;
        }
        for (key, totals) in other.windows {
            self.windows.entry(key).or_default().merge(&totals);
        }
        for (mine, theirs) in [(&mut self.clients, &other.clients), (&mut self.paths, &other.paths)] {
            for (key, n) in theirs.iter() {
                mine.add(key, n);
            }
        }
    }
}

fn window_key(request: &Request<'_>) -> (i64, StatusClass) {
    (window_start(request.timestamp_ms), StatusClass::of(request.status))
}

/// A path as contributors name it: without its query string.
fn contributor_path(path: &str) -> &str {
    // A byte loop: paths are short, and a searcher's set-up costs more than the search.
    match path.bytes().position(|b| b == b'?') {
        Some(query) => &path[..query],
        None => path,
    }
}

/// The requests of one record, held until the record is answered (a record handed back is counted
/// when it comes back): their strings copied into one buffer kept from record to record, so holding
/// a request allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct PendingRequests {
    text: String,
    requests: Vec<HeldRequest>,
}

/// A request whose strings are spans of [`PendingRequests::text`].
#[derive(Debug, Clone, Copy)]
struct HeldRequest {
    timestamp_ms: i64,
    status: Option<u16>,
    bytes: Option<u64>,
    latency_ms: Option<f64>,
    client_ip: Option<(usize, usize)>,
    path: Option<(usize, usize)>,
}

impl HeldRequest {
    fn request<'t>(&self, text: &'t str) -> Request<'t> {
        let span = |span: Option<(usize, usize)>| span.and_then(|(start, end)| text.get(start..end));
        Request {
            timestamp_ms: self.timestamp_ms,
            status: self.status,
            bytes: self.bytes,
            latency_ms: self.latency_ms,
            client_ip: span(self.client_ip),
            path: span(self.path),
        }
    }
}

impl PendingRequests {
    pub fn push(&mut self, request: &Request<'_>) {
        let mut hold = |value: Option<&str>| {
            value.map(|value| {
                let start = self.text.len();
                self.text.push_str(value);
                (start, self.text.len())
            })
        };
        let client_ip = hold(request.client_ip);
        let path = hold(request.path);
        self.requests.push(HeldRequest {
            timestamp_ms: request.timestamp_ms,
            status: request.status,
            bytes: request.bytes,
            latency_ms: request.latency_ms,
            client_ip,
            path,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Forgets the requests, keeping the room for the next record's.
    pub fn clear(&mut self) {
        self.text.clear();
        self.requests.clear();
    }
}

/// Aggregates of one batch (or more, merged), per application, minute and status class; and who
/// asked most of each application.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Windows {
    by_application: HashMap<String, SourceWindows>,
    /// Requests timed outside what CloudWatch takes (see the module's limits), left out of the lines.
    pub outside: u64,
}

/// The most clients and the most paths of each application one batch writes a contributor line for.
/// Contributor Insights ranks across all lines; a source that floods an application is among any
/// batch's heaviest.
pub const TOP_CONTRIBUTORS: usize = 10;
/// Contributor lines carry this member, which the Contributor Insights rules filter on.
pub const CONTRIBUTOR_MARK: &str = "fleetlog_contributor";

/// A contributor line (see [`Windows::contributor_lines`]).
#[derive(Debug, serde::Serialize)]
struct ContributorLine<'a> {
    #[serde(rename = "fleetlog_contributor")]
    kind: &'static str,
    #[serde(rename = "Application")]
    application: &'a str,
    #[serde(rename = "ClientIp", skip_serializing_if = "Option::is_none")]
    client_ip: Option<&'a str>,
    #[serde(rename = "ClientApplication", skip_serializing_if = "Option::is_none")]
    client_application: Option<&'a str>,
    #[serde(rename = "Path", skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(rename = "Requests")]
    requests: u64,
}

impl Windows {
    /// Adds `requests`, all of `application` (empty: [`UNKNOWN`]).
    pub fn add(&mut self, application: &str, requests: &[Request<'_>]) {
        let source = self.of(application);
        for request in requests {
            source.add(request);
        }
    }

    /// The windows of `application` (empty: [`UNKNOWN`]), to add its requests to as they are read.
    pub fn of(&mut self, application: &str) -> &mut SourceWindows {
        // Called once per record, not per request: the key's copy is cheap there.
        self.by_application.entry(dimension_value(application).to_owned()).or_default()
    }

    /// Adds what one source read apart added up to (a log object, once delivered), all of
    /// `application` (empty: [`UNKNOWN`]).
    pub fn absorb(&mut self, application: &str, source: SourceWindows) {
        self.of(application).absorb(source);
    }

    pub fn merge(&mut self, other: Windows) {
        for (application, source) in other.by_application {
            self.absorb(&application, source);
        }
        self.outside += other.outside;
    }

    pub fn is_empty(&self) -> bool {
        self.by_application.values().all(SourceWindows::is_empty)
    }

    /// Every request added, all windows.
    pub fn requests(&self) -> u64 {
        self.by_application.values().flat_map(|s| s.windows.values()).map(|t| t.requests).sum()
    }

    /// The totals of one window, for tests and the local runner.
    pub fn totals(&self, application: &str, minute_ms: i64, class: StatusClass) -> Option<&Totals> {
        self.by_application.get(application)?.windows.get(&(minute_ms, class))
    }

    /// One line per heavy client and per heavy path of each application (at most
    /// [`TOP_CONTRIBUTORS`] each, heaviest first, ties by name): `{"fleetlog_contributor": "client",
    /// "Application", "ClientIp", "ClientApplication", "Requests"}` or `{… "path", "Application",
    /// "Path", "Requests"}`. `caller` names the application of a client address (`None`: unknown).
    pub fn contributor_lines<'r>(&self, caller: impl Fn(&str) -> Option<&'r str>) -> Vec<String> {
        let mut applications: Vec<&String> = self.by_application.keys().collect();
        applications.sort();
        let mut lines = Vec::new();
        for application in applications {
            let source = &self.by_application[application];
            let line = |kind, client_ip, client_application, path, requests| {
                let line = ContributorLine { kind, application, client_ip, client_application, path, requests };
                serde_json::to_string(&line).unwrap_or_default()
            };
            for (ip, requests) in heaviest(&source.clients) {
                lines.push(line("client", Some(ip), Some(caller(ip).unwrap_or(UNKNOWN)), None, requests));
            }
            for (path, requests) in heaviest(&source.paths) {
                lines.push(line("path", None, None, Some(path), requests));
            }
        }
        lines
    }

    /// The EMF lines of these aggregates, as of `now_ms`: one per (application, minute, status
    /// class), more where a latency distribution holds over [`MAX_VALUES`] values. Windows CloudWatch
    /// would refuse are counted into [`Self::outside`] instead.
    pub fn emf_lines(&mut self, now_ms: i64) -> Vec<String> {
        let mut lines = Vec::new();
        let mut applications: Vec<&String> = self.by_application.keys().collect();
        applications.sort();
        let mut outside = 0;
        for application in applications {
            for (&(minute, class), totals) in &self.by_application[application].windows {
                if minute + WINDOW_MS <= now_ms - OLDEST_MS || minute > now_ms + NEWEST_MS {
                    outside += totals.requests;
                    continue;
                }
                lines.extend(window_lines(application, minute, class, totals));
            }
        }
        self.outside += outside;
        lines
    }
}

/// The [`TOP_CONTRIBUTORS`] largest counts, largest first, ties by key: one pass that keeps the
/// heaviest so far, most keys failing a single comparison with the lightest of them.
fn heaviest(counts: &Counts) -> Vec<(&str, u64)> {
    let heavier = |a: &(&str, u64), b: &(&str, u64)| b.1.cmp(&a.1).then(a.0.cmp(b.0)).is_lt();
    let mut top: Vec<(&str, u64)> = Vec::with_capacity(TOP_CONTRIBUTORS + 1);
    for entry in counts.iter() {
        if top.len() == TOP_CONTRIBUTORS && !top.last().is_some_and(|lightest| heavier(&entry, lightest)) {
            continue;
        }
        let at = top.partition_point(|kept| heavier(kept, &entry));
        top.insert(at, entry);
        top.truncate(TOP_CONTRIBUTORS);
    }
    top
}

/// A dimension value CloudWatch takes: `UNKNOWN` for none, cut to its limit on a character boundary.
pub fn dimension_value(application: &str) -> &str {
    let trimmed = application.trim();
    if trimmed.is_empty() {
        return UNKNOWN;
    }
    let mut end = trimmed.len().min(MAX_DIMENSION_VALUE);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    &trimmed[..end]
}

/// One EMF line, its members in the order serde_json's maps would write them.
#[derive(Debug, serde::Serialize)]
struct EmfLine<'a> {
    #[serde(rename = "Application")]
    application: &'a str,
    #[serde(rename = "Bytes", skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(rename = "Latency", skip_serializing_if = "Option::is_none")]
    latency: Option<Distribution<f64>>,
    #[serde(rename = "Requests", skip_serializing_if = "Option::is_none")]
    requests: Option<u64>,
    #[serde(rename = "ServerErrorRatio", skip_serializing_if = "Option::is_none")]
    server_error_ratio: Option<Distribution<u8>>,
    #[serde(rename = "StatusClass")]
    status_class: &'static str,
    #[serde(rename = "_aws")]
    aws: Metadata,
}

/// Values, each with how many requests had it.
#[derive(Debug, serde::Serialize)]
struct Distribution<T> {
    #[serde(rename = "Counts")]
    counts: Vec<u64>,
    #[serde(rename = "Values")]
    values: Vec<T>,
}

#[derive(Debug, serde::Serialize)]
struct Metadata {
    #[serde(rename = "CloudWatchMetrics")]
    directives: Vec<Directive>,
    #[serde(rename = "Timestamp")]
    timestamp: i64,
}

#[derive(Debug, serde::Serialize)]
struct Directive {
    #[serde(rename = "Dimensions")]
    dimensions: &'static [&'static [&'static str]],
    #[serde(rename = "Metrics")]
    metrics: Vec<MetricDefinition>,
    #[serde(rename = "Namespace")]
    namespace: &'static str,
}

#[derive(Debug, serde::Serialize)]
struct MetricDefinition {
    #[serde(rename = "Name")]
    name: &'static str,
    #[serde(rename = "Unit")]
    unit: &'static str,
}

impl From<Metric> for MetricDefinition {
    fn from(metric: Metric) -> Self {
        MetricDefinition { name: metric.name(), unit: metric.unit() }
    }
}

/// The lines of one window: the first carries the counts, and each carries up to [`MAX_VALUES`] of
/// the latency distribution.
fn window_lines(application: &str, minute: i64, class: StatusClass, totals: &Totals) -> Vec<String> {
    let latencies: Vec<(&u64, &u64)> = totals.latency_us.iter().collect();
    let chunks: Vec<&[(&u64, &u64)]> =
        if latencies.is_empty() { vec![&[]] } else { latencies.chunks(MAX_VALUES).collect() };
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let first = i == 0;
            let mut metrics: Vec<MetricDefinition> = Vec::new();
            if first {
                metrics.extend([Metric::Requests.into(), Metric::Bytes.into()]);
            }
            // Microseconds to milliseconds: exact in decimal.
            #[allow(clippy::cast_precision_loss)]
            let latency = (!chunk.is_empty()).then(|| Distribution {
                counts: chunk.iter().map(|(_, n)| **n).collect(),
                values: chunk.iter().map(|(us, _)| **us as f64 / 1000.0).collect(),
            });
            if latency.is_some() {
                metrics.push(Metric::Latency.into());
            }
            let mut directives = vec![Directive {
                dimensions: &[&[APPLICATION], &[APPLICATION, STATUS_CLASS]],
                metrics,
                namespace: NAMESPACE,
            }];
            if first {
                directives.push(Directive {
                    dimensions: &[&[APPLICATION]],
                    metrics: vec![Metric::ServerErrorRatio.into()],
                    namespace: NAMESPACE,
                });
            }
            let line = EmfLine {
                application,
                bytes: first.then_some(totals.bytes),
                latency,
                requests: first.then_some(totals.requests),
                server_error_ratio: first.then(|| Distribution {
                    counts: vec![totals.requests],
                    values: vec![u8::from(class == StatusClass::ServerError)],
                }),
                status_class: class.as_str(),
                aws: Metadata { directives, timestamp: minute },
            };
            serde_json::to_string(&line).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 1_764_000_000_000 / WINDOW_MS * WINDOW_MS;

    fn request(timestamp_ms: i64, status: u16) -> Request<'static> {
        Request { timestamp_ms, status: Some(status), bytes: Some(100), ..Request::default() }
    }

    #[test]
    fn requests_fall_in_the_minute_they_happened_across_hour_and_day_boundaries() {
        let hour = 1_764_003_600_000; // 2025-11-24T17:00:00Z, an hour's first millisecond
        assert_eq!(window_start(hour), hour);
        assert_eq!(window_start(hour - 1), hour - WINDOW_MS);
        assert_eq!(window_start(hour + WINDOW_MS - 1), hour);
        assert_eq!(window_start(-1), -WINDOW_MS);
        let midnight = 1_764_028_800_000; // 2025-11-25T00:00:00Z
        let mut windows = Windows::default();
        windows.add("shop", &[request(midnight - 1, 200), request(midnight, 200), request(midnight + 59_999, 200)]);
        assert_eq!(windows.totals("shop", midnight - WINDOW_MS, StatusClass::Success).unwrap().requests, 1);
        assert_eq!(windows.totals("shop", midnight, StatusClass::Success).unwrap().requests, 2);
    }

    #[test]
    fn status_classes_bound_the_status_dimension() {
        let classes: Vec<&str> = [Some(101), Some(204), Some(304), Some(404), Some(503), Some(99), Some(600), None]
            .into_iter()
            .map(|s| StatusClass::of(s).as_str())
            .collect();
        assert_eq!(classes, ["1xx", "2xx", "3xx", "4xx", "5xx", "other", "other", "other"]);
    }

    #[test]
    fn one_golden_line_per_window_with_counts_bytes_and_latency() {
        let mut windows = Windows::default();
        let slow = Request { latency_ms: Some(12.345), ..request(MINUTE + 5, 503) };
        let fast = Request { latency_ms: Some(0.4), bytes: None, ..request(MINUTE + 6, 502) };
        windows.add("shop", &[slow, fast, slow]);
        let lines = windows.emf_lines(MINUTE);
        assert_eq!(
            lines,
            [format!(
                concat!(
                    r#"{{"Application":"shop","Bytes":200,"Latency":{{"Counts":[1,2],"Values":[0.4,12.0]}},"Requests":3,"#,
                    r#""ServerErrorRatio":{{"Counts":[3],"Values":[1]}},"StatusClass":"5xx","#,
                    r#""_aws":{{"CloudWatchMetrics":[{{"Dimensions":[["Application"],["Application","StatusClass"]],"#,
                    r#""Metrics":[{{"Name":"Requests","Unit":"Count"}},{{"Name":"Bytes","Unit":"Bytes"}},{{"Name":"Latency","Unit":"Milliseconds"}}],"#,
                    r#""Namespace":"fleetlog/access"}},"#,
                    r#"{{"Dimensions":[["Application"]],"Metrics":[{{"Name":"ServerErrorRatio","Unit":"None"}}],"Namespace":"fleetlog/access"}}],"#,
                    r#""Timestamp":{}}}}}"#
                ),
                MINUTE
            )]
        );
    }

    #[test]
    fn latency_rounds_to_two_significant_digits() {
        assert_eq!([0.0, 9.4, 99.5, 123.0, 12_345.0, 99_999.0].map(two_digits), [0, 9, 100, 120, 12_000, 100_000]);
    }

    #[test]
    fn a_wide_distribution_is_written_over_lines_of_at_most_a_hundred_values() {
        let mut windows = Windows::default();
        let requests: Vec<Request> =
            (0..250).map(|i| Request { latency_ms: Some(f64::from(i)), ..request(MINUTE, 200) }).collect();
        windows.add("shop", &requests);
        let lines = windows.emf_lines(MINUTE);
        assert_eq!(lines.len(), 2, "116 distinct values after rounding");
        let (mut requests, mut counted) = (0, 0);
        for line in &lines {
            let doc: serde_json::Value = serde_json::from_str(line).unwrap();
            let values = doc["Latency"]["Values"].as_array().unwrap();
            assert!(values.len() <= MAX_VALUES);
            assert_eq!(values.len(), doc["Latency"]["Counts"].as_array().unwrap().len());
            counted += doc["Latency"]["Counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum::<u64>();
            requests += doc["Requests"].as_u64().unwrap_or(0);
            assert!(line.len() <= 256 * 1024);
            for directive in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
                let declared = directive["Metrics"].as_array().unwrap();
                for metric in declared {
                    let value = &doc[metric["Name"].as_str().unwrap()];
                    assert!(!value.is_null(), "a declared metric has a value");
                    if let Some(values) = value.get("Values") {
                        assert!(values.as_array().unwrap().len() <= MAX_VALUES);
                    }
                }
                assert!(declared.len() <= 100);
                let sets = directive["Dimensions"].as_array().unwrap();
                assert!(sets.iter().all(|set| set.as_array().unwrap().len() <= 30));
                for name in sets.iter().flat_map(|set| set.as_array().unwrap()) {
                    assert!(doc[name.as_str().unwrap()].is_string(), "a dimension has its value on the line");
                }
            }
        }
        assert_eq!((requests, counted), (250, 250), "counts once, latencies once");
    }

    #[test]
    fn windows_cloudwatch_would_refuse_are_counted_apart() {
        let now = MINUTE + 10 * WINDOW_MS;
        let mut windows = Windows::default();
        let old = now - OLDEST_MS - WINDOW_MS;
        windows.add("shop", &[request(old, 200), request(now + NEWEST_MS + WINDOW_MS, 200), request(now, 200)]);
        let lines = windows.emf_lines(now);
        assert_eq!((lines.len(), windows.outside), (1, 2));
    }

    #[test]
    fn merged_batches_sum_and_unnamed_sources_are_unknown() {
        let mut a = Windows::default();
        a.add("shop", &[request(MINUTE, 200)]);
        a.add("", &[request(MINUTE, 404)]);
        a.add("  ", &[request(MINUTE, 404)]);
        let mut b = Windows::default();
        b.add("shop", &[request(MINUTE + 1, 200)]);
        a.merge(b);
        assert_eq!(a.totals("shop", MINUTE, StatusClass::Success).unwrap().requests, 2);
        assert_eq!(a.totals(UNKNOWN, MINUTE, StatusClass::ClientError).unwrap().requests, 2);
        assert_eq!(a.requests(), 4);
        let long = "é".repeat(MAX_DIMENSION_VALUE);
        assert!(dimension_value(&long).len() <= MAX_DIMENSION_VALUE);
    }

    #[test]
    fn pending_requests_add_up_as_the_requests_they_hold() {
        let requests = [
            Request {
                client_ip: Some("10.0.0.1"),
                path: Some("/a?x=1"),
                latency_ms: Some(12.0),
                ..request(MINUTE, 200)
            },
            Request { client_ip: None, path: Some("/b"), latency_ms: Some(7.5), ..request(MINUTE + 1, 503) },
            Request { client_ip: Some("10.0.0.2"), path: None, ..request(MINUTE + WINDOW_MS, 404) },
        ];
        let mut direct = Windows::default();
        direct.add("shop", &requests);
        let mut pending = PendingRequests::default();
        // What an earlier record held and was cleared of is gone.
        pending.push(&request(MINUTE, 500));
        pending.clear();
        for request in &requests {
            pending.push(request);
        }
        let mut held = Windows::default();
        held.of("shop").add_pending(&pending);
        assert_eq!(held, direct);
        assert_eq!(held.contributor_lines(|_| None), direct.contributor_lines(|_| None));
    }

    #[test]
    fn contributor_lines_name_the_heaviest_clients_and_paths_of_each_application() {
        let mut windows = Windows::default();
        let asked = |ip, path| Request { client_ip: Some(ip), path: Some(path), ..request(MINUTE, 200) };
        let mut requests: Vec<Request> = (0..3).map(|_| asked("10.1.2.3", "/cart?id=1")).collect();
        requests.push(asked("198.51.100.7", "/cart?id=2"));
        requests.extend(
            (0..20).map(|i| Request { client_ip: Some(["203.0.113.1", "203.0.113.2"][i % 2]), ..request(MINUTE, 200) }),
        );
        windows.add("shop", &requests);
        let lines = windows.contributor_lines(|ip| (ip == "10.1.2.3").then_some("billing"));
        let docs: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(docs.len(), 5, "{lines:?}");
        assert_eq!(
            docs[0],
            serde_json::json!({"fleetlog_contributor": "client", "Application": "shop", "ClientIp": "203.0.113.1", "ClientApplication": "unknown", "Requests": 10})
        );
        assert_eq!(docs[2]["ClientIp"], "10.1.2.3");
        assert_eq!(docs[2]["ClientApplication"], "billing");
        assert_eq!(
            docs[4],
            serde_json::json!({"fleetlog_contributor": "path", "Application": "shop", "Path": "/cart", "Requests": 4})
        );
        let many: Vec<String> = (0..50).map(|i| format!("10.9.0.{i}")).collect();
        let mut wide = Windows::default();
        wide.add(
            "shop",
            &many.iter().map(|ip| Request { client_ip: Some(ip), ..request(MINUTE, 200) }).collect::<Vec<_>>(),
        );
        assert_eq!(wide.contributor_lines(|_| None).len(), TOP_CONTRIBUTORS);
    }

    proptest::proptest! {
        #[test]
        fn the_heaviest_are_the_first_of_all_counts_sorted(counts in proptest::collection::vec((0u8..40, 1u64..6), 0..200)) {
            let mut table = Counts::default();
            for (key, n) in &counts {
                table.add(&format!("k{key}"), *n);
            }
            let mut all: Vec<(&str, u64)> = table.iter().collect();
            all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            all.truncate(TOP_CONTRIBUTORS);
            proptest::prop_assert_eq!(heaviest(&table), all);
        }
    }
}
