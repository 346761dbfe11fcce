//! The `fleetlog` CLI, on the same core and adapter crates the Lambdas use. This crate is the
//! binary's edge, so it reports errors with `anyhow`; the libraries under it keep typed errors.

pub mod archive;
pub mod cli;
pub mod configs;
pub mod demo;
pub mod fleet;
pub mod logs;
pub mod output;
pub mod query;
pub mod stack;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::{Region, SdkConfig};
use clap::CommandFactory;
use fleetlog_core::agent_config::Rendering;
use fleetlog_core::log_groups::default_log_group_prefix;
use fleetlog_core::tags::ManagementTag;
use fleetlog_local::stack as local;

use cli::{
    ArchiveCommand, Cli, Command, ConfigArgs, ConfigsCommand, DeployArgs, DeploymentArgs, GlobalArgs, LocalCommand,
    LogsArgs, QueryArgs, RestoreArgs,
};
use output::Report;
use stack::{StackOutputs, outputs, setting};

/// `configs validate` without a prefix renders templates with this example.
const EXAMPLE_LOG_GROUP_PREFIX: &str = "CCP-logs-example-123456789012-us-east-1";
/// Names the CLI uses without `--stack` or a flag: the local deployment's (`fleetlog local`).
const DEFAULT_TABLE: &str = local::ENROLLMENT_TABLE;
const DEFAULT_WORKGROUP: &str = "fleetlog";

/// `agent-configs/` in the working directory, else the one in this source tree.
pub fn default_configs_dir() -> PathBuf {
    let here = PathBuf::from("agent-configs");
    if here.is_dir() {
        return here;
    }
    let source_tree = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../agent-configs");
    if source_tree.is_dir() { source_tree } else { here }
}

pub async fn sdk_config(global: &GlobalArgs) -> SdkConfig {
    let mut loader = fleetlog_sdk::loader(fleetlog_sdk::Caller::Operator);
    if let Some(profile) = &global.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &global.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &global.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// What a command produced and whether it succeeded (a failed validation still prints its report).
#[derive(Debug)]
pub struct Outcome {
    pub report: Option<Report>,
    pub success: bool,
}

impl From<Report> for Outcome {
    fn from(report: Report) -> Self {
        Self { report: Some(report), success: true }
    }
}

pub async fn run(cli: Cli) -> Result<Outcome> {
    let global = &cli.global;
    match cli.command {
        Command::Configs(command) => run_configs(global, command).await,
        Command::Enroll { instances, deployment } => {
            Ok(fleet(global, &deployment).await?.enroll(&instances).await?.into())
        }
        Command::Offboard { instances, deployment } => {
            Ok(fleet(global, &deployment).await?.offboard(&instances).await?.into())
        }
        Command::Status { instances, deployment } => {
            Ok(fleet(global, &deployment).await?.status(&instances).await?.into())
        }
        Command::Reconcile { dry_run, deployment } => {
            Ok(fleet(global, &deployment).await?.reconcile(dry_run).await?.into())
        }
        Command::Logs(args) => run_logs(global, args).await,
        Command::Query(args) => run_query(global, args).await.map(Outcome::from),
        Command::Archive(ArchiveCommand::Restore(args)) => run_restore(global, args).await.map(Outcome::from),
        Command::Deploy(args) => run_deploy(global, args).await.map(Outcome::from),
        Command::Local(LocalCommand::Demo { configs }) => {
            Ok(demo::demo(&configs, global.output == output::OutputFormat::Table).await?.into())
        }
        Command::Local(LocalCommand::Up { configs }) => {
            demo::up(&configs).await?;
            Ok(Outcome { report: None, success: true })
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "fleetlog", &mut std::io::stdout());
            Ok(Outcome { report: None, success: true })
        }
    }
}

/// The stack's outputs when `--stack` names one.
async fn stack_outputs(global: &GlobalArgs, config: &SdkConfig) -> Result<Option<StackOutputs>> {
    match &global.stack {
        Some(name) => Ok(Some(StackOutputs::read(config, name).await?)),
        None => Ok(None),
    }
}

/// The SDK configuration already loaded, else a new one.
async fn loaded_or_new(global: &GlobalArgs, loaded: Option<SdkConfig>) -> SdkConfig {
    match loaded {
        Some(config) => config,
        None => sdk_config(global).await,
    }
}

async fn fleet(global: &GlobalArgs, deployment: &DeploymentArgs) -> Result<fleet::Fleet> {
    let config = sdk_config(global).await;
    let stack = stack_outputs(global, &config).await?;
    let stack = stack.as_ref();
    Ok(fleet::Fleet::new(
        &config,
        fleet::FleetOptions {
            management_tag: ManagementTag { key: deployment.tag_key.clone(), value: deployment.tag_value.clone() },
            agent_document: fleetlog_core::commands::AgentDocument {
                name: setting(
                    deployment.agent_document.as_deref(),
                    stack,
                    outputs::AGENT_DOCUMENT,
                    local::AGENT_DOCUMENT,
                )?,
                version: deployment.agent_document_version.clone(),
            },
            table: setting(deployment.table.as_deref(), stack, outputs::ENROLLMENT_TABLE, DEFAULT_TABLE)?,
            subscription_filter: deployment.filter_name.clone(),
            freshness_window: std::time::Duration::from_secs(deployment.freshness_window),
            retention: fleetlog_core::log_groups::RetentionDays::new(deployment.retention_days)?,
        },
    ))
}

async fn run_logs(global: &GlobalArgs, args: LogsArgs) -> Result<Outcome> {
    let fleet = fleet(global, &args.deployment).await?;
    let request = logs::LogsRequest {
        instances: args.instances,
        tag: args.tag,
        source: args.source,
        since: args.since,
        filter: args.filter,
    };
    let mut writer = logs::LineWriter::for_stdout(global.output);
    let mut out = std::io::stdout();
    if args.follow {
        // Ends with Ctrl-C, which `main` answers.
        fleet.follow_logs(&request, &mut writer, &mut out, std::future::pending()).await?;
    } else if fleet.logs(&request, &mut writer, &mut out).await? == 0 {
        eprintln!(
            "No log lines in the last {}s{}.",
            args.since.as_secs(),
            if request.filter.is_some() { " match the filter" } else { "" }
        );
    }
    Ok(Outcome { report: None, success: true })
}

async fn run_restore(global: &GlobalArgs, args: RestoreArgs) -> Result<Report> {
    let config = sdk_config(global).await;
    let stack = stack_outputs(global, &config).await?;
    let source = setting(
        args.source.as_deref(),
        stack.as_ref(),
        outputs::LOG_SOURCE,
        &format!("s3://{}/{}", local::BUCKET, local::LOGS_PREFIX),
    )?;
    let query::LocalSource::S3 { bucket, prefix } = query::LocalSource::parse(&source) else {
        anyhow::bail!("--source must be s3://bucket/prefix: restores are of S3 objects ({source})");
    };
    let plan = archive::RestorePlan {
        bucket,
        prefix,
        from: args.from,
        to: args.to,
        accounts: args.account,
        days: args.days,
        tier: args.tier,
    };
    let s3 = fleetlog_aws::s3::client(&config);
    archive::restore(&s3, &plan, global.output == output::OutputFormat::Table).await
}

async fn run_deploy(global: &GlobalArgs, args: DeployArgs) -> Result<Report> {
    let Some(stack) = global.stack.clone() else {
        bail!("name the stack to deploy with --stack NAME (or FLEETLOG_STACK)");
    };
    let config = sdk_config(global).await;
    let s3 = fleetlog_aws::s3::client(&config);
    let options = stack::DeployOptions {
        stack,
        code_bucket: args.code_bucket,
        zips: args.zips,
        parameters: args.parameters,
        timeout: Duration::from_secs(args.timeout),
    };
    stack::deploy(&config, &s3, &options).await
}

fn config_paths(args: &ConfigArgs) -> Vec<PathBuf> {
    if args.paths.is_empty() { vec![default_configs_dir()] } else { args.paths.clone() }
}

/// How configs are rendered and checked: the log group prefix fills the templates and bounds the
/// groups they may name.
async fn rendering(global: &GlobalArgs, args: &ConfigArgs, config: Option<&SdkConfig>) -> Result<Rendering> {
    let prefix = log_group_prefix(global, args, config).await?;
    Ok(Rendering::new(&args.parameter_prefix, &prefix, &args.allow_path))
}

/// The log group prefix: given, the stack's output, built from the account name, or (validating
/// without AWS) an example.
async fn log_group_prefix(global: &GlobalArgs, args: &ConfigArgs, config: Option<&SdkConfig>) -> Result<String> {
    if let Some(prefix) = &args.log_group_prefix {
        return Ok(prefix.clone());
    }
    if global.stack.is_some() && args.account_name.is_none() {
        let built;
        let config = match config {
            Some(c) => c,
            None => {
                built = sdk_config(global).await;
                &built
            }
        };
        if let Some(outputs) = stack_outputs(global, config).await? {
            return Ok(outputs.get(outputs::LOG_GROUP_PREFIX)?.to_owned());
        }
    }
    let (name, config) = match (&args.account_name, config) {
        // Validation talks to no AWS account: it renders with an example prefix.
        (_, None) => return Ok(EXAMPLE_LOG_GROUP_PREFIX.to_owned()),
        (None, Some(_)) => bail!("give --log-group-prefix, or --account-name to build CCP-logs-NAME-ACCOUNT_ID-REGION"),
        (Some(name), Some(config)) => (name, config),
    };
    let account = fleetlog_aws::sts::account_id(config).await?;
    let region =
        config.region().map(ToString::to_string).or_else(|| global.region.clone()).context("no AWS region set")?;
    Ok(default_log_group_prefix(name, &account, &region))
}

async fn run_configs(global: &GlobalArgs, command: ConfigsCommand) -> Result<Outcome> {
    let (report, success) = match command {
        ConfigsCommand::Validate(args) => {
            configs::validate(&config_paths(&args), &rendering(global, &args, None).await?)?
        }
        ConfigsCommand::Publish { args, force } => {
            let config = sdk_config(global).await;
            let rendering = rendering(global, &args, Some(&config)).await?;
            let ssm = aws_sdk_ssm::Client::new(&config);
            configs::publish(&ssm, &config_paths(&args), &rendering, force).await?
        }
        ConfigsCommand::Diff(args) => {
            let config = sdk_config(global).await;
            let rendering = rendering(global, &args, Some(&config)).await?;
            let ssm = aws_sdk_ssm::Client::new(&config);
            configs::diff(&ssm, &config_paths(&args), &rendering).await?
        }
    };
    Ok(Outcome { report: Some(report), success })
}

async fn run_query(global: &GlobalArgs, args: QueryArgs) -> Result<Report> {
    if args.list {
        return Ok(query::list_named());
    }
    let sql = query::resolve_sql(args.sql.as_deref().unwrap_or_default());
    // Only a stack lookup needs AWS before the query itself (a folder source needs none at all); the
    // SDK configuration it loads serves the query too.
    let loaded = match &global.stack {
        Some(_) => Some(sdk_config(global).await),
        None => None,
    };
    let stack = match &loaded {
        Some(config) => stack_outputs(global, config).await?,
        None => None,
    };
    let stack = stack.as_ref();
    if args.local {
        let source = setting(
            args.source.as_deref(),
            stack,
            outputs::LOG_SOURCE,
            &format!("s3://{}/{}", local::BUCKET, local::LOGS_PREFIX),
        )?;
        // A folder needs no AWS configuration (nor its lookups and warnings when there is none).
        let objects = match query::LocalSource::parse(&source) {
            query::LocalSource::Dir(dir) => query::LocalObjects::in_folder(&dir)?,
            query::LocalSource::S3 { bucket, prefix } => {
                let s3 = fleetlog_aws::s3::client(&loaded_or_new(global, loaded).await);
                query::LocalObjects::in_s3(&s3, &bucket, &prefix).await?
            }
        };
        let count = objects.count();
        let table = objects.into_table(true);
        let ctx = query::local_session(table.clone()).await?;
        let sql = query::for_accounts(sql, fleetlog_core::schema::DATABASE, &args.account);
        let result = query::run_local(&ctx, &sql).await?;
        let read = table.objects_read();
        let note = format!(
            "{} row(s); read {read} of {count} object(s) under {} with the embedded engine.",
            result.rows.len(),
            source
        );
        let stats = serde_json::json!({ "engine": "local", "objects": count, "objects_read": read });
        return Ok(result.report(stats, vec![note]));
    }
    let athena = aws_sdk_athena::Client::new(&loaded_or_new(global, loaded).await);
    let options = query::AthenaOptions {
        workgroup: setting(args.workgroup.as_deref(), stack, outputs::WORK_GROUP, DEFAULT_WORKGROUP)?,
        database: setting(args.database.as_deref(), stack, outputs::DATABASE, fleetlog_core::schema::DATABASE)?,
        timeout: Duration::from_secs(args.timeout),
    };
    let sql = query::for_accounts(sql, &options.database, &args.account);
    let (result, stats) = query::run_athena(&athena, &sql, &options).await?;
    let note = format!(
        "{} row(s); query {} scanned {}, about ${:.6} at $5/TB (10 MB minimum).",
        result.rows.len(),
        stats.query_execution_id,
        query::human_bytes(stats.bytes_scanned),
        stats.cost_usd()
    );
    let json_stats = serde_json::json!({
        "engine": "athena", "query_execution_id": stats.query_execution_id, "bytes_scanned": stats.bytes_scanned,
        "engine_ms": stats.elapsed_ms, "cost_usd": stats.cost_usd(),
    });
    Ok(result.report(json_stats, vec![note]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
