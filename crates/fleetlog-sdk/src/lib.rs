//! How every fleetlog binary meets AWS at its edge, in one place: the SDK configuration, and where its
//! embedded metrics are written ([`metrics`]).
//!
//! The configuration: the environment's credentials chain and region (and `AWS_ENDPOINT_URL`), the
//! standard retry mode (throttling and 5xx retried with backoff), and bounded timeouts, chosen by who
//! is calling. Callers add what is theirs (a profile, a region, an endpoint, credentials) to the
//! loader.

pub mod metrics;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader};

/// Who the configuration is for, which sets its timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A Lambda function: every call well inside the invocation's own timeout, each attempt short
    /// enough for the SDK's retries to fit.
    Lambda,
    /// An operator's command (the CLI, the local emulator): patient, since a person waits for it.
    Operator,
}

/// Attempts per call, the first included.
const MAX_ATTEMPTS: u32 = 4;

impl Caller {
    pub fn timeouts(self) -> TimeoutConfig {
        let builder = TimeoutConfig::builder().connect_timeout(Duration::from_secs(3));
        match self {
            Caller::Lambda => builder
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(30))
                .build(),
            Caller::Operator => builder.operation_timeout(Duration::from_secs(60)).build(),
        }
    }
}

/// The loader, configured for `caller`; `.load().await` gives the configuration.
pub fn loader(caller: Caller) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(caller.timeouts())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_bound_each_attempt_and_operators_wait_longer() {
        let lambda = Caller::Lambda.timeouts();
        assert_eq!(lambda.operation_attempt_timeout(), Some(Duration::from_secs(10)));
        assert_eq!(lambda.operation_timeout(), Some(Duration::from_secs(30)));
        let operator = Caller::Operator.timeouts();
        assert_eq!(operator.operation_attempt_timeout(), None);
        assert_eq!(operator.operation_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(operator.connect_timeout(), Some(Duration::from_secs(3)));
    }
}
