//! Bounded by design, the fault × phase matrix: each cell sends one request
//! through a fresh gateway to the chaos upstream scripted with one fault at
//! one phase, and asserts the exact outcome — the status (or a stream's
//! closing event), the kind, the attempts in the header and the envelope,
//! the requests the upstream saw, and the one `backstop_requests_total`
//! series that moved. Times are bounds generous enough for a loaded machine.
//!
//! Phases: connect; before the headers; after the headers, before the first
//! body byte; mid-body (a whole body); during the lookahead and after the
//! first released byte (a stream). Faults: stall, reset, cut, in-band error
//! event, oversized event, garbage, gzip despite `Accept-Encoding: identity`.
//! Products: a non-streamed chat completion, a streamed one, and a
//! pass-through endpoint (`GET /v1/models`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use backstop::server::Running;
use backstop_mock::{MockConfig, MockServer};
use common::{client, gateway};
use futures_util::future::join_all;
use serde_json::{json, Value};
use tokio::time::Instant;

/// What a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Product {
    Chat,
    Stream,
    Models,
}

/// What the client must see.
#[derive(Clone, Copy, Debug)]
enum Seen {
    /// An error status with the envelope of this kind.
    Envelope(u16, &'static str),
    /// A 200 whose (stream) body ends well: `[DONE]` or a whole JSON body.
    Ok,
    /// A 200 stream that closes with an error event of this kind.
    Event(&'static str),
    /// A 200 whose body is cut: the client's read fails.
    Cut,
}

struct Cell {
    phase: &'static str,
    fault: &'static str,
    product: Product,
    scenario: &'static str,
    seen: Seen,
    attempts: u32,
    hits: u64,
    /// The series of `backstop_requests_total` that moves, `class/kind`.
    counted: &'static str,
    /// At most this long (each attempt waits at most ~0.5 s here).
    within: Duration,
}

const fn cell(
    phase: &'static str,
    fault: &'static str,
    product: Product,
    scenario: &'static str,
    seen: Seen,
    (attempts, hits): (u32, u64),
    counted: &'static str,
) -> Cell {
    Cell {
        phase,
        fault,
        product,
        scenario,
        seen,
        attempts,
        hits,
        counted,
        within: Duration::from_secs(8),
    }
}

use Product::{Chat, Models, Stream};
use Seen::{Cut, Envelope, Event, Ok};

/// A gateway with short waits: 500 ms to the first byte, 300 ms of silence.
async fn fast_gateway(upstream: &str) -> Running {
    gateway(upstream, |c| {
        c.upstream.first_byte_timeout_ms = 500;
        c.upstream.stream_idle_timeout_ms = 300;
        c.upstream.request_timeout_ms = 10_000;
    })
    .await
}

/// Every `backstop_requests_total` series that is not zero, as
/// `class/kind` → count.
fn requests_counted(gw: &Running) -> BTreeMap<String, u64> {
    let text = gw.app.metrics.render();
    text.lines()
        .filter(|l| l.starts_with("backstop_requests_total{"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let value: u64 = value.parse().ok()?;
            let label = |name: &str| {
                let at = series.find(&format!("{name}=\""))? + name.len() + 2;
                Some(series[at..].split('"').next()?.to_string())
            };
            (value > 0).then(|| Some((format!("{}/{}", label("class")?, label("kind")?), value)))?
        })
        .collect()
}

/// The `data:` payloads of an SSE body.
fn events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_string)
        .collect()
}

async fn run(mock: &MockServer, upstream: &str, c: &Cell, key: &str) {
    let gw = fast_gateway(upstream).await;
    let what = format!(
        "{} × {} × {:?} ({})",
        c.phase, c.fault, c.product, c.scenario
    );
    let request = match c.product {
        Models => client().get(format!("{}/models", gw.base_url())),
        Chat | Stream => client()
            .post(format!("{}/chat/completions", gw.base_url()))
            .json(&json!({
                "model": "gpt-x",
                "stream": c.product == Stream,
                "messages": [{"role": "user", "content": "hi"}]
            })),
    };
    let started = Instant::now();
    let resp = request
        .header("x-mock-scenario", c.scenario)
        .header("x-mock-key", key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let header: u32 = resp.headers()["x-backstop-attempts"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.bytes().await;
    let took = started.elapsed();
    assert!(took <= c.within, "{what}: took {took:?}");
    assert_eq!(header, c.attempts, "{what}: x-backstop-attempts");
    match c.seen {
        Envelope(want, kind) => {
            let envelope: Value = serde_json::from_slice(&body.unwrap()).unwrap();
            assert_eq!(status, want, "{what}: status");
            assert_eq!(envelope["error"]["backstop"]["kind"], kind, "{what}");
            assert_eq!(
                envelope["error"]["backstop"]["attempts"], c.attempts,
                "{what}"
            );
        }
        Ok => {
            let body = String::from_utf8(body.unwrap().to_vec()).unwrap();
            assert_eq!(status, 200, "{what}");
            if content_type.starts_with("text/event-stream") {
                let events = events(&body);
                assert_eq!(
                    events.last().map(String::as_str),
                    Some("[DONE]"),
                    "{what}: {body}"
                );
                assert!(
                    events.iter().all(|e| !e.contains("\"error\"")),
                    "{what}: {body}"
                );
            } else {
                let json: Value =
                    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
                assert!(json.get("error").is_none(), "{what}: {body}");
            }
        }
        Event(kind) => {
            let body = String::from_utf8(body.unwrap().to_vec()).unwrap();
            assert_eq!(status, 200, "{what}");
            let last: Value = serde_json::from_str(events(&body).last().unwrap()).unwrap();
            assert_eq!(last["error"]["backstop"]["kind"], kind, "{what}: {body}");
            assert_eq!(last["error"]["backstop"]["attempts"], c.attempts, "{what}");
            assert!(!body.contains("[DONE]"), "{what}");
        }
        Cut => {
            assert_eq!(status, 200, "{what}");
            assert!(body.is_err(), "{what}: the client must see the cut");
        }
    }
    if c.fault != "connect" {
        assert_eq!(mock.hits(key), c.hits, "{what}: upstream requests");
    }
    // The request is counted when its body ended; the record may be read
    // an instant after the client saw the end.
    let mut counted = requests_counted(&gw);
    for _ in 0..50 {
        if !counted.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        counted = requests_counted(&gw);
    }
    let want: BTreeMap<String, u64> = [(c.counted.to_string(), 1)].into();
    assert_eq!(counted, want, "{what}: backstop_requests_total");
}

async fn run_all(cells: &[Cell]) {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // An upstream that refuses connections: a port bound, then freed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let runs = cells.iter().enumerate().map(|(i, c)| {
        let upstream = if c.fault == "connect" {
            closed.clone()
        } else {
            mock.base_url()
        };
        let mock = &mock;
        async move { run(mock, &upstream, c, &format!("cell-{i}-{}", c.scenario)).await }
    });
    join_all(runs).await;
}

#[tokio::test]
async fn a_whole_chat_completion_never_waits_past_its_bounds() {
    run_all(&[
        cell(
            "connect",
            "connect",
            Chat,
            "ok",
            Envelope(502, "connect_error"),
            (3, 0),
            "hard/connect_error",
        ),
        cell(
            "before headers",
            "stall",
            Chat,
            "hang",
            Envelope(504, "timeout"),
            (3, 3),
            "hard/timeout",
        ),
        cell(
            "before headers",
            "reset",
            Chat,
            "reset",
            Envelope(502, "connect_error"),
            (3, 3),
            "hard/connect_error",
        ),
        cell(
            "after headers",
            "stall",
            Chat,
            "hold:5000",
            Envelope(504, "timeout"),
            (3, 3),
            "hard/timeout",
        ),
        cell(
            "after headers",
            "reset",
            Chat,
            "drop_after_headers",
            Envelope(502, "connect_error"),
            (3, 3),
            "hard/connect_error",
        ),
        cell(
            "mid-body",
            "stall",
            Chat,
            "stall:5000",
            Envelope(504, "timeout"),
            (3, 3),
            "hard/timeout",
        ),
        cell(
            "mid-body",
            "cut",
            Chat,
            "cut_body",
            Envelope(502, "connect_error"),
            (3, 3),
            "hard/connect_error",
        ),
        cell(
            "body",
            "garbage",
            Chat,
            "garbage",
            Envelope(502, "bad_upstream_response"),
            (1, 1),
            "hard/bad_upstream_response",
        ),
        cell("body", "gzip-anyway", Chat, "gzip", Ok, (1, 1), "none/ok"),
        cell(
            "before headers",
            "stall, then ok",
            Chat,
            "hang,ok",
            Ok,
            (2, 2),
            "none/ok",
        ),
    ])
    .await;
}

#[tokio::test]
async fn a_stream_never_waits_past_its_bounds_and_fails_before_its_first_byte_as_an_attempt() {
    run_all(&[
        cell(
            "connect",
            "connect",
            Stream,
            "ok",
            Envelope(502, "connect_error"),
            (3, 0),
            "hard/connect_error",
        ),
        cell(
            "before headers",
            "stall",
            Stream,
            "hang",
            Envelope(504, "timeout"),
            (3, 3),
            "hard/timeout",
        ),
        cell(
            "before headers",
            "reset",
            Stream,
            "reset",
            Envelope(502, "connect_error"),
            (3, 3),
            "hard/connect_error",
        ),
        cell(
            "after headers",
            "stall",
            Stream,
            "hold:5000",
            Envelope(504, "timeout"),
            (3, 3),
            "hard/timeout",
        ),
        cell(
            "after headers",
            "reset",
            Stream,
            "drop_after_headers",
            Envelope(502, "connect_error"),
            (3, 3),
            "hard/connect_error",
        ),
        cell(
            "first event",
            "in-band error",
            Stream,
            "error_event",
            Envelope(502, "server_error"),
            (3, 3),
            "hard/server_error",
        ),
        cell(
            "lookahead",
            "stall",
            Stream,
            "first_token:5000",
            Envelope(504, "timeout"),
            (3, 3),
            "hard/timeout",
        ),
        cell(
            "lookahead",
            "cut",
            Stream,
            "cut:0",
            Envelope(502, "connect_error"),
            (3, 3),
            "hard/connect_error",
        ),
        cell(
            "lookahead",
            "in-band error",
            Stream,
            "error_after:0",
            Envelope(502, "server_error"),
            (3, 3),
            "hard/server_error",
        ),
        cell(
            "lookahead",
            "garbage",
            Stream,
            "garbage:0",
            Envelope(502, "connect_error"),
            (3, 3),
            "hard/connect_error",
        ),
        cell(
            "lookahead",
            "oversized event",
            Stream,
            "oversized:5000000:0",
            Ok,
            (1, 1),
            "none/ok",
        ),
        cell(
            "lookahead",
            "gzip-anyway",
            Stream,
            "gzip",
            Ok,
            (1, 1),
            "none/ok",
        ),
        cell(
            "lookahead",
            "a JSON answer",
            Stream,
            "json_for_stream",
            Ok,
            (1, 1),
            "none/ok",
        ),
        cell(
            "after the first byte",
            "stall",
            Stream,
            "stall:5000",
            Event("stream_truncated"),
            (1, 1),
            "silent/stream_truncated",
        ),
        cell(
            "after the first byte",
            "cut",
            Stream,
            "cut:2",
            Event("stream_truncated"),
            (1, 1),
            "silent/stream_truncated",
        ),
        cell(
            "after the first byte",
            "in-band error",
            Stream,
            "error_after:2",
            Event("server_error"),
            (1, 1),
            "hard/server_error",
        ),
        cell(
            "after the first byte",
            "garbage",
            Stream,
            "garbage:2",
            Event("stream_truncated"),
            (1, 1),
            "silent/stream_truncated",
        ),
        cell(
            "after the first byte",
            "oversized event",
            Stream,
            "oversized:5000000:2",
            Ok,
            (1, 1),
            "none/ok",
        ),
    ])
    .await;
}

#[tokio::test]
async fn a_pass_through_body_is_bounded_and_a_cut_one_is_counted() {
    run_all(&[
        cell(
            "connect",
            "connect",
            Models,
            "ok",
            Envelope(502, "connect_error"),
            (3, 0),
            "hard/connect_error",
        ),
        cell(
            "before headers",
            "stall",
            Models,
            "hang",
            Envelope(504, "timeout"),
            (3, 3),
            "hard/timeout",
        ),
        cell(
            "before headers",
            "reset",
            Models,
            "reset",
            Envelope(502, "connect_error"),
            (3, 3),
            "hard/connect_error",
        ),
        cell(
            "after headers",
            "stall",
            Models,
            "hold:5000",
            Envelope(504, "timeout"),
            (3, 3),
            "hard/timeout",
        ),
        cell(
            "after headers",
            "reset",
            Models,
            "drop_after_headers",
            Envelope(502, "connect_error"),
            (3, 3),
            "hard/connect_error",
        ),
        cell(
            "mid-body",
            "stall",
            Models,
            "stall:5000",
            Cut,
            (1, 1),
            "hard/timeout",
        ),
        cell(
            "mid-body",
            "cut",
            Models,
            "cut_body",
            Cut,
            (1, 1),
            "hard/connect_error",
        ),
        cell("body", "gzip-anyway", Models, "gzip", Ok, (1, 1), "none/ok"),
    ])
    .await;
}

#[tokio::test]
async fn request_timeout_bounds_a_stream_that_keeps_coming() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock.base_url(), |c| c.upstream.request_timeout_ms = 1_500).await;
    let started = Instant::now();
    let body = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("x-mock-chunks", "1000")
        .header("x-mock-chunk-delay-ms", "20")
        .json(&json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_400) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let last: Value = serde_json::from_str(events(&body).last().unwrap()).unwrap();
    assert_eq!(last["error"]["backstop"]["kind"], "timeout");
    assert!(
        events(&body).len() > 10,
        "content flowed until the deadline"
    );
}
