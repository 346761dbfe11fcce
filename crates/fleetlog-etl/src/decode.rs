//! Decoding one CloudWatch Logs subscription payload: gzip (capped) JSON envelope.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Decompressed payloads larger than this are refused (a gzip bomb, or not CloudWatch Logs: its
/// records are at most ~1 MB compressed).
pub const MAX_DECOMPRESSED: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not gzip data (no gzip magic bytes)")]
    NotGzip,
    #[error("corrupt gzip data: {0}")]
    BadGzip(String),
    #[error("decompresses to more than {MAX_DECOMPRESSED} bytes")]
    TooLarge,
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
#[derive(Debug, Deserialize)]
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
}

#[derive(Debug, Deserialize, Serialize, Clone)]
pub struct LogEvent<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    pub timestamp: i64,
    #[serde(borrow)]
    pub message: Cow<'a, str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Data,
    Control,
}

impl Envelope<'_> {
    pub fn kind(&self) -> Result<MessageType, DecodeError> {
        match self.message_type.as_ref() {
            "DATA_MESSAGE" => Ok(MessageType::Data),
            "CONTROL_MESSAGE" => Ok(MessageType::Control),
            other => Err(DecodeError::UnknownMessageType(other.to_owned())),
        }
    }
}

/// Gunzips a payload into `out` (cleared first), refusing anything over [`MAX_DECOMPRESSED`].
///
/// Inflates straight into the vector's spare capacity, sized from the gzip trailer (the member's
/// length mod 2^32), so the output is neither zero-filled first nor copied as it grows.
/// Concatenated gzip members are decoded one after another, like `gunzip`.
pub fn gunzip_into(compressed: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
    const LIMIT: usize = MAX_DECOMPRESSED as usize;
    if !compressed.starts_with(&GZIP_MAGIC) {
        return Err(DecodeError::NotGzip);
    }
    out.clear();
    let trailer_size = compressed.len().checked_sub(4).map_or(0, |at| {
        let mut size = [0u8; 4];
        size.copy_from_slice(&compressed[at..]);
        u32::from_le_bytes(size) as usize
    });
    out.reserve(trailer_size.clamp(1024, LIMIT + 1));
    let mut input = compressed;
    let mut inflater = flate2::Decompress::new_gzip(15);
    loop {
        if out.len() == out.capacity() {
            if out.len() > LIMIT {
                return Err(DecodeError::TooLarge);
            }
            out.reserve(out.len().min(LIMIT + 1 - out.len()).max(1024));
        }
        let (consumed_before, written_before) = (inflater.total_in(), out.len());
        let status = inflater
            .decompress_vec(input, out, flate2::FlushDecompress::None)
            .map_err(|e| DecodeError::BadGzip(e.to_string()))?;
        let consumed = usize::try_from(inflater.total_in() - consumed_before).unwrap_or(input.len());
        input = &input[consumed.min(input.len())..];
        if out.len() > LIMIT {
            return Err(DecodeError::TooLarge);
        }
        match status {
            flate2::Status::StreamEnd if input.is_empty() => return Ok(()),
            flate2::Status::StreamEnd if input.starts_with(&GZIP_MAGIC) => {
                inflater = flate2::Decompress::new_gzip(15);
            }
            flate2::Status::StreamEnd => {
                return Err(DecodeError::BadGzip("trailing bytes after the gzip data".into()));
            }
            _ if consumed == 0 && out.len() == written_before && out.len() < out.capacity() => {
                return Err(DecodeError::BadGzip("truncated gzip data".into()));
            }
            _ => {}
        }
    }
}

pub fn parse_envelope(json: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let envelope: Envelope<'_> = serde_json::from_slice(json).map_err(|e| DecodeError::BadJson(e.to_string()))?;
    envelope.kind()?;
    Ok(envelope)
}

/// Decodes a base64 string (the `awslogs.data` field) into bytes.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| DecodeError::BadBase64(e.to_string()))
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
    fn concatenated_members_are_one_payload() {
        let mut two = gzip(b"first ");
        two.extend(gzip(b"second"));
        assert_eq!(gunzip(&two).unwrap(), b"first second");
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
        assert_eq!(gunzip(&bomb), Err(DecodeError::TooLarge));
        let at_cap = gzip(&vec![0u8; usize::try_from(MAX_DECOMPRESSED).unwrap()]);
        assert_eq!(gunzip(&at_cap).map(|out| out.len()), Ok(usize::try_from(MAX_DECOMPRESSED).unwrap()));
    }
}
