//! Decoding one CloudWatch Logs subscription payload: gzip (capped) JSON envelope.

use std::borrow::Cow;
use std::cell::RefCell;

use serde::Deserialize;
use serde_json::value::RawValue;

mod common_form;
mod libdeflate;

/// Decompressed payloads larger than this are refused (a gzip bomb, or not CloudWatch Logs: its
/// records are at most ~1 MB compressed).
pub const MAX_DECOMPRESSED: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not gzip data (no gzip magic bytes)")]
    NotGzip,
    #[error("corrupt gzip data: {0}")]
    BadGzip(String),
    #[error("decompresses to more than {0} bytes")]
    TooLarge(u64),
    #[error("no memory left to inflate the payload")]
    OutOfMemory,
    #[error("not a CloudWatch Logs subscription envelope: {0}")]
    BadJson(String),
    #[error("unknown messageType {0:?}")]
    UnknownMessageType(String),
    #[error("not valid base64: {0}")]
    BadBase64(String),
}

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
    /// (see [`well_formed`]). CloudWatch Logs, whose messages are UTF-8, writes none.
    #[serde(skip)]
    pub lone_surrogates: bool,
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

/// JSON string content as text: the content itself when it has no escapes, else decoded into
/// `scratch`. `None` as for [`unescape_into`].
pub fn decoded<'s>(content: &'s str, scratch: &'s mut String) -> Option<&'s str> {
    if memchr::memchr(b'\\', content.as_bytes()).is_none() {
        return Some(content);
    }
    unescape_into(content, scratch)?;
    Some(scratch)
}

/// Decodes JSON string content (what stands between the quotes) into `out`, which is cleared first.
/// `None` for a malformed escape or a lone surrogate. Copies the runs between escapes whole, found
/// with a vectorised search: log lines have few escapes and long runs.
pub fn unescape_into(literal: &str, out: &mut String) -> Option<()> {
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
fn lone_surrogate_escapes(content: &str) -> impl Iterator<Item = usize> + '_ {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Data,
    Control,
}

impl Envelope<'_> {
    /// With [`Self::lone_surrogates`] found by reading every literal: for an envelope serde_json read,
    /// which leaves it unset.
    pub fn marked(mut self) -> Self {
        let lone = |literal: &str| lone_surrogate_escapes(literal).next().is_some();
        self.lone_surrogates = self.log_events.iter().any(|e| lone(e.id_literal()) || lone(e.message_literal()));
        self
    }

    pub fn kind(&self) -> Result<MessageType, DecodeError> {
        match self.message_type.as_ref() {
            "DATA_MESSAGE" => Ok(MessageType::Data),
            "CONTROL_MESSAGE" => Ok(MessageType::Control),
            other => Err(DecodeError::UnknownMessageType(other.to_owned())),
        }
    }
}

/// The first two bytes of every gzip member.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What a gzip payload's trailer says it decompresses to: its last member's length mod 2^32, so at
/// most the true size of honest data (never checked here: inflating checks it). `None` when the
/// payload is not gzip.
pub fn gzip_claimed_size(compressed: &[u8]) -> Option<usize> {
    // The smallest gzip member: a 10-byte header, an empty deflate block and the 8-byte trailer.
    const SMALLEST_MEMBER: usize = 20;
    if !compressed.starts_with(&GZIP_MAGIC) || compressed.len() < SMALLEST_MEMBER {
        return None;
    }
    let mut size = [0u8; 4];
    size.copy_from_slice(&compressed[compressed.len() - 4..]);
    usize::try_from(u32::from_le_bytes(size)).ok()
}

/// Empties `buffer` and makes room in it for `capacity` bytes. A buffer too small is replaced, not
/// grown: growing copies the old contents, which are no longer wanted.
pub(crate) fn clear_with_room(buffer: &mut Vec<u8>, capacity: usize) {
    buffer.clear();
    if buffer.capacity() < capacity {
        *buffer = Vec::with_capacity(capacity);
    }
}

// Header flags of a gzip member (RFC 1952).
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// Whether the gzip member at the start of `member` has no header CRC or a right one. The header CRC
/// (FHCRC) is optional and CloudWatch Logs does not write it; libdeflate skips it, but zlib and flate2
/// refuse a member whose header CRC is wrong, and so does this decoder. A header cut short passes
/// here, for the inflater to refuse.
fn header_crc_holds(member: &[u8]) -> bool {
    let Some(&flags) = member.get(3).filter(|flags| *flags & FHCRC != 0) else { return true };
    let mut end = 10;
    if flags & FEXTRA != 0 {
        let Some(&[low, high]) = member.get(10..12) else { return true };
        end = 12 + usize::from(u16::from_le_bytes([low, high]));
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            // Zero-terminated.
            let Some(length) = member.get(end..).and_then(|rest| memchr::memchr(0, rest)) else { return true };
            end += length + 1;
        }
    }
    let (Some(header), Some(stored)) = (member.get(..end), member.get(end..end + 2)) else { return true };
    let mut crc = flate2::Crc::new();
    crc.update(header);
    crc.sum().to_le_bytes()[..2] == *stored
}

/// Gunzips a payload into `out` (cleared first), refusing anything over [`MAX_DECOMPRESSED`].
pub fn gunzip_into(compressed: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    gunzip_at_most(compressed, out, MAX_DECOMPRESSED)
}

/// [`gunzip_into`] refusing anything over `limit` bytes instead (tests use small limits).
///
/// Each member is inflated in one call (libdeflate) straight into the vector's spare capacity, sized
/// from the gzip trailer (the last member's length mod 2^32: all of it for the one member CloudWatch
/// Logs sends), so the output is neither zero-filled first nor copied as it grows. Concatenated
/// members are decoded one after another, like `gunzip`; anything else after a member is refused.
fn gunzip_at_most(compressed: &[u8], out: &mut Vec<u8>, limit: u64) -> Result<(), DecodeError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if !compressed.starts_with(&GZIP_MAGIC) {
        return Err(DecodeError::NotGzip);
    }
    clear_with_room(out, gzip_claimed_size(compressed).unwrap_or(0).clamp(1024.min(limit), limit));
    INFLATER.with_borrow_mut(|inflater| {
        let inflater = match inflater {
            Some(inflater) => inflater,
            None => inflater.insert(libdeflate::Inflater::new().ok_or(DecodeError::OutOfMemory)?),
        };
        inflate_members(inflater, compressed, out, limit)
    })
}

thread_local! {
    /// Each thread's decompressor, reused: setting one up for every record took as many instructions
    /// as inflating 3 KB (1.3% of a warm 200 KB batch).
    static INFLATER: RefCell<Option<libdeflate::Inflater>> = const { RefCell::new(None) };
}

fn inflate_members(
    inflater: &mut libdeflate::Inflater,
    compressed: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), DecodeError> {
    let too_large = DecodeError::TooLarge(u64::try_from(limit).unwrap_or(u64::MAX));
    let mut input = compressed;
    while !input.is_empty() {
        if !input.starts_with(&GZIP_MAGIC) {
            return Err(DecodeError::BadGzip("trailing bytes after the gzip data".into()));
        }
        if !header_crc_holds(input) {
            return Err(DecodeError::BadGzip("gzip header CRC does not match the header".into()));
        }
        let room = out.capacity() - out.len();
        match inflater.member(input, out, room.min(limit - out.len())) {
            Ok(consumed) => input = &input[consumed..],
            Err(libdeflate::MemberError::NoRoom) if out.len() + room >= limit => return Err(too_large),
            // A member larger than the trailer said (an earlier one, or a lying trailer): inflated
            // again with twice the room.
            Err(libdeflate::MemberError::NoRoom) => out.reserve(room.max(1024) * 2),
            Err(libdeflate::MemberError::Corrupt) => {
                return Err(DecodeError::BadGzip("corrupt or truncated gzip member".into()));
            }
        }
    }
    Ok(())
}

/// Parses a decompressed envelope. UTF-8 is checked once for the whole payload (vectorised); the form
/// CloudWatch Logs writes is read by `decode::common_form`, anything else by serde_json (which also
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

/// Decodes a base64 string (the `awslogs.data` field) into bytes.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    base64_simd::STANDARD.decode_to_vec(text).map_err(|e| DecodeError::BadBase64(e.to_string()))
}

/// Gzips bytes (used to re-ingest envelopes and by tests and the corpus generator).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut out = b"left over from the previous record".to_vec();
        gunzip_into(data, &mut out).map(|()| out)
    }

    #[test]
    fn inflates_exactly_and_checks_the_trailer() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let honest = gzip(&text);
        assert_eq!(gunzip(&honest).unwrap(), text);
        // The trailer's size only sizes the buffer; inflate checks it, so a lying one is refused.
        for claimed in [0u32, 1, u32::MAX] {
            let mut lying = honest.clone();
            let at = lying.len() - 4;
            lying[at..].copy_from_slice(&claimed.to_le_bytes());
            assert!(matches!(gunzip(&lying), Err(DecodeError::BadGzip(_))), "{claimed}");
        }
        assert_eq!(gunzip(&gzip(b"")).unwrap(), b"");
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
    fn concatenated_members_are_one_payload() {
        let mut two = gzip(b"first ");
        two.extend(gzip(b"second"));
        assert_eq!(gunzip(&two).unwrap(), b"first second");
        // The trailer sizes the buffer by the last member only: a larger first one is inflated
        // again, with more room, until it fits.
        let large: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut uneven = gzip(&large);
        uneven.extend(gzip(b"tail"));
        assert_eq!(gunzip(&uneven).unwrap(), [&large[..], b"tail"].concat());
    }

    /// `member` as [`gzip`] writes it (a bare 10-byte header) with the header fields `fields` asks for
    /// (its FHCRC, FEXTRA, FNAME and FCOMMENT bits): an extra field, a file name, a comment, and the
    /// header's CRC.
    fn with_header_fields(member: &[u8], fields: u8) -> Vec<u8> {
        let mut out = member[..10].to_vec();
        out[3] = fields & (FHCRC | FEXTRA | FNAME | FCOMMENT);
        if fields & FEXTRA != 0 {
            out.extend([3, 0, b'x', b'y', b'z']);
        }
        if fields & FNAME != 0 {
            out.extend(b"logs.json\0");
        }
        if fields & FCOMMENT != 0 {
            out.extend(b"a comment\0");
        }
        if fields & FHCRC != 0 {
            let mut crc = flate2::Crc::new();
            crc.update(&out);
            out.extend(&crc.sum().to_le_bytes()[..2]);
        }
        out.extend(&member[10..]);
        out
    }

    #[test]
    fn header_crcs_are_checked() {
        let member = with_header_fields(&gzip(b"hello"), FHCRC | FNAME | FEXTRA | FCOMMENT);
        assert_eq!(gunzip(&member).unwrap(), b"hello");
        // The header CRC is the two bytes before the deflate data (what follows the bare header).
        let crc_at = member.len() - (gzip(b"hello").len() - 10) - 2;
        let mut wrong = member.clone();
        wrong[crc_at] ^= 1;
        assert!(matches!(gunzip(&wrong), Err(DecodeError::BadGzip(reason)) if reason.contains("header")));
    }

    proptest::proptest! {
        /// The same answer as flate2's multi-member reader (zlib-rs): the same bytes, or an error,
        /// whatever the members, trailing bytes or damage.
        #[test]
        fn agrees_with_a_streaming_gunzip(
            // Repeated members too: a later member's trailer then matches the first member's output.
            members in proptest::collection::vec(proptest::prop_oneof!["same", "[ab\n]{0,2000}", ".{0,300}"], 1..4),
            // Header fields of each member (FHCRC, FEXTRA, FNAME, FCOMMENT bits).
            fields in proptest::collection::vec(0u8..32, 4),
            trailing in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6),
            damage in proptest::option::of((proptest::prelude::any::<proptest::sample::Index>(), 1u8..)),
        ) {
            use std::io::Read;
            let mut payload: Vec<u8> = members
                .iter()
                .zip(&fields)
                .flat_map(|(member, fields)| with_header_fields(&gzip(member.as_bytes()), *fields))
                .collect();
            payload.extend(&trailing);
            if let Some((at, flip)) = damage {
                let at = at.index(payload.len());
                payload[at] ^= flip;
            }
            let mut expected = Vec::new();
            let expected = flate2::read::MultiGzDecoder::new(&payload[..]).read_to_end(&mut expected).map(|_| expected);
            match gunzip(&payload) {
                Ok(out) => proptest::prop_assert_eq!(Some(out), expected.ok()),
                Err(_) => proptest::prop_assert!(expected.is_err(), "refused what gunzip reads"),
            }
        }
    }

    #[test]
    fn damaged_gzip_is_refused_with_a_reason() {
        let good = gzip(&b"x".repeat(10_000));
        assert_eq!(gunzip(b"plain"), Err(DecodeError::NotGzip));
        assert!(matches!(gunzip(&good[..good.len() / 2]), Err(DecodeError::BadGzip(_))));
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"junk");
        assert!(matches!(gunzip(&trailing), Err(DecodeError::BadGzip(_))));
        let mut corrupt = good;
        corrupt[12] ^= 0xff;
        assert!(matches!(gunzip(&corrupt), Err(DecodeError::BadGzip(_))));
    }

    #[test]
    fn output_beyond_the_cap_is_refused() {
        let bomb = gzip(&vec![0u8; usize::try_from(MAX_DECOMPRESSED).unwrap() + 1]);
        assert_eq!(gunzip(&bomb), Err(DecodeError::TooLarge(MAX_DECOMPRESSED)));
        let at_cap = gzip(&vec![0u8; usize::try_from(MAX_DECOMPRESSED).unwrap()]);
        assert_eq!(gunzip(&at_cap).map(|out| out.len()), Ok(usize::try_from(MAX_DECOMPRESSED).unwrap()));
        // Another cap, over members as a whole.
        let mut two = gzip(&[7; 600]);
        two.extend(gzip(&[8; 400]));
        let mut out = Vec::new();
        assert_eq!(gunzip_at_most(&two, &mut out, 999), Err(DecodeError::TooLarge(999)));
        assert_eq!(gunzip_at_most(&two, &mut out, 1000), Ok(()));
        assert_eq!(out.len(), 1000);
    }
}
