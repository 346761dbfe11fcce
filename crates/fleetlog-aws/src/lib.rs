//! fleetlog's AWS I/O: thin functions over the SDK clients, one module per service.
//!
//! No decisions are made here (they live in `fleetlog-core`); this layer turns specs into requests and
//! SDK errors into [`AwsError`]s classified as transient, not-ready or permanent.

pub mod alarms;
pub mod ec2;
pub mod error;
pub mod logs;
pub mod queue;
pub mod sdk;
pub mod ssm;
pub mod store;

pub use error::{AwsError, ErrorKind};
pub use sdk::Clients;
