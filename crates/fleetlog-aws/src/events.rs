//! Putting events on the default EventBridge bus: the CLI's requests to the enroller, and the events
//! the local stack emits where AWS would.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::error::{AwsError, ErrorKind, classify};

/// PutEvents takes at most 10 entries per call.
const MAX_ENTRIES: usize = 10;

/// Puts events, each a JSON object with `source`, `detail-type`, `detail` and optional `resources`
/// (the shape AWS delivers, and `fleetlog_core::events` builds). Entries EventBridge refuses fail the
/// call with its reasons.
pub async fn put_events(client: &aws_sdk_eventbridge::Client, events: &[serde_json::Value]) -> Result<(), AwsError> {
    for chunk in events.chunks(MAX_ENTRIES) {
        let entries = chunk.iter().map(entry).collect();
        let out =
            client.put_events().set_entries(Some(entries)).send().await.map_err(|e| classify("events:PutEvents", e))?;
        if out.failed_entry_count() > 0 {
            let reasons: Vec<String> = out
                .entries()
                .iter()
                .filter_map(|e| e.error_code().map(|code| format!("{code}: {}", e.error_message().unwrap_or_default())))
                .collect();
            return Err(AwsError::new(
                "events:PutEvents",
                ErrorKind::Permanent,
                format!("EventBridge refused {} event(s): {}", out.failed_entry_count(), reasons.join("; ")),
            ));
        }
    }
    Ok(())
}

fn entry(event: &serde_json::Value) -> PutEventsRequestEntry {
    let resources =
        event["resources"].as_array().map(|r| r.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect());
    PutEventsRequestEntry::builder()
        .source(event["source"].as_str().unwrap_or_default())
        .detail_type(event["detail-type"].as_str().unwrap_or_default())
        .detail(event["detail"].to_string())
        .set_resources(resources)
        .build()
}
