//! Reads the envelope CloudWatch Logs writes — an object of the known keys whose events hold `id`,
//! `timestamp` and `message` — without serde's per-token machinery: strings are delimited with a
//! vectorised search for `"` and `\`, and messages are kept as literals. It accepts only what
//! serde_json would accept, and gives up (`None`) on anything else: unknown or repeated keys, other
//! value types, malformed JSON. The caller then reads the payload with serde_json.

use std::borrow::Cow;

use super::{Envelope, Literal, LogEvent};
use crate::json::{UnicodeEscape, unescape_into, unicode_escape};
use crate::scan::first_of;

pub(super) fn read(text: &str) -> Option<Envelope<'_>> {
    // The compact form CloudWatch Logs writes has no byte below 0x20 anywhere (not even whitespace),
    // so one pass over the whole payload spares checking each string for raw control characters:
    // the strings are many and short, and that check would cost a good part of reading them.
    let check_controls = text.bytes().min().is_some_and(|smallest| smallest < 0x20);
    let mut reader = Reader { text, at: 0, check_controls, lone_surrogates: false };
    let mut envelope = Envelope::default();
    // Room for every event at once: as CloudWatch Logs writes them (a 56-digit id, a 13-digit
    // timestamp, the keys) each takes more than 90 bytes, so the vector is never grown and copied.
    envelope.log_events.reserve(text.len() / 90);
    let mut seen = Keys::default();
    reader.object(|reader, key| {
        match seen.first(key, &["messageType", "owner", "logGroup", "logStream", "subscriptionFilters", "logEvents"])? {
            0 => envelope.message_type = reader.string()?,
            1 => envelope.owner = reader.string()?,
            2 => envelope.log_group = reader.string()?,
            3 => envelope.log_stream = reader.string()?,
            4 => reader.array(|reader| {
                envelope.subscription_filters.push(reader.string()?);
                Some(())
            })?,
            _ => reader.array(|reader| {
                envelope.log_events.push(reader.event()?);
                Some(())
            })?,
        }
        Some(())
    })?;
    reader.skip_whitespace();
    envelope.lone_surrogates = reader.lone_surrogates;
    // messageType is the one key serde requires.
    (reader.at == text.len() && seen.has(0)).then_some(envelope)
}

/// Which of up to 8 known keys an object has had.
#[derive(Default)]
struct Keys(u8);

impl Keys {
    /// The index of `key` among `known`, if it is known and new.
    fn first(&mut self, key: &str, known: &[&str]) -> Option<usize> {
        let index = known.iter().position(|k| *k == key)?;
        let bit = 1 << index;
        if self.0 & bit != 0 {
            return None;
        }
        self.0 |= bit;
        Some(index)
    }

    fn has(&self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }
}

/// How many ASCII digits eight bytes start with, and their value (most significant first), in one
/// 64-bit word: a mask finds the first byte that is not a digit, and three multiplications add up
/// the digits before it, instead of a step and a test per digit.
fn leading_digits(eight: [u8; 8]) -> (usize, i64) {
    // Digits become 0..=9. A byte's high bit is then set in `not_digits` where it is over 9;
    // adding 0x76 can carry only into the bytes above it, so the lowest flagged byte is exact.
    let values = u64::from_le_bytes(eight) ^ 0x3030_3030_3030_3030;
    let not_digits = (values.wrapping_add(0x7676_7676_7676_7676) | values) & 0x8080_8080_8080_8080;
    let count = not_digits.trailing_zeros() as usize / 8;
    if count == 0 {
        return (0, 0);
    }
    // The digits moved to the top of the word (little-endian: the first is the lowest byte), zeros
    // below them: leading zeros, the same value. Then pairs, fours and all eight: each step
    // multiplies the higher digits up and adds the lower ones (what overflows is no longer wanted).
    let digits = values << (8 * (8 - count));
    let pairs = (digits.wrapping_mul((10 << 8) + 1) >> 8) & 0x00ff_00ff_00ff_00ff;
    let fours = (pairs.wrapping_mul((100 << 16) + 1) >> 16) & 0x0000_ffff_0000_ffff;
    let eight = fours.wrapping_mul((10_000 << 32) + 1) >> 32;
    (count, i64::try_from(eight).unwrap_or_default())
}

/// Powers of ten up to the eighth.
const POWERS_OF_TEN: [i64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// The bytes that make a two-byte escape after a backslash: `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`
/// and `\t`.
const SHORT_ESCAPES: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    let escapes = *b"\"\\/bfnrt";
    while i < escapes.len() {
        table[escapes[i] as usize] = true;
        i += 1;
    }
    table
};

struct Reader<'a> {
    text: &'a str,
    at: usize,
    /// Whether strings must be checked for raw control characters (JSON allows none); needless when
    /// the text holds none at all.
    check_controls: bool,
    /// Whether a literal read so far spells a lone surrogate (see `Envelope::lone_surrogates`).
    lone_surrogates: bool,
}

impl<'a> Reader<'a> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.text.as_bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// Skips whitespace, then consumes `byte` if it is next.
    fn next_is(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        let found = self.text.as_bytes().get(self.at) == Some(&byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.next_is(byte).then_some(())
    }

    /// A string literal, quotes included, with its escapes checked.
    fn literal(&mut self) -> Option<Literal<'a>> {
        self.skip_whitespace();
        let bytes = self.text.as_bytes();
        let start = self.at;
        if bytes.get(start) != Some(&b'"') {
            return None;
        }
        let mut at = start + 1;
        loop {
            at = first_of(bytes, at, b'"', b'\\')?;
            if bytes[at] == b'"' {
                break;
            }
            let escaped = *bytes.get(at + 1)?;
            // The common escapes by a test that predicts well, not a jump table that does not.
            if SHORT_ESCAPES[usize::from(escaped)] {
                at += 2;
                continue;
            }
            at += match escaped {
                b'u' => match unicode_escape(&bytes[at..])? {
                    UnicodeEscape::Char(_, length) => length,
                    UnicodeEscape::LoneSurrogate => {
                        self.lone_surrogates = true;
                        6
                    }
                },
                _ => return None,
            };
        }
        // JSON strings hold no raw control characters. (The smallest byte, not `any`: no early exit,
        // so the compiler can vectorise it.)
        if self.check_controls && bytes[start..at].iter().copied().min().is_some_and(|smallest| smallest < 0x20) {
            return None;
        }
        self.at = at + 1;
        Some(Literal::new(&self.text[start..self.at]))
    }

    fn string(&mut self) -> Option<Cow<'a, str>> {
        let content = self.literal()?.content();
        if memchr::memchr(b'\\', content.as_bytes()).is_none() {
            return Some(Cow::Borrowed(content));
        }
        let mut decoded = String::new();
        unescape_into(content, &mut decoded)?;
        Some(Cow::Owned(decoded))
    }

    /// A JSON integer that fits an i64.
    fn integer(&mut self) -> Option<i64> {
        self.skip_whitespace();
        let bytes = self.text.as_bytes();
        let start = self.at;
        let digits = start + usize::from(bytes.get(start) == Some(&b'-'));
        // One pass: digits are counted and folded together. Eighteen digits cannot overflow an i64,
        // so no checks per digit; longer ones are parsed again, checked. Up to eight at a time (a
        // timestamp's 13 in two steps) while eight bytes are left, then one at a time.
        let (mut end, mut magnitude) = (digits, 0i64);
        while let Some(eight) = bytes.get(end..end + 8).and_then(|eight| <[u8; 8]>::try_from(eight).ok()) {
            let (count, value) = leading_digits(eight);
            if end - digits + count > 18 {
                break;
            }
            magnitude = magnitude * POWERS_OF_TEN[count] + value;
            end += count;
            if count < 8 {
                break;
            }
        }
        while let Some(digit) = bytes.get(end).map(|b| b.wrapping_sub(b'0')).filter(|d| *d <= 9) {
            if end - digits < 18 {
                magnitude = magnitude * 10 + i64::from(digit);
            }
            end += 1;
        }
        let leading_zero = bytes.get(digits) == Some(&b'0') && end - digits > 1;
        if end == digits || leading_zero || matches!(bytes.get(end), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let value = match end - digits {
            1..=18 if digits > start => -magnitude,
            1..=18 => magnitude,
            _ => self.text[start..end].parse().ok()?,
        };
        self.at = end;
        Some(value)
    }

    /// A timestamp as CloudWatch Logs writes it, milliseconds of the years 2001 to 2286: thirteen
    /// digits, the first not 0, then neither more digits nor a fraction or exponent. Two words.
    fn thirteen_digits(&mut self) -> Option<i64> {
        let sixteen: [u8; 16] = self.text.as_bytes().get(self.at..self.at + 16)?.try_into().ok()?;
        let (high, low) = sixteen.split_at(8);
        let ((8, high), (5, low)) = (leading_digits(high.try_into().ok()?), leading_digits(low.try_into().ok()?))
        else {
            return None;
        };
        if sixteen[0] == b'0' || matches!(sixteen[13], b'.' | b'e' | b'E') {
            return None;
        }
        self.at += 13;
        Some(high * 100_000 + low)
    }

    /// `{ "key": value, … }`, `value` read by `field`.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.next_is(b'}') {
            return Some(());
        }
        loop {
            // Keys with escapes are left to serde_json (none of the known keys has any).
            let key = self.literal()?.content();
            self.expect(b':')?;
            field(self, key)?;
            if !self.next_is(b',') {
                return self.expect(b'}');
            }
        }
    }

    /// `[ item, … ]`.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.expect(b'[')?;
        if self.next_is(b']') {
            return Some(());
        }
        loop {
            item(self)?;
            if !self.next_is(b',') {
                return self.expect(b']');
            }
        }
    }

    /// The exact bytes `expected` next (no whitespace skipped).
    fn expect_bytes(&mut self, expected: &[u8]) -> Option<()> {
        let found = self.text.as_bytes().get(self.at..)?.starts_with(expected);
        found.then(|| self.at += expected.len())
    }

    fn event(&mut self) -> Option<LogEvent<'a>> {
        let start = self.at;
        if let Some(event) = self.compact_event() {
            return Some(event);
        }
        self.at = start;
        self.any_event()
    }

    /// An event as CloudWatch Logs writes it, `{"id":…,"timestamp":…,"message":…}`, with no key to
    /// look up.
    fn compact_event(&mut self) -> Option<LogEvent<'a>> {
        self.skip_whitespace();
        self.expect_bytes(b"{\"id\":")?;
        let id = self.literal()?;
        self.expect_bytes(b",\"timestamp\":")?;
        let timestamp = self.thirteen_digits().or_else(|| self.integer())?;
        self.expect_bytes(b",\"message\":")?;
        let message = self.literal()?;
        self.expect_bytes(b"}")?;
        Some(LogEvent { id, timestamp, message })
    }

    /// An event with its keys in any order and any whitespace.
    fn any_event(&mut self) -> Option<LogEvent<'a>> {
        let (mut id, mut timestamp, mut message) = (None, None, None);
        let mut seen = Keys::default();
        self.object(|reader, key| {
            match seen.first(key, &["id", "timestamp", "message"])? {
                0 => id = Some(reader.literal()?),
                1 => timestamp = Some(reader.integer()?),
                _ => message = Some(reader.literal()?),
            }
            Some(())
        })?;
        Some(LogEvent { id: id?, timestamp: timestamp?, message: message? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn serde_read(text: &str) -> Option<Envelope<'_>> {
        serde_json::from_str::<Envelope>(text).ok().map(Envelope::marked)
    }

    #[test]
    fn reads_compact_and_pretty_envelopes_like_serde() {
        let envelope = serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "g/\"quoted\"",
            "logStream": "i-0123456789abcdef0", "subscriptionFilters": ["a", "b"],
            "logEvents": [
                {"id": "1", "timestamp": 1_763_805_600_000_i64, "message": "plain"},
                {"message": "esc \" \\ \n \u{1} é 🚀", "timestamp": -5, "id": "2"},
                {"id": "3", "timestamp": 0, "message": ""}
            ]
        });
        for text in [envelope.to_string(), serde_json::to_string_pretty(&envelope).unwrap()] {
            assert_eq!(read(&text), serde_read(&text), "{text}");
            assert!(read(&text).is_some());
        }
        let spelled = r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"\u0041\/"}]}"#;
        assert_eq!(read(spelled).unwrap().log_events[0].message_literal(), r"\u0041\/");
        // Ids too are kept as spelled, even where text could not hold them; the envelope says so, for
        // its records to respell them. A pair is no lone surrogate.
        let lone = r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"\ud800","timestamp":1,"message":"m"}]}"#;
        assert_eq!(read(lone).unwrap().log_events[0].id_literal(), r"\ud800");
        assert!(read(lone).unwrap().lone_surrogates);
        assert_eq!(read(lone), serde_read(lone));
        let pair =
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"\ud83d\ude80 \\ud800"}]}"#;
        assert!(!read(pair).unwrap().lone_surrogates);
        assert_eq!(read(pair), serde_read(pair));
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        for text in [
            r#"{"messageType":"DATA_MESSAGE","extra":1}"#,
            r#"{"messageType":"DATA_MESSAGE","owner":"a","owner":"b"}"#,
            r#"{"owner":"a"}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1.5,"message":"m"}]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":01,"message":"m"}]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":99999999999999999999,"message":"m"}]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":"m"}]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":7}]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"\x"}]}"#,
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":1,"timestamp":1,"message":"m"}]}"#,
            "{\"messageType\":\"DATA_\nMESSAGE\"}",
            r#"{"messageType":"DATA_MESSAGE",}"#,
            r#"{"messageType":"DATA_MESSAGE"} x"#,
            r#"{"message\u0054ype":"DATA_MESSAGE"}"#,
        ] {
            assert_eq!(read(text), None, "{text}");
        }
    }

    #[test]
    fn leading_digits_are_read_in_one_word() {
        assert_eq!(leading_digits(*b"12345678"), (8, 12_345_678));
        assert_eq!(leading_digits(*b"00000000"), (8, 0));
        assert_eq!(leading_digits(*b"99999999"), (8, 99_999_999));
        assert_eq!(leading_digits(*b"12345,\"m"), (5, 12_345));
        assert_eq!(leading_digits(*b"0012}]}x"), (4, 12));
        assert_eq!(leading_digits(*b"7\xff\xff\xff\xff\xff\xff\xff"), (1, 7));
        // Bytes next to the digits ('/' and ':'), and digits' high bits set (0xb0..=0xb9).
        for not_digit in [*b"/1234567", *b":2345678", *b" 1234567", *b"\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8"] {
            assert_eq!(leading_digits(not_digit).0, 0, "{not_digit:?}");
        }
        assert_eq!(leading_digits(*b"123/5678"), (3, 123));
        assert_eq!(leading_digits(*b"1234567:"), (7, 1_234_567));
    }

    proptest! {
        /// The word reads what a digit-by-digit loop reads, whatever follows the digits.
        #[test]
        fn leading_digits_agree_with_a_loop(
            eight in proptest::array::uniform8(prop_oneof![b'0'..=b'9', b'0'..=b'9', any::<u8>()]),
        ) {
            let count = eight.iter().take_while(|b| b.is_ascii_digit()).count();
            let value = eight[..count].iter().fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0'));
            prop_assert_eq!(leading_digits(eight), (count, value));
        }

        /// The timestamp fast path reads a number exactly when it is 13 digits, as `integer` reads
        /// it, and leaves anything else (more or fewer digits, a leading zero, a fraction, an
        /// exponent) to `integer`.
        #[test]
        fn thirteen_digits_read_only_what_integer_reads(
            digits in prop_oneof![1_000_000_000_000i64..10_000_000_000_000, 0i64..100_000_000_000_000],
            zero in any::<bool>(),
            after in proptest::sample::select(vec![",\"message\":\"m\"}", ".5,", "e3,", "E3,", "0,,,", "}]}", "   ,"]),
        ) {
            let text = format!("{}{digits}{after}", if zero { "0" } else { "" });
            let mut fast = Reader { text: &text, at: 0, check_controls: true, lone_surrogates: false };
            let mut general = Reader { text: &text, at: 0, check_controls: true, lone_surrogates: false };
            if let Some(value) = fast.thirteen_digits() {
                prop_assert_eq!(Some(value), general.integer(), "{}", text);
                prop_assert_eq!(fast.at, general.at);
                prop_assert_eq!(fast.at, 13);
            } else {
                prop_assert_eq!(fast.at, 0, "{}", text);
                let thirteen = text.bytes().take_while(u8::is_ascii_digit).count() == 13 && !zero;
                prop_assert!(!thirteen || matches!(after.as_bytes()[0], b'.' | b'e' | b'E'), "{}", text);
            }
        }

        /// Integers are read as serde_json reads them, whatever their length, sign and what follows.
        #[test]
        fn integers_agree_with_serde(
            value in prop_oneof![any::<i64>(), -1_000_000_000_000_000i64..1_000_000_000_000_000, -1000i64..1000],
            zeros in 0usize..3,
            after in proptest::sample::select(vec!["", ",", "}", ".5", "e3", "0", " "]),
        ) {
            let digits = value.unsigned_abs().to_string();
            let text = format!("{}{}{digits}{after}", if value < 0 { "-" } else { "" }, "0".repeat(zeros));
            let mut reader = Reader { text: &text, at: 0, check_controls: true, lone_surrogates: false };
            let ours = reader.integer();
            // serde_json reads one number and stops before what follows, as the reader does.
            let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<i64>();
            let theirs = stream.next().and_then(Result::ok).filter(|_| !matches!(after, ".5" | "e3"));
            prop_assert_eq!(ours, theirs, "{}", text);
        }

        #[test]
        fn agrees_with_serde_on_generated_envelopes(
            events in proptest::collection::vec((any::<String>(), any::<i64>(), any::<String>()), 0..8),
            group in any::<String>(),
            pretty in any::<bool>(),
        ) {
            let events: Vec<_> = events.into_iter().map(|(id, timestamp, message)| {
                serde_json::json!({"id": id, "timestamp": timestamp, "message": message})
            }).collect();
            let envelope = serde_json::json!({"messageType": "DATA_MESSAGE", "owner": "1", "logGroup": group,
                "logStream": "s", "subscriptionFilters": ["f"], "logEvents": events});
            let text = if pretty { serde_json::to_string_pretty(&envelope).unwrap() } else { envelope.to_string() };
            let ours = read(&text);
            prop_assert!(ours.is_some());
            prop_assert_eq!(ours, serde_read(&text));
        }

        /// Envelopes as CloudWatch Logs writes them (compact, its key order), including damaged ones.
        #[test]
        fn agrees_with_serde_on_cloudwatch_ordered_envelopes(
            events in proptest::collection::vec((any::<String>(), any::<i64>(), any::<String>()), 0..8),
            cut in proptest::option::of(0usize..600),
        ) {
            let events: Vec<String> = events.iter().map(|(id, timestamp, message)| {
                format!(r#"{{"id":{},"timestamp":{timestamp},"message":{}}}"#,
                    serde_json::to_string(id).unwrap(), serde_json::to_string(message).unwrap())
            }).collect();
            let mut text = format!(
                r#"{{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{}]}}"#,
                events.join(","));
            if let Some(at) = cut.and_then(|c| text.char_indices().map(|(i, _)| i).nth(c)) {
                text.remove(at);
            }
            let ours = read(&text);
            prop_assert!(cut.is_some() || ours.is_some(), "{}", text);
            if ours.is_some() {
                prop_assert_eq!(ours, serde_read(&text), "{}", text);
            }
        }

        /// Whatever a damaged envelope looks like, what this reader accepts serde_json accepts too,
        /// as the same envelope.
        #[test]
        fn never_accepts_what_serde_refuses(cut in 0usize..400, insert in any::<char>(), at in 0usize..400) {
            let text = r#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":12,"message":"a \"b\" \\ c"},{"id":"2","timestamp":-3,"message":""}]}"#;
            let mut damaged: String = text.chars().enumerate().filter(|(i, _)| *i != cut).map(|(_, c)| c).collect();
            let at = damaged.char_indices().map(|(i, _)| i).nth(at).unwrap_or(damaged.len());
            damaged.insert(at, insert);
            if let Some(ours) = read(&damaged) {
                prop_assert_eq!(Some(ours), serde_read(&damaged), "{}", damaged);
            }
        }
    }
}
