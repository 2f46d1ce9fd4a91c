//! Fallbacks, circuit breaking and pacing end to end (issue: fallbacks):
//! a gateway with two or three scripted upstreams, attempts counted per
//! target.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backstop::config::{Config, RouteRule, TargetEntry, UpstreamEntry};
use common::scripted::{completion, Answer, Scripted};
use common::{client, gateway};
use serde_json::{json, Value};
use tokio::time::Instant;

fn target(upstream: &str, model: &str) -> TargetEntry {
    TargetEntry {
        upstream: upstream.into(),
        model: Some(model.into()),
        context_window: None,
        first_token_timeout_ms: None,
    }
}

/// A rule for `gpt-x*` with the default `fallback_on`.
fn route(targets: Vec<TargetEntry>) -> RouteRule {
    let mut rule: RouteRule =
        serde_json::from_value(json!({"name": "gpt-x", "models": ["gpt-x*"], "targets": []}))
            .unwrap();
    rule.targets = targets;
    rule
}

fn upstream(url: String) -> UpstreamEntry {
    serde_json::from_value(json!({ "url": url })).unwrap()
}

async fn ask(base: &str, model: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .post(format!("{base}/chat/completions"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_outage_is_served_from_the_fallback_and_the_primary_is_probed_and_restored() {
    let down = Arc::new(AtomicBool::new(true));
    let primary = {
        let down = down.clone();
        Scripted::start(move |_, _| {
            if down.load(Ordering::SeqCst) {
                Answer::json(503, r#"{"error":{"message":"overloaded"}}"#)
            } else {
                Answer::json(200, &completion("primary-model"))
            }
        })
        .await
    };
    let backup = Scripted::answering().await;
    let gw = gateway(&primary.base_url(), |c: &mut Config| {
        c.upstreams
            .insert("backup".into(), upstream(backup.base_url()));
        // One attempt per target, so that each request shows one primary
        // failure (the default, two, has its own test).
        let mut rule = route(vec![
            target("default", "primary-model"),
            target("backup", "fallback-model"),
        ]);
        rule.attempts_per_target = 1;
        c.routes = vec![rule];
        c.circuit.consecutive_failures = 2;
        c.circuit.cooldown_ms = 300;
    })
    .await;
    let base = gw.base_url();

    // Two requests: each fails on the primary and is answered by the backup.
    for n in 1..=2 {
        let (status, h, body) = ask(&base, "gpt-x").await;
        assert_eq!(status, 200);
        assert_eq!(h["x-backstop-target"], "backup/fallback-model");
        assert_eq!(h["x-backstop-attempts"], "2");
        assert_eq!(body["model"], "fallback-model", "the model that answered");
        assert_eq!(primary.count(), n);
        assert_eq!(backup.count(), n);
    }
    let sent: Value = serde_json::from_slice(&primary.seen()[0].body).unwrap();
    assert_eq!(sent["model"], "primary-model");
    // The primary's circuit is open: it is skipped, not tried.
    let (status, h, _) = ask(&base, "gpt-x").await;
    assert_eq!(
        (status, h["x-backstop-attempts"].to_str().unwrap()),
        (200, "1")
    );
    assert_eq!(primary.count(), 2);
    // After the cool-down one probe goes to the recovered primary and closes it.
    down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (status, h, body) = ask(&base, "gpt-x").await;
    assert_eq!(status, 200);
    assert_eq!(h["x-backstop-target"], "default/primary-model");
    assert_eq!(body["model"], "primary-model");
    assert_eq!(primary.count(), 3);
    let (_, h, _) = ask(&base, "gpt-x").await;
    assert_eq!(h["x-backstop-target"], "default/primary-model");
    assert_eq!(backup.count(), 3);

    let text = client()
        .get(format!("http://{}/metrics", gw.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let t = |from: &str, to: &str| {
        metric(
            &text,
            &format!(
                r#"backstop_circuit_transitions_total{{from="{from}",target="default/primary-model",to="{to}"}}"#
            ),
        )
    };
    assert_eq!(
        (
            t("closed", "open"),
            t("open", "half_open"),
            t("half_open", "closed")
        ),
        (1.0, 1.0, 1.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"backstop_target_state{target="default/primary-model"}"#
        ),
        0.0
    );
    assert_eq!(
        metric(
            &text,
            r#"backstop_fallbacks_total{from="default/primary-model",kind="server_error",to="backup/fallback-model"}"#
        ),
        2.0
    );
}

#[tokio::test]
async fn a_content_filter_rejection_is_not_routed_around_unless_named() {
    let primary = Scripted::start(|_, n| {
        if n % 2 == 0 {
            Answer::json(400, r#"{"code":"content_filtered","message":"Your request was rejected due to content policy","data":null}"#)
        } else {
            Answer::json(
                200,
                r#"{"model":"primary-model","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"content_filter"}]}"#,
            )
        }
    })
    .await;
    let backup = Scripted::answering().await;
    let gw = gateway(&primary.base_url(), |c| {
        c.upstreams
            .insert("backup".into(), upstream(backup.base_url()));
        c.routes = vec![route(vec![
            target("default", "primary-model"),
            target("backup", "fallback-model"),
        ])];
    })
    .await;
    for _ in 0..2 {
        let (status, _, body) = ask(&gw.base_url(), "gpt-x").await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["backstop"]["kind"], "content_filter");
    }
    assert_eq!((primary.count(), backup.count()), (2, 0));

    // Named explicitly, it falls over.
    let gw = gateway(&primary.base_url(), |c| {
        c.upstreams
            .insert("backup".into(), upstream(backup.base_url()));
        let mut r = route(vec![
            target("default", "primary-model"),
            target("backup", "fallback-model"),
        ]);
        r.fallback_on.push("content_filter".into());
        c.routes = vec![r];
    })
    .await;
    let (status, h, _) = ask(&gw.base_url(), "gpt-x").await;
    assert_eq!(status, 200);
    assert_eq!(h["x-backstop-target"], "backup/fallback-model");
}

#[tokio::test]
async fn context_length_falls_over_only_to_a_larger_target() {
    let small = Scripted::start(|_, _| {
        Answer::json(400, r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#)
    })
    .await;
    let smaller = Scripted::answering().await;
    let large = Scripted::answering().await;
    let gw = gateway(&small.base_url(), |c| {
        c.upstreams
            .insert("smaller".into(), upstream(smaller.base_url()));
        c.upstreams
            .insert("large".into(), upstream(large.base_url()));
        let with_window = |mut t: TargetEntry, w: u64| {
            t.context_window = Some(w);
            t
        };
        c.routes = vec![route(vec![
            with_window(target("default", "m-8k"), 8_192),
            with_window(target("smaller", "m-4k"), 4_096),
            with_window(target("large", "m-128k"), 128_000),
        ])];
    })
    .await;
    let (status, h, body) = ask(&gw.base_url(), "gpt-x").await;
    assert_eq!(status, 200);
    assert_eq!(h["x-backstop-target"], "large/m-128k");
    assert_eq!(body["model"], "m-128k");
    assert_eq!((small.count(), smaller.count(), large.count()), (1, 0, 1));
}

#[tokio::test]
async fn a_silent_primary_is_timed_out_once_then_the_fallback_answers() {
    let silent = Scripted::start(|_, _| {
        let mut a = Answer::sse(vec![]);
        a.hang = true;
        a.headers = vec![("content-type", "application/json".into())];
        a
    })
    .await;
    let backup = Scripted::answering().await;
    let gw = gateway(&silent.base_url(), |c| {
        c.upstream.first_byte_timeout_ms = 60_000;
        c.upstreams
            .insert("backup".into(), upstream(backup.base_url()));
        let mut slow = target("default", "primary-model");
        slow.first_token_timeout_ms = Some(300);
        c.routes = vec![route(vec![slow, target("backup", "fallback-model")])];
    })
    .await;
    // A stream: the primary's headers come, its first event never does.
    let start = Instant::now();
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("x-stainless-timeout", "5")
        .json(&json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let target = resp.headers()["x-backstop-target"]
        .to_str()
        .unwrap()
        .to_string();
    resp.bytes().await.unwrap();
    assert_eq!((status, target.as_str()), (200, "backup/fallback-model"));
    assert_eq!(
        (silent.count(), backup.count()),
        (1, 1),
        "the silent primary is not waited on twice"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn an_exhausted_chain_lists_every_attempt_kind() {
    let primary =
        Scripted::start(|_, _| Answer::json(503, r#"{"error":{"message":"down"}}"#)).await;
    let backup = Scripted::start(|_, _| {
        Answer::json(
            429,
            r#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#,
        )
    })
    .await;
    let gw = gateway(&primary.base_url(), |c| {
        c.upstreams
            .insert("backup".into(), upstream(backup.base_url()));
        c.routes = vec![route(vec![
            target("default", "primary-model"),
            target("backup", "fallback-model"),
        ])];
    })
    .await;
    let (status, h, body) = ask(&gw.base_url(), "gpt-x").await;
    assert_eq!(status, 429);
    assert_eq!(h["x-backstop-attempts"], "3");
    let b = &body["error"]["backstop"];
    // The primary gets its two attempts (a lone 5xx is retried there),
    // then the backup the last one the chain has.
    assert_eq!(
        b["attempt_kinds"],
        json!(["server_error", "server_error", "rate_limited"])
    );
    assert_eq!(b["target"], "backup/fallback-model");
    assert_eq!(
        (primary.count(), backup.count()),
        (2, 1),
        "one attempt count for the whole chain"
    );
}

#[tokio::test]
async fn pacing_keeps_a_target_within_its_advertised_remaining_requests() {
    // The upstream advertises 10 requests left with a reset 1.5 s after its
    // first answer, then counts down; after the reset a new window starts.
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let up = {
        let arrivals = arrivals.clone();
        Scripted::start(move |_, n| {
            arrivals.lock().unwrap().push(Instant::now());
            let mut a = Answer::json(200, &completion("m"));
            let remaining = if n <= 10 { 10 - n } else { 20 - n };
            a.headers
                .push(("x-ratelimit-remaining-requests", remaining.to_string()));
            a.headers
                .push(("x-ratelimit-reset-requests", "1.5s".into()));
            a
        })
        .await
    };
    let gw = gateway(&up.base_url(), |_| {}).await;
    for _ in 0..13 {
        let (status, _, _) = ask(&gw.base_url(), "m").await;
        assert_eq!(status, 200);
    }
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 13);
    // The first answer said 10 left: requests 2..=11 went at once, the 12th
    // waited for the reset announced by the first answer.
    let reset = arrivals[0] + Duration::from_millis(1_500);
    assert!(arrivals[10] < reset, "the 11th went before the reset");
    assert!(
        arrivals[11] >= reset - Duration::from_millis(20),
        "the 12th waited for the reset"
    );
    let text = client()
        .get(format!("http://{}/metrics", gw.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&text, r#"backstop_pacing_waits_total{target="default"}"#),
        1.0
    );
}

/// A continuation upstream: checks the prefill and streams the rest.
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

async fn repair_gateway(
    mock_url: String,
    backup: &Scripted,
    prefill: bool,
) -> backstop::server::Running {
    let backup_url = backup.base_url();
    gateway(&mock_url, move |c| {
        c.upstreams.insert(
            "backup".into(),
            serde_json::from_value(json!({ "url": backup_url, "prefill": prefill })).unwrap(),
        );
        let mut r = route(vec![
            target("default", "primary-model"),
            target("backup", "fallback-model"),
        ]);
        r.repair_streams = true;
        c.routes = vec![r];
    })
    .await
}

async fn cut_stream(base: &str) -> (String, Vec<Value>) {
    let text = client()
        .post(format!("{base}/chat/completions"))
        .header("x-mock-scenario", "cut:2")
        .json(&json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    (
        format!("{content}|{}", text.ends_with("data: [DONE]\n\n")),
        events,
    )
}

#[tokio::test]
async fn a_cut_stream_is_repaired_on_a_prefill_capable_target() {
    let mock = backstop_mock::MockServer::start(backstop_mock::MockConfig::default())
        .await
        .unwrap();
    let backup = continuation(200).await;
    let gw = repair_gateway(mock.base_url(), &backup, true).await;
    let (summary, _) = cut_stream(&gw.base_url()).await;
    assert_eq!(summary, "Hello from backstop.|true", "one complete answer");
    let sent: Value = serde_json::from_slice(&backup.seen()[0].body).unwrap();
    assert_eq!(sent["model"], "fallback-model");
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "content": "Hello from"})
    );
    assert_eq!(backup.count(), 1);
}

#[tokio::test]
async fn without_prefill_or_when_the_continuation_fails_the_original_error_closes_the_stream() {
    let mock = backstop_mock::MockServer::start(backstop_mock::MockConfig::default())
        .await
        .unwrap();
    for (prefill, status, continuations) in [(false, 200, 0), (true, 500, 1)] {
        let backup = continuation(status).await;
        let gw = repair_gateway(mock.base_url(), &backup, prefill).await;
        let (summary, events) = cut_stream(&gw.base_url()).await;
        assert_eq!(summary, "Hello from|false", "prefill {prefill}");
        let last = events.last().unwrap();
        assert_eq!(
            last["error"]["backstop"]["kind"], "stream_truncated",
            "the original failure, not the continuation's"
        );
        assert_eq!(backup.count(), continuations);
    }
}
