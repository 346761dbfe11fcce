//! One JSON record per log event, newline-delimited. The schema is documented in this crate's
//! README and matched by the Glue table in infra/.

use std::borrow::Cow;

use fleetlog_core::instance::is_instance_id;
use serde::Serialize;

use crate::decode::{Envelope, LogEvent, UnicodeEscape, decoded, unicode_escape, well_formed};
use crate::parse::{Fields, Format, parse_literal};

/// Firehose accepts records up to 1,000 KiB; stay a little under (room for the newline).
pub const MAX_RECORD_BYTES: usize = crate::put::MAX_RECORD_BYTES - 1024;
/// Oversized messages are split into parts of at most this many bytes of JSON string content (escapes
/// counted as written), so a part's record always fits [`MAX_RECORD_BYTES`].
pub const MESSAGE_PART_BYTES: usize = 512 * 1024;

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
pub(crate) fn shared_fields(envelope: &Envelope<'_>, region: &str) -> Vec<u8> {
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
/// `id` and `message` are JSON string content, already escaped.
#[allow(clippy::too_many_arguments)]
fn write_record(
    out: &mut Vec<u8>,
    id: &str,
    timestamp: i64,
    time: &[u8],
    shared: &[u8],
    format: Format,
    message: &str,
    part: Option<(usize, usize)>,
    fields: &Fields<'_>,
) {
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b"{\"event_id\":\"");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\",\"timestamp\":");
    out.extend_from_slice(number.format(timestamp).as_bytes());
    out.extend_from_slice(b",\"time\":\"");
    out.extend_from_slice(time);
    out.push(b'"');
    out.extend_from_slice(shared);
    out.extend_from_slice(b",\"format\":\"");
    out.extend_from_slice(format.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":\"");
    out.extend_from_slice(message.as_bytes());
    out.push(b'"');
    if let Some((part, parts)) = part {
        out.extend_from_slice(b",\"part\":");
        out.extend_from_slice(number.format(part).as_bytes());
        out.extend_from_slice(b",\"parts\":");
        out.extend_from_slice(number.format(parts).as_bytes());
    }
    fields.write_json(out);
    out.push(b'}');
}

/// What every record has besides its shared fields, id and message, at its shortest (no time for a
/// timestamp out of range, a one-digit timestamp, the empty format name).
const RECORD_FRAME: usize = r#"{"event_id":"","timestamp":0,"time":"","format":"","message":""}"#.len() + 1;

/// The fewest bytes an event's records can take in the output, `shared` being [`shared_fields`] of
/// its envelope: the id and message literals are copied as the envelope spells them. Parsed fields
/// and split messages only add to it.
pub(crate) fn output_floor(event: &LogEvent<'_>, shared: &[u8]) -> usize {
    RECORD_FRAME + shared.len() + event.id_literal().len() + event.message_literal().len()
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
pub fn write_records(envelope: &Envelope<'_>, region: &str, out: &mut Vec<u8>) -> usize {
    write_records_measured(envelope, &shared_fields(envelope, region), out, |_| {})
}

/// [`write_records`] with the envelope's [`shared_fields`] `shared`, calling `event_written` with the
/// length of `out` after each event's records.
pub(crate) fn write_records_measured(
    envelope: &Envelope<'_>,
    shared: &[u8],
    out: &mut Vec<u8>,
    mut event_written: impl FnMut(usize),
) -> usize {
    let mut written = 0;
    let mut clock = IsoClock::default();
    let mut unescaped = String::new();
    for event in &envelope.log_events {
        let (id, literal) = if envelope.lone_surrogates {
            (well_formed(event.id_literal()), well_formed(event.message_literal()))
        } else {
            (Cow::Borrowed(event.id_literal()), Cow::Borrowed(event.message_literal()))
        };
        let (format, fields) = parse_literal(&literal, || decoded(&literal, &mut unescaped));
        let time = clock.iso8601(event.timestamp);
        let start = out.len();
        write_record(out, &id, event.timestamp, time, shared, format, &literal, None, &fields);
        if out.len() - start <= MAX_RECORD_BYTES {
            out.push(b'\n');
            written += 1;
            event_written(out.len());
            continue;
        }
        out.truncate(start);
        let pieces = split_literal(&literal, MESSAGE_PART_BYTES);
        let no_fields = Fields::default();
        for (i, piece) in pieces.iter().enumerate() {
            let part = Some((i + 1, pieces.len()));
            let part_start = out.len();
            let fields = if i == 0 { &fields } else { &no_fields };
            write_record(out, &id, event.timestamp, time, shared, format, piece, part, fields);
            if out.len() - part_start > MAX_RECORD_BYTES {
                // The parsed fields of a huge message may not fit beside its first part; the message
                // itself is what must not be lost.
                out.truncate(part_start);
                write_record(out, &id, event.timestamp, time, shared, format, piece, part, &no_fields);
            }
            out.push(b'\n');
            written += 1;
        }
        event_written(out.len());
    }
    written
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`, reusing the date-time part while events
/// stay within the same second (they usually do): per event only the milliseconds are written.
#[derive(Default)]
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

/// Splits JSON string content into pieces of at most `max` bytes, each valid JSON string content of
/// its own: cuts fall between characters and never inside an escape or a surrogate pair.
fn split_literal(literal: &str, max: usize) -> Vec<&str> {
    let bytes = literal.as_bytes();
    let mut pieces = Vec::with_capacity(literal.len() / max + 1);
    let (mut start, mut at) = (0, 0);
    while at < bytes.len() {
        let token = match bytes[at] {
            // A surrogate pair is one token (12 bytes).
            b'\\' if bytes.get(at + 1) == Some(&b'u') => match unicode_escape(&bytes[at..]) {
                Some(UnicodeEscape::Char(_, length)) => length,
                _ => 6,
            },
            b'\\' => 2,
            0..0x80 => 1,
            0xf0.. => 4,
            0xe0.. => 3,
            _ => 2,
        };
        if at + token - start > max && at > start {
            pieces.push(&literal[start..at]);
            start = at;
        }
        at = (at + token).min(bytes.len());
    }
    pieces.push(&literal[start..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frame [`output_floor`] counts is what `write_record` writes around an event's parts (the
    /// constant spells it again, so this keeps the two together).
    #[test]
    fn the_record_frame_is_what_write_record_writes() {
        let mut out = Vec::new();
        write_record(&mut out, "", 0, b"", b"", Format::Text, "", None, &Fields::default());
        assert_eq!(out.len() + 1 - Format::Text.as_str().len(), RECORD_FRAME, "{}", String::from_utf8_lossy(&out));
    }

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

    #[test]
    fn split_pieces_are_json_string_content_that_joins_back() {
        let text = format!("{}é🚀\"\\\n\u{1}{}", "a".repeat(7), "z".repeat(5)).repeat(9);
        let literal = serde_json::to_string(&text).unwrap();
        let literal = &literal[1..literal.len() - 1];
        for max in [1, 2, 3, 5, 7, 12, 64] {
            let pieces = split_literal(literal, max);
            let mut joined = String::new();
            for piece in &pieces {
                assert!(piece.len() <= max.max(12), "{piece:?} longer than {max}");
                joined += &serde_json::from_str::<String>(&format!("\"{piece}\"")).unwrap();
            }
            assert_eq!(joined, text, "max {max}");
        }
        let pair = r"ab\ud83d\ude80cd";
        assert!(split_literal(pair, 8).iter().all(|p| serde_json::from_str::<String>(&format!("\"{p}\"")).is_ok()));
    }
}
