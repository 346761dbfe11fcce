//! `fleetlog`: exit 0 on success, 1 when the command failed or found problems, 2 on usage errors.

use std::process::ExitCode;

use clap::Parser;
use fleetlog_cli::cli::Cli;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.global.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("FLEETLOG_LOG").unwrap_or_else(|_| EnvFilter::new(level)))
        .with_writer(std::io::stderr)
        .init();
    let format = cli.global.output;
    let outcome = tokio::select! {
        outcome = fleetlog_cli::run(cli) => outcome,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            return ExitCode::from(130);
        }
    };
    match outcome {
        Ok(outcome) => {
            if let Some(report) = outcome.report
                && let Err(e) = report.print(format, &mut std::io::stdout().lock())
            {
                eprintln!("error: cannot write output: {e}");
                return ExitCode::FAILURE;
            }
            if outcome.success { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
