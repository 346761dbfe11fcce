//! Recognising well-known log line formats and pulling out the fields worth querying.
//! Every parser is a cheap prefix check first, so plain text costs almost nothing.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use serde_json::value::RawValue;

use crate::decode::well_formed;
use crate::json::{write_content, write_str};
use crate::scan::first;

mod literal_json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Syslog,
    Access,
    WindowsEvent,
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
            Format::Text => "text",
        }
    }
}

/// Fields parsed from one message. All optional; the raw message is always kept beside them.
#[derive(Debug, Clone, Default)]
pub struct Fields<'a> {
    pub severity: Option<Cow<'a, str>>,
    pub host: Option<&'a str>,
    pub program: Option<&'a str>,
    pub pid: Option<&'a str>,
    pub client_ip: Option<&'a str>,
    pub http_method: Option<&'a str>,
    pub http_path: Option<&'a str>,
    pub http_status: Option<u16>,
    pub http_bytes: Option<u64>,
    pub user_agent: Option<&'a str>,
    pub win_event_id: Option<u32>,
    pub win_channel: Option<&'a str>,
    pub win_provider: Option<&'a str>,
    /// Top-level fields of a JSON message, as they are spelled in it.
    pub attributes: Option<Attributes<'a>>,
    /// The texts above (attribute names included) are JSON string content as they stand: they were
    /// read from the message's literal (one without escapes holds no quote, backslash or control
    /// character; an access line's fields keep their escapes). They are written without the escaper.
    verbatim: bool,
}

/// The top-level fields of a JSON object, sorted by name; of a repeated name the last one counts, as
/// in serde_json's maps. One vector, not a tree: a log line has a handful of fields.
#[derive(Debug, Clone, Default)]
pub struct Attributes<'a>(Vec<(Cow<'a, str>, AttributeValue<'a>)>);

/// A top-level value of a JSON message, by its JSON text.
#[derive(Debug, Clone, Copy)]
pub enum AttributeValue<'a> {
    /// As the decoded message spells it.
    Json(&'a RawValue),
    /// As the message's string literal in the envelope spells it: escaped once more, and, when a
    /// string, with no escapes of its own (see [`json_from_literal`]).
    Escaped(&'a str),
}

impl<'a> AttributeValue<'a> {
    /// The value when it is a string.
    fn as_str(self) -> Option<Cow<'a, str>> {
        match self {
            AttributeValue::Json(raw) => serde_json::from_str::<BorrowedStr<'a>>(raw.get()).ok().map(|s| s.0),
            AttributeValue::Escaped(text) => text.strip_prefix("\\\"")?.strip_suffix("\\\"").map(Cow::Borrowed),
        }
    }

    /// Appends the value as an attribute: strings as spelled, `null` as null, anything else as a
    /// string of its JSON text.
    fn write_json(self, out: &mut Vec<u8>) {
        match self {
            AttributeValue::Json(raw) => {
                let json = raw.get();
                if json.starts_with('"') {
                    write_json_string(out, json);
                } else if json == "null" {
                    out.extend_from_slice(json.as_bytes());
                } else {
                    write_str(out, json);
                }
            }
            AttributeValue::Escaped("null") => out.extend_from_slice(b"null"),
            AttributeValue::Escaped(text) => {
                // A string's content is copied as spelled (it has no escapes of its own); any other
                // value's JSON text, escaped once more, is already the content of a JSON string.
                let content = match self.as_str() {
                    Some(Cow::Borrowed(content)) => content,
                    _ => text,
                };
                write_content(out, content);
            }
        }
    }
}

impl<'a> Attributes<'a> {
    /// Sorts the fields by name, keeping the last of each name.
    fn from_fields(mut fields: Vec<(Cow<'a, str>, AttributeValue<'a>)>) -> Self {
        // Stable, so of equal names the last stays last; keep it (names seldom repeat).
        fields.sort_by(|a, b| name_order(&a.0, &b.0));
        if fields.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            fields.reverse();
            fields.dedup_by(|later, kept| later.0 == kept.0);
            fields.reverse();
        }
        Attributes(fields)
    }

    pub fn get(&self, name: &str) -> Option<AttributeValue<'a>> {
        self.0.binary_search_by(|(key, _)| name_order(key, name)).ok().map(|i| self.0[i].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, AttributeValue<'a>)> {
        self.0.iter().map(|(key, value)| (key.as_ref(), *value))
    }
}

/// Names in byte order, told by their first bytes where they differ there (they mostly do): a short
/// name's comparison otherwise costs a call to `memcmp`.
fn name_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.as_bytes().first().cmp(&b.as_bytes().first()).then_with(|| a.cmp(b))
}

/// A JSON string that borrows from the input unless it has escapes (a bare `Cow<str>` always copies;
/// only a field marked `#[serde(borrow)]` borrows).
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct BorrowedStr<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Attributes<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Attributes<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((BorrowedStr(name), value)) = map.next_entry::<BorrowedStr<'a>, &'a RawValue>()? {
                    fields.push((name, AttributeValue::Json(value)));
                }
                Ok(Attributes::from_fields(fields))
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

impl Fields<'_> {
    /// Appends `,"name":value` for each field present (absent fields are omitted; the JSON SerDe
    /// reads them as NULL). Attributes are strings: string values are copied as spelled, `null`
    /// stays null, anything else becomes its JSON text.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // `,"name":` in one piece.
        macro_rules! name {
            ($name:literal) => {
                concat!(",\"", $name, "\":").as_bytes()
            };
        }
        let verbatim = self.verbatim;
        let string = |out: &mut Vec<u8>, value: &str| {
            if verbatim { write_content(out, value) } else { write_str(out, value) }
        };
        let text = |out: &mut Vec<u8>, name: &[u8], value: Option<&str>| {
            if let Some(value) = value {
                out.extend_from_slice(name);
                string(out, value);
            }
        };
        fn number(out: &mut Vec<u8>, name: &[u8], value: Option<impl itoa::Integer>) {
            if let Some(value) = value {
                out.extend_from_slice(name);
                out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
            }
        }
        text(out, name!("severity"), self.severity.as_deref());
        text(out, name!("host"), self.host);
        text(out, name!("program"), self.program);
        text(out, name!("pid"), self.pid);
        text(out, name!("client_ip"), self.client_ip);
        text(out, name!("http_method"), self.http_method);
        text(out, name!("http_path"), self.http_path);
        number(out, name!("http_status"), self.http_status);
        number(out, name!("http_bytes"), self.http_bytes);
        text(out, name!("user_agent"), self.user_agent);
        number(out, name!("win_event_id"), self.win_event_id);
        text(out, name!("win_channel"), self.win_channel);
        text(out, name!("win_provider"), self.win_provider);
        if let Some(attributes) = &self.attributes {
            out.extend_from_slice(name!("attributes"));
            out.push(b'{');
            for (i, (key, value)) in attributes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, key);
                out.push(b':');
                value.write_json(out);
            }
            out.push(b'}');
        }
    }
}

/// A byte-string searcher for a fixed needle, built once per call site (vectorised, with a
/// rare-byte prefilter): building one per search costs more than the search on a log line.
macro_rules! needle {
    ($text:literal) => {{
        static FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new($text));
        &*FINDER
    }};
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

/// A JSON string as spelled, but for lone surrogate escapes (`\ud83d` without its pair; a JavaScript
/// application writes one for a string cut inside an emoji), respelled U+FFFD (see [`well_formed`]):
/// JSON readers refuse them. The raw message keeps the original.
fn write_json_string(out: &mut Vec<u8>, json: &str) {
    let content = &json[1..json.len() - 1];
    out.push(b'"');
    out.extend_from_slice(well_formed(content).as_bytes());
    out.push(b'"');
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
        b'A'..=b'Z' if has_bsd_timestamp(trimmed) => Some(Shape::BsdSyslog),
        b'0'..=b'9' | b'a'..=b'f' | b':' => Some(Shape::Access),
        _ => None,
    }
}

/// Starts with `Mmm dd hh:mm:ss ` (16 bytes) and has more after it.
fn has_bsd_timestamp(message: &str) -> bool {
    message.len() > 16 && bsd_marks_agree(message.as_bytes())
}

/// Whether the separators of `Mmm dd hh:mm:ss ` that fall within `known` are in place.
fn bsd_marks_agree(known: &[u8]) -> bool {
    const MARKS: [(usize, u8); 5] = [(3, b' '), (6, b' '), (9, b':'), (12, b':'), (15, b' ')];
    MARKS.iter().all(|&(at, mark)| known.get(at).is_none_or(|b| *b == mark))
}

/// The format and fields of a message given as its JSON string literal in the envelope. Read from
/// the literal itself where it can be (so what is read needs no escaping again): JSON messages in the
/// common case, messages without escapes (which are their own text), and access lines. Others are
/// decoded by `decode` (into the caller's reused buffer) and parsed, but only when the literal shows
/// they may hold fields: plain text (stack traces, most application lines) is not decoded to find
/// nothing.
pub fn parse_literal<'a>(literal: &'a str, decode: impl FnOnce() -> Option<&'a str>) -> (Format, Fields<'a>) {
    if let Some(fields) = json_from_literal(literal) {
        return (Format::Json, Fields { verbatim: true, ..fields });
    }
    if memchr::memchr(b'\\', literal.as_bytes()).is_none() {
        // The message is its literal: no decoding, and its parts need no escaping.
        let (format, fields) = parse(literal);
        return (format, Fields { verbatim: true, ..fields });
    }
    let trimmed = literal.trim_start();
    if shape(trimmed) == Some(Shape::Access) && find(trimmed, needle!("\\u")).is_none() {
        // Access lines quote their request, referrer and agent: read from the literal, whose only
        // escapes are then mostly those quotes, instead of decoding it and escaping the fields again.
        let fields = access_log(trimmed, Quotes::Escaped);
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
        Some(escape) if escape < 17 && bytes[0].is_ascii_uppercase() => bsd_marks_agree(&bytes[..escape]),
        _ => shape(trimmed).is_some(),
    }
}

pub fn parse(message: &str) -> (Format, Fields<'_>) {
    let trimmed = message.trim_start();
    let parsed = match shape(trimmed) {
        Some(Shape::Json) => json(trimmed).map(|f| (Format::Json, f)),
        Some(Shape::WindowsEvent) => Some((Format::WindowsEvent, windows_event(trimmed))),
        Some(Shape::SyslogWithPriority) => syslog_with_priority(trimmed).map(|f| (Format::Syslog, f)),
        Some(Shape::BsdSyslog) => bsd_syslog(trimmed).map(|f| (Format::Syslog, f)),
        Some(Shape::Access) => access_log(trimmed, Quotes::Text).map(|f| (Format::Access, f)),
        None => None,
    };
    parsed.unwrap_or((Format::Text, Fields::default()))
}

fn json(message: &str) -> Option<Fields<'_>> {
    serde_json::from_str(message).ok().map(json_fields)
}

/// The fields of a JSON object message read from its string literal in the envelope (escapes not
/// decoded), for the common case: strings without escapes of their own. `None` leaves the message to
/// [`parse`] of its decoded text, which then decides; what this accepts, that parses as JSON too,
/// into the same fields.
fn json_from_literal(literal: &str) -> Option<Fields<'_>> {
    let members =
        literal_json::top_level_members(literal, |name, value| (Cow::Borrowed(name), AttributeValue::Escaped(value)))?;
    Some(json_fields(Attributes::from_fields(members)))
}

fn json_fields(attributes: Attributes<'_>) -> Fields<'_> {
    let severity = ["level", "severity", "lvl", "log_level"]
        .iter()
        .find_map(|k| attributes.get(k).and_then(AttributeValue::as_str))
        .map(|level| match LEVELS.iter().find(|name| name.eq_ignore_ascii_case(&level)) {
            Some(name) => Cow::Borrowed(*name),
            None => Cow::Owned(level.to_ascii_uppercase()),
        });
    Fields { severity, attributes: Some(attributes), ..Fields::default() }
}

/// Level names as the `severity` column spells them (upper case): a message's level found here is
/// not copied to be upper-cased.
const LEVELS: [&str; 12] = [
    "TRACE",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARN",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "FATAL",
    "ALERT",
    "EMERGENCY",
    "VERBOSE",
];

const SEVERITIES: [&str; 8] = ["EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"];

/// `<PRI>` then RFC 5424 (`1 TIMESTAMP HOST APP PROCID MSGID …`) or RFC 3164 (`Mmm dd hh:mm:ss HOST TAG: …`).
fn syslog_with_priority(message: &str) -> Option<Fields<'_>> {
    let rest = message.strip_prefix('<')?;
    let end = position(rest, b'>')?;
    let pri: u8 = rest[..end].parse().ok().filter(|p| *p <= 191)?;
    let severity = Some(Cow::Borrowed(SEVERITIES[usize::from(pri % 8)]));
    let body = &rest[end + 1..];
    if let Some(v5424) = body.strip_prefix("1 ") {
        let mut parts = v5424.splitn(6, ' ');
        let _timestamp = parts.next()?;
        let host = parts.next().filter(|h| *h != "-");
        let program = parts.next().filter(|a| *a != "-");
        let pid = parts.next().filter(|p| *p != "-");
        return Some(Fields { severity, host, program, pid, ..Fields::default() });
    }
    let mut fields = bsd_syslog(body)?;
    fields.severity = severity;
    Some(fields)
}

/// `Nov 22 10:00:00 host program[pid]: message` (what rsyslog writes to /var/log/messages).
fn bsd_syslog(message: &str) -> Option<Fields<'_>> {
    if !has_bsd_timestamp(message) {
        return None;
    }
    let rest = &message[16..];
    let (host, rest) = split_at_byte(rest, b' ')?;
    let tag_end = find(rest, needle!(": ")).or_else(|| rest.strip_suffix(':').map(str::len))?;
    let tag = &rest[..tag_end];
    if position(tag, b' ').is_some() {
        return Some(Fields { host: Some(host), ..Fields::default() });
    }
    let (program, pid) = match split_at_byte(tag, b'[') {
        Some((program, pid)) => (program, pid.strip_suffix(']')),
        None => (tag, None),
    };
    Some(Fields { host: Some(host), program: Some(program), pid, ..Fields::default() })
}

/// How the message given to [`access_log`] spells a double quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quotes {
    /// The message's text: `"`.
    Text,
    /// The message's JSON string literal: `\"`. Its other escapes must not spell a space, a quote
    /// or a bracket (no `\u` escapes), so it splits where its text does.
    Escaped,
}

/// An Apache/Nginx combined or common access log line (`client - user [time] "request" status bytes
/// "referrer" "agent"`), from its text or from its literal: what is read from a literal is JSON string
/// content.
fn access_log(message: &str, quotes: Quotes) -> Option<Fields<'_>> {
    let (quote, time_end, quoted_end, between_quoted) = match quotes {
        Quotes::Text => ("\"", needle!("] \""), needle!("\" "), needle!("\" \"")),
        Quotes::Escaped => ("\\\"", needle!("] \\\""), needle!("\\\" "), needle!("\\\" \\\"")),
    };
    let (client_ip, rest) = split_at_byte(message, b' ')?;
    if !client_ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':') {
        return None;
    }
    let rest = &rest[find(rest, time_end)? + time_end.needle().len()..];
    let request_end = find(rest, quoted_end)?;
    let (request, rest) = (&rest[..request_end], &rest[request_end + quoted_end.needle().len()..]);
    let mut request_parts = request.split(' ');
    let http_method = request_parts.next().filter(|m| m.bytes().all(|b| b.is_ascii_uppercase()))?;
    let http_path = request_parts.next();
    let mut rest_parts = rest.splitn(3, ' ');
    let http_status = rest_parts.next()?.parse().ok();
    let http_bytes = rest_parts.next().and_then(|b| b.parse().ok());
    let user_agent = rest_parts.next().and_then(|tail| {
        // "referrer" "user agent"
        let tail = tail.strip_prefix(quote)?;
        let after = &tail[find(tail, between_quoted)? + between_quoted.needle().len()..];
        after.strip_suffix(quote).or(Some(after))
    });
    Some(Fields {
        client_ip: Some(client_ip),
        http_method: Some(http_method),
        http_path,
        http_status,
        http_bytes,
        user_agent,
        verbatim: quotes == Quotes::Escaped,
        ..Fields::default()
    })
}

/// The agent's Windows event XML (`event_format: xml`).
fn windows_event(message: &str) -> Fields<'_> {
    // <System>'s children come in the schema's order (Provider, EventID, …, Level, …, Channel,
    // Computer), so each lookup starts where the previous one ended: one pass over the usual event.
    let mut xml = Xml { text: message, from: 0 };
    let win_provider = xml.attribute(needle!("<Provider"), needle!("Name="));
    let win_event_id = xml.element(needle!("<EventID")).and_then(|v| v.parse().ok());
    let level = xml.element(needle!("<Level")).and_then(|v| v.parse::<u8>().ok());
    let win_channel = xml.element(needle!("<Channel"));
    let host = xml.element(needle!("<Computer"));
    let severity = level.map(|l| {
        Cow::Borrowed(match l {
            1 => "CRITICAL",
            2 => "ERROR",
            3 => "WARNING",
            5 => "VERBOSE",
            _ => "INFO",
        })
    });
    Fields { severity, win_event_id, win_channel, host, win_provider, ..Fields::default() }
}

/// Forward lookups in an XML text; a tag missing after the cursor is looked for from the start.
struct Xml<'a> {
    text: &'a str,
    from: usize,
}

impl<'a> Xml<'a> {
    /// What follows the first `open` (`<Name`) that `after_name` says ends the name.
    fn open(&mut self, open: &Finder<'_>, after_name: &[u8]) -> Option<&'a str> {
        let name_length = open.needle().len();
        let found = |from: usize| {
            let mut at = from;
            loop {
                at += find(&self.text[at..], open)?;
                let next = self.text.as_bytes().get(at + name_length)?;
                if after_name.contains(next) {
                    return Some(at);
                }
                at += name_length;
            }
        };
        let at = found(self.from).or_else(|| found(0))?;
        self.from = at;
        Some(&self.text[at + name_length..])
    }

    /// Text of the first `<Name …>text</Name>`.
    fn element(&mut self, open: &Finder<'_>) -> Option<&'a str> {
        let after = self.open(open, b"> ")?;
        let text = &after[position(after, b'>')? + 1..];
        Some(&text[..position(text, b'<')?])
    }

    /// Value of `Name='…'` or `Name="…"` (`name_equals` is `Name=`) in the first `<Tag …>`.
    fn attribute(&mut self, open: &Finder<'_>, name_equals: &Finder<'_>) -> Option<&'a str> {
        let tag = self.open(open, b" ")?;
        let tag = &tag[..position(tag, b'>')?];
        let mut at = 0;
        let value_at = loop {
            let found = at + find(&tag[at..], name_equals)?;
            at = found + name_equals.needle().len();
            if tag.as_bytes()[found.checked_sub(1)?].is_ascii_whitespace() {
                break at;
            }
        };
        let quote = *tag.as_bytes().get(value_at)?;
        if quote != b'\'' && quote != b'"' {
            return None;
        }
        let value = &tag[value_at + 1..];
        Some(&value[..position(value, quote)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_borrow_unless_escaped() {
        let BorrowedStr(plain) = serde_json::from_str(r#""info""#).unwrap();
        assert!(matches!(plain, Cow::Borrowed("info")));
        let BorrowedStr(escaped) = serde_json::from_str(r#""w\u0061rn""#).unwrap();
        assert!(matches!(escaped, Cow::Owned(ref text) if text == "warn"));
    }

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

    #[test]
    fn bsd_syslog_lines() {
        let (format, f) =
            parse("Nov 22 10:00:01 ip-10-0-0-1 sshd[4242]: Failed password for root from 203.0.113.9 port 22 ssh2");
        assert_eq!(format, Format::Syslog);
        assert_eq!((f.host, f.program, f.pid), (Some("ip-10-0-0-1"), Some("sshd"), Some("4242")));
        let (_, f) = parse("Nov  2 10:00:01 host kernel: boot");
        assert_eq!((f.program, f.pid), (Some("kernel"), None));
    }

    #[test]
    fn rfc5424_and_priority_syslog() {
        let (format, f) = parse("<34>1 2026-11-22T10:00:00Z web1 su 77 ID47 - 'su root' failed");
        assert_eq!(format, Format::Syslog);
        assert_eq!(
            (f.severity.as_deref(), f.host, f.program, f.pid),
            (Some("CRITICAL"), Some("web1"), Some("su"), Some("77"))
        );
        let (_, f) = parse("<13>Nov 22 10:00:01 host app: hello");
        assert_eq!((f.severity.as_deref(), f.program), (Some("NOTICE"), Some("app")));
    }

    #[test]
    fn combined_access_log() {
        let line = r#"203.0.113.9 - alice [22/Nov/2026:10:00:00 +0000] "GET /api/items?id=1 HTTP/1.1" 503 1234 "https://example.com/" "curl/8.0 (x)""#;
        let (format, f) = parse(line);
        assert_eq!(format, Format::Access);
        assert_eq!(f.client_ip, Some("203.0.113.9"));
        assert_eq!(
            (f.http_method, f.http_path, f.http_status, f.http_bytes),
            (Some("GET"), Some("/api/items?id=1"), Some(503), Some(1234))
        );
        assert_eq!(f.user_agent, Some("curl/8.0 (x)"));
        let (_, f) = parse(r#"::1 - - [22/Nov/2026:10:00:00 +0000] "POST / HTTP/2.0" 200 - "-" "-""#);
        assert_eq!((f.http_status, f.http_bytes), (Some(200), None));
    }

    #[test]
    fn windows_event_xml() {
        let xml = "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Security-Auditing' Guid='{5}'/><EventID>4625</EventID><Level>0</Level><Channel>Security</Channel><Computer>WIN-1</Computer></System></Event>";
        let (format, f) = parse(xml);
        assert_eq!(format, Format::WindowsEvent);
        assert_eq!(f.win_event_id, Some(4625));
        assert_eq!(f.win_channel, Some("Security"));
        assert_eq!(f.win_provider, Some("Microsoft-Windows-Security-Auditing"));
        assert_eq!(f.host, Some("WIN-1"));
        assert_eq!(f.severity.as_deref(), Some("INFO"));
    }

    fn fields_json(fields: &Fields<'_>) -> serde_json::Value {
        let mut out = b"{\"x\":0".to_vec();
        fields.write_json(&mut out);
        out.push(b'}');
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn json_messages_become_attributes() {
        let (format, f) =
            parse(r#"{"level":"error","msg":"b\u00f6om \"x\"","user":{"id": 7},"n":3,"gone":null,"n":4}"#);
        assert_eq!(format, Format::Json);
        assert_eq!(f.severity.as_deref(), Some("ERROR"));
        assert_eq!(
            fields_json(&f)["attributes"],
            serde_json::json!({"level":"error","msg":"böom \"x\"","user":r#"{"id": 7}"#,"n":"4","gone":null})
        );
        let mut written = Vec::new();
        f.write_json(&mut written);
        let written = String::from_utf8(written).unwrap();
        assert!(
            written.contains(r#","attributes":{"gone":null,"level":"error","msg":"b\u00f6om \"x\"","n":"4","user":"#),
            "{written}"
        );
        let (_, f) = parse(r#"{"k\u0065y":"v","lvl":"w\u0061rn"}"#);
        assert_eq!(fields_json(&f)["attributes"], serde_json::json!({"key": "v", "lvl": "warn"}));
        assert_eq!(f.severity.as_deref(), Some("WARN"), "escaped names and levels are decoded");
        let (_, f) = parse(r#"{"severity":7}"#);
        assert_eq!(f.severity, None, "a level that is not a string is left in the attributes only");
        for (level, severity) in [("Warning", "WARNING"), ("audit-é", "AUDIT-é"), ("", "")] {
            let literal = format!(r#"{{\"level\":\"{level}\"}}"#);
            let (_, f) = parse_literal(&literal, || None);
            assert_eq!(f.severity.as_deref(), Some(severity), "named or not, levels are upper-cased");
        }
    }

    /// JSON's grammar allows a lone surrogate escape; JSON readers refuse it, and with it every
    /// record of the object it is in. A value holding one is written with the escape as U+FFFD.
    #[test]
    fn lone_surrogates_in_values_become_replacement_characters() {
        // Found by the `message` fuzz target: the application cut a string inside a surrogate pair.
        let found = r#"{"level":"warn","ts":"2026-1\ud83ddue800Z","mprovidey_ms":65}"#;
        let literal = literal_of(found);
        let (format, f) = parse_literal(&literal, || Some(found));
        assert_eq!(format, Format::Json);
        assert_eq!(fields_json(&f)["attributes"]["ts"], "2026-1\u{fffd}due800Z");
        for (value, expected) in [
            (r#""\ud83d""#, "\u{fffd}"),
            (r#""\udc00 low""#, "\u{fffd} low"),
            (r#""a\ud83d\u0041""#, "a\u{fffd}A"),
            (r#""\ud83d\ud83d\ude80""#, "\u{fffd}\u{1f680}"),
        ] {
            let message = format!(r#"{{"v":{value}}}"#);
            assert_eq!(fields_json(&parse(&message).1)["attributes"]["v"], expected, "{value}");
        }
        // Pairs, and escapes that only look like one, are written as spelled.
        for value in [r#""\ud83d\ude80""#, r#""\\ud83d""#, r#""\u00e9""#] {
            let mut written = Vec::new();
            parse(&format!(r#"{{"v":{value}}}"#)).1.write_json(&mut written);
            assert!(String::from_utf8(written).unwrap().contains(value), "{value}");
        }
    }

    /// The literal CloudWatch Logs would send for a message.
    fn literal_of(message: &str) -> String {
        let literal = serde_json::to_string(message).unwrap();
        literal[1..literal.len() - 1].to_owned()
    }

    #[test]
    fn json_messages_are_read_from_their_literal_in_the_common_case() {
        for message in [
            r#"{"level":"info","n":-1.5e3,"ok":true,"no":false,"gone":null,"user":{"id":7,"tags":["a",[]]},"e":{}}"#,
            "{\n  \"level\": \"warn\",\n\t\"a\" : [ 1 , 2 ]\r\n}\n",
            r#" {"msg":"böom 🚀 / done","n":0,"small":1e-400,"big":1E+300}"#,
            "{}",
        ] {
            let literal = literal_of(message);
            let fast = json_from_literal(&literal).unwrap_or_else(|| panic!("not read from the literal: {message}"));
            let (format, slow) = parse(message);
            assert_eq!(format, Format::Json);
            assert_eq!(fields_json(&fast), fields_json(&slow), "{message}");
            assert_eq!(fast.severity, slow.severity, "{message}");
        }
        // Repeated names: the last counts, as when decoded.
        let (fast, slow) = (json_from_literal(r#"{\"n\":3,\"n\":4}"#).unwrap(), parse(r#"{"n":3,"n":4}"#).1);
        assert_eq!(fields_json(&fast), fields_json(&slow));
        // Left to the decoding path: escapes of the message's own, other whitespace, not an object,
        // bad JSON, trailing text.
        for message in [
            r#"{"msg":"say \"hi\""}"#,
            r#"{"path":"C:\\x"}"#,
            "{\"a\":\"line\nbreak\"}",
            "\u{a0}{}",
            "[1]",
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1} x"#,
            r#"{"a":[1,]}"#,
            r#"{"a":-1e400}"#,
            "{",
        ] {
            assert!(json_from_literal(&literal_of(message)).is_none(), "{message}");
        }
        let huge = format!(r#"{{"n":{}}}"#, "9".repeat(400));
        assert!(serde_json::from_str::<serde_json::Value>(&huge).is_err(), "serde_json refuses it");
        assert!(json_from_literal(&literal_of(&huge)).is_none());
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
            "[a-z \"\\\\\n\té🚀/\u{1}]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec(("[a-z_\"é]{1,5}", inner), 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    /// A JSON object message, compact or pretty, maybe with leading and trailing whitespace.
    fn json_message() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        (
            proptest::collection::vec(("(level|lvl|[a-z_\"é]{1,5})", json_value()), 0..6),
            any::<bool>(),
            "[ \n]{0,2}",
            "[ \n\t]{0,2}",
        )
            .prop_map(|(members, pretty, before, after)| {
                let object = serde_json::Value::Object(members.into_iter().collect());
                let text = if pretty { serde_json::to_string_pretty(&object) } else { serde_json::to_string(&object) };
                format!("{before}{}{after}", text.unwrap())
            })
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

        /// What is read from the literal is what decoding the message reads.
        #[test]
        fn literal_json_agrees_with_the_decoded_message(message in json_message()) {
            let literal = literal_of(&message);
            let (format, slow) = parse(&message);
            proptest::prop_assert_eq!(format, Format::Json);
            if let Some(fast) = json_from_literal(&literal) {
                proptest::prop_assert_eq!(fields_json(&fast), fields_json(&slow), "{}", message);
                proptest::prop_assert_eq!(fast.severity, slow.severity);
            } else {
                // Only messages with escapes of their own (or escaped characters) are left to decoding.
                proptest::prop_assert!(literal.contains("\\\\") || literal.contains("\\u"), "{}", literal);
            }
        }

        /// A damaged message is never taken for JSON when serde_json refuses it.
        #[test]
        fn literal_json_never_accepts_what_serde_refuses(
            message in json_message(),
            at in 0usize..200,
            edit in proptest::option::of("[{}\\[\\],:\" 0-9eE.+tfnul-]"),
        ) {
            let mut chars: Vec<char> = message.chars().collect();
            let at = at % (chars.len() + 1);
            match edit {
                Some(inserted) => chars.splice(at..at, inserted.chars()).for_each(drop),
                None if at < chars.len() => drop(chars.remove(at)),
                None => {}
            }
            let damaged: String = chars.into_iter().collect();
            if json_from_literal(&literal_of(&damaged)).is_some() {
                let decoded = serde_json::from_str::<serde_json::Value>(&damaged);
                proptest::prop_assert!(decoded.is_ok_and(|v| v.is_object()), "{:?}", damaged);
            }
        }
    }

    #[test]
    fn fields_are_written_as_json_with_their_types() {
        let (_, f) = parse(r#"::1 - - [22/Nov/2026:10:00:00 +0000] "GET /a\b HTTP/1.1" 404 12 "-" "agent \"x\" 1""#);
        assert_eq!(
            fields_json(&f),
            serde_json::json!({"x":0,"client_ip":"::1","http_method":"GET","http_path":r"/a\b",
                "http_status":404,"http_bytes":12,"user_agent":r#"agent \"x\" 1"#})
        );
        assert_eq!(fields_json(&Fields::default()), serde_json::json!({"x":0}));
    }

    #[test]
    fn windows_elements_are_found_in_any_order() {
        let xml = "<Event><System><Computer>C</Computer><Channel>Ch</Channel><Level>2</Level><EventIDs>1</EventIDs><EventID Qualifiers='0'>7</EventID><Provider  Guid='g' Name=\"P\"/></System></Event>";
        let (_, f) = parse(xml);
        assert_eq!(
            (f.win_event_id, f.win_channel, f.host, f.win_provider, f.severity.as_deref()),
            (Some(7), Some("Ch"), Some("C"), Some("P"), Some("ERROR"))
        );
        let (_, f) = parse("<Event><System><EventID>oops</EventID></System></Event>");
        assert_eq!((f.win_event_id, f.win_provider, f.host), (None, None, None));
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
