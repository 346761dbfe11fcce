//! The ETL as Lambda runs it: the release-shaped binary (`src/main.rs`, its allocator and the
//! lambda_runtime wiring) polls a Lambda Runtime API on 127.0.0.1, a small fake that hands out events
//! one by one and records what comes back over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::firehose::KinesisFirehoseResponse;
use fleetlog_etl::corpus::firehose_event;
use fleetlog_etl::firehose::{PROCESSING_FAILED, transform};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the function posted back for an invocation.
#[derive(Debug)]
enum Answer {
    Response(Vec<u8>),
    Error(Vec<u8>),
}

/// The Runtime API: `GET …/invocation/next` takes the next event (and waits forever when there is
/// none), `POST …/invocation/{id}/response` and `…/error` report back.
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
            let mut length = 0;
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
                    let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {id}\r\n\
                         lambda-runtime-deadline-ms: {deadline}\r\n\
                         lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:fleetlog-etl\r\n\
                         content-length: {}\r\n\r\n",
                        event.len()
                    );
                    [head.into_bytes(), event].concat()
                }
                ("POST", path) => {
                    let (id, kind) = path.strip_prefix("invocation/").and_then(|p| p.split_once('/')).unwrap();
                    let answer = if kind == "response" { Answer::Response(body) } else { Answer::Error(body) };
                    self.answers.send((id.to_owned(), answer)).unwrap();
                    b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}".to_vec()
                }
                other => panic!("unexpected Runtime API request {other:?}"),
            };
            stream.get_mut().write_all(&reply).await.unwrap();
        }
    }
}

/// Runs the ETL binary on the events and returns its answers in order, and what it printed.
async fn invoke(events: Vec<(&str, Vec<u8>)>) -> (Vec<(String, Answer)>, String, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (answers, mut received) = mpsc::unbounded_channel();
    let count = events.len();
    let events = events.into_iter().map(|(id, body)| (id.to_owned(), body)).collect();
    let api = Arc::new(RuntimeApi { events: Mutex::new(events), answers });
    let server = tokio::spawn(api.serve(listener));
    let mut function = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetlog-etl"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "fleetlog-etl")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    while out.len() < count {
        let answer = tokio::time::timeout(Duration::from_secs(60), received.recv()).await;
        out.push(answer.expect("the function answers every event").unwrap());
    }
    // It has asked for the next event: still alive after every answer, errors included.
    assert!(function.try_wait().unwrap().is_none(), "the function exited");
    function.start_kill().unwrap();
    let printed = function.wait_with_output().await.unwrap();
    server.abort();
    (out, String::from_utf8(printed.stdout).unwrap(), String::from_utf8(printed.stderr).unwrap())
}

#[tokio::test]
async fn the_lambda_binary_answers_each_event_over_the_runtime_api() {
    let corpus = firehose_event(200_000, 11).event;
    let not_gzip = r#"{"records":[{"recordId":"r1","approximateArrivalTimestamp":1,"data":"bm90IGd6aXA="}]}"#;
    let (answers, stdout, stderr) = invoke(vec![
        ("batch", serde_json::to_vec(&corpus).unwrap()),
        ("not-gzip", not_gzip.as_bytes().to_vec()),
        ("unknown", br#"{"hello":"world"}"#.to_vec()),
        ("not-an-object", b"[1,2]".to_vec()),
    ])
    .await;
    let ids: Vec<&str> = answers.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["batch", "not-gzip", "unknown", "not-an-object"]);

    // The body Firehose gets is exactly the transform's response, serialised once by the runtime.
    let Answer::Response(body) = &answers[0].1 else { panic!("{:?}", answers[0]) };
    let expected = serde_json::to_vec(&transform(&corpus, "us-east-1").response).unwrap();
    assert!(body == &expected, "the posted response differs from the transform's");
    let response: KinesisFirehoseResponse = serde_json::from_slice(body).unwrap();
    assert_eq!(response.records.len(), corpus.records.len());

    let Answer::Response(body) = &answers[1].1 else { panic!("{:?}", answers[1]) };
    let response: KinesisFirehoseResponse = serde_json::from_slice(body).unwrap();
    assert_eq!(
        response.records[0].result.as_deref(),
        Some(PROCESSING_FAILED),
        "a bad record is not a failed invocation"
    );

    for (id, answer) in &answers[2..] {
        let Answer::Error(body) = answer else { panic!("{id}: {answer:?}") };
        let error: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert!(error["errorType"].is_string() && error["errorMessage"].is_string(), "{id}: {error}");
    }
    let unknown: serde_json::Value = match &answers[2].1 {
        Answer::Error(body) => serde_json::from_slice(body).unwrap(),
        Answer::Response(_) => unreachable!(),
    };
    assert!(unknown["errorMessage"].as_str().unwrap().contains("neither a Firehose"), "{unknown}");

    assert!(stdout.contains(r#""LogEventsTransformed""#), "the batch's metrics are printed: {stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
