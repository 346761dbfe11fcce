//! Apache and Nginx access lines, combined or common log format.

use super::{Fields, find, split_at_byte};
use crate::json::Str;

/// An Apache/Nginx combined or common access log line (`client - user [time] "request" status bytes
/// "referrer" "agent"`), from its text or from its literal, where each quote is spelled `\"`. A
/// literal's other escapes must not spell a space, a quote or a bracket (no `\u` escapes), so it
/// splits where its text does, and what is cut from it is JSON string content.
pub(super) fn line(message: Str<'_>) -> Option<Fields<'_>> {
    let (quote, time_end, quoted_end, between_quoted) = if message.is_json() {
        ("\\\"", needle!("] \\\""), needle!("\\\" "), needle!("\\\" \\\""))
    } else {
        ("\"", needle!("] \""), needle!("\" "), needle!("\" \""))
    };
    let (client_ip, rest) = split_at_byte(message.as_str(), b' ')?;
    if !client_ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':') {
        return None;
    }
    let rest = &rest[find(rest, time_end)? + time_end.needle().len()..];
    let request_end = find(rest, quoted_end)?;
    let (request, rest) = (&rest[..request_end], &rest[request_end + quoted_end.needle().len()..]);
    let mut request_parts = request.split(' ');
    let http_method = request_parts.next().filter(|m| m.bytes().all(|b| b.is_ascii_uppercase()))?;
    let http_path = request_parts.next();
    let mut rest_parts = rest.splitn(3, ' ');
    let http_status = rest_parts.next()?.parse().ok();
    let http_bytes = rest_parts.next().and_then(|b| b.parse().ok());
    let user_agent = rest_parts.next().and_then(|tail| {
        // "referrer" "user agent"
        let tail = tail.strip_prefix(quote)?;
        let after = &tail[find(tail, between_quoted)? + between_quoted.needle().len()..];
        after.strip_suffix(quote).or(Some(after))
    });
    let part = |piece| message.part(piece);
    Some(Fields {
        client_ip: Some(part(client_ip)),
        http_method: Some(part(http_method)),
        http_path: http_path.map(part),
        http_status,
        http_bytes,
        user_agent: user_agent.map(part),
        ..Fields::default()
    })
}

#[cfg(test)]
mod tests {
    use crate::json::Str;
    use crate::parse::{Format, parse};

    #[test]
    fn combined_access_log() {
        let line = r#"203.0.113.9 - alice [22/Nov/2026:10:00:00 +0000] "GET /api/items?id=1 HTTP/1.1" 503 1234 "https://example.com/" "curl/8.0 (x)""#;
        let (format, f) = parse(line);
        assert_eq!(format, Format::Access);
        assert_eq!(f.client_ip.map(Str::as_str), Some("203.0.113.9"));
        assert_eq!(
            (f.http_method.map(Str::as_str), f.http_path.map(Str::as_str), f.http_status, f.http_bytes),
            (Some("GET"), Some("/api/items?id=1"), Some(503), Some(1234))
        );
        assert_eq!(f.user_agent.map(Str::as_str), Some("curl/8.0 (x)"));
        let (_, f) = parse(r#"::1 - - [22/Nov/2026:10:00:00 +0000] "POST / HTTP/2.0" 200 - "-" "-""#);
        assert_eq!((f.http_status, f.http_bytes), (Some(200), None));
    }
}
