//! Splunk HTTP Event Collector events, for a Firehose stream whose destination is Splunk's Event
//! endpoint: one HEC event per log event, newline-separated (HEC takes events back to back in one
//! body), each `{"time", "host", "source", "sourcetype", "index", "event", "fields"}`.
//!
//! - `time`: epoch seconds with milliseconds (`1764669600.123`), as HEC reads it.
//! - `host`: the instance the stream is named after, else the host the line names (syslog).
//! - `source`: `log_group:log_stream`.
//! - `sourcetype`: from the parsed format ([`sourcetype`]).
//! - `index`: when one is configured; else the token's default index.
//! - `event`: the message exactly, as a string.
//! - `fields`: indexed fields, flat and all strings (HEC refuses nested values, and drops
//!   integers): the event id, account, region, log group and stream, instance, source, application, format, part,
//!   and the parsed fields but for a JSON message's members (Splunk reads those at search time).

use super::{Origin, Record, RecordFormat, instance_id_of, source_of};
use crate::envelope::{Envelope, LogEvent};
use crate::json::write_str;
use crate::parse::Format;

#[derive(Debug, Clone, Default)]
pub struct SplunkHec {
    /// The `index` of every event; `None` leaves it to the HEC token's default.
    pub index: Option<String>,
}

/// What every event of one envelope shares.
#[derive(Debug, Clone)]
pub struct HecShared {
    /// The instance's id as a JSON string, when the stream is named after one.
    host: Option<Vec<u8>>,
    /// `,"source":"…"` and `,"index":"…"` when there is one.
    head: Vec<u8>,
    /// `,"account":…,"log_source":…` for the `fields` object.
    fields: Vec<u8>,
}

/// The Splunk sourcetype of a parsed format: Splunk's own for the formats it knows
/// (`syslog`, `access_combined`, `XmlWinEventLog`, `_json`), the Splunk Add-on for AWS's for AWS
/// service logs, and `aws:cloudwatchlogs` for lines that are only text.
pub fn sourcetype(format: Format) -> &'static str {
    match format {
        Format::Json => "_json",
        Format::Syslog => "syslog",
        Format::Access => "access_combined",
        Format::WindowsEvent => "XmlWinEventLog",
        Format::CloudTrail => "aws:cloudtrail",
        Format::Waf => "aws:waf",
        Format::CloudFront => "aws:cloudfront:accesslogs",
        Format::Text => "aws:cloudwatchlogs",
    }
}

/// What every event has besides its shared parts, id and message, at its shortest (a one-digit
/// second, an empty sourcetype and format).
const EVENT_FRAME: usize =
    r#"{"time":0.000,"sourcetype":"","event":"","fields":{"event_id":"","format":""}}"#.len() + 1;

impl RecordFormat for SplunkHec {
    type Shared = HecShared;

    fn shared(&self, envelope: &Envelope<'_>, origin: &Origin<'_>) -> HecShared {
        let instance = instance_id_of(&envelope.log_stream);
        let mut head = Vec::new();
        head.extend_from_slice(b",\"source\":");
        write_str(&mut head, &format!("{}:{}", envelope.log_group, envelope.log_stream));
        if let Some(index) = &self.index {
            head.extend_from_slice(b",\"index\":");
            write_str(&mut head, index);
        }
        let mut fields = Vec::new();
        let mut field = |name: &str, value: &str| {
            fields.push(b',');
            write_str(&mut fields, name);
            fields.push(b':');
            write_str(&mut fields, value);
        };
        field("account", &envelope.owner);
        field("region", origin.region);
        field("log_group", &envelope.log_group);
        field("log_stream", &envelope.log_stream);
        if let Some(instance) = instance {
            field("instance_id", instance);
        }
        field("log_source", source_of(&envelope.log_group));
        field("application", origin.application);
        let host = instance.map(|id| {
            let mut json = Vec::new();
            write_str(&mut json, id);
            json
        });
        HecShared { host, head, fields }
    }

    fn write(&self, out: &mut Vec<u8>, record: &Record<'_, HecShared>) {
        let mut number = itoa::Buffer::new();
        out.extend_from_slice(b"{\"time\":");
        write_seconds(out, record.timestamp);
        match (&record.shared.host, record.fields.host) {
            (Some(instance), _) => {
                out.extend_from_slice(b",\"host\":");
                out.extend_from_slice(instance);
            }
            (None, Some(host)) => {
                out.extend_from_slice(b",\"host\":");
                host.write(out);
            }
            (None, None) => {}
        }
        out.extend_from_slice(&record.shared.head);
        out.extend_from_slice(b",\"sourcetype\":\"");
        out.extend_from_slice(sourcetype(record.format).as_bytes());
        out.extend_from_slice(b"\",\"event\":");
        record.message.write(out);
        out.extend_from_slice(b",\"fields\":{\"event_id\":");
        record.id.write(out);
        out.extend_from_slice(&record.shared.fields);
        out.extend_from_slice(b",\"format\":\"");
        out.extend_from_slice(record.format.as_str().as_bytes());
        out.push(b'"');
        if let Some((part, parts)) = record.part {
            out.extend_from_slice(b",\"part\":\"");
            out.extend_from_slice(number.format(part).as_bytes());
            out.extend_from_slice(b"\",\"parts\":\"");
            out.extend_from_slice(number.format(parts).as_bytes());
            out.push(b'"');
        }
        record.fields.write_indexed(out);
        out.extend_from_slice(b"}}");
    }

    fn floor(&self, event: &LogEvent<'_>, shared: &HecShared) -> usize {
        EVENT_FRAME
            + shared.host.as_ref().map_or(0, |h| ",\"host\":".len() + h.len())
            + shared.head.len()
            + shared.fields.len()
            + event.id_literal().len()
            + event.message_literal().len()
    }

    fn partitioned(&self) -> bool {
        false
    }
}

/// Epoch milliseconds as seconds with three decimals (`-0.001` for -1).
fn write_seconds(out: &mut Vec<u8>, millis: i64) {
    if millis < 0 {
        out.push(b'-');
    }
    let millis = millis.unsigned_abs();
    out.extend_from_slice(itoa::Buffer::new().format(millis / 1000).as_bytes());
    let ms = millis % 1000;
    out.extend_from_slice(&[b'.', b'0' + (ms / 100) as u8, b'0' + (ms / 10 % 10) as u8, b'0' + (ms % 10) as u8]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Str;
    use crate::parse::Fields;

    #[test]
    fn the_event_frame_is_what_write_writes() {
        let shared = HecShared { host: None, head: Vec::new(), fields: Vec::new() };
        let fields = Fields::default();
        let record = Record {
            id: Str::json(""),
            timestamp: 0,
            time: b"",
            shared: &shared,
            format: Format::Text,
            message: Str::json(""),
            part: None,
            fields: &fields,
        };
        let mut out = Vec::new();
        SplunkHec::default().write(&mut out, &record);
        let variable = sourcetype(Format::Text).len() + Format::Text.as_str().len();
        assert_eq!(out.len() + 1 - variable, EVENT_FRAME, "{}", String::from_utf8_lossy(&out));
    }

    #[test]
    fn seconds_keep_every_millisecond() {
        for (millis, text) in
            [(0, "0.000"), (1, "0.001"), (1_764_669_600_123, "1764669600.123"), (-1, "-0.001"), (-1001, "-1.001")]
        {
            let mut out = Vec::new();
            write_seconds(&mut out, millis);
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
        let mut out = Vec::new();
        write_seconds(&mut out, i64::MIN);
        assert_eq!(String::from_utf8(out).unwrap(), "-9223372036854775.808");
    }
}
