//! JSON string escaping for the record hot path: eight bytes at a time through the common case (no
//! quote, backslash or control character), the escapes serde_json writes otherwise.

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

/// Appends `text` as a JSON string, quotes included.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Most strings here (ids, hosts, attribute keys) need no escape: one branch-free pass over the
    // whole string, which the compiler vectorises, then one copy.
    if !bytes.iter().fold(false, |found, b| found | (*b < 0x20) | (*b == b'"') | (*b == b'\\')) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
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
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..0x20 => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[clean_from..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
        } else {
            out.extend_from_slice(escape);
        }
        i += 1;
        clean_from = i;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, text);
        String::from_utf8(out).unwrap()
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
