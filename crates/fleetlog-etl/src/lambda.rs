//! The ETL under lambda_runtime, with one change to how an answer leaves: the response JSON is posted
//! to the Runtime API as the bytes the writer wrote. lambda_runtime serialises every buffered response
//! again (`serde_json::to_vec`, even of a `RawValue`): for the ETL a copy of up to 6 MB per
//! invocation, and the response held twice at once.
//!
//! Everything else stays lambda_runtime's: it polls for events, builds their context, opens their
//! tracing span, and reports failures. A failed invocation is handed on to its stack as the
//! [`Diagnostic`] to report, which the handler at the bottom ([`report`]) returns as its error.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use lambda_runtime::tower::{Layer, Service, ServiceExt, service_fn};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, LambdaInvocation, Runtime, layers::TracingLayer};
use lambda_runtime_api_client::{PooledClient, body::Body, build_request};
use serde_json::value::RawValue;
use tokio::sync::Mutex;

use crate::{EtlError, EtlState, Payload, handle};

/// The header with which the Runtime API tells invocations apart; echoed on the answer, so a late
/// answer to an invocation that timed out is refused.
const INVOCATION_ID_HEADER: &str = "lambda-runtime-invocation-id";

/// Runs the ETL Lambda until the Runtime API stops handing it events.
pub async fn run(state: EtlState) -> Result<(), Error> {
    let direct = DirectResponseLayer { state: Arc::new(state), client: Arc::new(PooledClient::builder().build()) };
    // Layers added later run first: the invocation's span encloses everything.
    Runtime::new(service_fn(report)).layer(direct).layer(TracingLayer::new()).run().await
}

/// The handler lambda_runtime calls: only for a failed invocation, to report its diagnostic.
async fn report(failure: LambdaEvent<Diagnostic>) -> Result<(), Diagnostic> {
    Err(failure.payload)
}

/// The response body the Runtime API gets: the writer's JSON, not copied.
pub fn response_body(response: Box<RawValue>) -> Vec<u8> {
    let text: Box<str> = response.into();
    text.into_string().into_bytes()
}

/// What an invocation's payload comes to: the response, or the failure to report.
async fn answer(state: &EtlState, event: &[u8]) -> Result<Box<RawValue>, Diagnostic> {
    caught(async {
        let payload: Payload = serde_json::from_slice(event).map_err(|e| EtlError::Malformed(e.to_string()))?;
        handle(state, payload).await
    })
    .await
}

/// `work`'s outcome, its failure as a diagnostic, a panic included: the handler stack of
/// lambda_runtime, which would otherwise catch it, is not around this work.
async fn caught<T>(work: impl Future<Output = Result<T, EtlError>>) -> Result<T, Diagnostic> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(error)) => {
            Err(Diagnostic { error_type: std::any::type_name::<EtlError>().into(), error_message: error.to_string() })
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(message, "The ETL panicked");
            Err(Diagnostic { error_type: "Panic".into(), error_message: format!("the ETL panicked: {message}") })
        }
    }
}

struct DirectResponseLayer {
    state: Arc<EtlState>,
    client: Arc<PooledClient>,
}

impl<S> Layer<S> for DirectResponseLayer {
    type Service = DirectResponse<S>;

    fn layer(&self, runtime: S) -> DirectResponse<S> {
        DirectResponse {
            state: Arc::clone(&self.state),
            client: Arc::clone(&self.client),
            runtime: Arc::new(Mutex::new(runtime)),
        }
    }
}

/// Answers each invocation itself when it succeeds; hands it to `runtime`, lambda_runtime's own
/// stack, to report when it fails. (Behind a lock only because the stack is not `Clone`: invocations
/// come one at a time.)
struct DirectResponse<S> {
    state: Arc<EtlState>,
    client: Arc<PooledClient>,
    runtime: Arc<Mutex<S>>,
}

impl<S> Service<LambdaInvocation> for DirectResponse<S>
where
    S: Service<LambdaInvocation, Response = (), Error = Error> + Send + 'static,
    S::Future: Send,
{
    type Response = ();
    type Error = Error;
    type Future = lambda_runtime::BoxFuture<'static, Result<(), Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        let (state, client, runtime) = (Arc::clone(&self.state), Arc::clone(&self.client), Arc::clone(&self.runtime));
        Box::pin(async move {
            match answer(&state, &invocation.body).await {
                Ok(response) => post_response(&client, &invocation, response).await,
                Err(diagnostic) => {
                    invocation.body = serde_json::to_vec(&diagnostic)?.into();
                    let mut runtime = runtime.lock().await;
                    runtime.ready().await?.call(invocation).await
                }
            }
        })
    }
}

/// `POST …/invocation/{id}/response`, as lambda_runtime would post it, less the copy. A refusal (a
/// timed-out invocation, say) is logged and the function goes on to the next event, as
/// lambda_runtime does; an unreachable Runtime API ends the function.
async fn post_response(
    client: &PooledClient,
    invocation: &LambdaInvocation,
    response: Box<RawValue>,
) -> Result<(), Error> {
    let uri = format!("/2018-06-01/runtime/invocation/{}/response", invocation.context.request_id);
    let mut request = build_request().method("POST").uri(uri);
    if let Some(id) = invocation.parts.headers.get(INVOCATION_ID_HEADER) {
        request = request.header(INVOCATION_ID_HEADER, id);
    }
    let request = request.body(Body::from(response_body(response)))?;
    let status = client.call(request).await?.status();
    if !status.is_success() {
        tracing::error!(%status, "The Lambda Runtime API refused the response");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_and_panics_become_diagnostics() {
        assert_eq!(caught(async { Ok(7) }).await, Ok(7));
        let failed = caught(async { Err::<(), _>(EtlError::NoDeliveryStream) }).await.unwrap_err();
        assert_eq!(failed.error_type, "fleetlog_etl::EtlError");
        assert!(failed.error_message.starts_with("FLEETLOG_DELIVERY_STREAM must name"), "{failed:?}");
        let id = 42;
        let panicked = caught(async move {
            if id == 42 {
                panic!("record {id} broke");
            }
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(panicked.error_type, "Panic");
        assert_eq!(panicked.error_message, "the ETL panicked: record 42 broke");
    }

    #[test]
    fn the_response_body_is_the_json_as_written() {
        let json = r#"{"records":[{"recordId":"a","result":"Dropped"}]}"#;
        let response = RawValue::from_string(json.to_owned()).unwrap();
        assert_eq!(response_body(response), json.as_bytes());
    }
}
