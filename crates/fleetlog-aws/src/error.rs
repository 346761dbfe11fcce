//! One error type for every AWS call, classified by what the caller should do about it.

use std::error::Error as StdError;
use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttling, 5xx, timeouts, connection failures: retry later.
    Transient,
    /// The instance is not (yet) managed by SSM: retry with backoff, then give up.
    NotReady,
    /// Retrying cannot help: bad input, missing resource, access denied, limits.
    Permanent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AwsError {
    pub operation: &'static str,
    pub kind: ErrorKind,
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} failed ({code}): {}", self.operation, self.message),
            None => write!(f, "{} failed: {}", self.operation, self.message),
        }
    }
}

impl AwsError {
    pub fn new(operation: &'static str, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { operation, kind, code: None, message: message.into() }
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

const THROTTLING_CODES: [&str; 8] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
];

/// Classifies an SDK error after the SDK's own retries have run out.
pub fn classify<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let message = err
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| aws_smithy_types::error::display::DisplayErrorContext(&err).to_string());
    let server_error = err.raw_response().is_some_and(|r| r.status().is_server_error());
    let kind = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => ErrorKind::Transient,
        SdkError::ServiceError(_) if server_error || code.as_deref().is_some_and(is_throttling) => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    };
    AwsError { operation, kind, code, message }
}

fn is_throttling(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_recognised() {
        assert!(is_throttling("ThrottlingException"));
        assert!(is_throttling("RequestLimitExceeded"));
        assert!(!is_throttling("AccessDeniedException"));
    }
}
