//! A CloudWatch Logs Live Tail endpoint on 127.0.0.1. The emulator has no Live Tail (the SDK sends
//! StartLiveTail to the `stream-` host, which an emulator address does not have), so this one speaks
//! the real response: event-stream frames (`sessionStart`, `sessionUpdate`, a
//! `SessionTimeoutException`) in a chunked HTTP/1.1 body, each session fed what the test pushes.

// A fixture: failing to set it up fails the test.
#![allow(clippy::expect_used)]

use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the open session sends next.
#[derive(Debug, Clone)]
pub enum Push {
    /// One update: these (stream, time, message) lines of the session's group.
    Lines { lines: Vec<(String, i64, String)>, sampled: bool },
    /// The session's three hours are up.
    TimeOut,
}

#[derive(Debug)]
pub struct LiveTailEndpoint {
    url: String,
    requests: Arc<Mutex<Vec<Value>>>,
    pushes: mpsc::UnboundedSender<Push>,
}

impl LiveTailEndpoint {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (pushes, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                tokio::spawn(serve(connection, seen.clone(), queue.clone()));
            }
        });
        Self { url, requests, pushes }
    }

    pub fn push(&self, push: Push) {
        self.pushes.send(push).expect("the endpoint runs");
    }

    /// The StartLiveTail requests so far (their JSON bodies).
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// `config` with its Live Tail requests (the `stream-` host) sent here and everything else where
    /// it went.
    pub fn route(&self, config: &SdkConfig) -> SdkConfig {
        let inner = config.http_client().unwrap_or_else(|| {
            use aws_smithy_http_client::tls;
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
                .build_https()
        });
        config.to_builder().http_client(Routed { inner, to: self.url.clone() }).build()
    }
}

/// Answers one connection's StartLiveTail: the session's start, then what is pushed, until a
/// timeout or the client goes away.
async fn serve(
    connection: TcpStream,
    requests: Arc<Mutex<Vec<Value>>>,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Push>>>,
) {
    let (read, mut write) = connection.into_split();
    let mut read = BufReader::new(read);
    let mut length = 0;
    let mut target = String::new();
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "x-amz-target" => target = value.trim().to_owned(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    if read.read_exact(&mut body).await.is_err() {
        return;
    }
    if target != "Logs_20140328.StartLiveTail" {
        let refusal = r#"{"__type":"InvalidOperationException","message":"only StartLiveTail here"}"#;
        let _ = write
            .write_all(
                format!("HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{refusal}", refusal.len())
                    .as_bytes(),
            )
            .await;
        return;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let group = request["logGroupIdentifiers"][0].as_str().unwrap_or_default().to_owned();
    if let Ok(mut all) = requests.lock() {
        all.push(request.clone());
    }
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\ntransfer-encoding: chunked\r\nx-amzn-requestid: live-tail-test\r\n\r\n";
    if write.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let start = json!({
        "requestId": "live-tail-test", "sessionId": "session",
        "logGroupIdentifiers": request["logGroupIdentifiers"], "logStreamNames": request["logStreamNames"],
    });
    if write.write_all(&chunk(&event("sessionStart", &start))).await.is_err() {
        return;
    }
    let mut queue = queue.lock().await;
    while let Some(push) = queue.recv().await {
        let frame = match push {
            Push::Lines { lines, sampled } => {
                let results: Vec<Value> = lines
                    .iter()
                    .map(|(stream, time, message)| {
                        json!({"logGroupIdentifier": group, "logStreamName": stream, "timestamp": time, "ingestionTime": time, "message": message})
                    })
                    .collect();
                event("sessionUpdate", &json!({"sessionMetadata": {"sampled": sampled}, "sessionResults": results}))
            }
            Push::TimeOut => {
                let message = Message::new_from_parts(
                    vec![
                        Header::new(":message-type", HeaderValue::String("exception".into())),
                        Header::new(":exception-type", HeaderValue::String("SessionTimeoutException".into())),
                        Header::new(":content-type", HeaderValue::String("application/json".into())),
                    ],
                    br#"{"message":"Session timed out"}"#.to_vec(),
                );
                let _ = write.write_all(&chunk(&frame(&message))).await;
                let _ = write.write_all(b"0\r\n\r\n").await;
                return;
            }
        };
        if write.write_all(&chunk(&frame)).await.is_err() {
            return;
        }
    }
}

fn event(kind: &str, payload: &Value) -> Vec<u8> {
    let message = Message::new_from_parts(
        vec![
            Header::new(":message-type", HeaderValue::String("event".into())),
            Header::new(":event-type", HeaderValue::String(kind.to_owned().into())),
            Header::new(":content-type", HeaderValue::String("application/json".into())),
        ],
        payload.to_string().into_bytes(),
    );
    frame(&message)
}

fn frame(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(message, &mut out).expect("an event-stream frame");
    out
}

fn chunk(bytes: &[u8]) -> Vec<u8> {
    [format!("{:x}\r\n", bytes.len()).as_bytes(), bytes, b"\r\n"].concat()
}

/// An HTTP client that sends requests for a `stream-` host to `to`, and the rest through `inner`.
#[derive(Debug, Clone)]
struct Routed {
    inner: SharedHttpClient,
    to: String,
}

impl HttpClient for Routed {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(RoutedConnector {
            inner: self.inner.http_connector(settings, components),
            to: self.to.clone(),
        })
    }
}

#[derive(Debug)]
struct RoutedConnector {
    inner: SharedHttpConnector,
    to: String,
}

impl HttpConnector for RoutedConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        if request.uri().contains("://stream-") {
            let path = request.uri().splitn(4, '/').nth(3).unwrap_or_default().to_owned();
            if let Err(e) = request.set_uri(format!("{}/{path}", self.to)) {
                return HttpConnectorFuture::ready(Err(aws_smithy_runtime_api::client::result::ConnectorError::other(
                    e.into(),
                    None,
                )));
            }
        }
        self.inner.call(request)
    }
}
