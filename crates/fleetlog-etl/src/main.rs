//! Lambda wiring only: logs, region, one Firehose client, then the runtime (`fleetlog_etl::lambda`).

use fleetlog_etl::put::RetryPolicy;
use fleetlog_etl::{EtlState, MetricsOutput};
use lambda_runtime::Error;

/// Keeps freed memory for the next invocation (see the workspace's `mimalloc` entry): each batch's
/// response buffer would otherwise be mapped and faulted in afresh.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let region = config.region().map(ToString::to_string).unwrap_or_default();
    let state = EtlState {
        firehose: aws_sdk_firehose::Client::new(&config),
        region,
        delivery_stream: std::env::var("FLEETLOG_DELIVERY_STREAM").ok().filter(|s| !s.is_empty()),
        retry: RetryPolicy::default(),
        metrics: MetricsOutput::Stdout,
    };
    fleetlog_etl::lambda::run(state).await
}
