//! Lambda wiring only: logs, region, the Firehose and SQS clients, then the runtime
//! (`fleetlog_etl::lambda`).

use fleetlog_etl::put::RetryPolicy;
use fleetlog_etl::{EtlState, MetricsOutput, SightingReports};
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
    let window = std::env::var("FLEETLOG_FRESHNESS_WINDOW_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(fleetlog_core::freshness::DEFAULT_FRESHNESS_WINDOW, std::time::Duration::from_secs);
    let sightings = std::env::var("FLEETLOG_ENROLL_QUEUE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .map(|url| std::sync::Arc::new(SightingReports::new(aws_sdk_sqs::Client::new(&config), url, window)));
    let state = EtlState {
        sightings,
        firehose: aws_sdk_firehose::Client::new(&config),
        region,
        delivery_stream: std::env::var("FLEETLOG_DELIVERY_STREAM").ok().filter(|s| !s.is_empty()),
        retry: RetryPolicy::default(),
        metrics: MetricsOutput::Stdout,
    };
    fleetlog_etl::lambda::run(state).await
}
