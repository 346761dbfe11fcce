//! Reading each log object an AWS service delivers to S3 exactly once, though S3 notifies at least
//! once: which objects a notification names, and what to do about an object another run has
//! already marked.
//!
//! A run claims an object (bucket, key, ETag) by creating its marker in the object's own bucket
//! with `If-None-Match: *`, reads it, and marks it done. A redelivered notification finds it done
//! and adds nothing; a concurrent one finds it claimed and is retried later; a claim older than
//! [`CLAIM_SECONDS`] belongs to a run that died, and is taken over.

use serde::{Deserialize, Serialize};

/// Where markers live in the log object's bucket. The stack's notification admits only `.gz` keys,
/// which no marker has, so writing one notifies nothing.
pub const MARKER_PREFIX: &str = "fleetlog-ingested/";

/// How long a claim holds: twice the ETL's timeout (the stack's is 120 s; a template test keeps
/// them in step), so a live run is never overtaken.
pub const CLAIM_SECONDS: i64 = 240;

/// One object a notification names, its key decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    /// As S3 reports it, without quotes.
    pub etag: String,
}

impl ObjectRef {
    /// The object's marker: one per content, so an object written again under the same key is read again.
    pub fn marker_key(&self) -> String {
        format!("{MARKER_PREFIX}{}/{}", self.key, self.etag)
    }
}

/// The distribution a CloudFront standard log object is of: its file is named
/// `<distribution ID>.YYYY-MM-DD-HH.<unique ID>.gz` (under the logging configuration's prefix).
pub fn cloudfront_distribution(key: &str) -> &str {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.split('.').next().unwrap_or(name)
}

/// What a marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Marker {
    /// A run is reading the object; since `at` (epoch seconds).
    Claimed { at: i64 },
    /// The object's records were delivered.
    Done { at: i64, records: u64 },
}

/// What to do about an object whose marker exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Its records were delivered: the notification is a redelivery, and adds nothing.
    AlreadyRead,
    /// Another run is reading it: retry the notification later.
    Busy,
    /// Its claim has lapsed (or the marker is unreadable): claim it anew and read it.
    TakeOver,
}

/// What to do about an object whose marker reads `marker` (`None`: not a marker fleetlog wrote) at
/// `now` (epoch seconds).
pub fn on_existing(marker: Option<Marker>, now: i64) -> Existing {
    match marker {
        Some(Marker::Done { .. }) => Existing::AlreadyRead,
        Some(Marker::Claimed { at }) if now.saturating_sub(at) < CLAIM_SECONDS => Existing::Busy,
        Some(Marker::Claimed { .. }) | None => Existing::TakeOver,
    }
}

/// Why a notification names no object to read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("not an S3 event notification: {0}")]
    Malformed(String),
    #[error("record {0} names no bucket, key or ETag")]
    Incomplete(usize),
}

/// The S3 event notification in an SQS message body, as far as fleetlog reads it.
#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Option<Vec<NotificationRecord>>,
    /// `s3:TestEvent`, which S3 sends once when a notification is configured.
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotificationRecord {
    #[serde(default)]
    event_name: String,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: Named,
    object: Object,
}

#[derive(Debug, Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    key: Option<String>,
    e_tag: Option<String>,
}

/// The created objects an S3 event notification names (none for S3's test event or removals). S3
/// URL-encodes keys in notifications (a space as `+`); they are returned decoded.
pub fn created_objects(body: &str) -> Result<Vec<ObjectRef>, NotificationError> {
    let notification: Notification =
        serde_json::from_str(body).map_err(|e| NotificationError::Malformed(e.to_string()))?;
    let Some(records) = notification.records else {
        return match notification.event.as_deref() {
            Some("s3:TestEvent") => Ok(Vec::new()),
            _ => Err(NotificationError::Malformed("no Records".into())),
        };
    };
    let mut objects = Vec::new();
    for (i, record) in records.into_iter().enumerate() {
        if !record.event_name.starts_with("ObjectCreated:") {
            continue;
        }
        let (Some(bucket), Some(key), Some(etag)) =
            (record.s3.bucket.name, record.s3.object.key, record.s3.object.e_tag)
        else {
            return Err(NotificationError::Incomplete(i));
        };
        objects.push(ObjectRef { bucket, key: decode_key(&key), etag: etag.trim_matches('"').to_owned() });
    }
    Ok(objects)
}

/// A notification's key as S3 stores it: `+` is a space, `%XX` a byte.
fn decode_key(key: &str) -> String {
    let plus_as_space = key.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notification laid out as the S3 User Guide's "Event message structure" shows one.
    fn notification(event_name: &str, key: &str) -> String {
        serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-12-03T10:00:00.000Z", "eventName": event_name,
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "cloudfront-logs",
                   "bucket": {"name": "logs-bucket", "arn": "arn:aws:s3:::logs-bucket"},
                   "object": {"key": key, "size": 1024, "eTag": "d41d8cd98f00b204e9800998ecf8427e", "sequencer": "0A1B"}}
        }]})
        .to_string()
    }

    #[test]
    fn created_objects_are_named_with_their_keys_decoded() {
        let objects =
            created_objects(&notification("ObjectCreated:Put", "cf/E2X.2026-12-03-10.a+b%2Bc%C3%A9.gz")).unwrap();
        let expected = ObjectRef {
            bucket: "logs-bucket".into(),
            key: "cf/E2X.2026-12-03-10.a b+cé.gz".into(),
            etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
        };
        assert_eq!(objects, vec![expected.clone()]);
        assert_eq!(
            expected.marker_key(),
            "fleetlog-ingested/cf/E2X.2026-12-03-10.a b+cé.gz/d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(created_objects(&notification("ObjectRemoved:Delete", "k.gz")).unwrap(), vec![]);
        assert_eq!(created_objects(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#).unwrap(), vec![]);
    }

    #[test]
    fn cloudfront_objects_name_their_distribution() {
        assert_eq!(cloudfront_distribution("cf/E2EXAMPLE.2026-12-03-10.a1b2c3d4.gz"), "E2EXAMPLE");
        assert_eq!(cloudfront_distribution("E2EXAMPLE.2026-12-03-10.a1b2c3d4.gz"), "E2EXAMPLE");
    }

    #[test]
    fn other_bodies_are_refused() {
        assert!(matches!(created_objects("not json"), Err(NotificationError::Malformed(_))));
        assert!(matches!(created_objects(r#"{"Event":"other"}"#), Err(NotificationError::Malformed(_))));
        let no_etag =
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        assert_eq!(created_objects(no_etag), Err(NotificationError::Incomplete(0)));
    }

    #[test]
    fn done_objects_are_not_read_again_and_lapsed_claims_are_taken_over() {
        let now = 1_000_000;
        assert_eq!(on_existing(Some(Marker::Done { at: now - 5, records: 3 }), now), Existing::AlreadyRead);
        assert_eq!(on_existing(Some(Marker::Done { at: 0, records: 0 }), now), Existing::AlreadyRead);
        assert_eq!(on_existing(Some(Marker::Claimed { at: now - CLAIM_SECONDS + 1 }), now), Existing::Busy);
        assert_eq!(on_existing(Some(Marker::Claimed { at: now - CLAIM_SECONDS }), now), Existing::TakeOver);
        assert_eq!(on_existing(None, now), Existing::TakeOver);
        let text = serde_json::to_string(&Marker::Done { at: 7, records: 2 }).unwrap();
        assert_eq!(text, r#"{"state":"done","at":7,"records":2}"#);
        assert_eq!(serde_json::from_str::<Marker>(&text).unwrap(), Marker::Done { at: 7, records: 2 });
    }
}
