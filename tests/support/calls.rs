//! Counts the AWS API calls a client makes (operations, not retry attempts).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use fleetlog_aws::Clients;

#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, usize>>>);

impl CallCounter {
    /// Calls per `service:Operation`.
    pub fn snapshot(&self) -> BTreeMap<String, usize> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn total(&self) -> usize {
        self.snapshot().values().sum()
    }

    pub fn reset(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }

    /// The enroller's clients, every one counted.
    pub fn clients(&self, config: &SdkConfig) -> Clients {
        macro_rules! counted {
            ($sdk:ident) => {
                $sdk::Client::from_conf($sdk::config::Builder::from(config).interceptor(self.clone()).build())
            };
        }
        Clients {
            ec2: counted!(aws_sdk_ec2),
            ssm: counted!(aws_sdk_ssm),
            logs: counted!(aws_sdk_cloudwatchlogs),
            cloudwatch: counted!(aws_sdk_cloudwatch),
            dynamodb: counted!(aws_sdk_dynamodb),
            sqs: counted!(aws_sdk_sqs),
        }
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(metadata), Ok(mut calls)) = (cfg.load::<Metadata>(), self.0.lock()) {
            *calls.entry(format!("{}:{}", metadata.service(), metadata.name())).or_default() += 1;
        }
        Ok(())
    }
}
