//! One JSON record per log event, newline-delimited. The schema is documented in this crate's
//! README and matched by the Glue table in infra/.

use fleetlog_core::instance::is_instance_id;
use serde::Serialize;

use crate::decode::{Envelope, LogEvent};
use crate::parse::{Fields, Format, parse};

/// Firehose accepts records up to 1,000 KiB; stay a little under.
pub const MAX_RECORD_BYTES: usize = 1000 * 1024 - 1024;
/// Oversized messages are split into parts of at most this many bytes. JSON escaping can grow text
/// up to 6× (`\u0000`), so a part's record always fits [`MAX_RECORD_BYTES`].
pub const MESSAGE_PART_BYTES: usize = 128 * 1024;

#[derive(Debug, Serialize)]
struct Record<'a> {
    event_id: &'a str,
    timestamp: i64,
    time: String,
    account: &'a str,
    region: &'a str,
    log_group: &'a str,
    log_stream: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_id: Option<&'a str>,
    source: &'a str,
    format: Format,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    part: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<usize>,
    #[serde(flatten)]
    fields: Fields<'a>,
}

/// The instance a stream belongs to: the agent names streams `{instance_id}` (optionally followed by
/// `/…`).
pub fn instance_id_of(stream: &str) -> Option<&str> {
    let candidate = stream.split('/').next().unwrap_or_default();
    let hex = candidate.strip_prefix("i-")?;
    ((hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then_some(candidate)
}

/// The last path segment of the log group (`CCP-logs-…/security` → `security`).
pub fn source_of(log_group: &str) -> &str {
    log_group.rsplit('/').next().unwrap_or(log_group)
}

/// Appends one record per event (more for split messages) to `out`; returns how many were written.
pub fn write_records(envelope: &Envelope<'_>, events: &[LogEvent<'_>], region: &str, out: &mut Vec<u8>) -> usize {
    let instance_id = instance_id_of(&envelope.log_stream);
    let source = source_of(&envelope.log_group);
    let mut written = 0;
    for event in events {
        let message: &str = &event.message;
        let (format, fields) = parse(message);
        let time = chrono::DateTime::from_timestamp_millis(event.timestamp)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        let mut record = Record {
            event_id: &event.id,
            timestamp: event.timestamp,
            time,
            account: &envelope.owner,
            region,
            log_group: &envelope.log_group,
            log_stream: &envelope.log_stream,
            instance_id,
            source,
            format,
            message,
            part: None,
            parts: None,
            fields,
        };
        let start = out.len();
        // Serialising plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &record);
        if out.len() - start <= MAX_RECORD_BYTES {
            out.push(b'\n');
            written += 1;
            continue;
        }
        out.truncate(start);
        let pieces = split_at_char_boundaries(message, MESSAGE_PART_BYTES);
        record.parts = Some(pieces.len());
        for (i, piece) in pieces.iter().enumerate() {
            record.part = Some(i + 1);
            record.message = piece;
            if i == 1 {
                record.fields = Fields::default();
            }
            let _ = serde_json::to_writer(&mut *out, &record);
            out.push(b'\n');
            written += 1;
        }
    }
    written
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
    fn splitting_respects_utf8() {
        let text = "é".repeat(10);
        let pieces = split_at_char_boundaries(&text, 3);
        assert_eq!(pieces.concat(), text);
        assert!(pieces.iter().all(|p| p.len() <= 3));
    }
}
