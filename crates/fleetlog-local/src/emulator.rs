//! The local AWS API emulator (fakecloud, pinned): found where `scripts/install-emulator.sh` put it,
//! run as a separate process on 127.0.0.1 (it is AGPL: never linked), stopped on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use aws_config::{Region, SdkConfig};

/// The pinned emulator version; `scripts/install-emulator.sh` installs exactly this.
pub const FAKECLOUD_VERSION: &str = "0.51.0";
/// The account and region the emulator pretends to be.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(
        "the AWS API emulator (fakecloud {FAKECLOUD_VERSION}) is not installed at {0}; run scripts/install-emulator.sh \
         (scripts/demo and scripts/test do it for you) or point FLEETLOG_FAKECLOUD at it"
    )]
    NotInstalled(PathBuf),
    #[error("cannot start the emulator {path}: {source}")]
    Spawn { path: PathBuf, source: std::io::Error },
    #[error("the emulator exited before announcing its port")]
    NoPort,
}

/// Where the emulator binary is: `FLEETLOG_FAKECLOUD`, or the install script's per-user cache.
pub fn emulator_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLEETLOG_FAKECLOUD") {
        return PathBuf::from(path);
    }
    let tools = std::env::var_os("FLEETLOG_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/fleetlog"));
    tools.join(format!("fakecloud-{FAKECLOUD_VERSION}/bin/fakecloud"))
}

/// A fakecloud process bound to an OS-assigned port on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct Emulator {
    child: Child,
    pub endpoint: String,
}

impl Emulator {
    pub fn start() -> Result<Self, EmulatorError> {
        let path = emulator_binary();
        if !path.exists() {
            return Err(EmulatorError::NotInstalled(path));
        }
        let mut child = Command::new(&path)
            .args(["--addr", "127.0.0.1:0", "--account-id", ACCOUNT, "--region", REGION, "--log-level", "warn"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| EmulatorError::Spawn { path: path.clone(), source })?;
        let port = child.stdout.take().and_then(|stdout| {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|line| line.strip_prefix("FAKECLOUD_PORT=").and_then(|p| p.trim().parse::<u16>().ok()))
        });
        match port {
            Some(port) => Ok(Self { child, endpoint: format!("http://127.0.0.1:{port}") }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(EmulatorError::NoPort)
            }
        }
    }

    /// SDK configuration pointed at this emulator, with dummy credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint).await
    }
}

/// SDK configuration for an emulator at `endpoint` (dummy credentials, the emulator's region).
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    fleetlog_sdk::loader(fleetlog_sdk::Caller::Operator)
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "fleetlog-local"))
        .load()
        .await
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
