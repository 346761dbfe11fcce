//! The fields parsed from a message, and how a record writes them.

use std::borrow::Cow;

use super::aws::ServiceFields;
use super::json::Attributes;
use crate::json::Str;

/// Fields parsed from one message. All optional; the raw message is always kept beside them.
#[derive(Debug, Clone, Default)]
pub struct Fields<'a> {
    /// Always text: a level name, or a JSON message's level upper-cased.
    pub severity: Option<Cow<'a, str>>,
    pub host: Option<Str<'a>>,
    pub program: Option<Str<'a>>,
    pub pid: Option<Str<'a>>,
    pub client_ip: Option<Str<'a>>,
    pub http_method: Option<Str<'a>>,
    pub http_path: Option<Str<'a>>,
    pub http_status: Option<u16>,
    pub http_bytes: Option<u64>,
    pub user_agent: Option<Str<'a>>,
    /// How long the request took, in milliseconds (CloudFront's `time-taken`).
    pub latency_ms: Option<u64>,
    pub win_event_id: Option<u32>,
    pub win_channel: Option<Str<'a>>,
    pub win_provider: Option<Str<'a>>,
    /// What an AWS service's JSON line (CloudTrail, WAF) promotes; boxed, as few lines have it.
    pub service: Option<Box<ServiceFields<'a>>>,
    /// Top-level fields of a JSON message, as they are spelled in it.
    pub attributes: Option<Attributes<'a>>,
}

impl Fields<'_> {
    /// Appends `,"name":value` for each field present (absent fields are omitted; the JSON SerDe
    /// reads them as NULL). Attributes are strings: string values are copied as spelled, `null`
    /// stays null, anything else becomes its JSON text.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_members::<false>(out);
        if let Some(attributes) = &self.attributes {
            out.extend_from_slice(b",\"attributes\":{");
            for (i, attribute) in attributes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                attribute.write_json(out);
            }
            out.push(b'}');
        }
    }

    /// Appends `,"name":"value"` for each field but the attributes, numbers as strings: Splunk
    /// indexed fields are flat and their values strings.
    pub fn write_indexed(&self, out: &mut Vec<u8>) {
        self.write_members::<true>(out);
    }

    /// The typed fields and the service's, numbers quoted when `QUOTED`.
    fn write_members<const QUOTED: bool>(&self, out: &mut Vec<u8>) {
        // `,"name":` in one piece.
        macro_rules! name {
            ($name:literal) => {
                concat!(",\"", $name, "\":").as_bytes()
            };
        }
        #[inline(always)]
        fn text(out: &mut Vec<u8>, name: &[u8], value: Option<Str<'_>>) {
            if let Some(value) = value {
                out.extend_from_slice(name);
                value.write(out);
            }
        }
        fn number<const QUOTED: bool>(out: &mut Vec<u8>, name: &[u8], value: Option<impl itoa::Integer>) {
            if let Some(value) = value {
                out.extend_from_slice(name);
                if QUOTED {
                    out.push(b'"');
                }
                out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
                if QUOTED {
                    out.push(b'"');
                }
            }
        }
        text(out, name!("severity"), self.severity.as_deref().map(Str::text));
        text(out, name!("host"), self.host);
        text(out, name!("program"), self.program);
        text(out, name!("pid"), self.pid);
        text(out, name!("client_ip"), self.client_ip);
        text(out, name!("http_method"), self.http_method);
        text(out, name!("http_path"), self.http_path);
        number::<QUOTED>(out, name!("http_status"), self.http_status);
        number::<QUOTED>(out, name!("http_bytes"), self.http_bytes);
        text(out, name!("user_agent"), self.user_agent);
        number::<QUOTED>(out, name!("latency_ms"), self.latency_ms);
        number::<QUOTED>(out, name!("win_event_id"), self.win_event_id);
        text(out, name!("win_channel"), self.win_channel);
        text(out, name!("win_provider"), self.win_provider);
        if let Some(service) = &self.service {
            service.write_json(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;
    use crate::parse::testing::fields_json;

    #[test]
    fn fields_are_written_as_json_with_their_types() {
        let (_, f) = parse(r#"::1 - - [22/Nov/2026:10:00:00 +0000] "GET /a\b HTTP/1.1" 404 12 "-" "agent \"x\" 1""#);
        assert_eq!(
            fields_json(&f),
            serde_json::json!({"x":0,"client_ip":"::1","http_method":"GET","http_path":r"/a\b",
                "http_status":404,"http_bytes":12,"user_agent":r#"agent \"x\" 1"#})
        );
        assert_eq!(fields_json(&Fields::default()), serde_json::json!({"x":0}));
    }
}
