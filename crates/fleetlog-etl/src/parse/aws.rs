//! AWS service logs that arrive as JSON messages, told by their top-level names: CloudTrail events (a
//! trail delivering to CloudWatch Logs: one event per log event) and AWS WAF logs. Their well-known
//! fields, nested ones included, become columns; the whole object stays in `attributes`.
//!
//! The names are those of the CloudTrail User Guide ("CloudTrail record contents") and the AWS WAF
//! Developer Guide ("Log fields for web ACL traffic").

use std::borrow::Cow;

use serde::Deserialize;

use super::Format;
use super::json::{Attribute, Attributes};
use crate::json::write_str;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    CloudTrail,
    Waf,
    /// CloudFront standard logs, read from S3 (see `cloudfront`).
    CloudFront,
}

/// The promoted fields of a service's log line. Strings as the line spells them once decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFields<'a> {
    pub service: Service,
    /// CloudTrail `sourceIPAddress`; WAF `httpRequest.clientIp`.
    pub client_ip: Option<Cow<'a, str>>,
    /// WAF `httpRequest.httpMethod`.
    pub http_method: Option<Cow<'a, str>>,
    /// WAF `httpRequest.uri`.
    pub http_path: Option<Cow<'a, str>>,
    /// WAF `httpRequest.country`.
    pub country: Option<Cow<'a, str>>,
    /// WAF `action` (ALLOW, BLOCK, COUNT, CAPTCHA, CHALLENGE).
    pub waf_action: Option<Cow<'a, str>>,
    /// WAF `terminatingRuleId`.
    pub waf_rule: Option<Cow<'a, str>>,
    pub event_source: Option<Cow<'a, str>>,
    pub event_name: Option<Cow<'a, str>>,
    /// CloudTrail `userIdentity.arn`.
    pub principal_arn: Option<Cow<'a, str>>,
    pub error_code: Option<Cow<'a, str>>,
    /// CloudTrail `awsRegion`: where the call was made, which an organisation trail's records do
    /// not share with the stack's `region`.
    pub aws_region: Option<Cow<'a, str>>,
    /// CloudFront `x-edge-location`: the edge that served the request (`SFO5-C1`).
    pub edge_location: Option<Cow<'a, str>>,
    /// CloudFront `x-edge-result-type` (Hit, Miss, Error, …).
    pub edge_result: Option<Cow<'a, str>>,
}

impl<'a> ServiceFields<'a> {
    fn new(service: Service) -> Self {
        Self {
            service,
            client_ip: None,
            http_method: None,
            http_path: None,
            country: None,
            waf_action: None,
            waf_rule: None,
            event_source: None,
            event_name: None,
            principal_arn: None,
            error_code: None,
            aws_region: None,
            edge_location: None,
            edge_result: None,
        }
    }

    /// A CloudFront log line's edge fields (its request's are the access line's [`super::Fields`]).
    pub(super) fn cloudfront(edge_location: Option<Cow<'a, str>>, edge_result: Option<Cow<'a, str>>) -> Self {
        Self { edge_location, edge_result, ..Self::new(Service::CloudFront) }
    }

    pub fn format(&self) -> Format {
        match self.service {
            Service::CloudTrail => Format::CloudTrail,
            Service::Waf => Format::Waf,
            Service::CloudFront => Format::CloudFront,
        }
    }

    /// The promoted fields by column name, in column order.
    pub fn columns(&self) -> [(&'static str, Option<&str>); 13] {
        [
            ("client_ip", self.client_ip.as_deref()),
            ("http_method", self.http_method.as_deref()),
            ("http_path", self.http_path.as_deref()),
            ("country", self.country.as_deref()),
            ("waf_action", self.waf_action.as_deref()),
            ("waf_rule", self.waf_rule.as_deref()),
            ("event_source", self.event_source.as_deref()),
            ("event_name", self.event_name.as_deref()),
            ("principal_arn", self.principal_arn.as_deref()),
            ("error_code", self.error_code.as_deref()),
            ("aws_region", self.aws_region.as_deref()),
            ("edge_location", self.edge_location.as_deref()),
            ("edge_result", self.edge_result.as_deref()),
        ]
    }

    /// Appends `,"name":"value"` for each field present.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        for (name, value) in self.columns() {
            if let Some(value) = value {
                out.push(b',');
                write_str(out, name);
                out.push(b':');
                write_str(out, value);
            }
        }
    }
}

/// The service a JSON message's top-level names say it is from, and its promoted fields.
pub(super) fn recognise<'a>(attributes: &Attributes<'a>) -> Option<Box<ServiceFields<'a>>> {
    let has = |name: &str| attributes.get(name).is_some();
    let text = |name: &str| attributes.get(name).and_then(Attribute::as_str);
    if has("eventVersion") && has("eventSource") && has("eventName") {
        let mut fields = ServiceFields::new(Service::CloudTrail);
        fields.event_source = text("eventSource");
        fields.event_name = text("eventName");
        fields.aws_region = text("awsRegion");
        fields.client_ip = text("sourceIPAddress");
        fields.error_code = text("errorCode");
        fields.principal_arn = nested::<Identity>(attributes, "userIdentity").and_then(|i| i.arn).map(Cow::Owned);
        return Some(Box::new(fields));
    }
    if has("webaclId") && has("terminatingRuleId") && has("httpRequest") {
        let mut fields = ServiceFields::new(Service::Waf);
        fields.waf_action = text("action");
        fields.waf_rule = text("terminatingRuleId");
        if let Some(request) = nested::<HttpRequest>(attributes, "httpRequest") {
            fields.client_ip = request.client_ip.map(Cow::Owned);
            fields.country = request.country.map(Cow::Owned);
            fields.http_path = request.uri.map(Cow::Owned);
            fields.http_method = request.http_method.map(Cow::Owned);
        }
        return Some(Box::new(fields));
    }
    None
}

#[derive(Deserialize)]
struct Identity {
    arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpRequest {
    client_ip: Option<String>,
    country: Option<String>,
    uri: Option<String>,
    http_method: Option<String>,
}

/// A member holding an object, read into `T`; `None` when it is absent or not that shape.
fn nested<T: serde::de::DeserializeOwned>(attributes: &Attributes<'_>, name: &str) -> Option<T> {
    serde_json::from_str(&attributes.get(name)?.json_text()?).ok()
}

#[cfg(test)]
mod tests {
    use crate::parse::testing::{fields_json, literal_of};
    use crate::parse::{Format, parse, parse_literal};

    /// A CloudTrail event as the User Guide lays one out (fields from "CloudTrail record contents").
    const CLOUDTRAIL: &str = r#"{"eventVersion":"1.09","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:ops","arn":"arn:aws:sts::111122223333:assumed-role/Ops/ops","accountId":"111122223333"},"eventTime":"2026-12-02T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"eu-west-1","sourceIPAddress":"198.51.100.7","userAgent":"aws-cli/2","errorCode":"AccessDenied","errorMessage":"Access Denied","requestParameters":{"bucketName":"b"},"responseElements":null,"requestID":"R","eventID":"E","readOnly":true,"eventType":"AwsApiCall","recipientAccountId":"111122223333"}"#;

    /// A WAF log line with the fields of "Log fields for web ACL traffic".
    const WAF: &str = r#"{"timestamp":1764669600000,"formatVersion":1,"webaclId":"arn:aws:wafv2:us-east-1:111122223333:global/webacl/acl/1","terminatingRuleId":"BlockBadBots","terminatingRuleType":"REGULAR","action":"BLOCK","httpSourceName":"CF","httpSourceId":"E1","ruleGroupList":[],"rateBasedRuleList":[],"nonTerminatingMatchingRules":[],"httpRequest":{"clientIp":"203.0.113.9","country":"NL","headers":[{"name":"Host","value":"example.com"}],"uri":"/login","args":"a=1","httpVersion":"HTTP/2.0","httpMethod":"POST","requestId":"Q"}}"#;

    #[test]
    fn cloudtrail_events_are_told_by_their_names_and_promote_their_fields() {
        for (format, fields) in [parse(CLOUDTRAIL), parse_literal(&literal_of(CLOUDTRAIL), || Some(CLOUDTRAIL))] {
            assert_eq!(format, Format::CloudTrail);
            let json = fields_json(&fields);
            assert_eq!(json["event_source"], "s3.amazonaws.com");
            assert_eq!(json["event_name"], "GetObject");
            assert_eq!(json["principal_arn"], "arn:aws:sts::111122223333:assumed-role/Ops/ops");
            assert_eq!(json["client_ip"], "198.51.100.7");
            assert_eq!(json["error_code"], "AccessDenied");
            assert_eq!(json["aws_region"], "eu-west-1");
            assert_eq!(json["attributes"]["eventID"], "E", "the object stays in the attributes");
        }
    }

    #[test]
    fn waf_logs_are_told_by_their_names_and_promote_the_request() {
        for (format, fields) in [parse(WAF), parse_literal(&literal_of(WAF), || Some(WAF))] {
            assert_eq!(format, Format::Waf);
            let json = fields_json(&fields);
            assert_eq!(json["waf_action"], "BLOCK");
            assert_eq!(json["waf_rule"], "BlockBadBots");
            assert_eq!(json["client_ip"], "203.0.113.9");
            assert_eq!(json["country"], "NL");
            assert_eq!(json["http_path"], "/login");
            assert_eq!(json["http_method"], "POST");
        }
    }

    #[test]
    fn other_json_and_misshapen_service_lines_stay_json() {
        assert_eq!(parse(r#"{"eventName":"x","level":"info"}"#).0, Format::Json);
        // A WAF line whose request is not an object: recognised, its request fields absent.
        let (format, fields) =
            parse(r#"{"webaclId":"a","terminatingRuleId":"r","action":"ALLOW","httpRequest":"gone"}"#);
        assert_eq!(format, Format::Waf);
        assert!(fields_json(&fields).get("client_ip").is_none());
        assert_eq!(fields_json(&fields)["waf_action"], "ALLOW");
    }
}
