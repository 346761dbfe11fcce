//! Syslog lines: RFC 3164 as rsyslog writes them to /var/log/messages, with or without a `<PRI>`,
//! and RFC 5424.

use std::borrow::Cow;

use super::{Fields, find, position, split_at_byte};
use crate::json::Str;

const SEVERITIES: [&str; 8] = ["EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"];

/// `<PRI>` then RFC 5424 (`1 TIMESTAMP HOST APP PROCID MSGID …`) or RFC 3164 (`Mmm dd hh:mm:ss HOST TAG: …`).
pub(super) fn with_priority(message: Str<'_>) -> Option<Fields<'_>> {
    let rest = message.as_str().strip_prefix('<')?;
    let end = position(rest, b'>')?;
    let pri: u8 = rest[..end].parse().ok().filter(|p| *p <= 191)?;
    let severity = Some(Cow::Borrowed(SEVERITIES[usize::from(pri % 8)]));
    let body = &rest[end + 1..];
    if let Some(v5424) = body.strip_prefix("1 ") {
        let mut parts = v5424.splitn(6, ' ');
        let _timestamp = parts.next()?;
        let mut field = || parts.next().filter(|f| *f != "-").map(|f| message.part(f));
        let (host, program, pid) = (field(), field(), field());
        return Some(Fields { severity, host, program, pid, ..Fields::default() });
    }
    let mut fields = bsd(message.part(body))?;
    fields.severity = severity;
    Some(fields)
}

/// `Nov 22 10:00:00 host program[pid]: message` (what rsyslog writes to /var/log/messages).
pub(super) fn bsd(message: Str<'_>) -> Option<Fields<'_>> {
    let text = message.as_str();
    if !has_bsd_timestamp(text) {
        return None;
    }
    let rest = &text[16..];
    let (host, rest) = split_at_byte(rest, b' ')?;
    let host = Some(message.part(host));
    let tag_end = find(rest, needle!(": ")).or_else(|| rest.strip_suffix(':').map(str::len))?;
    let tag = &rest[..tag_end];
    if position(tag, b' ').is_some() {
        return Some(Fields { host, ..Fields::default() });
    }
    let (program, pid) = match split_at_byte(tag, b'[') {
        Some((program, pid)) => (program, pid.strip_suffix(']')),
        None => (tag, None),
    };
    Some(Fields {
        host,
        program: Some(message.part(program)),
        pid: pid.map(|pid| message.part(pid)),
        ..Fields::default()
    })
}

/// Starts with `Mmm dd hh:mm:ss ` (16 bytes) and has more after it.
pub(super) fn has_bsd_timestamp(message: &str) -> bool {
    message.len() > 16 && bsd_marks_agree(message.as_bytes())
}

/// Whether the separators of `Mmm dd hh:mm:ss ` that fall within `known` are in place.
pub(super) fn bsd_marks_agree(known: &[u8]) -> bool {
    const MARKS: [(usize, u8); 5] = [(3, b' '), (6, b' '), (9, b':'), (12, b':'), (15, b' ')];
    MARKS.iter().all(|&(at, mark)| known.get(at).is_none_or(|b| *b == mark))
}

#[cfg(test)]
mod tests {
    use crate::json::Str;
    use crate::parse::{Format, parse};

    #[test]
    fn bsd_syslog_lines() {
        let (format, f) =
            parse("Nov 22 10:00:01 ip-10-0-0-1 sshd[4242]: Failed password for root from 203.0.113.9 port 22 ssh2");
        assert_eq!(format, Format::Syslog);
        assert_eq!(
            (f.host.map(Str::as_str), f.program.map(Str::as_str), f.pid.map(Str::as_str)),
            (Some("ip-10-0-0-1"), Some("sshd"), Some("4242"))
        );
        let (_, f) = parse("Nov  2 10:00:01 host kernel: boot");
        assert_eq!((f.program.map(Str::as_str), f.pid.map(Str::as_str)), (Some("kernel"), None));
    }

    #[test]
    fn rfc5424_and_priority_syslog() {
        let (format, f) = parse("<34>1 2026-11-22T10:00:00Z web1 su 77 ID47 - 'su root' failed");
        assert_eq!(format, Format::Syslog);
        assert_eq!(
            (f.severity.as_deref(), f.host.map(Str::as_str), f.program.map(Str::as_str), f.pid.map(Str::as_str)),
            (Some("CRITICAL"), Some("web1"), Some("su"), Some("77"))
        );
        let (_, f) = parse("<13>Nov 22 10:00:01 host app: hello");
        assert_eq!((f.severity.as_deref(), f.program.map(Str::as_str)), (Some("NOTICE"), Some("app")));
    }
}
