//! fleetlog on one machine, for `fleetlog local demo|up` and the tests: the pinned AWS API emulator
//! ([`emulator`]), fleetlog's resources created in it as the stack in `infra/` creates them
//! ([`stack`]), and the hops the emulator does not perform, done through the same entry points AWS
//! would call: Lambda's SQS event source ([`event_source`]), Firehose's transformation Lambda
//! ([`pump`]), and the CloudWatch agent's log writes ([`stack::LocalStack::write_agent_logs`]).
//!
//! Nothing here runs in AWS; the Lambdas and the operator's commands do not depend on it.

pub mod emulator;
pub mod event_source;
pub mod pump;
pub mod stack;

use fleetlog_aws::AwsError;

/// Why the local stack could not do something.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Emulator(#[from] emulator::EmulatorError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Settings(#[from] fleetlog_core::settings::SettingsError),
    #[error(transparent)]
    Etl(#[from] fleetlog_etl::EtlError),
    /// The emulator answered, but not as the stack expects (a missing id, a refused entry, a wait
    /// that ran out).
    #[error("{0}")]
    Unexpected(String),
}
