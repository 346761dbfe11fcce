//! The command line (clap). Defaults match the enroller's, and every deployment setting can come
//! from the same environment variable the enroller Lambda reads.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use fleetlog_core::archive::RestoreTier;
use fleetlog_core::settings::enroller_default;

use crate::output::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "fleetlog",
    version,
    about = "Operate fleetlog: agent configs, enrollment of EC2 instances, and log queries.",
    long_about = "Operate fleetlog: publish CloudWatch agent configs, see and fix the enrollment of EC2 instances, \
                  and query the collected logs with Athena or locally.\n\n\
                  New here? `fleetlog local demo` runs the whole pipeline on this machine against a local AWS API emulator.",
    after_help = "AWS credentials and region come from the usual places (environment, ~/.aws, instance role); \
                  --profile, --region and --endpoint-url override them."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// AWS named profile.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// AWS region.
    #[arg(long, global = true, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Send every AWS request here (a local emulator, a VPC endpoint).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// The fleetlog CloudFormation stack: its outputs name the table, document, bucket, workgroup and
    /// log group prefix, so none is typed by hand (a flag still wins over an output).
    #[arg(long, global = true, env = "FLEETLOG_STACK")]
    pub stack: Option<String>,
    /// How to print results: tables for people, JSON or CSV for scripts.
    #[arg(long, short, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, publish and compare CloudWatch agent configs (Parameter Store).
    #[command(subcommand)]
    Configs(ConfigsCommand),
    /// Tag instances for management and have the enroller enroll them now.
    Enroll {
        /// EC2 instance IDs.
        #[arg(required = true, value_name = "INSTANCE_ID")]
        instances: Vec<String>,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Remove the management tag and have the enroller offboard them now (alarms go, logs stay).
    Offboard {
        /// EC2 instance IDs.
        #[arg(required = true, value_name = "INSTANCE_ID")]
        instances: Vec<String>,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Show enrollment: tag, platform, SSM, agent commands, log groups, alarms. No IDs: the whole fleet.
    Status {
        /// EC2 instance IDs (default: every instance in the region, with a summary).
        #[arg(value_name = "INSTANCE_ID")]
        instances: Vec<String>,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Run the scheduled reconcile sweep now, or print its plan with --dry-run.
    Reconcile {
        /// Print what the sweep would do and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Tail and grep the fleet's log lines in CloudWatch Logs, interleaved in time order.
    #[command(
        after_help = "Examples:\n  fleetlog logs i-0123456789abcdef0 --since 15m\n  fleetlog logs --tag team=web --source security --filter '\"Failed password\"' --follow\n  fleetlog logs --output json | jq .message\n\n\
                            Without IDs or --tag: every instance fleetlog has enrolled. --filter takes CloudWatch Logs \
                            filter-pattern syntax. --follow streams new lines through CloudWatch Logs Live Tail \
                            (a session per log group, billed per minute), or polls every 2 s where the endpoint has \
                            no Live Tail (emulators, some proxies); it runs until Ctrl-C."
    )]
    Logs(LogsArgs),
    /// Run SQL (or a named query) on the log table: Athena, or --local with an embedded engine.
    Query(QueryArgs),
    /// The log archive: restore archived partitions so Athena and --local can read them again.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Deploy or update the stack (infra/fleetlog.yaml): the Lambda zips and the template go to the
    /// code bucket under content addresses, so a new build is always deployed.
    Deploy(DeployArgs),
    /// The whole pipeline on this machine, against a local AWS API emulator on 127.0.0.1.
    #[command(subcommand)]
    Local(LocalCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Start restores of the partitions' objects in S3 Glacier Deep Archive (or Flexible Retrieval),
    /// and report where each partition stands. Run it again to follow progress: nothing is asked twice.
    #[command(
        after_help = "Examples:\n  fleetlog archive restore --from 2026-01-01 --to 2026-01-31 --account 111111111111 --stack fleetlog\n  fleetlog archive restore --from 2026-01-01 --to 2026-01-02 --tier bulk --days 14\n\n\
                      Objects in Glacier Instant Retrieval and the other classes are read as they are; Deep Archive \
                      restores take up to 12 hours (Standard) or 48 (Bulk). The restored copies stay readable for --days."
    )]
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// First day (UTC, YYYY-MM-DD), as the dt partition names it.
    #[arg(long, value_name = "DATE")]
    pub from: chrono::NaiveDate,
    /// Last day, included.
    #[arg(long, value_name = "DATE")]
    pub to: chrono::NaiveDate,
    /// Only these source accounts (repeat, or separate with commas) [default: every account in the archive].
    #[arg(long, value_name = "ACCOUNT_ID", value_delimiter = ',', value_parser = account_id)]
    pub account: Vec<String>,
    /// Days the restored copies stay readable.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i32).range(1..=365))]
    pub days: i32,
    /// Retrieval tier: standard (up to 12 hours for Deep Archive) or bulk (up to 48, cheaper).
    #[arg(
        long,
        default_value = "standard",
        value_parser = PossibleValuesParser::new(["standard", "bulk"]).try_map(|t| t.parse::<RestoreTier>())
    )]
    pub tier: RestoreTier,
    /// s3://bucket/prefix of the records [default: the stack's LogSource, else s3://fleetlog-logs/logs/].
    #[arg(long, env = "FLEETLOG_LOG_SOURCE")]
    pub source: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigsCommand {
    /// Check agent configs: structure, file name, template variables, size and Parameter Store tier.
    Validate(ConfigArgs),
    /// Store changed configs in Parameter Store (standard tier up to 4 KB, advanced up to 8 KB).
    Publish {
        #[command(flatten)]
        args: ConfigArgs,
        /// Store a new version even when the content is unchanged.
        #[arg(long)]
        force: bool,
    },
    /// Show how the local configs differ from what Parameter Store holds.
    Diff(ConfigArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Config files or folders of them (default: agent-configs/).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Parameter names are PREFIX-linux, PREFIX-windows-PROFILE…; must start with AmazonCloudWatch-.
    #[arg(long, env = "FLEETLOG_CONFIG_PARAMETER_PREFIX", default_value = enroller_default("FLEETLOG_CONFIG_PARAMETER_PREFIX"))]
    pub parameter_prefix: String,
    /// What ${fleetlog:LogGroupPrefix} becomes, e.g. CCP-logs-acme-123456789012-eu-west-1.
    #[arg(long, env = "FLEETLOG_LOG_GROUP_PREFIX", conflicts_with = "account_name")]
    pub log_group_prefix: Option<String>,
    /// Build the log group prefix CCP-logs-NAME-ACCOUNT_ID-REGION (account id from STS).
    #[arg(long, env = "FLEETLOG_ACCOUNT_NAME")]
    pub account_name: Option<String>,
    /// Also let configs read files under this folder (repeat, or comma-separate); by default only
    /// /var/log/, the agent's own logs and C:\ProgramData\Amazon\. The enroller reads the same variable.
    #[arg(long = "allow-path", env = "FLEETLOG_ALLOWED_LOG_PATHS", value_delimiter = ',', value_name = "FOLDER")]
    pub allow_path: Vec<String>,
}

/// Where the deployed stack keeps things: a flag (or its variable), else the `--stack` output, else
/// the local deployment's name.
#[derive(Debug, Args, Clone)]
pub struct DeploymentArgs {
    /// The enrollment table (DynamoDB) [default: the stack's EnrollmentTable, else fleetlog-enrollments].
    #[arg(long, env = "FLEETLOG_ENROLLMENT_TABLE")]
    pub table: Option<String>,
    /// The management tag key (exact case).
    #[arg(long, env = "FLEETLOG_MANAGEMENT_TAG_KEY", default_value = enroller_default("FLEETLOG_MANAGEMENT_TAG_KEY"))]
    pub tag_key: String,
    /// The management tag value (exact case).
    #[arg(long, env = "FLEETLOG_MANAGEMENT_TAG_VALUE", default_value = enroller_default("FLEETLOG_MANAGEMENT_TAG_VALUE"))]
    pub tag_value: String,
    /// The name of fleetlog's subscription filters.
    #[arg(long, env = "FLEETLOG_SUBSCRIPTION_FILTER_NAME", default_value = enroller_default("FLEETLOG_SUBSCRIPTION_FILTER_NAME"))]
    pub filter_name: String,
    /// Seconds an enrolled instance may go without its logs reaching fleetlog before `status` calls
    /// it silent (the stack's FreshnessWindowSeconds).
    #[arg(long, env = "FLEETLOG_FRESHNESS_WINDOW_SECONDS", default_value = enroller_default("FLEETLOG_FRESHNESS_WINDOW_SECONDS"))]
    pub freshness_window: u64,
    /// The retention in days fleetlog sets on log groups (the stack's LogRetentionDays), which
    /// `reconcile --dry-run` checks groups against.
    #[arg(long, env = "FLEETLOG_LOG_RETENTION_DAYS", default_value = enroller_default("FLEETLOG_LOG_RETENTION_DAYS"))]
    pub retention_days: u32,
    /// fleetlog's SSM Command document, which `offboard` sends to stop the agent [default: the
    /// stack's AgentDocument, else fleetlog-agent].
    #[arg(long, env = "FLEETLOG_AGENT_DOCUMENT")]
    pub agent_document: Option<String>,
    /// The document version commands run: a number, or $DEFAULT.
    #[arg(long, env = "FLEETLOG_AGENT_DOCUMENT_VERSION", default_value = enroller_default("FLEETLOG_AGENT_DOCUMENT_VERSION"))]
    pub agent_document_version: String,
}

#[derive(Debug, Args)]
#[command(after_help = "Named queries (`fleetlog query --list`) run on both engines. \
                        Table: logs (database fleetlog), partitioned by account (the source account ID), \
                        dt (YYYY-MM-DD) and hour (HH), UTC.")]
pub struct QueryArgs {
    /// SQL, or the name of a named query. A JSON message's fields: element_at(attributes, 'key'), NULL
    /// where a record lacks the key, on Athena and --local alike.
    #[arg(value_name = "SQL_OR_NAME", required_unless_present = "list")]
    pub sql: Option<String>,
    /// List the named queries.
    #[arg(long)]
    pub list: bool,
    /// Read only these source accounts' records (repeat, or separate with commas): the query sees
    /// `logs` restricted to them, and neither engine reads other accounts' partitions. Needed on
    /// every Athena query when the stack's SourceAccountIds is "*".
    #[arg(long, value_name = "ACCOUNT_ID", value_delimiter = ',', value_parser = account_id)]
    pub account: Vec<String>,
    /// Run on the embedded engine (Apache DataFusion) instead of Athena. Objects are read while the
    /// query runs, a few at a time, so memory holds what the query keeps, not every record; filters
    /// on account, dt and hour skip the objects of other partitions, as on Athena.
    #[arg(long)]
    pub local: bool,
    /// With --local: s3://bucket/prefix (AWS or --endpoint-url) or a folder of downloaded objects
    /// [default: the stack's LogSource, else s3://fleetlog-logs/logs/].
    #[arg(long, env = "FLEETLOG_LOG_SOURCE")]
    pub source: Option<String>,
    /// Athena workgroup (results location, encryption and scan limit come from it) [default: the
    /// stack's WorkGroup, else fleetlog].
    #[arg(long, env = "FLEETLOG_ATHENA_WORKGROUP")]
    pub workgroup: Option<String>,
    /// Glue database [default: the stack's Database, else fleetlog].
    #[arg(long, env = "FLEETLOG_ATHENA_DATABASE")]
    pub database: Option<String>,
    /// Give up waiting for Athena after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// EC2 instance IDs (default: every enrolled instance).
    #[arg(value_name = "INSTANCE_ID", conflicts_with = "tag")]
    pub instances: Vec<String>,
    /// The instances carrying this tag, KEY=VALUE (exact case).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub tag: Option<(String, String)>,
    /// Only log groups of this source: the last part of the group's name (system, security, …).
    #[arg(long)]
    pub source: Option<String>,
    /// Start this long ago: 90s, 15m, 1h, 2d.
    #[arg(long, default_value = "1h", value_parser = crate::logs::parse_since)]
    pub since: std::time::Duration,
    /// Only lines matching this CloudWatch Logs filter pattern.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// Keep printing new lines as they arrive (Live Tail, else polling) until Ctrl-C.
    #[arg(long, short)]
    pub follow: bool,
    #[command(flatten)]
    pub deployment: DeploymentArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "Build the zips first: scripts/package [--arch arm64|x86_64]. The code bucket must exist in \
                        the stack's region. The stack needs CAPABILITY_IAM (it creates roles); deploy passes it.")]
pub struct DeployArgs {
    /// S3 bucket for the Lambda zips and the template (content-addressed keys under fleetlog/).
    #[arg(long, env = "FLEETLOG_CODE_BUCKET")]
    pub code_bucket: String,
    /// Where scripts/package left the zips (FUNCTION/bootstrap.zip).
    #[arg(long, default_value = "target/lambda")]
    pub zips: PathBuf,
    /// A stack parameter, KEY=VALUE (repeat): AccountName, Architecture, AthenaQueryRoleArns, …
    #[arg(long = "parameter", short = 'p', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub parameters: Vec<(String, String)>,
    /// Give up waiting for CloudFormation after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Run everything once, narrated, and end with a query answer (the README's first command).
    Demo {
        /// The agent configs to publish.
        #[arg(long, default_value_os_t = crate::default_configs_dir())]
        configs: PathBuf,
    },
    /// Start the emulator with fleetlog deployed and keep the pipeline running until Ctrl-C.
    Up {
        /// The agent configs to publish.
        #[arg(long, default_value_os_t = crate::default_configs_dir())]
        configs: PathBuf,
    },
}

/// A source account as the `account` partition names it: an account ID, or `unknown`.
fn account_id(value: &str) -> Result<String, String> {
    if fleetlog_core::schema::is_account_id(value) || value == fleetlog_core::schema::UNKNOWN_ACCOUNT {
        Ok(value.to_owned())
    } else {
        Err(format!("{value:?} is not an account ID (twelve digits) or {:?}", fleetlog_core::schema::UNKNOWN_ACCOUNT))
    }
}
