//! The deployed stack: `--stack NAME` reads its outputs so no resource name is typed by hand, and
//! `fleetlog deploy` puts the Lambda code and the template in S3 under content addresses and creates
//! or updates the stack.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::SdkConfig;
use fleetlog_aws::cloudformation;
use serde_json::json;

use crate::output::{Report, Table, spinner};

/// infra/fleetlog.yaml, the template `deploy` deploys.
pub const TEMPLATE: &str = include_str!("../../../infra/fleetlog.yaml");

/// The outputs the CLI reads, by name (infra/fleetlog.yaml declares them; the tests check).
pub mod outputs {
    pub const ENROLLMENT_TABLE: &str = "EnrollmentTable";
    pub const AGENT_DOCUMENT: &str = "AgentDocument";
    pub const LOG_GROUP_PREFIX: &str = "LogGroupPrefix";
    pub const LOG_SOURCE: &str = "LogSource";
    pub const WORK_GROUP: &str = "WorkGroup";
    pub const DATABASE: &str = "Database";
    /// `single`, `central` or `member`: a member keeps no logs, so it has no query outputs.
    pub const STACK_ROLE: &str = "StackRole";
    pub const ALL: [&str; 6] = [ENROLLMENT_TABLE, AGENT_DOCUMENT, LOG_GROUP_PREFIX, LOG_SOURCE, WORK_GROUP, DATABASE];
}

/// A stack's outputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackOutputs(pub BTreeMap<String, String>);

impl StackOutputs {
    pub async fn read(config: &SdkConfig, stack: &str) -> Result<Self> {
        let cfn = aws_sdk_cloudformation::Client::new(config);
        let found = cloudformation::describe_stack(&cfn, stack).await?.with_context(|| {
            format!("cloudformation:DescribeStacks: no stack named {stack} in this account and region")
        })?;
        Ok(Self(found.outputs))
    }

    /// An output the CLI needs, or a clear error naming the stack's missing output.
    pub fn get(&self, key: &str) -> Result<&str> {
        if let Some(found) = self.0.get(key) {
            return Ok(found);
        }
        if self.0.get(outputs::STACK_ROLE).is_some_and(|role| role == "member") {
            anyhow::bail!(
                "the stack is a member stack, which has no output {key}: its logs are kept by the central stack in \
                 the log archive account (run this there, e.g. with --profile)"
            );
        }
        anyhow::bail!("the stack has no output {key}; is it a fleetlog stack, deployed from this version's infra/?")
    }
}

/// The value a setting takes: a flag or its environment variable, else the stack's output (with
/// `--stack`), else the built-in default.
pub fn setting(given: Option<&str>, stack: Option<&StackOutputs>, output: &str, default: &str) -> Result<String> {
    match (given, stack) {
        (Some(v), _) => Ok(v.to_owned()),
        (None, Some(outputs)) => outputs.get(output).map(str::to_owned),
        (None, None) => Ok(default.to_owned()),
    }
}

/// The two Lambda zips as cargo lambda writes them (`DIR/<binary>/bootstrap.zip`).
pub const FUNCTIONS: [(&str, &str); 2] = [("fleetlog-enroller", "EnrollerCodeKey"), ("fleetlog-etl", "EtlCodeKey")];

/// `fleetlog/<sha256>/<name>`: a new build is a new key, so CloudFormation sees the change.
pub fn content_key(name: &str, bytes: &[u8]) -> String {
    format!("fleetlog/{}/{name}", fleetlog_aws::s3::content_address(bytes))
}

#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub stack: String,
    pub code_bucket: String,
    pub zips: PathBuf,
    pub parameters: Vec<(String, String)>,
    pub timeout: Duration,
}

fn read_zip(dir: &Path, function: &str) -> Result<Vec<u8>> {
    let path = dir.join(function).join("bootstrap.zip");
    std::fs::read(&path).with_context(|| format!("cannot read {} (scripts/package builds it)", path.display()))
}

/// `deploy`: code and template to S3 by content, then CreateStack or UpdateStack, waited for.
pub async fn deploy(config: &SdkConfig, s3: &aws_sdk_s3::Client, options: &DeployOptions) -> Result<Report> {
    let mut parameters: BTreeMap<String, String> = options.parameters.iter().cloned().collect();
    parameters.insert("CodeBucket".into(), options.code_bucket.clone());
    let mut uploads = Table::new(&["object", "result"]);
    for (function, parameter) in FUNCTIONS {
        let zip = read_zip(&options.zips, function)?;
        let key = content_key(&format!("{function}.zip"), &zip);
        let uploaded = fleetlog_aws::s3::put_once(s3, &options.code_bucket, &key, zip).await?;
        uploads.row(vec![format!("s3://{}/{key}", options.code_bucket), uploaded_word(uploaded)]);
        parameters.insert(parameter.into(), key);
    }
    let template_key = content_key("fleetlog.yaml", TEMPLATE.as_bytes());
    let uploaded =
        fleetlog_aws::s3::put_once(s3, &options.code_bucket, &template_key, TEMPLATE.as_bytes().to_vec()).await?;
    uploads.row(vec![format!("s3://{}/{template_key}", options.code_bucket), uploaded_word(uploaded)]);
    let template_url = object_url(config, &options.code_bucket, &template_key);

    let cfn = aws_sdk_cloudformation::Client::new(config);
    let action = if cloudformation::describe_stack(&cfn, &options.stack).await?.is_some() {
        let updated = cloudformation::update_stack(&cfn, &options.stack, &template_url, &parameters).await?;
        if updated { "updated" } else { "unchanged" }
    } else {
        cloudformation::create_stack(&cfn, &options.stack, &template_url, &parameters).await?;
        "created"
    };
    if action != "unchanged" {
        wait_for_stack(&cfn, &options.stack, options.timeout).await?;
    }
    let outputs = StackOutputs::read(config, &options.stack).await?;
    let mut table = Table::new(&["output", "value"]).titled(format!("Stack {} {action}:", options.stack));
    for (k, v) in &outputs.0 {
        table.row(vec![k.clone(), v.clone()]);
    }
    Ok(Report {
        json: json!({ "stack": options.stack, "action": action, "parameters": parameters, "outputs": outputs.0 }),
        tables: vec![uploads, table],
        notes: vec![format!(
            "Point the CLI at it with --stack {0} (or FLEETLOG_STACK={0}); `fleetlog configs publish --stack {0}` stores config changes.",
            options.stack
        )],
    })
}

fn uploaded_word(uploaded: bool) -> String {
    if uploaded { "uploaded".into() } else { "already there".into() }
}

/// The S3 URL CloudFormation fetches a template from: the endpoint's (an emulator's) when one is
/// set, else the bucket's regional virtual-hosted URL.
fn object_url(config: &SdkConfig, bucket: &str, key: &str) -> String {
    match config.endpoint_url() {
        Some(endpoint) => format!("{}/{bucket}/{key}", endpoint.trim_end_matches('/')),
        None => {
            let region = config.region().map_or_else(|| "us-east-1".to_owned(), ToString::to_string);
            format!("https://{bucket}.s3.{region}.amazonaws.com/{key}")
        }
    }
}

/// Waits for the stack to settle, with a spinner; a failed or rolled-back stack is an error naming
/// the first failed resource.
async fn wait_for_stack(cfn: &aws_sdk_cloudformation::Client, stack: &str, timeout: Duration) -> Result<()> {
    let bar = spinner("waiting for CloudFormation");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let found = cloudformation::describe_stack(cfn, stack).await?;
        let text = found.map_or_else(|| "unknown".to_owned(), |s| s.status);
        bar.set_message(text.clone());
        if text.ends_with("_COMPLETE") && !text.contains("ROLLBACK") && !text.contains("IN_PROGRESS") {
            bar.finish_and_clear();
            return Ok(());
        }
        if text.ends_with("FAILED") || text.contains("ROLLBACK") {
            bar.finish_and_clear();
            let reason = cloudformation::failure_reason(cfn, stack).await?.unwrap_or_default();
            bail!("stack {stack} is {text}: {reason}");
        }
        if tokio::time::Instant::now() > deadline {
            bar.finish_and_clear();
            bail!(
                "stack {stack} still {text} after {}s; `aws cloudformation describe-stack-events` says why",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_stacks_missing_query_outputs_point_at_the_central_stack() {
        let member = StackOutputs(BTreeMap::from([(outputs::STACK_ROLE.to_owned(), "member".to_owned())]));
        let error = member.get(outputs::LOG_SOURCE).unwrap_err().to_string();
        assert!(error.contains("member stack") && error.contains("central stack"), "{error}");
        let unknown = StackOutputs::default().get(outputs::LOG_SOURCE).unwrap_err().to_string();
        assert!(unknown.contains("is it a fleetlog stack"), "{unknown}");
    }

    #[test]
    fn keys_address_content() {
        let a = content_key("fleetlog-etl.zip", b"one");
        assert_eq!(a, content_key("fleetlog-etl.zip", b"one"));
        assert_ne!(a, content_key("fleetlog-etl.zip", b"two"));
        assert!(a.starts_with("fleetlog/") && a.ends_with("/fleetlog-etl.zip") && a.len() == 9 + 64 + 17, "{a}");
    }

    #[test]
    fn settings_come_from_flags_then_the_stack_then_defaults() {
        let outputs = StackOutputs(BTreeMap::from([("EnrollmentTable".to_owned(), "stack-table".to_owned())]));
        assert_eq!(setting(Some("flag"), Some(&outputs), "EnrollmentTable", "d").unwrap(), "flag");
        assert_eq!(setting(None, Some(&outputs), "EnrollmentTable", "d").unwrap(), "stack-table");
        assert_eq!(setting(None, None, "EnrollmentTable", "d").unwrap(), "d");
        let err = setting(None, Some(&outputs), "WorkGroup", "d").unwrap_err().to_string();
        assert!(err.contains("no output WorkGroup"), "{err}");
    }

    #[test]
    fn the_template_fits_a_template_url() {
        // `deploy` always sends the template by URL: a body takes at most 51,200 bytes, which the
        // template outgrew; a URL takes up to 1 MB.
        assert!(TEMPLATE.len() < 1_000_000);
    }
}
