//! fleetlog's AWS I/O: thin functions over the SDK clients, one module per service.
//!
//! No decisions are made here (they live in `fleetlog-core`); this layer turns specs into requests and
//! SDK errors into [`AwsError`]s classified as transient, not-ready or permanent.

pub mod alarms;
#[cfg(feature = "athena")]
pub mod athena;
#[cfg(feature = "cloudformation")]
pub mod cloudformation;
pub mod ec2;
pub mod error;
#[cfg(feature = "eventbridge")]
pub mod events;
pub mod logs;
pub mod queue;
#[cfg(feature = "s3")]
pub mod s3;
pub mod sdk;
pub mod ssm;
pub mod store;
#[cfg(feature = "sts")]
pub mod sts;

pub use error::{AwsError, ErrorKind};
pub use sdk::Clients;
