//! Records: one per log event (more for a message too large for one), newline-delimited, framed by
//! a [`RecordFormat`]: the seam between what a record says ([`Record`]) and how a destination wants
//! it written, one module per destination:
//!
//! - `table`: [`TableJson`], the Glue table's JSON objects (`fleetlog_core::schema`, documented in
//!   this crate's README) for Firehose → S3 → Athena;
//! - `hec`: [`SplunkHec`], Splunk HTTP Event Collector events for a Firehose stream with a Splunk
//!   destination (Event endpoint).

mod hec;
mod table;

pub use hec::{SplunkHec, sourcetype};
pub use table::TableJson;

/// Which destination's records the ETL writes: its [`RecordFormat`], chosen by the function's
/// settings (`FLEETLOG_RECORD_FORMAT`).
#[derive(Debug, Clone, Default)]
pub enum Destination {
    /// [`TableJson`]: S3, catalogued in Glue, read by Athena and `fleetlog query`.
    #[default]
    Table,
    /// [`SplunkHec`]: a Firehose stream with a Splunk destination.
    Splunk(SplunkHec),
}

impl Destination {
    /// The destination `setting` names; HEC events go into `splunk_index` (`None`: the HEC token's
    /// default index).
    pub fn new(setting: &fleetlog_core::settings::RecordFormatSetting, splunk_index: Option<String>) -> Self {
        match setting {
            fleetlog_core::settings::RecordFormatSetting::Table => Destination::Table,
            fleetlog_core::settings::RecordFormatSetting::SplunkHec => {
                Destination::Splunk(SplunkHec { index: splunk_index })
            }
        }
    }
}

use fleetlog_core::instance::is_instance_id;

use crate::envelope::{Envelope, LogEvent};
use crate::json::{Str, decoded, split_content};
use crate::parse::{Fields, Format, parse_literal};

/// What one envelope's records say beside what the envelope does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The region the ETL runs in.
    pub region: &'a str,
    /// The application of the source (see [`crate::applications`]).
    pub application: &'a str,
}

impl<'a> Origin<'a> {
    /// Records of a source whose application is not known.
    pub fn unknown(region: &'a str) -> Self {
        Origin { region, application: fleetlog_core::traffic::UNKNOWN }
    }
}

/// How large a record may be where it goes (passed in by the caller, who knows the sink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// The most bytes of a record, newline excluded: a longer one is written in parts.
    pub record_bytes: usize,
    /// The most bytes of JSON string content (escapes counted as written) of a message part, small
    /// enough that a part's record fits `record_bytes`.
    pub part_bytes: usize,
}

/// What one record holds, handed to a [`RecordFormat`] to frame.
#[derive(Debug)]
pub struct Record<'r, S> {
    /// The event id, JSON string content as the envelope spells it.
    pub id: Str<'r>,
    /// Epoch milliseconds.
    pub timestamp: i64,
    /// `timestamp` in ISO-8601 UTC with milliseconds (empty beyond chrono's range).
    pub time: &'r [u8],
    /// What [`RecordFormat::shared`] made of the record's envelope.
    pub shared: &'r S,
    pub format: Format,
    /// The message, or one part of it: JSON string content as the envelope spells it.
    pub message: Str<'r>,
    /// Which part of how many, for a message written in parts.
    pub part: Option<(usize, usize)>,
    pub fields: &'r Fields<'r>,
}

impl<S> Clone for Record<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Record<'_, S> {}

/// The shape of a destination's records. Records are written through it by [`write_as`], generic
/// over it so each format's writer is its own monomorphic code.
pub trait RecordFormat {
    /// What every record of one envelope shares, made once per envelope.
    type Shared: std::fmt::Debug;
    /// What every record of `envelope` shares, for [`Record::shared`].
    fn shared(&self, envelope: &Envelope<'_>, origin: &Origin<'_>) -> Self::Shared;
    /// Appends one record, without its newline.
    fn write(&self, out: &mut Vec<u8>, record: &Record<'_, Self::Shared>);
    /// The fewest bytes `event`'s records can take, `shared` being [`Self::shared`] of its envelope.
    /// Admission counts on it: parsed fields and parts may only add to it.
    fn floor(&self, event: &LogEvent<'_>, shared: &Self::Shared) -> usize;
    /// Whether the destination partitions records by account and hour (Firehose dynamic
    /// partitioning into S3): the answer then carries each record's partition keys.
    fn partitioned(&self) -> bool;
}

/// The instance a stream belongs to: the agent names streams `{instance_id}` (optionally followed by
/// `/…`).
pub(crate) fn instance_id_of(stream: &str) -> Option<&str> {
    let candidate = stream.split('/').next().unwrap_or_default();
    is_instance_id(candidate).then_some(candidate)
}

/// The last path segment of the log group (`CCP-logs-…/security` → `security`).
pub(crate) fn source_of(log_group: &str) -> &str {
    log_group.rsplit('/').next().unwrap_or(log_group)
}

/// Appends one [`TableJson`] record per event (more for split messages) to `out`, of a source whose
/// application is not known; returns how many were written.
pub fn write_records(envelope: &Envelope<'_>, region: &str, limits: RecordLimits, out: &mut Vec<u8>) -> usize {
    write_for(&Destination::Table, envelope, &Origin::unknown(region), limits, out, |_, _| {})
}

/// Appends `destination`'s records of each event (more for split messages) to `out`, calling
/// `event_written` as [`write_as`] does; returns how many were written.
pub fn write_for(
    destination: &Destination,
    envelope: &Envelope<'_>,
    origin: &Origin<'_>,
    limits: RecordLimits,
    out: &mut Vec<u8>,
    event_written: impl FnMut(usize, &Event<'_>),
) -> usize {
    match destination {
        Destination::Table => {
            write_as(&TableJson, envelope, &TableJson.shared(envelope, origin), limits, out, event_written)
        }
        Destination::Splunk(hec) => write_as(hec, envelope, &hec.shared(envelope, origin), limits, out, event_written),
    }
}

/// Appends one record per event of `envelope` in `format` (more for messages written in parts) to
/// `out`, `shared` being [`RecordFormat::shared`] of the envelope, calling `event_written` with the
/// length of `out` and the event after each event's records. Returns how many were written.
pub fn write_as<F: RecordFormat>(
    format: &F,
    envelope: &Envelope<'_>,
    shared: &F::Shared,
    limits: RecordLimits,
    out: &mut Vec<u8>,
    mut event_written: impl FnMut(usize, &Event<'_>),
) -> usize {
    let mut written = 0;
    let mut clock = IsoClock::default();
    let mut unescaped = String::new();
    for event in &envelope.log_events {
        let (id, literal) = envelope.record_strings(event);
        let (parsed, fields) = parse_literal(&literal, || decoded(&literal, &mut unescaped));
        let event = Event { id: &id, timestamp: event.timestamp, format: parsed, message: &literal, fields: &fields };
        written += write_event(format, shared, limits, &mut clock, out, &event);
        event_written(out.len(), &event);
    }
    written
}

/// One log event, parsed, for [`write_event`].
#[derive(Debug)]
pub struct Event<'e> {
    /// JSON string content.
    pub id: &'e str,
    /// Epoch milliseconds.
    pub timestamp: i64,
    pub format: Format,
    /// The message: JSON string content.
    pub message: &'e str,
    pub fields: &'e Fields<'e>,
}

impl<'e> Event<'e> {
    /// The request an access line (or a CloudFront log line) records, for the live analytics.
    pub fn request(&self) -> Option<fleetlog_core::traffic::Request<'e>> {
        if !matches!(self.format, Format::Access | Format::CloudFront) {
            return None;
        }
        let fields = self.fields;
        #[allow(clippy::cast_precision_loss)] // milliseconds far below 2^53
        Some(fleetlog_core::traffic::Request {
            timestamp_ms: self.timestamp,
            status: fields.http_status,
            bytes: fields.http_bytes,
            latency_ms: fields.latency_ms.map(|ms| ms as f64),
            client_ip: fields.client_ip.map(Str::as_str),
            path: fields.http_path.map(Str::as_str),
        })
    }
}

/// Records one event at a time, for sources that are no envelope (log objects, read line by line).
#[derive(Debug)]
pub struct EventWriter<F: RecordFormat> {
    format: F,
    shared: F::Shared,
    limits: RecordLimits,
    clock: IsoClock,
}

impl<F: RecordFormat> EventWriter<F> {
    /// Records in `format`, sharing what `source` (an envelope of no events) and `origin` say of them.
    pub fn new(format: F, source: &Envelope<'_>, origin: &Origin<'_>, limits: RecordLimits) -> Self {
        let shared = format.shared(source, origin);
        Self { format, shared, limits, clock: IsoClock::default() }
    }

    /// Appends `event`'s records (more than one for a message too large for one); returns how many.
    pub fn write(&mut self, out: &mut Vec<u8>, event: &Event<'_>) -> usize {
        write_event(&self.format, &self.shared, self.limits, &mut self.clock, out, event)
    }
}

/// Appends `event`'s records, each with its newline: one, or its message in parts when one record
/// would exceed `limits`. Returns how many.
fn write_event<F: RecordFormat>(
    format: &F,
    shared: &F::Shared,
    limits: RecordLimits,
    clock: &mut IsoClock,
    out: &mut Vec<u8>,
    event: &Event<'_>,
) -> usize {
    let record = Record {
        id: Str::json(event.id),
        timestamp: event.timestamp,
        time: clock.iso8601(event.timestamp),
        shared,
        format: event.format,
        message: Str::json(event.message),
        part: None,
        fields: event.fields,
    };
    let start = out.len();
    format.write(out, &record);
    if out.len() - start <= limits.record_bytes {
        out.push(b'\n');
        return 1;
    }
    out.truncate(start);
    let pieces = split_content(event.message, limits.part_bytes);
    let no_fields = Fields::default();
    for (i, piece) in pieces.iter().enumerate() {
        let part = Record { message: Str::json(piece), part: Some((i + 1, pieces.len())), ..record };
        let part_start = out.len();
        format.write(out, &Record { fields: if i == 0 { event.fields } else { &no_fields }, ..part });
        if out.len() - part_start > limits.record_bytes {
            // The parsed fields of a huge message may not fit beside its first part; the message
            // itself is what must not be lost.
            out.truncate(part_start);
            format.write(out, &Record { fields: &no_fields, ..part });
        }
        out.push(b'\n');
    }
    pieces.len()
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`, reusing the date-time part while events
/// stay within the same second (they usually do): per event only the milliseconds are written.
#[derive(Debug, Default)]
struct IsoClock {
    /// The second whose date-time part `text` holds.
    second: Option<i64>,
    text: [u8; 24],
    /// A time outside years 0 to 9999, which the 24-byte form cannot spell, as chrono spells it
    /// (empty beyond chrono's range).
    other: String,
}

impl IsoClock {
    fn iso8601(&mut self, millis: i64) -> &[u8] {
        let (second, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
        if self.second != Some(second) {
            self.second = None;
            let date_time = chrono::DateTime::from_timestamp(second, 0);
            match date_time.map(|t| t.format("%Y-%m-%dT%H:%M:%S.").to_string()) {
                Some(prefix) if prefix.len() == 20 => {
                    self.text[..20].copy_from_slice(prefix.as_bytes());
                    self.text[23] = b'Z';
                    self.second = Some(second);
                }
                _ => {
                    self.other = chrono::DateTime::from_timestamp_millis(millis)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                        .unwrap_or_default();
                    return self.other.as_bytes();
                }
            }
        }
        let ms = u16::try_from(ms).unwrap_or_default();
        for (at, digit) in [(20, ms / 100), (21, ms / 10 % 10), (22, ms % 10)] {
            self.text[at] = b'0' + u8::try_from(digit).unwrap_or_default();
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_and_source_come_from_stream_and_group() {
        assert_eq!(instance_id_of("i-0123456789abcdef0"), Some("i-0123456789abcdef0"));
        assert_eq!(instance_id_of("i-01234567/messages"), Some("i-01234567"));
        assert_eq!(instance_id_of("web-1"), None);
        assert_eq!(source_of("CCP-logs-a-1-r/security"), "security");
        assert_eq!(source_of("plain"), "plain");
    }

    #[test]
    fn iso_times_match_chrono_including_before_1970() {
        let mut clock = IsoClock::default();
        // Years past 9999 and before 0 are spelled as chrono spells them, whatever came before.
        let far = [253_402_300_800_000, 253_402_300_800_001, -62_167_219_200_001, 1_763_800_000_124];
        for ms in [0i64, 1, 999, 1000, 1_763_800_000_123, 1_763_800_000_999, 1_763_800_001_000, -1, -1001]
            .into_iter()
            .chain(far)
        {
            let expected = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(String::from_utf8_lossy(clock.iso8601(ms)), expected, "{ms}");
        }
        // Beyond chrono's range: no time at all.
        assert_eq!(clock.iso8601(i64::MAX), b"");
    }
}
