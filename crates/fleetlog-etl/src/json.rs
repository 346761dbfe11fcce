//! JSON strings, both ways, in one place: escaping text as it is written (eight bytes at a time
//! through the common case, the escapes serde_json writes otherwise), unescaping JSON string content
//! for the parsers, respelling lone surrogates, and cutting content into pieces that are each valid
//! on their own. [`Str`] says of a string on its way out which of the two it already is: text to
//! escape, or JSON string content to copy.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// A string on its way into JSON output, as what it already is: text to escape as it is written, or
/// JSON string content (what stands between a JSON string's quotes, escapes as spelled) to copy as it
/// stands. Where a value is read decides it (text decoded from a message, or a piece of a message's
/// literal as the envelope spells it), so the writer never has to be told.
///
/// Two words, like the `&str` it wraps, so that a message's dozen optional fields stay as small as
/// plain string slices: the kind rides in the top bit of the length, which a `str` (at most
/// `isize::MAX` bytes) never uses.
#[derive(Clone, Copy)]
pub struct Str<'a> {
    start: NonNull<u8>,
    /// The length in bytes, with [`JSON_CONTENT`] set for JSON string content.
    len_and_kind: usize,
    string: PhantomData<&'a str>,
}

/// The bit of `Str::len_and_kind` that marks JSON string content.
const JSON_CONTENT: usize = 1 << (usize::BITS - 1);

impl<'a> Str<'a> {
    /// Text: escaped as it is written.
    #[inline]
    pub fn text(text: &'a str) -> Str<'a> {
        Str::new(text, 0)
    }

    /// JSON string content: copied as it stands.
    #[inline]
    pub fn json(content: &'a str) -> Str<'a> {
        Str::new(content, JSON_CONTENT)
    }

    #[inline]
    fn new(string: &'a str, kind: usize) -> Str<'a> {
        Str { start: NonNull::from(string).cast(), len_and_kind: string.len() | kind, string: PhantomData }
    }

    /// Whether this is JSON string content rather than text.
    #[inline]
    pub fn is_json(self) -> bool {
        self.len_and_kind & JSON_CONTENT != 0
    }

    /// The string as it stands (text, or content with its escapes).
    #[inline]
    pub fn as_str(self) -> &'a str {
        let len = self.len_and_kind & !JSON_CONTENT;
        // SAFETY: `start` and `len` were taken from a `&'a str` in `new` (the kind bit masked off
        // again), and `PhantomData<&'a str>` keeps that borrow alive for as long as `self` lives.
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.start.as_ptr(), len))
        }
    }

    /// `piece`, cut from this string, as the same kind of string. For content, the cuts must fall
    /// outside escapes (at ASCII characters that are not part of one).
    #[inline]
    pub(crate) fn part(self, piece: &'a str) -> Str<'a> {
        Str::new(piece, self.len_and_kind & JSON_CONTENT)
    }

    /// Appends the string as a JSON string, quotes included.
    #[inline]
    pub fn write(self, out: &mut Vec<u8>) {
        if self.is_json() { write_content(out, self.as_str()) } else { write_str(out, self.as_str()) }
    }
}

impl PartialEq for Str<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.is_json() == other.is_json() && self.as_str() == other.as_str()
    }
}

impl Eq for Str<'_> {}

impl std::fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_json() { "Json" } else { "Text" };
        f.debug_tuple(kind).field(&self.as_str()).finish()
    }
}

// SAFETY: a `Str` is a shared `&str` with one more bit, and `&str` is both.
#[allow(unsafe_code)]
unsafe impl Send for Str<'_> {}
#[allow(unsafe_code)]
unsafe impl Sync for Str<'_> {}

/// Where JSON is written: the records' byte buffers, and the response, which is built as text so
/// it needs no UTF-8 check at the end.
pub(crate) trait JsonOut {
    fn push_text(&mut self, text: &str);
    fn push_ascii(&mut self, byte: u8);
    fn reserve_more(&mut self, additional: usize);
}

impl JsonOut for Vec<u8> {
    fn push_text(&mut self, text: &str) {
        self.extend_from_slice(text.as_bytes());
    }
    fn push_ascii(&mut self, byte: u8) {
        self.push(byte);
    }
    fn reserve_more(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

impl JsonOut for String {
    fn push_text(&mut self, text: &str) {
        self.push_str(text);
    }
    fn push_ascii(&mut self, byte: u8) {
        self.push(char::from(byte));
    }
    fn reserve_more(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// Bytes of `word` that are zero get their high bit set (others may too when a lower byte is zero;
/// only "any" is asked).
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word
}

/// True when some byte of `word` must be escaped: below 0x20, `"` or `\`. Branch-free.
fn needs_escape(word: u64) -> bool {
    let control = word.wrapping_sub(0x20 * ONES) & !word;
    let quote = zero_bytes(word ^ (u64::from(b'"') * ONES));
    let backslash = zero_bytes(word ^ (u64::from(b'\\') * ONES));
    (control | quote | backslash) & HIGH_BITS != 0
}

/// Appends JSON string content that is already escaped (or needs no escaping), quoted.
pub(crate) fn write_content(out: &mut Vec<u8>, content: &str) {
    out.push(b'"');
    out.extend_from_slice(content.as_bytes());
    out.push(b'"');
}

/// Appends `text` as a JSON string, quotes included.
pub(crate) fn write_str(out: &mut impl JsonOut, text: &str) {
    let bytes = text.as_bytes();
    out.reserve_more(bytes.len() + 2);
    out.push_ascii(b'"');
    // Most strings here (ids, hosts, attribute keys) need no escape: one branch-free pass over the
    // whole string, which the compiler vectorises, then one copy.
    if !bytes.iter().fold(false, |found, b| found | (*b < 0x20) | (*b == b'"') | (*b == b'\\')) {
        out.push_text(text);
        out.push_ascii(b'"');
        return;
    }
    // Cuts fall only before and after bytes that need escaping, all ASCII: on character boundaries.
    let mut clean_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if !needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let byte = bytes[i];
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_text(&text[clean_from..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_text("\\u00");
            out.push_ascii(HEX[usize::from(byte >> 4)]);
            out.push_ascii(HEX[usize::from(byte & 0xf)]);
        } else {
            out.push_text(escape);
        }
        i += 1;
        clean_from = i;
    }
    out.push_text(&text[clean_from..]);
    out.push_ascii(b'"');
}

/// JSON string content as text: the content itself when it has no escapes, else decoded into
/// `scratch`. `None` as for [`unescape_into`].
pub(crate) fn decoded<'s>(content: &'s str, scratch: &'s mut String) -> Option<&'s str> {
    if memchr::memchr(b'\\', content.as_bytes()).is_none() {
        return Some(content);
    }
    unescape_into(content, scratch)?;
    Some(scratch)
}

/// Decodes JSON string content (what stands between the quotes) into `out`, which is cleared first.
/// `None` for a malformed escape or a lone surrogate. Copies the runs between escapes whole, found
/// with a vectorised search: log lines have few escapes and long runs.
pub(crate) fn unescape_into(literal: &str, out: &mut String) -> Option<()> {
    out.clear();
    out.reserve(literal.len());
    let mut rest = literal;
    while let Some(at) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        let (decoded, length) = match rest.as_bytes().get(at + 1)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => match unicode_escape(&rest.as_bytes()[at..])? {
                UnicodeEscape::Char(decoded, length) => (decoded, length),
                UnicodeEscape::LoneSurrogate => return None,
            },
            _ => return None,
        };
        out.push(decoded);
        rest = &rest[at + length..];
    }
    out.push_str(rest);
    Some(())
}

/// What a `\u` escape stands for.
pub(crate) enum UnicodeEscape {
    /// A character, and how many bytes its escape takes: 6, or 12 for a surrogate pair.
    Char(char, usize),
    /// A UTF-16 surrogate without its other half (6 bytes): JSON's grammar allows it, text cannot
    /// hold it.
    LoneSurrogate,
}

/// Reads the `\uXXXX` escape `escape` starts with (with the `\uXXXX` after it when the two are a
/// surrogate pair). `None` when it is not four hex digits.
pub(crate) fn unicode_escape(escape: &[u8]) -> Option<UnicodeEscape> {
    fn code_unit(hex: &[u8]) -> Option<u32> {
        hex.iter().try_fold(0, |unit, digit| Some(unit * 16 + char::from(*digit).to_digit(16)?))
    }
    let unit = code_unit(escape.get(2..6)?)?;
    if (0xd800..0xdc00).contains(&unit) {
        let low = escape.get(6..12).and_then(|next| code_unit(next.strip_prefix(b"\\u")?));
        if let Some(low) = low.filter(|low| (0xdc00..0xe000).contains(low)) {
            let pair = char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))?;
            return Some(UnicodeEscape::Char(pair, 12));
        }
    }
    Some(char::from_u32(unit).map_or(UnicodeEscape::LoneSurrogate, |decoded| UnicodeEscape::Char(decoded, 6)))
}

/// Where JSON string content spells lone surrogates (`\ud83d` without its pair): the offset of each
/// such escape's backslash.
pub(crate) fn lone_surrogate_escapes(content: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = content.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while let Some(found) = bytes.get(at..).and_then(|rest| memchr::memchr(b'\\', rest)) {
            let escape = at + found;
            at = escape + 2;
            if bytes.get(escape + 1) == Some(&b'u') {
                match unicode_escape(&bytes[escape..]) {
                    Some(UnicodeEscape::Char(_, length)) => at = escape + length,
                    Some(UnicodeEscape::LoneSurrogate) => {
                        at = escape + 6;
                        return Some(escape);
                    }
                    None => {}
                }
            }
        }
        None
    })
}

/// JSON string content with every lone surrogate escape spelled `\ufffd`, U+FFFD. JSON's grammar
/// allows a lone surrogate, but JSON readers (serde_json, Arrow, so `fleetlog query --local`) refuse
/// it, and with it the whole object of records it is in. The same length, so sizes counted on the
/// original hold; borrowed when there is nothing to respell.
pub fn well_formed(content: &str) -> Cow<'_, str> {
    let mut lone = lone_surrogate_escapes(content).peekable();
    if lone.peek().is_none() {
        return Cow::Borrowed(content);
    }
    let mut respelled = content.to_owned();
    for escape in lone {
        respelled.replace_range(escape + 2..escape + 6, "fffd");
    }
    Cow::Owned(respelled)
}

/// Splits JSON string content into pieces of at most `max` bytes, each valid JSON string content of
/// its own: cuts fall between characters and never inside an escape or a surrogate pair.
pub(crate) fn split_content(literal: &str, max: usize) -> Vec<&str> {
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

    #[test]
    fn a_str_keeps_its_kind_and_its_text_in_two_words() {
        let message = String::from("GET /a\\\"b");
        for (string, json) in [(Str::text(&message), false), (Str::json(&message), true)] {
            assert_eq!((string.is_json(), string.as_str()), (json, message.as_str()));
            let piece = string.part(&message[4..]);
            assert_eq!((piece.is_json(), piece.as_str()), (json, "/a\\\"b"));
        }
        assert_ne!(Str::text("a"), Str::json("a"));
        assert_eq!(Str::json("").as_str(), "");
        assert_eq!(std::mem::size_of::<Option<Str<'_>>>(), std::mem::size_of::<&str>());
    }

    /// Written to bytes and to text, which must agree.
    fn escaped(text: &str) -> String {
        let mut bytes = Vec::new();
        write_str(&mut bytes, text);
        let mut string = String::new();
        write_str(&mut string, text);
        assert_eq!(bytes, string.as_bytes());
        string
    }

    #[test]
    fn matches_serde_json_on_every_byte_class() {
        let mut samples: Vec<String> = (0u8..0x80).map(|b| format!("ab{}cdefghijk", b as char)).collect();
        samples.extend(
            ["", "\"", "\\", "plain ascii text longer than eight", "żółć 🚀 \u{7f}\u{1b}[0m", "\u{0}\u{1f}"]
                .map(String::from),
        );
        samples.push("x".repeat(31) + "\"" + &"y".repeat(9));
        for text in samples {
            assert_eq!(escaped(&text), serde_json::to_string(&text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn unescaping_matches_serde_json() {
        let mut out = String::new();
        for literal in [
            r#"plain"#,
            r#"a\"b\\c\/d\b\f\n\r\t"#,
            r#"\u0041\u00e9\u20ac\ud83d\ude80\uD83D\uDE80 end"#,
            r#"żółć 🚀 \u0000"#,
            "",
        ] {
            let expected: String = serde_json::from_str(&format!("\"{literal}\"")).unwrap();
            assert_eq!(unescape_into(literal, &mut out), Some(()), "{literal}");
            assert_eq!(out, expected, "{literal}");
        }
        for bad in [r"\ud800", r"\ud800x", r"\udc00", r"\ud800\u0041", r"\x", r"\u12", r"\u+123", "\\"] {
            assert_eq!(unescape_into(bad, &mut out), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn unescaping_undoes_any_escaping(text in proptest::prelude::any::<String>(), unicode_escapes in proptest::prelude::any::<bool>()) {
            let literal = if unicode_escapes {
                // Every character as \uXXXX (pairs for the astral planes), a spelling serde_json never writes.
                text.encode_utf16().map(|unit| format!("\\u{unit:04x}")).collect()
            } else {
                let quoted = serde_json::to_string(&text).unwrap();
                quoted[1..quoted.len() - 1].to_owned()
            };
            let mut out = String::new();
            proptest::prop_assert_eq!(unescape_into(&literal, &mut out), Some(()));
            proptest::prop_assert_eq!(out, text);
        }
    }

    #[test]
    fn lone_surrogates_are_refused() {
        let mut out = String::new();
        for literal in [r"\ud83d", r"a\udc00b", r"\ud83d\u0041", r"\ud83d\ud83d\ude80"] {
            assert_eq!(unescape_into(literal, &mut out), None, "{literal}");
        }
        assert_eq!(unescape_into(r"\ud83d\ude80 \u0041", &mut out), Some(()));
        assert_eq!(out, "\u{1f680} A");
    }

    #[test]
    fn lone_surrogates_are_respelled_in_place() {
        for (content, respelled) in [
            (r"\ud83d", r"\ufffd"),
            (r"a\uDC00b \ud83d\ude80 \ud83d\u0041", r"a\ufffdb \ud83d\ude80 \ufffd\u0041"),
            (r"\ud83d\ud83d\ude80\\ud800", r"\ufffd\ud83d\ude80\\ud800"),
        ] {
            assert_eq!(well_formed(content), respelled, "{content}");
            assert_eq!(well_formed(content).len(), content.len(), "sizes counted on the original hold");
            let text: String = serde_json::from_str(&format!("\"{}\"", well_formed(content))).unwrap();
            assert!(text.contains('\u{fffd}'), "{content}: now text, the lone surrogate as U+FFFD");
        }
        for nothing_lone in ["plain", r"\ud83d\ude80 \\ud800 \u0041\n"] {
            assert!(matches!(well_formed(nothing_lone), Cow::Borrowed(_)), "{nothing_lone}");
        }
    }

    #[test]
    fn split_pieces_are_json_string_content_that_joins_back() {
        let text = format!("{}é🚀\"\\\n\u{1}{}", "a".repeat(7), "z".repeat(5)).repeat(9);
        let literal = serde_json::to_string(&text).unwrap();
        let literal = &literal[1..literal.len() - 1];
        for max in [1, 2, 3, 5, 7, 12, 64] {
            let pieces = split_content(literal, max);
            let mut joined = String::new();
            for piece in &pieces {
                assert!(piece.len() <= max.max(12), "{piece:?} longer than {max}");
                joined += &serde_json::from_str::<String>(&format!("\"{piece}\"")).unwrap();
            }
            assert_eq!(joined, text, "max {max}");
        }
        let pair = r"ab\ud83d\ude80cd";
        assert!(split_content(pair, 8).iter().all(|p| serde_json::from_str::<String>(&format!("\"{p}\"")).is_ok()));
    }
}
