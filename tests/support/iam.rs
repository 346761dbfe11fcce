//! IAM, evaluated: the stack's policies with their intrinsics resolved, and the requests AWS would
//! authorise for each SDK call a component makes. The emulator enforces no IAM, so this is where a
//! call a real account would refuse fails a test.
//!
//! What is modelled, and from where (AWS IAM User Guide, "Policy evaluation logic" and "IAM JSON policy
//! elements"): an explicit Deny in any policy wins; otherwise an Allow in the principal's own policies
//! (same account) is needed. `Action`/`NotAction`, `Resource`/`NotResource` with `*` and `?`
//! wildcards (actions case-insensitive); `Condition` operators StringEquals, StringNotEquals,
//! StringLike, StringNotLike, ArnEquals, ArnNotEquals, ArnLike, ArnNotLike, Bool: values of one key
//! are ORed, keys and operators ANDed, and a negated operator on an absent key is true.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;

use crate::{ACCOUNT, REGION};

/// One authorisation AWS makes for a call: an action on a resource, with the condition keys it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub action: String,
    pub resource: String,
    pub context: BTreeMap<String, String>,
}

impl Request {
    pub fn new(action: &str, resource: impl Into<String>) -> Self {
        Self { action: action.to_owned(), resource: resource.into(), context: BTreeMap::new() }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.context.insert(key.to_owned(), value.into());
        self
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.action, self.resource)?;
        if !self.context.is_empty() {
            write!(f, " with {:?}", self.context)?;
        }
        Ok(())
    }
}

/// Panics unless the requests include each of these actions: a scenario meant to exercise them did.
pub fn assert_made(requests: &[Request], expected: &[&str]) {
    let made: std::collections::BTreeSet<&str> = requests.iter().map(|r| r.action.as_str()).collect();
    for action in expected {
        assert!(made.contains(action), "no {action} request was made: {made:?}");
    }
}

/// `*` any run, `?` one character.
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (pattern.to_lowercase().chars().collect(), text.to_lowercase().chars().collect())
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

/// Whether `principal` (an account ID or its root) names another account than the resource's, and
/// `who` is in it: in a resource policy that delegates to that account, whose own IAM then decides
/// (IAM User Guide, "AWS account principals").
fn admits_other_account(principal: &str, who: &str) -> bool {
    let account = principal.strip_prefix("arn:aws:iam::").and_then(|p| p.strip_suffix(":root")).unwrap_or(principal);
    account.len() == 12 && account != ACCOUNT && (who == account || who.contains(&format!("::{account}:")))
}

/// One statement of a resolved policy document.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sid: String,
    pub effect_allow: bool,
    pub statement: Value,
}

impl Statement {
    /// `principal`: for a resource policy, who asks. An account's root there delegates to IAM: it
    /// takes part in a Deny (everyone in the account) but grants nothing by itself.
    fn matches(&self, request: &Request, principal: Option<&str>) -> bool {
        let s = &self.statement;
        let listed = |key: &str, ignore_case: bool, text: &str| {
            strings(&s[key]).iter().any(|p| wildcard_match(p, text, ignore_case))
        };
        let action = if !s["Action"].is_null() {
            listed("Action", true, &request.action)
        } else {
            !listed("NotAction", true, &request.action)
        };
        let resource = if !s["Resource"].is_null() {
            listed("Resource", false, &request.resource)
        } else if !s["NotResource"].is_null() {
            !listed("NotResource", false, &request.resource)
        } else {
            // A resource policy's statement without Resource is about its own resource.
            true
        };
        let principal_ok = match (&s["Principal"], principal) {
            (Value::Null, _) => true,
            (Value::String(star), _) if star == "*" => true,
            (p, Some(who)) => strings(&p["AWS"]).iter().chain(strings(&p["Service"]).iter()).any(|x| {
                x == "*"
                    || x == who
                    || (!self.effect_allow && x.ends_with(":root") && who.contains(&format!(":{ACCOUNT}:")))
                    || (self.effect_allow && admits_other_account(x, who))
            }),
            (_, None) => false,
        };
        action && resource && principal_ok && self.conditions_hold(request)
    }

    fn conditions_hold(&self, request: &Request) -> bool {
        let Some(conditions) = self.statement["Condition"].as_object() else { return true };
        conditions.iter().all(|(operator, keys)| {
            keys.as_object().unwrap_or_else(|| panic!("{}: condition {operator} is not a map", self.sid)).iter().all(
                |(key, values)| {
                    let wanted = strings(values);
                    let Some(actual) = request.context.get(key) else {
                        return operator.contains("Not");
                    };
                    let any = |f: &dyn Fn(&str) -> bool| wanted.iter().any(|w| f(w));
                    match operator.as_str() {
                        "StringEquals" | "ArnEquals" => any(&|w| w == actual),
                        "StringNotEquals" | "ArnNotEquals" => !any(&|w| w == actual),
                        "StringLike" | "ArnLike" => any(&|w| wildcard_match(w, actual, false)),
                        "StringNotLike" | "ArnNotLike" => !any(&|w| wildcard_match(w, actual, false)),
                        "Bool" => any(&|w| w.eq_ignore_ascii_case(actual)),
                        other => panic!("{}: condition operator {other} is not modelled; add it", self.sid),
                    }
                },
            )
        })
    }
}

/// The statements of a resolved policy document.
pub fn statements(document: &Value, owner: &str) -> Vec<Statement> {
    let list = match &document["Statement"] {
        Value::Array(items) => items.clone(),
        single @ Value::Object(_) => vec![single.clone()],
        other => panic!("{owner}: a policy without statements: {other}"),
    };
    list.into_iter()
        .enumerate()
        .map(|(i, statement)| Statement {
            sid: format!("{owner}/{}", statement["Sid"].as_str().map_or_else(|| format!("#{i}"), str::to_owned)),
            effect_allow: statement["Effect"] == "Allow",
            statement,
        })
        .collect()
}

/// The answer for one request, with the statement that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed(String),
    ExplicitlyDenied(String),
    ImplicitlyDenied,
}

/// Evaluates a request of `principal` (a role ARN) against its identity policies and the resource
/// policies of what it touches (same account).
pub fn evaluate(
    identity: &[Statement],
    resource_policies: &[Statement],
    principal: &str,
    request: &Request,
) -> Verdict {
    let mut request = request.clone();
    request.context.entry("aws:PrincipalArn".to_owned()).or_insert_with(|| principal.to_owned());
    request.context.entry("aws:SecureTransport".to_owned()).or_insert_with(|| "true".to_owned());
    for s in identity.iter().filter(|s| !s.effect_allow) {
        if s.matches(&request, None) {
            return Verdict::ExplicitlyDenied(s.sid.clone());
        }
    }
    for s in resource_policies.iter().filter(|s| !s.effect_allow) {
        if s.matches(&request, Some(principal)) {
            return Verdict::ExplicitlyDenied(s.sid.clone());
        }
    }
    let allowed =
        identity.iter().filter(|s| s.effect_allow).find(|s| s.matches(&request, None)).or_else(|| {
            resource_policies.iter().filter(|s| s.effect_allow).find(|s| s.matches(&request, Some(principal)))
        });
    allowed.map_or(Verdict::ImplicitlyDenied, |s| Verdict::Allowed(s.sid.clone()))
}

/// The template with its intrinsic functions resolved as CloudFormation would for one deployment:
/// parameter values, and the physical names its resources get. Names are chosen to be the ones
/// `fleetlog local` creates, so calls recorded against the emulator name the resources the policies
/// name.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub template: Yaml,
    pub stack: String,
    pub parameters: BTreeMap<String, Value>,
    /// Logical id → physical name, where the template leaves the name to CloudFormation.
    pub names: BTreeMap<String, String>,
}

impl Deployment {
    fn resource(&self, logical: &str) -> &Yaml {
        let r = &self.template["Resources"][logical];
        assert!(!r.is_null(), "no resource {logical}");
        r
    }

    pub fn condition(&self, name: &str) -> bool {
        let c = &self.template["Conditions"][name];
        assert!(!c.is_null(), "no condition {name}");
        self.truth(c)
    }

    fn truth(&self, node: &Yaml) -> bool {
        let Yaml::Tagged(tagged) = node else { panic!("condition {node:?}") };
        let args = tagged.value.as_sequence();
        match tagged.tag.to_string().as_str() {
            // CloudFormation compares parameter values as strings: `!Equals [!Ref Days, 0]` holds for "0".
            "!Equals" => {
                let args = args.unwrap();
                let scalar = |v: Value| match v {
                    Value::Number(n) => json!(n.to_string()),
                    Value::Bool(b) => json!(b.to_string()),
                    other => other,
                };
                scalar(self.resolve(&args[0])) == scalar(self.resolve(&args[1]))
            }
            "!Not" => !self.truth(&args.unwrap()[0]),
            "!And" => args.unwrap().iter().all(|c| self.truth(c)),
            "!Or" => args.unwrap().iter().any(|c| self.truth(c)),
            "!Condition" => self.condition(tagged.value.as_str().unwrap()),
            other => panic!("condition function {other} is not modelled"),
        }
    }

    fn physical_name(&self, logical: &str) -> String {
        let r = self.resource(logical);
        let props = &r["Properties"];
        let named = match r["Type"].as_str().unwrap() {
            "AWS::Logs::LogGroup" => Some(&props["LogGroupName"]),
            "AWS::KinesisFirehose::DeliveryStream" => Some(&props["DeliveryStreamName"]),
            "AWS::SSM::Document" | "AWS::Athena::WorkGroup" | "AWS::SSM::Parameter" => Some(&props["Name"]),
            "AWS::Glue::Database" => Some(&props["DatabaseInput"]["Name"]),
            "AWS::Logs::Destination" => Some(&props["DestinationName"]),
            "AWS::Kinesis::Stream" => Some(&props["Name"]),
            "AWS::CloudWatch::InsightRule" => Some(&props["RuleName"]),
            _ => None,
        };
        match named.filter(|n| !n.is_null()) {
            Some(n) => self.resolve(n).as_str().unwrap().to_owned(),
            None => self.names.get(logical).cloned().unwrap_or_else(|| format!("{}-{logical}", self.stack)),
        }
    }

    /// What `!Ref` of a resource gives.
    fn reference(&self, logical: &str) -> Value {
        if let Some(p) = self.parameters.get(logical) {
            return p.clone();
        }
        match logical {
            "AWS::AccountId" => return json!(ACCOUNT),
            "AWS::Region" => return json!(REGION),
            "AWS::Partition" => return json!("aws"),
            "AWS::URLSuffix" => return json!("amazonaws.com"),
            "AWS::StackName" => return json!(self.stack),
            "AWS::NoValue" => return Value::Null,
            _ => {}
        }
        let param = &self.template["Parameters"][logical];
        if !param.is_null() {
            let default = &param["Default"];
            assert!(!default.is_null(), "parameter {logical} has no default and no value in this deployment");
            return match param["Type"].as_str() {
                Some("CommaDelimitedList") => {
                    let text = default.as_str().unwrap();
                    json!(if text.is_empty() { vec![""] } else { text.split(',').collect() })
                }
                _ => json!(default.as_str().map_or_else(|| yaml_scalar(default), str::to_owned)),
            };
        }
        let name = self.physical_name(logical);
        match self.resource(logical)["Type"].as_str().unwrap() {
            "AWS::SQS::Queue" => json!(format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}")),
            "AWS::SNS::Topic" => json!(format!("arn:aws:sns:{REGION}:{ACCOUNT}:{name}")),
            "AWS::KMS::Key" => json!(STACK_KEY_ARN.rsplit('/').next().unwrap()),
            _ => json!(name),
        }
    }

    fn attribute(&self, logical: &str, attribute: &str) -> Value {
        let name = self.physical_name(logical);
        let ty = self.resource(logical)["Type"].as_str().unwrap().to_owned();
        let arn = match ty.as_str() {
            "AWS::IAM::Role" => format!("arn:aws:iam::{ACCOUNT}:role/{name}"),
            "AWS::SQS::Queue" => format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
            "AWS::DynamoDB::Table" => format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"),
            "AWS::S3::Bucket" => format!("arn:aws:s3:::{name}"),
            "AWS::Lambda::Function" => format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"),
            "AWS::Logs::LogGroup" => format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"),
            "AWS::KMS::Key" => {
                format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{}", self.reference(logical).as_str().unwrap())
            }
            "AWS::KinesisFirehose::DeliveryStream" => {
                format!("arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{name}")
            }
            "AWS::Events::Rule" => format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"),
            "AWS::Logs::Destination" => format!("arn:aws:logs:{REGION}:{ACCOUNT}:destination:{name}"),
            "AWS::Kinesis::Stream" => format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"),
            "AWS::CloudWatch::InsightRule" => format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:insight-rule/{name}"),
            other => panic!("GetAtt on {other} is not modelled"),
        };
        match attribute {
            "Arn" => json!(arn),
            "QueueName" => json!(name),
            "RuleName" => json!(name),
            other => panic!("GetAtt {logical}.{other} is not modelled"),
        }
    }

    fn substitute(&self, text: &str, vars: &BTreeMap<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            if let Some(literal) = after.strip_prefix('!') {
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = after.find('}').unwrap();
            let name = &after[..end];
            let value = match vars.get(name) {
                Some(v) => v.clone(),
                None => match name.split_once('.') {
                    Some((logical, attribute)) if !name.starts_with("AWS::") => self.attribute(logical, attribute),
                    _ => self.reference(name),
                },
            };
            out.push_str(value.as_str().unwrap_or_else(|| panic!("${{{name}}} is not a string: {value}")));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A template node with every intrinsic resolved (`AWS::NoValue` drops the key or item).
    pub fn resolve(&self, node: &Yaml) -> Value {
        match node {
            Yaml::Tagged(tagged) => {
                let arg = &tagged.value;
                match tagged.tag.to_string().as_str() {
                    "!Ref" => self.reference(arg.as_str().unwrap()),
                    "!GetAtt" => {
                        let (logical, attribute) = match arg {
                            Yaml::String(s) => s.split_once('.').unwrap(),
                            Yaml::Sequence(parts) => (parts[0].as_str().unwrap(), parts[1].as_str().unwrap()),
                            other => panic!("GetAtt {other:?}"),
                        };
                        self.attribute(logical, attribute)
                    }
                    "!Sub" => match arg {
                        Yaml::String(text) => json!(self.substitute(text, &BTreeMap::new())),
                        Yaml::Sequence(parts) => {
                            let vars = parts[1]
                                .as_mapping()
                                .unwrap()
                                .iter()
                                .map(|(k, v)| (k.as_str().unwrap().to_owned(), self.resolve(v)))
                                .collect();
                            json!(self.substitute(parts[0].as_str().unwrap(), &vars))
                        }
                        other => panic!("Sub {other:?}"),
                    },
                    "!If" => {
                        let parts = arg.as_sequence().unwrap();
                        let branch = if self.condition(parts[0].as_str().unwrap()) { &parts[1] } else { &parts[2] };
                        self.resolve(branch)
                    }
                    "!Join" => {
                        let parts = arg.as_sequence().unwrap();
                        let separator = parts[0].as_str().unwrap();
                        let items: Vec<String> = strings(&self.resolve(&parts[1]));
                        json!(items.join(separator))
                    }
                    "!Split" => {
                        let parts = arg.as_sequence().unwrap();
                        let text = self.resolve(&parts[1]);
                        json!(text.as_str().unwrap().split(parts[0].as_str().unwrap()).collect::<Vec<_>>())
                    }
                    other => panic!("intrinsic {other} is not modelled"),
                }
            }
            Yaml::Mapping(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.as_str().unwrap().to_owned(), self.resolve(v)))
                    .filter(|(_, v)| !v.is_null())
                    .collect(),
            ),
            Yaml::Sequence(items) => {
                Value::Array(items.iter().map(|i| self.resolve(i)).filter(|v| !v.is_null()).collect())
            }
            Yaml::String(s) => json!(s),
            Yaml::Bool(b) => json!(b),
            Yaml::Number(n) => serde_json::to_value(n).unwrap(),
            Yaml::Null => Value::Null,
        }
    }

    /// Whether the resource exists in this deployment (its `Condition` holds).
    pub fn exists(&self, logical: &str) -> bool {
        self.resource(logical)["Condition"].as_str().is_none_or(|c| self.condition(c))
    }

    /// The inline policy statements of a role.
    pub fn role_statements(&self, role: &str) -> Vec<Statement> {
        let props = self.resolve(&self.resource(role)["Properties"]);
        let mut out = Vec::new();
        for policy in props["Policies"].as_array().into_iter().flatten() {
            out.extend(statements(
                &policy["PolicyDocument"],
                &format!("{role}/{}", policy["PolicyName"].as_str().unwrap()),
            ));
        }
        // The stack's AWS::IAM::RolePolicy resources attached to it, where they exist.
        for (logical, r) in self.template["Resources"].as_mapping().unwrap() {
            let logical = logical.as_str().unwrap();
            if r["Type"].as_str() != Some("AWS::IAM::RolePolicy") || !self.exists(logical) {
                continue;
            }
            let attached = &r["Properties"]["RoleName"];
            let names_role = matches!(attached, Yaml::Tagged(t) if t.tag == "!Ref" && t.value.as_str() == Some(role));
            if names_role {
                let props = self.resolve(&r["Properties"]);
                out.extend(statements(&props["PolicyDocument"], logical));
            }
        }
        out
    }

    /// The statements of a managed policy the stack creates.
    pub fn managed_policy_statements(&self, policy: &str) -> Vec<Statement> {
        let props = self.resolve(&self.resource(policy)["Properties"]);
        statements(&props["PolicyDocument"], policy)
    }

    /// Like [`Deployment::refusals`], for a principal holding the stack's managed `policy`.
    pub fn refusals_with_policy(&self, policy: &str, principal: &str, requests: &[Request]) -> Vec<String> {
        self.refusals_of(policy, &self.managed_policy_statements(policy), principal, requests)
    }

    /// Every request `principal`, holding `identity` (named `owner` in the messages), would be refused.
    fn refusals_of(&self, owner: &str, identity: &[Statement], principal: &str, requests: &[Request]) -> Vec<String> {
        let resources = self.resource_statements();
        let mut refused: Vec<String> = requests
            .iter()
            .map(|r| self.as_stack_request(r))
            .filter_map(|request| match evaluate(identity, &resources, principal, &request) {
                Verdict::Allowed(_) => None,
                Verdict::ExplicitlyDenied(sid) => Some(format!("{owner}: {request}: denied by {sid}")),
                Verdict::ImplicitlyDenied => Some(format!("{owner}: {request}: no statement of {owner} allows it")),
            })
            .collect();
        refused.sort();
        refused.dedup();
        refused
    }

    /// The ARN of a resource (`!GetAtt NAME.Arn`).
    pub fn arn(&self, logical: &str) -> String {
        self.attribute(logical, "Arn").as_str().unwrap().to_owned()
    }

    /// Every resource policy in the template (bucket, queue and key policies), by what they protect.
    pub fn resource_statements(&self) -> Vec<Statement> {
        let mut out = Vec::new();
        for (logical, r) in self.template["Resources"].as_mapping().unwrap() {
            let logical = logical.as_str().unwrap();
            if !self.exists(logical) {
                continue;
            }
            let document = match r["Type"].as_str().unwrap() {
                "AWS::S3::BucketPolicy" | "AWS::SQS::QueuePolicy" => &r["Properties"]["PolicyDocument"],
                "AWS::KMS::Key" => &r["Properties"]["KeyPolicy"],
                _ => continue,
            };
            let mut found = statements(&self.resolve(document), logical);
            if r["Type"].as_str() == Some("AWS::KMS::Key") {
                // A key policy's "*" is the key itself.
                let arn = self.attribute(logical, "Arn");
                for s in &mut found {
                    s.statement["Resource"] = arn.clone();
                }
            }
            out.extend(found);
        }
        out
    }
}

fn yaml_scalar(node: &Yaml) -> String {
    match node {
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("parameter default {other:?}"),
    }
}

/// The key ARN [`Deployment`] gives the stack's own KMS key.
pub const STACK_KEY_ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555";

/// Local stand-ins for the stack's delivery streams: `fleetlog local` and the ETL tests need a raw
/// and a processed stream because the emulator runs no transformation Lambda; in AWS the raw ones are
/// the stack's `DeliveryStream`, which the ETL re-ingests into, and `fleetlog-records` its
/// `RecordsStream`, which takes the records the ETL makes itself.
const LOCAL_STREAMS: [&str; 4] = ["fleetlog-subscriptions", "fleetlog-records", "fleetlog-raw", "fleetlog-processed"];

impl Deployment {
    /// infra/fleetlog.yaml as deployed under the stack name `fleetlog`, its resources named as
    /// `fleetlog local` names them, with `parameters` over the defaults.
    pub fn local(parameters: &[(&str, Value)]) -> Self {
        let text = std::fs::read_to_string("../infra/fleetlog.yaml").expect("infra/fleetlog.yaml");
        let mut values = BTreeMap::from([
            ("CodeBucket".to_owned(), json!("fleetlog-code")),
            ("EnrollerCodeKey".to_owned(), json!(format!("fleetlog/{}/fleetlog-enroller.zip", "0".repeat(64)))),
            ("EtlCodeKey".to_owned(), json!(format!("fleetlog/{}/fleetlog-etl.zip", "0".repeat(64)))),
            ("AccountName".to_owned(), json!("fleetlog-local")),
        ]);
        let template: Yaml = serde_yaml_ng::from_str(&text).unwrap();
        for (name, _) in parameters {
            assert!(!template["Parameters"][*name].is_null(), "the template has no parameter {name}");
        }
        values.extend(parameters.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let role_name = |arn: &'static str| arn.rsplit('/').next().unwrap_or_default();
        let names = [
            ("EnrollmentTable", fleetlog_local::stack::ENROLLMENT_TABLE),
            ("EnrollQueue", fleetlog_local::stack::ENROLL_QUEUE),
            ("EnrollDeadLetterQueue", fleetlog_local::stack::ENROLL_DLQ),
            ("LogBucket", fleetlog_local::stack::BUCKET),
            ("SubscriptionRole", role_name(fleetlog_local::stack::SUBSCRIPTION_ROLE_ARN)),
        ];
        Self {
            template,
            stack: "fleetlog".to_owned(),
            parameters: values,
            names: names.iter().map(|(l, p)| ((*l).to_owned(), (*p).to_owned())).collect(),
        }
    }

    /// A request recorded against the local deployment, naming the stack's resources.
    fn as_stack_request(&self, request: &Request) -> Request {
        let mut out = request.clone();
        for local in LOCAL_STREAMS {
            if let Some(arn) = out.resource.strip_suffix(local).filter(|a| a.ends_with(":deliverystream/")) {
                // The local processed stream stands for the stack's records stream.
                let stream = if local == fleetlog_local::stack::PROCESSED_STREAM { "records" } else { "logs" };
                out.resource = format!("{arn}{}-{stream}", self.stack);
            }
        }
        out
    }

    /// Every request `role` would be refused, with why: an empty list when all are allowed.
    pub fn refusals(&self, role: &str, requests: &[Request]) -> Vec<String> {
        self.refusals_of(role, &self.role_statements(role), &self.arn(role), requests)
    }

    /// Panics naming every request `role` would be refused.
    pub fn assert_allows(&self, role: &str, requests: &[Request]) {
        assert!(!requests.is_empty(), "no requests recorded for {role}");
        let refused = self.refusals(role, requests);
        assert!(refused.is_empty(), "a real account would refuse:\n{}", refused.join("\n"));
    }
}
