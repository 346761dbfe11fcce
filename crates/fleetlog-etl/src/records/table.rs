//! The Glue table's records: JSON objects, one per line, as Firehose delivers them to S3.

use serde::Serialize;

use super::{Origin, Record, RecordFormat, instance_id_of, source_of};
use crate::envelope::{Envelope, LogEvent};

/// The Glue table's JSON objects (`{"event_id", "timestamp", "time", <shared>, "format", "message",
/// ["part", "parts"], <fields>}`), as Firehose delivers them to S3.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableJson;

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
    application: &'a str,
}

/// What every record has besides its shared fields, id and message, at its shortest (no time for a
/// timestamp out of range, a one-digit timestamp, the empty format name).
const RECORD_FRAME: usize = r#"{"event_id":"","timestamp":0,"time":"","format":"","message":""}"#.len() + 1;

impl RecordFormat for TableJson {
    type Shared = Vec<u8>;

    /// `,"account":…,"source":…` for splicing into each record.
    fn shared(&self, envelope: &Envelope<'_>, origin: &Origin<'_>) -> Vec<u8> {
        let shared = Shared {
            account: &envelope.owner,
            region: origin.region,
            log_group: &envelope.log_group,
            log_stream: &envelope.log_stream,
            instance_id: instance_id_of(&envelope.log_stream),
            source: source_of(&envelope.log_group),
            application: origin.application,
        };
        // Serialising plain data into a Vec cannot fail; it yields `{…}` with at least one field.
        let mut bytes = serde_json::to_vec(&shared).unwrap_or_else(|_| b"{}".to_vec());
        bytes.pop();
        bytes[0] = b',';
        bytes
    }

    fn write(&self, out: &mut Vec<u8>, record: &Record<'_, Vec<u8>>) {
        let mut number = itoa::Buffer::new();
        out.extend_from_slice(b"{\"event_id\":");
        record.id.write(out);
        out.extend_from_slice(b",\"timestamp\":");
        out.extend_from_slice(number.format(record.timestamp).as_bytes());
        out.extend_from_slice(b",\"time\":\"");
        out.extend_from_slice(record.time);
        out.push(b'"');
        out.extend_from_slice(record.shared);
        out.extend_from_slice(b",\"format\":\"");
        out.extend_from_slice(record.format.as_str().as_bytes());
        out.extend_from_slice(b"\",\"message\":");
        record.message.write(out);
        if let Some((part, parts)) = record.part {
            out.extend_from_slice(b",\"part\":");
            out.extend_from_slice(number.format(part).as_bytes());
            out.extend_from_slice(b",\"parts\":");
            out.extend_from_slice(number.format(parts).as_bytes());
        }
        record.fields.write_json(out);
        out.push(b'}');
    }

    /// The id and message literals are copied as the envelope spells them.
    fn floor(&self, event: &LogEvent<'_>, shared: &Vec<u8>) -> usize {
        RECORD_FRAME + shared.len() + event.id_literal().len() + event.message_literal().len()
    }

    fn partitioned(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Str;
    use crate::parse::{Fields, Format};

    /// The frame [`TableJson::floor`] counts is what [`TableJson::write`] writes around an event's
    /// parts (the constant spells it again, so this keeps the two together).
    #[test]
    fn the_record_frame_is_what_write_record_writes() {
        let mut out = Vec::new();
        let fields = Fields::default();
        let record = Record {
            id: Str::json(""),
            timestamp: 0,
            time: b"",
            shared: &Vec::new(),
            format: Format::Text,
            message: Str::json(""),
            part: None,
            fields: &fields,
        };
        TableJson.write(&mut out, &record);
        assert_eq!(out.len() + 1 - Format::Text.as_str().len(), RECORD_FRAME, "{}", String::from_utf8_lossy(&out));
    }
}
