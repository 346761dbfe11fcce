//! JSON object messages: their top-level members become the `attributes` map, and a level among
//! them the severity. Read from the message's literal in the common case (`literal`), else by
//! serde_json from the decoded text.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::Fields;
use crate::json::{well_formed, write_content, write_str};

mod literal;

/// The top-level fields of a JSON object, sorted by name; of a repeated name the last one counts, as
/// in serde_json's maps. One vector, not a tree: a log line has a handful of fields.
#[derive(Debug, Clone, Default)]
pub struct Attributes<'a>(Vec<Attribute<'a>>);

/// A top-level member of a JSON message, by where it was read: that decides how its name and value
/// are spelled, so how they are written.
#[derive(Debug, Clone)]
pub(super) enum Attribute<'a> {
    /// Read by serde_json from the decoded message: the name as text, the value's JSON text as the
    /// message spells it.
    Decoded(Cow<'a, str>, &'a RawValue),
    /// Read from the message's string literal in the envelope: the name and the value's JSON text as
    /// the literal spells them, escaped once more (JSON string content); a string value has no
    /// escapes of its own (see [`from_literal`]).
    Literal(&'a str, &'a str),
}

impl<'a> Attribute<'a> {
    fn name(&self) -> &str {
        match self {
            Attribute::Decoded(name, _) => name,
            Attribute::Literal(name, _) => name,
        }
    }

    /// The value when it is a string.
    pub(super) fn as_str(&self) -> Option<Cow<'a, str>> {
        match *self {
            Attribute::Decoded(_, raw) => serde_json::from_str::<BorrowedStr<'a>>(raw.get()).ok().map(|s| s.0),
            Attribute::Literal(_, text) => text.strip_prefix("\\\"")?.strip_suffix("\\\"").map(Cow::Borrowed),
        }
    }

    /// The value's JSON text, decoded from the literal where it was read there.
    pub(super) fn json_text(&self) -> Option<Cow<'a, str>> {
        match *self {
            Attribute::Decoded(_, raw) => Some(Cow::Borrowed(raw.get())),
            Attribute::Literal(_, text) => serde_json::from_str::<String>(&format!("\"{text}\"")).ok().map(Cow::Owned),
        }
    }

    /// Appends `"name":value`: strings as spelled, `null` as null, anything else as a string of its
    /// JSON text.
    #[inline]
    pub(super) fn write_json(&self, out: &mut Vec<u8>) {
        match *self {
            Attribute::Decoded(ref name, raw) => {
                write_str(out, name);
                out.push(b':');
                let json = raw.get();
                if json.starts_with('"') {
                    write_json_string(out, json);
                } else if json == "null" {
                    out.extend_from_slice(json.as_bytes());
                } else {
                    write_str(out, json);
                }
            }
            Attribute::Literal(name, text) => {
                write_content(out, name);
                out.push(b':');
                if text == "null" {
                    out.extend_from_slice(b"null");
                    return;
                }
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
    fn from_fields(mut fields: Vec<Attribute<'a>>) -> Self {
        // Stable, so of equal names the last stays last; keep it (names seldom repeat).
        fields.sort_by(|a, b| name_order(a.name(), b.name()));
        if fields.windows(2).any(|pair| pair[0].name() == pair[1].name()) {
            fields.reverse();
            fields.dedup_by(|later, kept| later.name() == kept.name());
            fields.reverse();
        }
        Attributes(fields)
    }

    pub(super) fn get(&self, name: &str) -> Option<&Attribute<'a>> {
        self.0.binary_search_by(|attribute| name_order(attribute.name(), name)).ok().map(|i| &self.0[i])
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Attribute<'a>> {
        self.0.iter()
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
                    fields.push(Attribute::Decoded(name, value));
                }
                Ok(Attributes::from_fields(fields))
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
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

/// The fields of a JSON object message's text.
pub(super) fn message(text: &str) -> Option<Fields<'_>> {
    serde_json::from_str(text).ok().map(json_fields)
}

/// The fields of a JSON object message read from its string literal in the envelope (escapes not
/// decoded), for the common case: strings without escapes of their own. `None` leaves the message to
/// [`message`] of its decoded text, which then decides; what this accepts, that parses as JSON too,
/// into the same fields.
pub(super) fn from_literal(literal: &str) -> Option<Fields<'_>> {
    let members = literal::top_level_members(literal, Attribute::Literal)?;
    Some(json_fields(Attributes::from_fields(members)))
}

fn json_fields(attributes: Attributes<'_>) -> Fields<'_> {
    let severity = ["level", "severity", "lvl", "log_level"]
        .iter()
        .find_map(|k| attributes.get(k).and_then(Attribute::as_str))
        .map(|level| match LEVELS.iter().find(|name| name.eq_ignore_ascii_case(&level)) {
            Some(name) => Cow::Borrowed(*name),
            None => Cow::Owned(level.to_ascii_uppercase()),
        });
    let service = super::aws::recognise(&attributes);
    Fields { severity, service, attributes: Some(attributes), ..Fields::default() }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::testing::{fields_json, literal_of};
    use crate::parse::{Format, parse, parse_literal};

    #[test]
    fn json_strings_borrow_unless_escaped() {
        let BorrowedStr(plain) = serde_json::from_str(r#""info""#).unwrap();
        assert!(matches!(plain, Cow::Borrowed("info")));
        let BorrowedStr(escaped) = serde_json::from_str(r#""w\u0061rn""#).unwrap();
        assert!(matches!(escaped, Cow::Owned(ref text) if text == "warn"));
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

    #[test]
    fn json_messages_are_read_from_their_literal_in_the_common_case() {
        for message in [
            r#"{"level":"info","n":-1.5e3,"ok":true,"no":false,"gone":null,"user":{"id":7,"tags":["a",[]]},"e":{}}"#,
            "{\n  \"level\": \"warn\",\n\t\"a\" : [ 1 , 2 ]\r\n}\n",
            r#" {"msg":"böom 🚀 / done","n":0,"small":1e-400,"big":1E+300}"#,
            "{}",
        ] {
            let literal = literal_of(message);
            let fast = from_literal(&literal).unwrap_or_else(|| panic!("not read from the literal: {message}"));
            let (format, slow) = parse(message);
            assert_eq!(format, Format::Json);
            assert_eq!(fields_json(&fast), fields_json(&slow), "{message}");
            assert_eq!(fast.severity, slow.severity, "{message}");
        }
        // Repeated names: the last counts, as when decoded.
        let (fast, slow) = (from_literal(r#"{\"n\":3,\"n\":4}"#).unwrap(), parse(r#"{"n":3,"n":4}"#).1);
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
            assert!(from_literal(&literal_of(message)).is_none(), "{message}");
        }
        let huge = format!(r#"{{"n":{}}}"#, "9".repeat(400));
        assert!(serde_json::from_str::<serde_json::Value>(&huge).is_err(), "serde_json refuses it");
        assert!(from_literal(&literal_of(&huge)).is_none());
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

    proptest::proptest! {
        /// What is read from the literal is what decoding the message reads.
        #[test]
        fn literal_json_agrees_with_the_decoded_message(message in json_message()) {
            let literal = literal_of(&message);
            let (format, slow) = parse(&message);
            proptest::prop_assert_eq!(format, Format::Json);
            if let Some(fast) = from_literal(&literal) {
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
            if from_literal(&literal_of(&damaged)).is_some() {
                let decoded = serde_json::from_str::<serde_json::Value>(&damaged);
                proptest::prop_assert!(decoded.is_ok_and(|v| v.is_object()), "{:?}", damaged);
            }
        }
    }
}
