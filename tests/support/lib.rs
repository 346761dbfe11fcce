//! Test support: a real AWS API emulator (fakecloud) on 127.0.0.1, one per test, and the fleet fixture
//! the enroller runs against. The emulator and the local deployment are `fleetlog-local`'s, so the
//! tests and `fleetlog local demo` share them.

pub mod calls;
pub mod fleet;
pub mod iam;
pub mod live_tail;

pub use fleetlog_local::emulator::{ACCOUNT, Emulator, REGION};

/// Starts an emulator; a test that needs it fails (never skips) when it is missing.
#[allow(clippy::panic)]
pub fn start_emulator() -> Emulator {
    Emulator::start().unwrap_or_else(|e| panic!("{e}"))
}
