//! One JSON record per log event, newline-delimited. The schema is documented in this crate's
//! README and matched by the Glue table in infra/.

use fleetlog_core::instance::is_instance_id;
use serde::Serialize;

use crate::decode::{Envelope, LogEvent};
use crate::parse::{Fields, Format, parse};

/// Firehose accepts records up to 1,000 KiB; stay a little under (room for the newline).
pub const MAX_RECORD_BYTES: usize = crate::put::MAX_RECORD_BYTES - 1024;
/// Oversized messages are split into parts of at most this many bytes. JSON escaping can grow text
/// up to 6× (`\u0000`), so a part's record always fits [`MAX_RECORD_BYTES`].
pub const MESSAGE_PART_BYTES: usize = 128 * 1024;

/// The fields every record of one envelope shares; serialised (and escaped) once per envelope.
#[derive(Debug, Serialize)]
struct Shared<'a> {
    account: &'a str,
    region: &'a str,
    log_group: &'a str,
    log_stream: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_id: Option<&'a str>,
    source: &'a str,
}

/// `,"account":…,"source":…` for splicing into each record.
fn shared_fields(envelope: &Envelope<'_>, region: &str) -> Vec<u8> {
    let shared = Shared {
        account: &envelope.owner,
        region,
        log_group: &envelope.log_group,
        log_stream: &envelope.log_stream,
        instance_id: instance_id_of(&envelope.log_stream),
        source: source_of(&envelope.log_group),
    };
    // Serialising plain data into a Vec cannot fail; it yields `{…}` with at least one field.
    let mut bytes = serde_json::to_vec(&shared).unwrap_or_else(|_| b"{}".to_vec());
    bytes.pop();
    bytes[0] = b',';
    bytes
}

/// One record: `{"event_id", "timestamp", "time", <shared>, "format", "message", ["part", "parts"], <fields>}`.
#[allow(clippy::too_many_arguments)]
fn write_record(
    out: &mut Vec<u8>,
    event: &LogEvent<'_>,
    time: &str,
    shared: &[u8],
    format: Format,
    message: &str,
    part: Option<(usize, usize)>,
    fields: &Fields<'_>,
) {
    use std::io::Write;
    // Writes into a Vec cannot fail.
    out.extend_from_slice(b"{\"event_id\":");
    crate::json::write_str(out, &event.id);
    let _ = write!(out, ",\"timestamp\":{},\"time\":\"{time}\"", event.timestamp);
    out.extend_from_slice(shared);
    out.extend_from_slice(b",\"format\":");
    let _ = serde_json::to_writer(&mut *out, &format);
    out.extend_from_slice(b",\"message\":");
    crate::json::write_str(out, message);
    if let Some((part, parts)) = part {
        let _ = write!(out, ",\"part\":{part},\"parts\":{parts}");
    }
    let start = out.len();
    let _ = serde_json::to_writer(&mut *out, fields);
    if &out[start..] == b"{}" {
        out.truncate(start);
        out.push(b'}');
    } else {
        out[start] = b',';
    }
}

/// The instance a stream belongs to: the agent names streams `{instance_id}` (optionally followed by
/// `/…`).
pub fn instance_id_of(stream: &str) -> Option<&str> {
    let candidate = stream.split('/').next().unwrap_or_default();
    is_instance_id(candidate).then_some(candidate)
}

/// The last path segment of the log group (`CCP-logs-…/security` → `security`).
pub fn source_of(log_group: &str) -> &str {
    log_group.rsplit('/').next().unwrap_or(log_group)
}

/// Appends one record per event (more for split messages) to `out`; returns how many were written.
pub fn write_records(envelope: &Envelope<'_>, events: &[LogEvent<'_>], region: &str, out: &mut Vec<u8>) -> usize {
    write_records_measured(envelope, events, region, out, |_| {})
}

/// [`write_records`], calling `event_written` with the length of `out` after each event's records.
pub fn write_records_measured(
    envelope: &Envelope<'_>,
    events: &[LogEvent<'_>],
    region: &str,
    out: &mut Vec<u8>,
    mut event_written: impl FnMut(usize),
) -> usize {
    let shared = shared_fields(envelope, region);
    let mut written = 0;
    let mut clock = IsoClock::default();
    for event in events {
        let message: &str = &event.message;
        let (format, fields) = parse(message);
        let time = clock.iso8601(event.timestamp);
        let start = out.len();
        write_record(out, event, time, &shared, format, message, None, &fields);
        if out.len() - start <= MAX_RECORD_BYTES {
            out.push(b'\n');
            written += 1;
            event_written(out.len());
            continue;
        }
        out.truncate(start);
        let pieces = split_at_char_boundaries(message, MESSAGE_PART_BYTES);
        let no_fields = Fields::default();
        for (i, piece) in pieces.iter().enumerate() {
            let fields = if i == 0 { &fields } else { &no_fields };
            write_record(out, event, time, &shared, format, piece, Some((i + 1, pieces.len())), fields);
            out.push(b'\n');
            written += 1;
        }
        event_written(out.len());
    }
    written
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`, reusing the date-time part while events
/// stay within the same second (they usually do), so formatting costs no allocation per event.
#[derive(Default)]
struct IsoClock {
    second: Option<i64>,
    text: String,
}

impl IsoClock {
    fn iso8601(&mut self, millis: i64) -> &str {
        let (second, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
        if self.second != Some(second) {
            self.text = chrono::DateTime::from_timestamp(second, 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S.").to_string())
                .unwrap_or_default();
            self.second = Some(second);
        }
        self.text.truncate(20);
        if self.text.len() == 20 {
            use std::fmt::Write;
            let _ = write!(self.text, "{ms:03}Z");
        }
        &self.text
    }
}

fn split_at_char_boundaries(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::with_capacity(text.len() / max + 1);
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces.push(rest);
    pieces
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
        for ms in [0i64, 1, 999, 1000, 1_763_800_000_123, 1_763_800_000_999, 1_763_800_001_000, -1, -1001] {
            let expected = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(clock.iso8601(ms), expected, "{ms}");
        }
    }

    #[test]
    fn splitting_respects_utf8() {
        let text = "é".repeat(10);
        let pieces = split_at_char_boundaries(&text, 3);
        assert_eq!(pieces.concat(), text);
        assert!(pieces.iter().all(|p| p.len() <= 3));
    }
}
