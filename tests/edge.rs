//! The edge: what a client can hold, and for how long. A partial request
//! head is closed after `limits.header_read_timeout_ms`; an idle keep-alive
//! connection after `client_idle_timeout_ms`; a body dripped slower than
//! `request_body_timeout_ms` gets 408 and reaches no upstream; beyond
//! `max_inflight` the extra request gets the 503 `overloaded` envelope while
//! `/healthz` answers; at the connection cap idle connections make room for
//! a probe; at the drain deadline a stream closes with a `shutdown` event;
//! and 5 MB of role-only chunks pass through a bounded amount of memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use backstop::server::Running;
use backstop_mock::{MockConfig, MockServer};
use common::{client, gateway};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long until the gateway closes `sock` (reads until EOF or an error),
/// at most `limit`.
async fn closed_after(sock: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(started.elapsed())
}

async fn limited(tweak: impl FnOnce(&mut backstop::config::Config)) -> (MockServer, Running) {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock.base_url(), tweak).await;
    (mock, gw)
}

#[tokio::test]
async fn a_partial_request_head_or_silence_is_closed_after_the_head_timeout() {
    let (_mock, gw) = limited(|c| c.limits.header_read_timeout_ms = 400).await;
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    let mut partial = TcpStream::connect(gw.addr).await.unwrap();
    partial.write_all(b"POST /v1/chat/comp").await.unwrap();
    let (a, b) = tokio::join!(
        closed_after(&mut silent, Duration::from_secs(5)),
        closed_after(&mut partial, Duration::from_secs(5)),
    );
    for (what, took) in [("silent", a), ("partial head", b)] {
        let took = took.unwrap_or_else(|| panic!("{what}: still open after 5 s"));
        assert!(took >= Duration::from_millis(300), "{what}: {took:?}");
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let (_mock, gw) = limited(|c| {
        c.limits.header_read_timeout_ms = 200;
        c.limits.client_idle_timeout_ms = 1_000;
    })
    .await;
    let mut sock = TcpStream::connect(gw.addr).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = sock.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Idle between requests: the idle timeout applies, not the head timeout.
    let took = closed_after(&mut sock, Duration::from_secs(6))
        .await
        .expect("closed");
    assert!(took >= Duration::from_millis(800), "{took:?}");
}

#[tokio::test]
async fn a_dripped_request_body_gets_408_and_reaches_no_upstream() {
    let (mock, gw) = limited(|c| c.limits.request_body_timeout_ms = 500).await;
    let mut sock = TcpStream::connect(gw.addr).await.unwrap();
    sock.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\nx-mock-key: drip\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let drip = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if sock.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let mut answer = Vec::new();
    let (mut reader, _) = {
        drip.await;
        sock.split()
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), reader.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"kind\":\"bad_request\""), "{answer}");
    assert!(answer.contains("request_body_timeout_ms"), "{answer}");
    assert_eq!(mock.hits("drip"), 0);
}

#[tokio::test]
async fn beyond_max_inflight_the_extra_request_is_shed_while_health_answers() {
    let (_mock, gw) = limited(|c| c.limits.max_inflight = 2).await;
    let hanging: Vec<_> = (0..2)
        .map(|i| {
            let url = format!("{}/chat/completions", gw.base_url());
            tokio::spawn(async move {
                let _ = client()
                    .post(url)
                    .header("x-mock-scenario", "hang")
                    .header("x-mock-key", format!("hang-{i}"))
                    .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await;
            })
        })
        .collect();
    let gauge = || {
        gw.app
            .metrics
            .inflight
            .with_label_values(&["/v1/chat/completions"])
            .get()
    };
    for _ in 0..200 {
        if gauge() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gauge(), 2);
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(
        resp.headers().get("x-should-retry").is_none(),
        "the client may retry later"
    );
    assert_eq!(resp.headers()["x-backstop-attempts"], "0");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["backstop"]["kind"], "overloaded");
    assert_eq!(body["error"]["backstop"]["retryable"], true);
    for ops in ["healthz", "readyz", "metrics"] {
        let r = client()
            .get(format!("http://{}/{ops}", gw.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "/{ops} while shedding");
    }
    let shed = gw
        .app
        .metrics
        .requests
        // Shed before its body was read: the model is not known.
        .with_label_values(&["/v1/chat/completions", "unknown", "hard", "overloaded"])
        .get();
    assert_eq!(shed, 1);
    for h in hanging {
        h.abort();
    }
}

#[tokio::test]
async fn at_the_connection_cap_idle_connections_make_room_for_a_probe() {
    let (_mock, gw) = limited(|c| {
        c.limits.max_connections = 20;
        // Long enough that only the cap's pressure closes them.
        c.limits.header_read_timeout_ms = 30_000;
        c.limits.client_idle_timeout_ms = 60_000;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    let started = Instant::now();
    let probe = tokio::time::timeout(
        Duration::from_secs(5),
        client().get(format!("http://{}/healthz", gw.addr)).send(),
    )
    .await
    .expect("the probe got in")
    .unwrap();
    assert_eq!(probe.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn at_the_drain_deadline_a_stream_closes_with_a_shutdown_event() {
    let (_mock, gw) = limited(|c| c.shutdown.drain_timeout_ms = 500).await;
    let base = gw.base_url();
    let metrics = gw.app.metrics.clone();
    let stream = tokio::spawn(async move {
        client()
            .post(format!("{base}/chat/completions"))
            .header("x-mock-chunks", "200")
            .header("x-mock-chunk-delay-ms", "50")
            .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    gw.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let body = stream.await.unwrap();
    let last = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .last()
        .unwrap();
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["error"]["backstop"]["kind"], "shutdown", "{body}");
    assert_eq!(last["error"]["backstop"]["class"], "aborted");
    let counted = metrics
        .requests
        .with_label_values(&["/v1/chat/completions", "m", "aborted", "shutdown"])
        .get();
    assert_eq!(counted, 1);
}

/// A peak resident set size, from `/proc/PID/status` (Linux).
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn five_megabytes_of_role_only_chunks_pass_in_bounded_memory() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_backstop"))
        .env_clear()
        .env("BACKSTOP_LISTEN", "127.0.0.1:0")
        .env("BACKSTOP_UPSTREAM", mock.base_url())
        .env("BACKSTOP_LOG__LEVEL", "warn")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = common::listening_on(&mut child);
    let pid = child.id();
    let ask = |chunks: u64| {
        let url = format!("{addr}/v1/chat/completions");
        async move {
            client()
                .post(url)
                .header("x-mock-scenario", format!("role_only:{chunks}"))
                .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }
    };
    // Warm up, then measure the peak before and after 5 MB of role chunks.
    ask(100).await;
    let before = vm_hwm_kib(pid);
    let body = ask(65_000).await;
    let after = vm_hwm_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    assert!(body.len() > 5_000_000, "{} bytes passed", body.len());
    assert!(body.ends_with(b"data: [DONE]\n\n"));
    // The lookahead releases after 64 KiB: the stream flows, nothing piles up.
    let grew = after.saturating_sub(before);
    assert!(
        grew < 16 * 1024,
        "peak RSS grew by {grew} KiB ({before} → {after})"
    );
}

#[tokio::test]
async fn the_ops_endpoints_can_have_a_listener_of_their_own() {
    let (_mock, gw) = limited(|c| c.ops_listen = "127.0.0.1:0".into()).await;
    let ops = gw.ops_addr.expect("ops_listen is bound");
    for path in ["healthz", "readyz", "metrics"] {
        let r = client()
            .get(format!("http://{ops}/{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "/{path}");
    }
    // The proxy is not served there.
    let r = client()
        .get(format!("http://{ops}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client()
        .get(format!("{}/models", gw.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the main listener proxies");
}
