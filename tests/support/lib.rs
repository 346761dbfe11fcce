//! Test support: a real AWS API emulator (fakecloud) on 127.0.0.1, one per test, and the fleet fixture
//! the enroller runs against. fakecloud is AGPL and only ever run as a separate process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};

pub mod calls;
pub mod fleet;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";
/// The pinned emulator version; `scripts/install-emulator.sh` installs exactly this.
pub const FAKECLOUD_VERSION: &str = "0.51.0";

/// A fakecloud process bound to an OS-assigned port on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct Emulator {
    child: Child,
    pub endpoint: String,
}

/// Where `scripts/install-emulator.sh` puts the binary (or `FLEETLOG_FAKECLOUD` if set).
pub fn emulator_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLEETLOG_FAKECLOUD") {
        return PathBuf::from(path);
    }
    let tools = std::env::var_os("FLEETLOG_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/fleetlog"));
    tools.join(format!("fakecloud-{FAKECLOUD_VERSION}/bin/fakecloud"))
}

impl Emulator {
    /// Starts the emulator. Panics with instructions when it is not installed: a test that needs it
    /// must fail, never skip.
    #[allow(clippy::panic, clippy::expect_used)]
    pub fn start() -> Self {
        let binary = emulator_binary();
        if !binary.exists() {
            panic!(
                "the AWS API emulator is not installed at {}; run scripts/install-emulator.sh (scripts/test does it for you)",
                binary.display()
            );
        }
        let mut child = Command::new(&binary)
            .args(["--addr", "127.0.0.1:0", "--account-id", ACCOUNT, "--region", REGION, "--log-level", "warn"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut port = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("emulator stdout");
            if let Some(p) = line.strip_prefix("FAKECLOUD_PORT=") {
                port = Some(p.trim().parse::<u16>().expect("port number"));
                break;
            }
        }
        let port = port.unwrap_or_else(|| panic!("{} exited before announcing its port", binary.display()));
        Self { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// SDK configuration pointed at this emulator, with dummy credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "fleetlog-tests"))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder().operation_timeout(Duration::from_secs(30)).build(),
            )
            .load()
            .await
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
