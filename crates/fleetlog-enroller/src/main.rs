//! Lambda wiring only: logs, settings (fail fast), SDK clients once, then the handler.

use fleetlog_aws::{Clients, sdk};
use fleetlog_core::settings::EnrollerSettings;
use fleetlog_enroller::{Enroller, State, handle};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = EnrollerSettings::from_env().map_err(|e| {
        // Logged as a sentence, not as the error's debug form (which is how `main` would print it).
        tracing::error!(error = %e, "The enroller's settings are invalid; fix the function's environment");
        Error::from(e.to_string())
    })?;
    let config = sdk::load_config(None).await;
    let state = State::new(Enroller::new(settings, Clients::new(&config)));
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let left = event.context.deadline().duration_since(std::time::SystemTime::now()).unwrap_or_default();
        handle(state, event.payload, Some(std::time::Instant::now() + left)).await.map_err(Error::from)
    }))
    .await
}
