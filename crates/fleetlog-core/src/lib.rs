//! fleetlog's decision logic, kept apart from AWS I/O so it is tested without a network.
//!
//! Everything here is pure: given an event, an instance's facts, an enrollment record and an agent
//! configuration, it says what to do. The `fleetlog-aws` crate performs it.

pub mod account_policy;
pub mod agent_config;
pub mod alarms;
pub mod archive;
pub mod batching;
pub mod command_outcome;
pub mod commands;
pub mod decision;
pub mod drift;
pub mod enrollment;
pub mod events;
pub mod freshness;
pub mod ingest;
pub mod instance;
pub mod log_groups;
pub mod metrics;
pub mod readiness;
pub mod record;
pub mod reference;
pub mod schema;
pub mod settings;
pub mod tags;
pub mod traffic;

pub use instance::{Instance, InstanceState, Platform};
