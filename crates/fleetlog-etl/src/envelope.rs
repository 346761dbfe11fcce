//! The CloudWatch Logs subscription envelope, both ways: read from a decompressed payload (the form
//! CloudWatch Logs writes by `common_form`, anything else by serde_json), and written again for
//! some of its events, for the pieces a record too large for any response is split into.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::DecodeError;
use crate::json::{Str, decoded, lone_surrogate_escapes, well_formed, write_str};

mod common_form;

/// The CloudWatch Logs subscription envelope, borrowing from the decompressed buffer where it can.
/// (aws_lambda_events' `LogData` owns every string and flattens unknown fields, which costs a
/// buffering pass per event; this is the hot path.)
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a> {
    #[serde(borrow)]
    pub message_type: Cow<'a, str>,
    #[serde(borrow, default)]
    pub owner: Cow<'a, str>,
    #[serde(borrow, default)]
    pub log_group: Cow<'a, str>,
    #[serde(borrow, default)]
    pub log_stream: Cow<'a, str>,
    #[serde(borrow, default)]
    pub subscription_filters: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub log_events: Vec<LogEvent<'a>>,
    /// Whether an event's id or message literal spells a lone surrogate, which its records respell
    /// ([`Envelope::record_strings`]). CloudWatch Logs, whose messages are UTF-8, writes none, so one
    /// flag for the envelope spares looking for them event by event.
    #[serde(skip)]
    lone_surrogates: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogEvent<'a> {
    #[serde(borrow)]
    pub id: Literal<'a>,
    pub timestamp: i64,
    #[serde(borrow)]
    pub message: Literal<'a>,
}

/// A JSON string exactly as the envelope spells it, quotes and escapes included. Records copy an
/// event's id and message as they are: valid JSON that decodes to the same text, so nothing is
/// unescaped and escaped again on the way through; only [`LogEvent::text`] decodes a message, for the
/// parsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Literal<'a>(&'a str);

impl<'a> Literal<'a> {
    /// `json` must be a whole JSON string literal (checked by whoever read it).
    fn new(json: &'a str) -> Self {
        Literal(json)
    }

    /// JSON string content: the literal without its quotes.
    pub fn content(self) -> &'a str {
        self.0.get(1..self.0.len() - 1).unwrap_or_default()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Literal<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        if !raw.get().starts_with('"') {
            return Err(serde::de::Error::custom("not a string"));
        }
        Ok(Literal::new(raw.get()))
    }
}

impl<'a> LogEvent<'a> {
    /// The message literal without its quotes: JSON string content, escapes and all.
    pub fn message_literal(&self) -> &'a str {
        self.message.content()
    }

    /// The id literal without its quotes (CloudWatch Logs ids are digits).
    pub fn id_literal(&self) -> &'a str {
        self.id.content()
    }

    /// The message as text: the literal itself when it has no escapes, else decoded into `scratch`.
    /// `None` for escapes JSON allows but text cannot hold (a lone UTF-16 surrogate like `\ud800`).
    pub fn text<'s>(&self, scratch: &'s mut String) -> Option<&'s str>
    where
        'a: 's,
    {
        decoded(self.message_literal(), scratch)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Data,
    Control,
}

impl Envelope<'static> {
    /// An envelope of no events for a source that is no subscription (a log object): what its
    /// records share, for [`crate::records::EventWriter`].
    pub fn of_source(owner: String, log_group: String, log_stream: String) -> Self {
        Envelope {
            message_type: Cow::Borrowed("DATA_MESSAGE"),
            owner: Cow::Owned(owner),
            log_group: Cow::Owned(log_group),
            log_stream: Cow::Owned(log_stream),
            ..Envelope::default()
        }
    }
}

impl<'a> Envelope<'a> {
    /// With its lone surrogates found by reading every literal: for an envelope serde_json read,
    /// which cannot find them.
    pub fn marked(mut self) -> Self {
        let lone = |literal: &str| lone_surrogate_escapes(literal).next().is_some();
        self.lone_surrogates = self.log_events.iter().any(|e| lone(e.id_literal()) || lone(e.message_literal()));
        self
    }

    /// An event's id and message as its records hold them: JSON string content as the envelope
    /// spells it, but for lone surrogate escapes (which JSON readers refuse), respelled
    /// ([`well_formed`]). Borrowed unless the envelope spells one.
    #[inline(always)]
    pub fn record_strings(&self, event: &LogEvent<'a>) -> (Cow<'a, str>, Cow<'a, str>) {
        if self.lone_surrogates {
            (well_formed(event.id_literal()), well_formed(event.message_literal()))
        } else {
            (Cow::Borrowed(event.id_literal()), Cow::Borrowed(event.message_literal()))
        }
    }

    /// The events `events` as an envelope of their own, in the form CloudWatch Logs writes. Ids and
    /// messages keep their literals.
    pub fn encode(&self, events: std::ops::Range<usize>) -> Vec<u8> {
        let events = &self.log_events[events];
        let mut json =
            Vec::with_capacity(events.iter().map(|e| e.id_literal().len() + e.message_literal().len() + 64).sum());
        json.extend_from_slice(b"{\"messageType\":\"DATA_MESSAGE\",\"owner\":");
        write_str(&mut json, &self.owner);
        json.extend_from_slice(b",\"logGroup\":");
        write_str(&mut json, &self.log_group);
        json.extend_from_slice(b",\"logStream\":");
        write_str(&mut json, &self.log_stream);
        json.extend_from_slice(b",\"subscriptionFilters\":[");
        for (i, filter) in self.subscription_filters.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            write_str(&mut json, filter);
        }
        json.extend_from_slice(b"],\"logEvents\":[");
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(b"{\"id\":");
            Str::json(event.id_literal()).write(&mut json);
            json.extend_from_slice(b",\"timestamp\":");
            json.extend_from_slice(itoa::Buffer::new().format(event.timestamp).as_bytes());
            json.extend_from_slice(b",\"message\":");
            Str::json(event.message_literal()).write(&mut json);
            json.push(b'}');
        }
        json.extend_from_slice(b"]}");
        json
    }

    pub fn kind(&self) -> Result<MessageType, DecodeError> {
        match self.message_type.as_ref() {
            "DATA_MESSAGE" => Ok(MessageType::Data),
            "CONTROL_MESSAGE" => Ok(MessageType::Control),
            other => Err(DecodeError::UnknownMessageType(other.to_owned())),
        }
    }
}

/// The `logStream` of a gzip envelope, read from its first bytes alone (CloudWatch Logs writes it
/// before the events); `None` when those bytes do not hold it plainly spelled.
pub fn peek_log_stream(gzip_data: &[u8]) -> Option<String> {
    use std::io::Read;
    // The owner, a log group (at most 512 characters) and a stream (512) come first.
    const HEAD: u64 = 2048;
    let mut head = Vec::with_capacity(2048);
    // A cut-off or corrupt stream still yields what it inflated before the damage.
    let _ = flate2::read::GzDecoder::new(gzip_data).take(HEAD).read_to_end(&mut head);
    let name = "\"logStream\":\"";
    let at = memchr::memmem::find(&head, name.as_bytes())? + name.len();
    let end = memchr::memchr2(b'"', b'\\', &head[at..])?;
    if head[at + end] != b'"' {
        return None;
    }
    String::from_utf8(head[at..at + end].to_vec()).ok()
}

/// Parses a decompressed envelope. UTF-8 is checked once for the whole payload (vectorised); the form
/// CloudWatch Logs writes is read by `envelope::common_form`, anything else by serde_json (which also
/// words the errors).
pub fn parse_envelope(json: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let text = simdutf8::basic::from_utf8(json).map_err(|_| DecodeError::BadJson("not UTF-8".into()))?;
    let envelope = match common_form::read(text) {
        Some(envelope) => envelope,
        None => serde_json::from_str::<Envelope>(text).map_err(|e| DecodeError::BadJson(e.to_string()))?.marked(),
    };
    envelope.kind()?;
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_read_from_the_envelopes_first_bytes() {
        let envelope = |stream: &str| {
            let events: Vec<String> =
                (0..2000).map(|i| format!(r#"{{"id":"{i}","timestamp":1,"message":"m"}}"#)).collect();
            crate::gzip::gzip(format!(r#"{{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"{stream}","subscriptionFilters":["f"],"logEvents":[{}]}}"#, events.join(",")).as_bytes())
        };
        assert_eq!(peek_log_stream(&envelope("i-0123456789abcdef0")).as_deref(), Some("i-0123456789abcdef0"));
        assert_eq!(peek_log_stream(&envelope("a\\\"b")), None, "an escaped name is not read");
        assert_eq!(peek_log_stream(b"not gzip"), None);
        let whole = envelope("i-01234567");
        assert_eq!(peek_log_stream(&whole[..whole.len() / 2]).as_deref(), Some("i-01234567"), "a cut payload's start");
    }

    #[test]
    fn encoded_events_read_back_as_they_were() {
        let text = serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "g/\"q\"", "logStream": "s",
            "subscriptionFilters": ["a", "b"],
            "logEvents": [
                {"id": "1", "timestamp": 1, "message": "one"},
                {"id": "2", "timestamp": -2, "message": "esc \" \\ \n é"},
                {"id": "3", "timestamp": 3, "message": "three"},
            ],
        })
        .to_string();
        let envelope = parse_envelope(text.as_bytes()).unwrap();
        let encoded = envelope.encode(1..3);
        let piece = parse_envelope(&encoded).unwrap();
        assert_eq!(piece.log_events, envelope.log_events[1..3]);
        assert_eq!(
            (&piece.owner, &piece.log_group, &piece.subscription_filters),
            (&envelope.owner, &envelope.log_group, &envelope.subscription_filters)
        );
    }
}
