//! Decoding one CloudWatch Logs subscription payload: gzip (capped) JSON envelope.

use std::borrow::Cow;
use std::io::Read;

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
pub fn gunzip_into(compressed: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    if !compressed.starts_with(&[0x1f, 0x8b]) {
        return Err(DecodeError::NotGzip);
    }
    out.clear();
    let mut reader = flate2::read::MultiGzDecoder::new(compressed).take(MAX_DECOMPRESSED + 1);
    reader.read_to_end(out).map_err(|e| DecodeError::BadGzip(e.to_string()))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(DecodeError::TooLarge);
    }
    Ok(())
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
