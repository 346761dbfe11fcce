//! Lambda wiring only: logs, region, one Firehose client, then the handler.

use fleetlog_etl::put::RetryPolicy;
use fleetlog_etl::{EtlState, MetricsOutput, Payload, handle};
use lambda_runtime::{Error, LambdaEvent, service_fn};

/// Keeps freed memory for the next invocation (see the workspace's `mimalloc` entry): each batch's
/// response buffer, and the runtime's copy of it, would otherwise be mapped and faulted in afresh.
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
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| async move {
        handle(state, event.payload).await.map_err(Error::from)
    }))
    .await
}
