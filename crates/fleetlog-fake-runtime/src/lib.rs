//! Test support: fleetlog's Lambda binaries run as Lambda runs them. A fake of the Lambda Runtime API
//! on 127.0.0.1 hands a binary events one by one (`GET …/invocation/next`) and records what it posts
//! back (`…/response`, `…/error`) over HTTP/1.1, the wire lambda_runtime speaks.

// Test support: a broken expectation should stop the test where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// An endpoint where nothing listens: AWS out of reach.
pub const NOWHERE: &str = "http://127.0.0.1:9";

/// AWS settings for a function whose every call goes to `endpoint` (an emulator, or [`NOWHERE`]): a
/// region, dummy credentials, no instance metadata, one attempt per call.
pub fn aws_at(endpoint: &str) -> [(&str, &str); 6] {
    [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_MAX_ATTEMPTS", "1"),
    ]
}

/// The `bootstrap` of a function's deployment zip, as Lambda unpacks it: `FLEETLOG_LAMBDA_ZIPS` names
/// the folder `scripts/package` builds into (`FUNCTION/bootstrap.zip`). The zip tests are `#[ignore]`d
/// for plain `cargo test`; `scripts/test` packages and runs them.
pub fn deployment_bootstrap(function: &str) -> PathBuf {
    let zips = std::env::var_os("FLEETLOG_LAMBDA_ZIPS").map(PathBuf::from).unwrap_or_else(|| {
        panic!("FLEETLOG_LAMBDA_ZIPS is not set: run scripts/package, then point it at target/lambda")
    });
    let zip = zips.join(function).join("bootstrap.zip");
    assert!(zip.is_file(), "no deployment zip at {} (scripts/package builds it)", zip.display());
    let dir = std::env::temp_dir().join(format!("fleetlog-zip-{}-{function}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Python's zipfile unpacks as Lambda does, and python3 is on every machine scripts/test runs on.
    let status = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&zip)
        .arg(&dir)
        .status()
        .expect("python3 -m zipfile");
    assert!(status.success(), "cannot unpack {}", zip.display());
    let bootstrap = dir.join("bootstrap");
    assert!(bootstrap.is_file(), "{} holds no bootstrap at its root, so Lambda could not start it", zip.display());
    // zipfile drops the execute bit the zip records; Lambda keeps it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).expect("chmod bootstrap");
    bootstrap
}

/// What the function posted back for an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Response(Vec<u8>),
    Error(Vec<u8>),
    /// An answer refused as the Runtime API refuses a stale one: without the invocation id the event
    /// came with (`lambda-runtime-invocation-id`).
    Refused {
        path: String,
        invocation_id: Option<String>,
    },
}

impl Answer {
    /// The `errorMessage` of an error the function reported (with its `errorType`, as Lambda wants).
    pub fn error_message(&self) -> String {
        let Answer::Error(body) = self else { panic!("expected an error, got {self:?}") };
        let error: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert!(error["errorType"].is_string(), "{error}");
        error["errorMessage"].as_str().unwrap().to_owned()
    }
}

/// One run of a Lambda binary: its answers, by request id in the order given, and what it printed.
#[derive(Debug)]
pub struct Run {
    pub answers: Vec<(String, Answer)>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The sum of a counter over the embedded-metric lines the function printed.
    pub fn metric(&self, name: &str) -> u64 {
        // An EMF line is a JSON object with an `_aws` member, wherever it stands: the deployment
        // build's serde_json orders keys, the workspace's (feature-unified) keeps insertion order.
        self.stdout
            .lines()
            .filter(|line| line.starts_with('{'))
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|value| value.get("_aws").is_some())
            .filter_map(|value| value[name].as_u64())
            .sum()
    }
}

/// Runs the binary as a Lambda function (the Runtime API's variables set, plus `env`, nothing else
/// inherited) on the events, `(request id, payload)`. Returns once every event is answered and the
/// function, still alive, has asked for the next one.
pub async fn run_function(binary: &Path, env: &[(&str, &str)], events: Vec<(&str, Vec<u8>)>) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (answers, mut received) = mpsc::unbounded_channel();
    let count = events.len();
    let events = events.into_iter().map(|(id, body)| (id.to_owned(), body)).collect();
    let api = Arc::new(RuntimeApi { events: Mutex::new(events), answers });
    let server = tokio::spawn(api.serve(listener));
    let mut function = tokio::process::Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "fleetlog-test")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    while out.len() < count {
        let answer = tokio::time::timeout(Duration::from_secs(60), received.recv()).await;
        match answer {
            Ok(Some(answer)) => out.push(answer),
            _ => {
                function.start_kill().unwrap();
                let printed = function.wait_with_output().await.unwrap();
                panic!(
                    "the function answered {} of {count} events; stderr:\n{}",
                    out.len(),
                    String::from_utf8_lossy(&printed.stderr)
                );
            }
        }
    }
    assert!(function.try_wait().unwrap().is_none(), "the function exited after answering");
    function.start_kill().unwrap();
    let printed = function.wait_with_output().await.unwrap();
    server.abort();
    Run {
        answers: out,
        stdout: String::from_utf8(printed.stdout).unwrap(),
        stderr: String::from_utf8(printed.stderr).unwrap(),
    }
}

const INVOCATION_ID: &str = "lambda-runtime-invocation-id";

/// The invocation id the fake gives the event with request id `request_id`.
fn invocation_id_of(request_id: &str) -> String {
    format!("invocation-of-{request_id}")
}

/// `GET …/invocation/next` takes the next event (and waits forever when there is none);
/// `POST …/invocation/{id}/response` and `…/error` report back, echoing the event's invocation id.
struct RuntimeApi {
    events: Mutex<VecDeque<(String, Vec<u8>)>>,
    answers: mpsc::UnboundedSender<(String, Answer)>,
}

impl RuntimeApi {
    async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(Arc::clone(&self).connection(stream));
        }
    }

    /// One keep-alive connection: requests one after another.
    async fn connection(self: Arc<Self>, stream: TcpStream) {
        let mut stream = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                return;
            }
            let (mut length, mut invocation_id) = (0, None);
            loop {
                let mut header = String::new();
                stream.read_line(&mut header).await.unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':').unwrap();
                assert!(!name.eq_ignore_ascii_case("transfer-encoding"), "only sized bodies are expected: {header}");
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
                if name.eq_ignore_ascii_case(INVOCATION_ID) {
                    invocation_id = Some(value.trim().to_owned());
                }
            }
            let mut body = vec![0; length];
            stream.read_exact(&mut body).await.unwrap();
            let mut parts = request_line.split_whitespace();
            let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
            let path = path.strip_prefix("/2018-06-01/runtime/").unwrap();
            let reply = match (method, path) {
                ("GET", "invocation/next") => {
                    let next = self.events.lock().unwrap().pop_front();
                    let Some((id, event)) = next else { return std::future::pending().await };
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {id}\r\n\
                         {INVOCATION_ID}: {}\r\nlambda-runtime-deadline-ms: {}\r\n\
                         lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:fleetlog-test\r\n\
                         content-length: {}\r\n\r\n",
                        invocation_id_of(&id),
                        now + 60_000,
                        event.len()
                    );
                    [head.into_bytes(), event].concat()
                }
                ("POST", path) => {
                    let (id, kind) = path.strip_prefix("invocation/").and_then(|p| p.split_once('/')).unwrap();
                    let (answer, reply) = match kind {
                        _ if invocation_id.as_deref() != Some(invocation_id_of(id).as_str()) => (
                            Answer::Refused { path: path.to_owned(), invocation_id },
                            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}"[..],
                        ),
                        "response" => {
                            (Answer::Response(body), &b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}"[..])
                        }
                        _ => (Answer::Error(body), &b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}"[..]),
                    };
                    self.answers.send((id.to_owned(), answer)).unwrap();
                    reply.to_vec()
                }
                other => panic!("unexpected Runtime API request {other:?}"),
            };
            stream.get_mut().write_all(&reply).await.unwrap();
        }
    }
}
