//! CloudFront standard logs: the W3C extended format, tab-separated, its columns named by the
//! object's `#Fields:` directive (so a distribution's choice of fields, and fields CloudFront adds
//! later, are read by name), `-` for an empty value, and values URL-encoded where CloudFront
//! encodes them (user agents, paths). Field names and meanings are those of the CloudFront
//! Developer Guide ("Standard logging reference", "Log file fields").
//!
//! Unlike the other formats a line cannot be told by its shape: the object it came from says what
//! it is, and its header what each column holds.

use std::borrow::Cow;

use super::aws::ServiceFields;
use super::fields::Fields;
use crate::json::Str;

/// The fields fleetlog reads, by where [`W3cLine`] keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Date,
    Time,
    EdgeLocation,
    ScBytes,
    ClientIp,
    Method,
    /// `cs(Host)`: the distribution's CloudFront domain.
    CloudFrontHost,
    /// `x-host-header`: the domain the viewer asked for (an alternate name, when it has one).
    HostHeader,
    UriStem,
    Status,
    UserAgent,
    EdgeResult,
    /// `time-taken`: seconds, to the millisecond, from the request's arrival to the response's last byte.
    TimeTaken,
}

const SLOTS: usize = 13;

impl Slot {
    fn named(name: &str) -> Option<Slot> {
        Some(match name {
            "date" => Slot::Date,
            "time" => Slot::Time,
            "x-edge-location" => Slot::EdgeLocation,
            "sc-bytes" => Slot::ScBytes,
            "c-ip" => Slot::ClientIp,
            "cs-method" => Slot::Method,
            "cs(Host)" => Slot::CloudFrontHost,
            "x-host-header" => Slot::HostHeader,
            "cs-uri-stem" => Slot::UriStem,
            "sc-status" => Slot::Status,
            "cs(User-Agent)" => Slot::UserAgent,
            "x-edge-result-type" => Slot::EdgeResult,
            "time-taken" => Slot::TimeTaken,
            _ => return None,
        })
    }
}

/// An object's `#Fields:` directive: which column holds which field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct W3cHeader {
    columns: Vec<Option<Slot>>,
}

impl W3cHeader {
    /// The header a `#Fields:` directive line declares; `None` for any other line.
    pub fn from_directive(line: &str) -> Option<W3cHeader> {
        let names = line.strip_prefix("#Fields:")?;
        Some(W3cHeader { columns: names.split_whitespace().map(Slot::named).collect() })
    }

    /// The fields of one log line.
    pub fn read<'l>(&self, line: &'l str) -> W3cLine<'l> {
        let mut values: [Option<Cow<'l, str>>; SLOTS] = Default::default();
        for (value, slot) in line.split('\t').zip(&self.columns) {
            if let Some(slot) = slot
                && value != "-"
                && !value.is_empty()
            {
                values[*slot as usize] = Some(url_decoded(value));
            }
        }
        W3cLine { values }
    }
}

/// A value as it was before CloudFront encoded it. Bytes that are not UTF-8 once decoded are
/// replaced, not lost with the rest of the line.
fn url_decoded(value: &str) -> Cow<'_, str> {
    if memchr::memchr(b'%', value.as_bytes()).is_none() {
        return Cow::Borrowed(value);
    }
    percent_encoding::percent_decode_str(value).decode_utf8_lossy()
}

/// The fields fleetlog reads from one line, decoded.
#[derive(Debug)]
pub struct W3cLine<'l> {
    values: [Option<Cow<'l, str>>; SLOTS],
}

impl<'l> W3cLine<'l> {
    fn get(&self, slot: Slot) -> Option<&str> {
        self.values[slot as usize].as_deref()
    }

    /// When the request was served (`date` and `time`, UTC), in epoch milliseconds.
    pub fn timestamp(&self) -> Option<i64> {
        let (date, time) = (self.get(Slot::Date)?, self.get(Slot::Time)?);
        let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
        let time = chrono::NaiveTime::parse_from_str(time, "%H:%M:%S").ok()?;
        Some(date.and_time(time).and_utc().timestamp_millis())
    }

    /// The fields as columns: the request's as an access line's, the edge's as CloudFront's own.
    pub fn fields(&self) -> Fields<'_> {
        let text = |slot| self.get(slot).map(Str::text);
        let service = ServiceFields::cloudfront(
            self.get(Slot::EdgeLocation).map(Cow::Borrowed),
            self.get(Slot::EdgeResult).map(Cow::Borrowed),
        );
        Fields {
            host: text(Slot::HostHeader).or_else(|| text(Slot::CloudFrontHost)),
            client_ip: text(Slot::ClientIp),
            http_method: text(Slot::Method),
            http_path: text(Slot::UriStem),
            http_status: self.get(Slot::Status).and_then(|s| s.parse().ok()),
            http_bytes: self.get(Slot::ScBytes).and_then(|s| s.parse().ok()),
            user_agent: text(Slot::UserAgent),
            latency_ms: self.get(Slot::TimeTaken).and_then(seconds_as_millis),
            service: Some(Box::new(service)),
            ..Fields::default()
        }
    }
}

/// `0.123` seconds as 123 milliseconds (CloudFront writes at most three decimals; more are cut).
fn seconds_as_millis(seconds: &str) -> Option<u64> {
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(fraction.is_empty() || digits(fraction)) {
        return None;
    }
    let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
    whole.parse::<u64>().ok()?.checked_mul(1000)?.checked_add(millis.parse().ok()?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::parse::testing::fields_json;

    /// The fields of a distribution's log file, in the order the Developer Guide lists them.
    pub(crate) const FIELDS: &str = "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end";

    /// A line with a value for each of [`FIELDS`], written from the field descriptions.
    pub(crate) fn line(edge: &str, status: u16, bytes: u64, path: &str) -> String {
        [
            "2026-12-03",
            "10:42:39",
            edge,
            &bytes.to_string(),
            "192.0.2.100",
            "GET",
            "d111111abcdef8.cloudfront.net",
            path,
            &status.to_string(),
            "-",
            "Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)",
            "-",
            "-",
            if status >= 500 { "Error" } else { "Hit" },
            "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==",
            "www.example.com",
            "https",
            "90",
            "0.052",
            "-",
            "TLSv1.3",
            "TLS_AES_128_GCM_SHA256",
            "Hit",
            "HTTP/2.0",
            "-",
            "-",
            "11040",
            "0.001",
            "Hit",
            "text/html",
            "78",
            "-",
            "-",
        ]
        .join("\t")
    }

    #[test]
    fn lines_are_read_by_the_header_with_values_decoded() {
        let header = W3cHeader::from_directive(FIELDS).unwrap();
        let line = line("SFO5-C1", 503, 2_345, "/caf%C3%A9/index.html");
        let read = header.read(&line);
        assert_eq!(read.timestamp(), Some(1_796_294_559_000));
        let json = fields_json(&read.fields());
        assert_eq!(
            json,
            serde_json::json!({"x":0,"host":"www.example.com","client_ip":"192.0.2.100","http_method":"GET",
                "http_path":"/café/index.html","http_status":503,"http_bytes":2345,
                "user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64)","latency_ms":52,
                "edge_location":"SFO5-C1","edge_result":"Error"})
        );
    }

    #[test]
    fn time_taken_is_read_as_milliseconds() {
        let read = ["0.001", "12", "3.5", "0.0004", "1.2345", "", ".5", "1.x", "-1"].map(seconds_as_millis);
        assert_eq!(read, [Some(1), Some(12_000), Some(3_500), Some(0), Some(1_234), None, None, None, None]);
    }

    #[test]
    fn headers_name_their_columns_and_dashes_are_empty() {
        let header = W3cHeader::from_directive("#Fields: time c-ip sc-status date x-new-field").unwrap();
        let read = header.read("01:02:03\t-\tnot-a-number\t2026-01-02\tanything");
        assert_eq!(read.timestamp(), Some(1_767_315_723_000));
        assert_eq!(fields_json(&read.fields()), serde_json::json!({"x":0}));
        // Fewer values than columns, or more: what is there is read.
        assert_eq!(header.read("01:02:03").timestamp(), None);
        assert_eq!(W3cHeader::from_directive("#Version: 1.0"), None);
        // Bytes that are no UTF-8 once decoded are replaced.
        let agent = W3cHeader::from_directive("#Fields: cs(User-Agent)").unwrap();
        assert_eq!(fields_json(&agent.read("a%FFb").fields())["user_agent"], "a\u{fffd}b");
    }
}
