//! Recognising well-known log line formats and pulling out the fields worth querying.
//! Every parser is a cheap prefix check first, so plain text costs almost nothing.

use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Json,
    Syslog,
    Access,
    WindowsEvent,
    Text,
}

/// Fields parsed from one message. All optional; the raw message is always kept beside them.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Fields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub win_event_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub win_channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub win_provider: Option<&'a str>,
    /// Top-level fields of a JSON message, as strings (nested values as JSON text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

pub fn parse(message: &str) -> (Format, Fields<'_>) {
    let trimmed = message.trim_start();
    let first = trimmed.as_bytes().first().copied();
    let parsed = match first {
        Some(b'{') => json(trimmed).map(|f| (Format::Json, f)),
        Some(b'<') if trimmed.starts_with("<Event") => Some((Format::WindowsEvent, windows_event(trimmed))),
        Some(b'<') => syslog_with_priority(trimmed).map(|f| (Format::Syslog, f)),
        Some(b'A'..=b'Z') => bsd_syslog(trimmed).map(|f| (Format::Syslog, f)),
        Some(b'0'..=b'9' | b'a'..=b'f' | b':') => access_log(trimmed).map(|f| (Format::Access, f)),
        _ => None,
    };
    parsed.unwrap_or((Format::Text, Fields::default()))
}

fn json(message: &str) -> Option<Fields<'_>> {
    let Value::Object(map) = serde_json::from_str::<Value>(message).ok()? else { return None };
    let severity = ["level", "severity", "lvl", "log_level"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))
        .map(str::to_ascii_uppercase);
    let attributes = map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(_) => v,
                Value::Null => Value::Null,
                other => Value::String(other.to_string()),
            };
            (k, v)
        })
        .collect();
    Some(Fields { severity, attributes: Some(attributes), ..Fields::default() })
}

const SEVERITIES: [&str; 8] = ["EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"];

/// `<PRI>` then RFC 5424 (`1 TIMESTAMP HOST APP PROCID MSGID …`) or RFC 3164 (`Mmm dd hh:mm:ss HOST TAG: …`).
fn syslog_with_priority(message: &str) -> Option<Fields<'_>> {
    let rest = message.strip_prefix('<')?;
    let end = rest.find('>')?;
    let pri: u8 = rest[..end].parse().ok().filter(|p| *p <= 191)?;
    let severity = Some(SEVERITIES[usize::from(pri % 8)].to_owned());
    let body = &rest[end + 1..];
    if let Some(v5424) = body.strip_prefix("1 ") {
        let mut parts = v5424.splitn(6, ' ');
        let _timestamp = parts.next()?;
        let host = parts.next().filter(|h| *h != "-");
        let program = parts.next().filter(|a| *a != "-");
        let pid = parts.next().filter(|p| *p != "-");
        return Some(Fields { severity, host, program, pid, ..Fields::default() });
    }
    let mut fields = bsd_syslog(body)?;
    fields.severity = severity;
    Some(fields)
}

/// `Nov 22 10:00:00 host program[pid]: message` (what rsyslog writes to /var/log/messages).
fn bsd_syslog(message: &str) -> Option<Fields<'_>> {
    let b = message.as_bytes();
    // "Mmm dd hh:mm:ss " is 16 bytes.
    if b.len() < 17 || b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' || b[15] != b' ' {
        return None;
    }
    let rest = &message[16..];
    let (host, rest) = rest.split_once(' ')?;
    let tag_end = rest.find(": ").or_else(|| rest.strip_suffix(':').map(str::len))?;
    let tag = &rest[..tag_end];
    if tag.contains(' ') {
        return Some(Fields { host: Some(host), ..Fields::default() });
    }
    let (program, pid) = match tag.split_once('[') {
        Some((program, pid)) => (program, pid.strip_suffix(']')),
        None => (tag, None),
    };
    Some(Fields { host: Some(host), program: Some(program), pid, ..Fields::default() })
}

/// Apache/Nginx combined (or common) log format.
fn access_log(message: &str) -> Option<Fields<'_>> {
    let (client_ip, rest) = message.split_once(' ')?;
    if !client_ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':') {
        return None;
    }
    let rest = &rest[rest.find("] \"")? + 3..];
    let (request, rest) = rest.split_once("\" ")?;
    let mut request_parts = request.split(' ');
    let http_method = request_parts.next().filter(|m| m.bytes().all(|b| b.is_ascii_uppercase()))?;
    let http_path = request_parts.next();
    let mut rest_parts = rest.splitn(3, ' ');
    let http_status = rest_parts.next()?.parse().ok();
    let http_bytes = rest_parts.next().and_then(|b| b.parse().ok());
    let user_agent = rest_parts.next().and_then(|tail| {
        // "referrer" "user agent"
        let tail = tail.strip_prefix('"')?;
        let (_referrer, after) = tail.split_once("\" \"")?;
        after.strip_suffix('"').or(Some(after))
    });
    Some(Fields {
        client_ip: Some(client_ip),
        http_method: Some(http_method),
        http_path,
        http_status,
        http_bytes,
        user_agent,
        ..Fields::default()
    })
}

/// The agent's Windows event XML (`event_format: xml`).
fn windows_event(message: &str) -> Fields<'_> {
    let win_event_id = element(message, "EventID").and_then(|v| v.parse().ok());
    let level = element(message, "Level").and_then(|v| v.parse::<u8>().ok());
    let severity = level.map(|l| {
        match l {
            1 => "CRITICAL",
            2 => "ERROR",
            3 => "WARNING",
            5 => "VERBOSE",
            _ => "INFO",
        }
        .to_owned()
    });
    Fields {
        severity,
        win_event_id,
        win_channel: element(message, "Channel"),
        host: element(message, "Computer"),
        win_provider: attribute(message, "<Provider ", "Name"),
        ..Fields::default()
    }
}

/// Text of the first `<name ...>text</name>`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = xml.find(&format!("<{name}"))?;
    let after = &xml[open + 1 + name.len()..];
    if !after.starts_with(['>', ' ']) {
        return None;
    }
    let start = after.find('>')? + 1;
    let text = &after[start..];
    let end = text.find('<')?;
    Some(&text[..end])
}

fn attribute<'a>(xml: &'a str, tag_start: &str, name: &str) -> Option<&'a str> {
    let tag = &xml[xml.find(tag_start)?..];
    let tag = &tag[..tag.find('>')?];
    let at = tag.find(&format!("{name}="))? + name.len() + 1;
    let quote = tag[at..].chars().next()?;
    let value = &tag[at + 1..];
    Some(&value[..value.find(quote)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsd_syslog_lines() {
        let (format, f) =
            parse("Nov 22 10:00:01 ip-10-0-0-1 sshd[4242]: Failed password for root from 203.0.113.9 port 22 ssh2");
        assert_eq!(format, Format::Syslog);
        assert_eq!((f.host, f.program, f.pid), (Some("ip-10-0-0-1"), Some("sshd"), Some("4242")));
        let (_, f) = parse("Nov  2 10:00:01 host kernel: boot");
        assert_eq!((f.program, f.pid), (Some("kernel"), None));
    }

    #[test]
    fn rfc5424_and_priority_syslog() {
        let (format, f) = parse("<34>1 2026-11-22T10:00:00Z web1 su 77 ID47 - 'su root' failed");
        assert_eq!(format, Format::Syslog);
        assert_eq!(
            (f.severity.as_deref(), f.host, f.program, f.pid),
            (Some("CRITICAL"), Some("web1"), Some("su"), Some("77"))
        );
        let (_, f) = parse("<13>Nov 22 10:00:01 host app: hello");
        assert_eq!((f.severity.as_deref(), f.program), (Some("NOTICE"), Some("app")));
    }

    #[test]
    fn combined_access_log() {
        let line = r#"203.0.113.9 - alice [22/Nov/2026:10:00:00 +0000] "GET /api/items?id=1 HTTP/1.1" 503 1234 "https://example.com/" "curl/8.0 (x)""#;
        let (format, f) = parse(line);
        assert_eq!(format, Format::Access);
        assert_eq!(f.client_ip, Some("203.0.113.9"));
        assert_eq!(
            (f.http_method, f.http_path, f.http_status, f.http_bytes),
            (Some("GET"), Some("/api/items?id=1"), Some(503), Some(1234))
        );
        assert_eq!(f.user_agent, Some("curl/8.0 (x)"));
        let (_, f) = parse(r#"::1 - - [22/Nov/2026:10:00:00 +0000] "POST / HTTP/2.0" 200 - "-" "-""#);
        assert_eq!((f.http_status, f.http_bytes), (Some(200), None));
    }

    #[test]
    fn windows_event_xml() {
        let xml = "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Security-Auditing' Guid='{5}'/><EventID>4625</EventID><Level>0</Level><Channel>Security</Channel><Computer>WIN-1</Computer></System></Event>";
        let (format, f) = parse(xml);
        assert_eq!(format, Format::WindowsEvent);
        assert_eq!(f.win_event_id, Some(4625));
        assert_eq!(f.win_channel, Some("Security"));
        assert_eq!(f.win_provider, Some("Microsoft-Windows-Security-Auditing"));
        assert_eq!(f.host, Some("WIN-1"));
        assert_eq!(f.severity.as_deref(), Some("INFO"));
    }

    #[test]
    fn json_messages_become_attributes() {
        let (format, f) = parse(r#"{"level":"error","msg":"boom","user":{"id":7},"n":3}"#);
        assert_eq!(format, Format::Json);
        assert_eq!(f.severity.as_deref(), Some("ERROR"));
        let attributes = f.attributes.unwrap();
        assert_eq!(attributes["msg"], "boom");
        assert_eq!(attributes["user"], r#"{"id":7}"#);
        assert_eq!(attributes["n"], "3");
    }

    #[test]
    fn anything_else_is_text() {
        for line in [
            "",
            "   ",
            "hello world",
            "{not json",
            "<notxml",
            "\u{0}\u{1}",
            "Traceback (most recent call last):",
            "1.2.3.4 no brackets",
        ] {
            assert_eq!(parse(line).0, Format::Text, "{line:?}");
        }
    }
}
