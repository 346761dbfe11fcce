//! Windows events as the agent sends them with `event_format: xml`.

use std::borrow::Cow;

use memchr::memmem::Finder;

use super::{Fields, find, position};
use crate::json::Str;

/// The agent's Windows event XML (`event_format: xml`).
pub(super) fn event(message: Str<'_>) -> Fields<'_> {
    // <System>'s children come in the schema's order (Provider, EventID, …, Level, …, Channel,
    // Computer), so each lookup starts where the previous one ended: one pass over the usual event.
    let mut xml = Xml { text: message.as_str(), from: 0 };
    let win_provider = xml.attribute(needle!("<Provider"), needle!("Name=")).map(|v| message.part(v));
    let win_event_id = xml.element(needle!("<EventID")).and_then(|v| v.parse().ok());
    let level = xml.element(needle!("<Level")).and_then(|v| v.parse::<u8>().ok());
    let win_channel = xml.element(needle!("<Channel")).map(|v| message.part(v));
    let host = xml.element(needle!("<Computer")).map(|v| message.part(v));
    let severity = level.map(|l| {
        Cow::Borrowed(match l {
            1 => "CRITICAL",
            2 => "ERROR",
            3 => "WARNING",
            5 => "VERBOSE",
            _ => "INFO",
        })
    });
    Fields { severity, win_event_id, win_channel, host, win_provider, ..Fields::default() }
}

/// Forward lookups in an XML text; a tag missing after the cursor is looked for from the start.
struct Xml<'a> {
    text: &'a str,
    from: usize,
}

impl<'a> Xml<'a> {
    /// What follows the first `open` (`<Name`) that `after_name` says ends the name.
    fn open(&mut self, open: &Finder<'_>, after_name: &[u8]) -> Option<&'a str> {
        let name_length = open.needle().len();
        let found = |from: usize| {
            let mut at = from;
            loop {
                at += find(&self.text[at..], open)?;
                let next = self.text.as_bytes().get(at + name_length)?;
                if after_name.contains(next) {
                    return Some(at);
                }
                at += name_length;
            }
        };
        let at = found(self.from).or_else(|| found(0))?;
        self.from = at;
        Some(&self.text[at + name_length..])
    }

    /// Text of the first `<Name …>text</Name>`.
    fn element(&mut self, open: &Finder<'_>) -> Option<&'a str> {
        let after = self.open(open, b"> ")?;
        let text = &after[position(after, b'>')? + 1..];
        Some(&text[..position(text, b'<')?])
    }

    /// Value of `Name='…'` or `Name="…"` (`name_equals` is `Name=`) in the first `<Tag …>`.
    fn attribute(&mut self, open: &Finder<'_>, name_equals: &Finder<'_>) -> Option<&'a str> {
        let tag = self.open(open, b" ")?;
        let tag = &tag[..position(tag, b'>')?];
        let mut at = 0;
        let value_at = loop {
            let found = at + find(&tag[at..], name_equals)?;
            at = found + name_equals.needle().len();
            if tag.as_bytes()[found.checked_sub(1)?].is_ascii_whitespace() {
                break at;
            }
        };
        let quote = *tag.as_bytes().get(value_at)?;
        if quote != b'\'' && quote != b'"' {
            return None;
        }
        let value = &tag[value_at + 1..];
        Some(&value[..position(value, quote)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::json::Str;
    use crate::parse::{Format, parse};

    #[test]
    fn windows_event_xml() {
        let xml = "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Security-Auditing' Guid='{5}'/><EventID>4625</EventID><Level>0</Level><Channel>Security</Channel><Computer>WIN-1</Computer></System></Event>";
        let (format, f) = parse(xml);
        assert_eq!(format, Format::WindowsEvent);
        assert_eq!(f.win_event_id, Some(4625));
        assert_eq!(f.win_channel.map(Str::as_str), Some("Security"));
        assert_eq!(f.win_provider.map(Str::as_str), Some("Microsoft-Windows-Security-Auditing"));
        assert_eq!(f.host.map(Str::as_str), Some("WIN-1"));
        assert_eq!(f.severity.as_deref(), Some("INFO"));
    }

    #[test]
    fn windows_elements_are_found_in_any_order() {
        let xml = "<Event><System><Computer>C</Computer><Channel>Ch</Channel><Level>2</Level><EventIDs>1</EventIDs><EventID Qualifiers='0'>7</EventID><Provider  Guid='g' Name=\"P\"/></System></Event>";
        let (_, f) = parse(xml);
        assert_eq!(
            (
                f.win_event_id,
                f.win_channel.map(Str::as_str),
                f.host.map(Str::as_str),
                f.win_provider.map(Str::as_str),
                f.severity.as_deref()
            ),
            (Some(7), Some("Ch"), Some("C"), Some("P"), Some("ERROR"))
        );
        let (_, f) = parse("<Event><System><EventID>oops</EventID></System></Event>");
        assert_eq!((f.win_event_id, f.win_provider.map(Str::as_str), f.host.map(Str::as_str)), (None, None, None));
    }
}
