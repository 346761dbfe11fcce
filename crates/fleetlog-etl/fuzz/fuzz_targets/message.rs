//! Any text, as a message's JSON string content in an envelope (however it is escaped). Parsing it
//! from that literal, as the ETL does, must find the format and fields that parsing its decoded text
//! finds.
#![no_main]

use fleetlog_etl::parse::{Fields, parse, parse_literal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(literal) = std::str::from_utf8(data) else { return };
    // Only literals JSON allows, whose text can be held (no lone surrogates).
    let Ok(text) = serde_json::from_str::<String>(&format!("\"{literal}\"")) else { return };
    let (format, from_literal) = parse_literal(literal, || Some(text.as_str()));
    let (expected_format, from_text) = parse(&text);
    assert_eq!(format, expected_format, "format of {text:?}");
    assert_eq!(fields(&from_literal), fields(&from_text), "fields of {text:?}");
    assert_eq!(from_literal.severity, from_text.severity);
});

/// The fields as their record writes them, read back (spellings of the same text compare equal).
fn fields(fields: &Fields<'_>) -> serde_json::Value {
    let mut out = b"{\"x\":0".to_vec();
    fields.write_json(&mut out);
    out.push(b'}');
    serde_json::from_slice(&out).expect("fields are JSON")
}
