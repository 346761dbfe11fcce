//! Recognising well-known log line formats and pulling out the fields worth querying, one module
//! per format: `json` (with `aws`, the AWS services' JSON lines), `syslog`, `access`, `windows` (a
//! new format gets a module of its own and a [`Shape`]), and `cloudfront`, whose lines come from log
//! objects and are read by their object's header; `fields` holds what they find. Every parser is a cheap prefix check first, so plain
//! text costs almost nothing.

use memchr::memmem::Finder;

use crate::json::Str;
use crate::scan::first;

/// A byte-string searcher for a fixed needle, built once per call site (vectorised, with a
/// rare-byte prefilter): building one per search costs more than the search on a log line.
macro_rules! needle {
    ($text:literal) => {{
        static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new($text));
        &*FINDER
    }};
}

mod access;
mod aws;
mod cloudfront;
mod fields;
mod json;
mod syslog;
mod windows;

pub use aws::{Service, ServiceFields};
pub use cloudfront::{W3cHeader, W3cLine};
pub use fields::Fields;
pub use json::Attributes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Syslog,
    Access,
    WindowsEvent,
    /// A CloudTrail event (JSON).
    CloudTrail,
    /// An AWS WAF log line (JSON).
    Waf,
    /// A CloudFront standard log line (W3C), read from a log object.
    CloudFront,
    Text,
}

impl Format {
    /// The `format` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Syslog => "syslog",
            Format::Access => "access",
            Format::WindowsEvent => "windows_event",
            Format::CloudTrail => "cloudtrail",
            Format::Waf => "waf",
            Format::CloudFront => "cloudfront",
            Format::Text => "text",
        }
    }
}

/// `text` around the first `byte` (ASCII): a vectorised search, where `str::split_once` compares a
/// character at a time.
fn split_at_byte(text: &str, byte: u8) -> Option<(&str, &str)> {
    let at = position(text, byte)?;
    Some((&text[..at], &text[at + 1..]))
}

/// Where the first `byte` is in `text`: the fields and tags searched here are short (see `scan`).
fn position(text: &str, byte: u8) -> Option<usize> {
    first(text.as_bytes(), 0, byte)
}

fn find(haystack: &str, needle: &Finder<'_>) -> Option<usize> {
    needle.find(haystack.as_bytes())
}

/// Which parser a message goes to, told from its first bytes alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Json,
    WindowsEvent,
    SyslogWithPriority,
    BsdSyslog,
    Access,
}

/// `trimmed` is the message without leading whitespace.
fn shape(trimmed: &str) -> Option<Shape> {
    match trimmed.as_bytes().first()? {
        b'{' => Some(Shape::Json),
        b'<' if trimmed.starts_with("<Event") => Some(Shape::WindowsEvent),
        b'<' => Some(Shape::SyslogWithPriority),
        b'A'..=b'Z' if syslog::has_bsd_timestamp(trimmed) => Some(Shape::BsdSyslog),
        b'0'..=b'9' | b'a'..=b'f' | b':' => Some(Shape::Access),
        _ => None,
    }
}

/// The format and fields of a message given as its JSON string literal in the envelope. Read from
/// the literal itself where it can be (so what is read needs no escaping again): JSON messages in the
/// common case, messages without escapes (which are their own text), and access lines. Others are
/// decoded by `decode` (into the caller's reused buffer) and parsed, but only when the literal shows
/// they may hold fields: plain text (stack traces, most application lines) is not decoded to find
/// nothing.
pub fn parse_literal<'a>(literal: &'a str, decode: impl FnOnce() -> Option<&'a str>) -> (Format, Fields<'a>) {
    if let Some(fields) = json::from_literal(literal) {
        return (json_format(&fields), fields);
    }
    if memchr::memchr(b'\\', literal.as_bytes()).is_none() {
        // The message is its literal: no decoding, and its parts need no escaping.
        return parse_str(Str::json(literal));
    }
    let trimmed = literal.trim_start();
    if shape(trimmed) == Some(Shape::Access) && find(trimmed, needle!("\\u")).is_none() {
        // Access lines quote their request, referrer and agent: read from the literal, whose only
        // escapes are then mostly those quotes, instead of decoding it and escaping the fields again.
        let fields = access::line(Str::json(trimmed));
        return fields.map_or_else(|| (Format::Text, Fields::default()), |f| (Format::Access, f));
    }
    let text = if may_have_fields(literal) { decode() } else { None };
    text.map_or_else(|| (Format::Text, Fields::default()), parse)
}

/// Whether a message, given as its JSON string literal (escapes not decoded), may parse into
/// fields. When not, [`parse`] of its text is plain text, so its escapes need not be decoded.
fn may_have_fields(literal: &str) -> bool {
    let trimmed = literal.trim_start();
    let bytes = trimmed.as_bytes();
    // Text and literal agree up to the first escape, and a shape is told from 17 bytes at most.
    match memchr::memchr(b'\\', bytes) {
        Some(0) => true,
        // Only the syslog timestamp looks past the first byte; what comes before the escape may
        // already rule it out.
        Some(escape) if escape < 17 && bytes[0].is_ascii_uppercase() => syslog::bsd_marks_agree(&bytes[..escape]),
        _ => shape(trimmed).is_some(),
    }
}

/// A JSON message's format: an AWS service's, or plain JSON.
fn json_format(fields: &Fields<'_>) -> Format {
    fields.service.as_ref().map_or(Format::Json, |service| service.format())
}

/// The format and fields of a message's text.
pub fn parse(message: &str) -> (Format, Fields<'_>) {
    parse_str(Str::text(message))
}

/// The format and fields of `message`, text or a literal without escapes (its own text): what the
/// parsers cut from it is the same kind of string.
fn parse_str(message: Str<'_>) -> (Format, Fields<'_>) {
    let trimmed = message.part(message.as_str().trim_start());
    let parsed = match shape(trimmed.as_str()) {
        Some(Shape::Json) => json::message(trimmed.as_str()).map(|f| (json_format(&f), f)),
        Some(Shape::WindowsEvent) => Some((Format::WindowsEvent, windows::event(trimmed))),
        Some(Shape::SyslogWithPriority) => syslog::with_priority(trimmed).map(|f| (Format::Syslog, f)),
        Some(Shape::BsdSyslog) => syslog::bsd(trimmed).map(|f| (Format::Syslog, f)),
        Some(Shape::Access) => access::line(trimmed).map(|f| (Format::Access, f)),
        None => None,
    };
    parsed.unwrap_or((Format::Text, Fields::default()))
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) fn fields_json(fields: &Fields<'_>) -> serde_json::Value {
        let mut out = b"{\"x\":0".to_vec();
        fields.write_json(&mut out);
        out.push(b'}');
        serde_json::from_slice(&out).unwrap()
    }

    /// The literal CloudWatch Logs would send for a message.
    pub(crate) fn literal_of(message: &str) -> String {
        let literal = serde_json::to_string(message).unwrap();
        literal[1..literal.len() - 1].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testing::{fields_json, literal_of};

    #[test]
    fn messages_that_may_have_fields_are_told_from_their_literal() {
        for (literal, expected) in [
            (r#"{\"level\":\"info\"}"#, true),
            (r#"<Event xmlns=\"x\"/>"#, true),
            ("<13>Nov 22 10:00:00 h p: m", true),
            ("Nov 22 10:00:00 h sshd[1]: m", true),
            (r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1"#, true),
            (r#"\t{\"escaped\":\"start\"}"#, true),
            (r#"Nov\u002022 10:00:00 h p: m"#, true),
            (r#"Exception in thread \"main\"\n\tat x"#, false),
            (r#"Started \"job\""#, false),
            (r#"Nov 22 1\u0030:00:00 h p: m"#, true),
            (r#"\"quoted\" start"#, true),
            ("", false),
        ] {
            assert_eq!(may_have_fields(literal), expected, "{literal}");
        }
    }

    proptest::proptest! {
        /// A message ruled out on its literal parses as plain text once decoded.
        #[test]
        fn ruled_out_literals_parse_as_text(message in "[ \t\n]{0,2}(\\{|<|<Event|[A-Z]|[a-f0-9:]|\"|\\\\|Nov 22 10:00:00 |N\"v 22 10:00:00 |Nov\t22 10:00:00 |Nov 22 10:00:0\" )?([a-z]{1,4}|[ :\t\n\"\\\\é\\[\\]]|[ -~]){0,12}") {
            let literal = serde_json::to_string(&message).unwrap();
            let literal = &literal[1..literal.len() - 1];
            if !may_have_fields(literal) {
                proptest::prop_assert_eq!(parse(&message).0, Format::Text, "{:?}", message);
            }
        }
    }

    /// Messages of every shape the parsers know, then anything: quotes, backslashes, control
    /// characters, non-ASCII.
    fn shaped_message() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let start = proptest::sample::select(vec![
            "Nov 22 10:00:01 ip-10-0-0-1 sshd[4242]: ",
            "<34>1 2026-11-22T10:00:00Z web1 su 77 ID47 - ",
            "<13>Nov 22 10:00:01 host app: ",
            "203.0.113.9 - - [22/Nov/2026:10:00:00 +0000] \"GET /a",
            "::1 - - [22/Nov/2026:10:00:00 +0000] \"POST / HTTP/1.1\" 200 5 \"-\" \"",
            "<Event><System><Provider Name='P",
            "<Event><System><EventID>7</EventID><Channel>C",
            "{\"level\":\"w",
            "{\"msg\":\"",
            "",
        ]);
        // Closes an access line's request, or its referrer, or nothing.
        let middle = proptest::sample::select(vec!["", " HTTP/1.1\" 404 - \"-\" \"", "\" 200 12 \"r\" \""]);
        let anything = "([a-z0-9 :/'\\[\\]<>{}=-]|[\"\\\\\n\t\u{1}é🚀]){0,20}";
        (start, anything, middle, anything)
            .prop_map(|(start, first, middle, last)| format!("{start}{first}{middle}{last}"))
    }

    proptest::proptest! {
        /// Parsing a message from its literal (parts written as they stand when it has no escapes)
        /// writes the fields that parsing its decoded text writes.
        #[test]
        fn parse_literal_reads_what_parse_of_the_text_reads(message in shaped_message()) {
            let literal = literal_of(&message);
            let (format, from_literal) = parse_literal(&literal, || Some(message.as_str()));
            let (expected_format, from_text) = parse(&message);
            proptest::prop_assert_eq!(format, expected_format, "{:?}", message);
            proptest::prop_assert_eq!(fields_json(&from_literal), fields_json(&from_text), "{:?}", message);
            proptest::prop_assert_eq!(from_literal.severity, from_text.severity);
        }
    }

    #[test]
    fn anything_else_is_text() {
        for line in [
            "",
            "   ",
            "hello world",
            "{not json",
            "<notxml",
            "\u{0}\u{1}",
            "Traceback (most recent call last):",
            "1.2.3.4 no brackets",
        ] {
            assert_eq!(parse(line).0, Format::Text, "{line:?}");
        }
    }
}
