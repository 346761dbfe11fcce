//! Lambda wiring only: logs, region, the Firehose, Kinesis, S3, SQS, DynamoDB (the enrollment table) and (a central stack's) EventBridge clients,
//! then the runtime (`fleetlog_etl::lambda`).

use fleetlog_core::settings::RecordFormatSetting;
use fleetlog_etl::applications::ApplicationSource;
use fleetlog_etl::put::RetryPolicy;
use fleetlog_etl::records::Destination;
use fleetlog_etl::{EtlState, MetricsOutput, SightingReports};
use lambda_runtime::Error;

/// Keeps freed memory for the next invocation (see the workspace's `mimalloc` entry): each batch's
/// response buffer would otherwise be mapped and faulted in afresh.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = fleetlog_sdk::loader(fleetlog_sdk::Caller::Lambda).load().await;
    let region = config.region().map(ToString::to_string).unwrap_or_default();
    let settings = fleetlog_core::settings::EtlSettings::from_env().map_err(|e| {
        tracing::error!(error = %e, "The ETL's settings are invalid; fix the function's environment");
        Error::from(e.to_string())
    })?;
    let sightings = settings.enroll_queue_url.map(|url| {
        let reports = SightingReports::new(aws_sdk_sqs::Client::new(&config), url, settings.freshness_window);
        std::sync::Arc::new(match settings.reports_members_of {
            Some(account) => reports.to_members(aws_sdk_eventbridge::Client::new(&config), region.clone(), account),
            None => reports,
        })
    });
    let s3 = aws_sdk_s3::Client::new(&config);
    let store = settings
        .enrollment_table
        .map(|table| fleetlog_aws::store::EnrollmentStore::new(aws_sdk_dynamodb::Client::new(&config), table));
    let applications = ApplicationSource::new(s3.clone(), store, settings.reference_object);
    let state = EtlState {
        sightings,
        firehose: aws_sdk_firehose::Client::new(&config),
        kinesis: aws_sdk_kinesis::Client::new(&config),
        s3,
        applications: std::sync::Arc::new(applications),
        access_metrics: settings.access_metrics,
        region,
        delivery_stream: settings.delivery_stream,
        retry: RetryPolicy::default(),
        metrics: MetricsOutput::Stdout,
        destination: Destination::new(&settings.record_format, settings.splunk_index.clone()),
        fan_out_stream: settings.fan_out_stream_arn,
        splunk_stream: settings
            .splunk_stream
            .map(|stream| (stream, Destination::new(&RecordFormatSetting::SplunkHec, settings.splunk_index))),
    };
    fleetlog_etl::lambda::run(state).await
}
