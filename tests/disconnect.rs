//! A client that leaves, at every phase: while the upstream connection is
//! being made, while the gateway waits for the upstream's headers, while the
//! lookahead holds a stream's first events, in the middle of a stream, and
//! during a `Retry-After` wait. Each time the upstream request is cancelled
//! (its connection closes, or no further attempt is made), the in-flight
//! gauge returns to 0, the request is counted once as
//! `class="aborted", kind="client_closed"`, and no half-open probe is left
//! taken.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backstop::server::Running;
use common::{client, gateway};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const CHAT: &str = "/v1/chat/completions";

/// A raw upstream: for each connection, reads one request head, writes
/// `reply` (perhaps nothing), then reports when the gateway closes the
/// connection. Counts the requests it read.
struct RawUpstream {
    url: String,
    requests: Arc<AtomicUsize>,
    closed: mpsc::UnboundedReceiver<()>,
}

async fn raw_upstream(reply: Vec<u8>) -> RawUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let (tx, closed) = mpsc::unbounded_channel();
    let counter = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (tx, counter, reply) = (tx.clone(), counter.clone(), reply.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = sock.write_all(&reply).await;
                // Wait for the gateway to close (EOF or reset).
                loop {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                let _ = tx.send(());
            });
        }
    });
    RawUpstream {
        url,
        requests,
        closed,
    }
}

/// A 200 SSE answer's head and these events (chunked), then silence.
fn sse_then_silence(events: &[&str]) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    for e in events {
        let event = format!("data: {e}\n\n");
        out.extend_from_slice(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
    }
    out
}

const ROLE: &str = r#"{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#;
const HELLO: &str = r#"{"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}"#;

fn rate_limited() -> Vec<u8> {
    let body = r#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#;
    format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 2\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn counted(gw: &Running, class: &str, kind: &str) -> u64 {
    gw.app
        .metrics
        .requests
        .with_label_values(&[CHAT, "gpt-x", class, kind])
        .get()
}

fn inflight(gw: &Running) -> i64 {
    gw.app.metrics.inflight.with_label_values(&[CHAT]).get()
}

/// Waits (bounded) until `check` holds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..300 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

fn chat(gw: &Running, stream: bool) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&json!({"model": "gpt-x", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
}

/// Sends, then leaves after `after`, whatever phase the request is in.
async fn leave_after(req: reqwest::RequestBuilder, after: Duration) {
    let _ = tokio::time::timeout(after, async {
        let resp = req.send().await?;
        resp.bytes().await
    })
    .await;
}

async fn assert_aborted_once(gw: &Running) {
    eventually("the request is counted as client_closed", || {
        counted(gw, "aborted", "client_closed") == 1
    })
    .await;
    eventually("the in-flight gauge is back to 0", || inflight(gw) == 0).await;
    assert_eq!(counted(gw, "none", "ok"), 0, "never counted as ok");
}

#[tokio::test]
async fn leaving_while_waiting_for_the_headers_cancels_the_upstream_request() {
    let mut up = raw_upstream(Vec::new()).await;
    let gw = gateway(&up.url, |_| {}).await;
    leave_after(chat(&gw, false), Duration::from_millis(300)).await;
    tokio::time::timeout(Duration::from_secs(5), up.closed.recv())
        .await
        .unwrap();
    assert_eq!(up.requests.load(Ordering::SeqCst), 1);
    assert_aborted_once(&gw).await;
}

#[tokio::test]
async fn leaving_during_the_lookahead_cancels_the_upstream_stream() {
    let mut up = raw_upstream(sse_then_silence(&[ROLE])).await;
    let gw = gateway(&up.url, |_| {}).await;
    leave_after(chat(&gw, true), Duration::from_millis(300)).await;
    tokio::time::timeout(Duration::from_secs(5), up.closed.recv())
        .await
        .unwrap();
    assert_aborted_once(&gw).await;
}

#[tokio::test]
async fn leaving_mid_stream_cancels_the_upstream_stream() {
    let mut up = raw_upstream(sse_then_silence(&[ROLE, HELLO])).await;
    let gw = gateway(&up.url, |_| {}).await;
    let resp = chat(&gw, true).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    use futures_util::StreamExt;
    let first = stream.next().await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&first).contains("data: "),
        "the stream started"
    );
    drop(stream);
    tokio::time::timeout(Duration::from_secs(5), up.closed.recv())
        .await
        .unwrap();
    assert_aborted_once(&gw).await;
}

#[tokio::test]
async fn leaving_during_a_retry_after_wait_makes_no_further_attempt() {
    let up = raw_upstream(rate_limited()).await;
    let gw = gateway(&up.url, |_| {}).await;
    leave_after(chat(&gw, false), Duration::from_millis(500)).await;
    assert_aborted_once(&gw).await;
    // The wait (2 s) would have ended by now: no second attempt came.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(up.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn leaving_while_the_connection_is_being_made_counts_once() {
    // A listener whose accept queue is full: a new connection's handshake
    // never completes, so the gateway is still connecting when the client
    // leaves.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let gw = gateway(&format!("http://{addr}/v1"), |c| {
        c.upstream.connect_timeout_ms = 10_000
    })
    .await;
    leave_after(chat(&gw, false), Duration::from_millis(300)).await;
    assert_aborted_once(&gw).await;
    drop((listener, fillers));
}

#[tokio::test]
async fn a_probe_whose_client_left_is_given_back_and_the_target_probed_again() {
    // The primary hangs (a probe that never answers); the backup answers.
    let primary = raw_upstream(Vec::new()).await;
    let backup = common::scripted::Scripted::start(|_, _| {
        common::scripted::Answer::json(
            200,
            r#"{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#,
        )
    })
    .await;
    let backup_url = backup.base_url();
    let primary_url = primary.url.clone();
    let gw = gateway(&primary_url, move |c| {
        c.upstreams.insert(
            "backup".into(),
            serde_json::from_value(json!({ "url": backup_url })).unwrap(),
        );
        c.routes = vec![serde_json::from_value(json!({
            "name": "r", "models": ["gpt-x"],
            "targets": [{"upstream": "default"}, {"upstream": "backup"}]
        }))
        .unwrap()];
        c.upstream.first_byte_timeout_ms = 200;
        c.circuit.consecutive_failures = 1;
        c.circuit.cooldown_ms = 300;
    })
    .await;
    // A timeout on the primary opens its circuit; the backup answers.
    let resp = chat(&gw, false).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(primary.requests.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The cool-down is over: this request is the primary's probe; its
    // client leaves before the probe's first-byte timeout.
    leave_after(chat(&gw, false), Duration::from_millis(100)).await;
    eventually("the probe reached the primary", || {
        primary.requests.load(Ordering::SeqCst) == 2
    })
    .await;
    // The probe was given back: the next request probes the primary again
    // instead of skipping it as "probe in flight".
    let _ = chat(&gw, false).send().await.unwrap();
    assert_eq!(primary.requests.load(Ordering::SeqCst), 3);
}
