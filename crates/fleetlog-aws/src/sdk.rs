//! One SDK configuration and its clients, built once per process (never per invocation).

use aws_config::SdkConfig;

/// Loads a Lambda's SDK configuration ([`fleetlog_sdk::loader`]), pointed at `endpoint_url` when given.
pub async fn load_config(endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = fleetlog_sdk::loader(fleetlog_sdk::Caller::Lambda);
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The clients the enroller uses. Cloning is cheap (they share connection pools).
#[derive(Debug, Clone)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            ec2: aws_sdk_ec2::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
        }
    }
}
