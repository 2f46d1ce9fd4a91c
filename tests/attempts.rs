//! One request, one count: the attempts a request made agree in the
//! `x-backstop-attempts` header, the envelope (or a stream's closing error
//! event), `backstop_upstream_attempts_total` and the failure record — for
//! a plain retry, an exhausted chain, a stream cut during the lookahead, and
//! a stream repaired (or not) after its first byte.
//!
//! A stream's headers go out before a repair can happen: its header counts
//! the attempts made until then; the closing event, the metrics and the
//! record count the continuation too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use backstop::server::Running;
use backstop_mock::{MockConfig, MockServer};
use common::scripted::{Answer, Scripted};
use common::{client, gateway};
use serde_json::{json, Value};

const ADMIN: &str = "admin-t0ken";

/// Upstream attempts counted in `backstop_upstream_attempts_total`, all kinds.
fn counted_attempts(gw: &Running) -> u64 {
    let m = &gw.app.metrics;
    backstop::taxonomy::Kind::ALL
        .iter()
        .map(|k| {
            m.upstream_attempts
                .with_label_values(&["/v1/chat/completions", k.class().as_str(), k.as_str()])
                .get()
        })
        .sum()
}

/// The attempts of the last failure record.
async fn recorded_attempts(gw: &Running) -> u64 {
    let records: Value = client()
        .get(format!("http://{}/debug/failures", gw.addr))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    records.as_array().unwrap().last().unwrap()["attempts"]
        .as_u64()
        .unwrap()
}

fn with_records(c: &mut backstop::config::Config) {
    c.debug.failures = true;
    c.debug.admin_token = ADMIN.into();
}

async fn chat(gw: &Running, scenario: &str, key: &str, stream: bool) -> (u16, u64, String) {
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("x-mock-scenario", scenario)
        .header("x-mock-key", key)
        .json(&json!({"model": "gpt-x", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let header = resp.headers()["x-backstop-attempts"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (status, header, resp.text().await.unwrap())
}

/// The `data:` payloads of an SSE body that parse as JSON.
fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[tokio::test]
async fn a_plain_retry_and_an_exhausted_chain_count_the_same_everywhere() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock.base_url(), with_records).await;

    let (status, header, _) = chat(&gw, "status:503,ok", "retry", false).await;
    assert_eq!((status, header, counted_attempts(&gw)), (200, 2, 2));

    let (status, header, body) = chat(&gw, "status:503", "exhausted", false).await;
    let envelope: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 503);
    assert_eq!(header, 3);
    assert_eq!(envelope["error"]["backstop"]["attempts"], 3);
    assert_eq!(counted_attempts(&gw), 2 + 3);
    assert_eq!(recorded_attempts(&gw).await, 3);
}

#[tokio::test]
async fn a_stream_cut_after_its_first_byte_closes_with_the_attempts_it_made() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock.base_url(), with_records).await;
    let (status, header, body) = chat(&gw, "status:503,cut:2", "cut", true).await;
    let last = events(&body).pop().unwrap();
    assert_eq!(status, 200);
    assert_eq!(last["error"]["backstop"]["kind"], "stream_truncated");
    assert_eq!(
        (
            header,
            last["error"]["backstop"]["attempts"].as_u64().unwrap()
        ),
        (2, 2),
        "the header and the closing event agree"
    );
    assert_eq!(counted_attempts(&gw), 2);
    assert_eq!(recorded_attempts(&gw).await, 2);
}

#[tokio::test]
async fn a_stream_cut_during_the_lookahead_is_a_failed_attempt() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock.base_url(), with_records).await;
    // The role chunk, then the connection drops, every time: nothing was
    // released, so each cut is retried and the last one is answered with a
    // status and the envelope, never a 200 with an error event.
    let (status, header, body) = chat(&gw, "cut:0", "cut", true).await;
    let envelope: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 502);
    assert_eq!(envelope["error"]["backstop"]["kind"], "connect_error");
    assert_eq!(
        (
            header,
            envelope["error"]["backstop"]["attempts"].as_u64().unwrap()
        ),
        (3, 3)
    );
    assert_eq!(counted_attempts(&gw), 3);
    assert_eq!(recorded_attempts(&gw).await, 3);
}

/// A continuation upstream answering `status`, streaming the rest when 200.
async fn continuation(status: u16) -> Scripted {
    Scripted::start(move |_, _| {
        if status != 200 {
            return Answer::json(status, r#"{"error":{"message":"continuation failed"}}"#);
        }
        Answer::sse(vec![
            (Duration::ZERO, "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"model\":\"fallback-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" backstop.\"},\"finish_reason\":null}]}\n\n"),
            (Duration::ZERO, "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"model\":\"fallback-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"),
            (Duration::ZERO, "data: [DONE]\n\n"),
        ])
    })
    .await
}

async fn repairing(mock: &MockServer, backup: &Scripted) -> Running {
    let backup_url = backup.base_url();
    gateway(&mock.base_url(), move |c| {
        with_records(c);
        c.upstreams.insert(
            "backup".into(),
            serde_json::from_value(json!({ "url": backup_url, "prefill": true })).unwrap(),
        );
        c.routes = vec![serde_json::from_value(json!({
            "name": "gpt-x",
            "models": ["gpt-x"],
            "targets": [
                {"upstream": "default", "model": "primary-model"},
                {"upstream": "backup", "model": "fallback-model"}
            ],
            "repair_streams": true
        }))
        .unwrap()];
    })
    .await
}

#[tokio::test]
async fn a_repaired_stream_counts_its_continuation_as_an_attempt() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let backup = continuation(200).await;
    let gw = repairing(&mock, &backup).await;
    let (status, header, body) = chat(&gw, "cut:2", "repaired", true).await;
    let content: String = events(&body)
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!((status, content.as_str()), (200, "Hello from backstop."));
    assert!(body.ends_with("data: [DONE]\n\n"));
    assert_eq!(header, 1, "the headers went out before the repair");
    assert_eq!(counted_attempts(&gw), 2);
    assert_eq!(backup.count(), 1);
    let repairs = gw
        .app
        .metrics
        .stream_repairs
        .with_label_values(&["/v1/chat/completions"])
        .get();
    assert_eq!(repairs, 1);
}

#[tokio::test]
async fn a_failed_repair_closes_with_every_attempt_counted() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let backup = continuation(500).await;
    let gw = repairing(&mock, &backup).await;
    let (status, header, body) = chat(&gw, "cut:2", "unrepaired", true).await;
    let last = events(&body).pop().unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        last["error"]["backstop"]["kind"], "stream_truncated",
        "the original failure, not the continuation's"
    );
    assert_eq!(header, 1, "the headers went out before the repair");
    assert_eq!(last["error"]["backstop"]["attempts"], 2);
    assert_eq!(counted_attempts(&gw), 2);
    assert_eq!(recorded_attempts(&gw).await, 2);
}
