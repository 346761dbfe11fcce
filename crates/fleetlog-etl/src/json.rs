//! JSON string escaping for the record hot path: eight bytes at a time through the common case (no
//! quote, backslash or control character), the escapes serde_json writes otherwise.

/// Where JSON is written: the records' byte buffers, and the response, which is built as text so
/// it needs no UTF-8 check at the end.
pub trait JsonOut {
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
pub fn write_content(out: &mut Vec<u8>, content: &str) {
    out.push(b'"');
    out.extend_from_slice(content.as_bytes());
    out.push(b'"');
}

/// Appends `text` as a JSON string, quotes included.
pub fn write_str(out: &mut impl JsonOut, text: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
