//! Failover that keeps users on the model they chose: attempts per target,
//! quick recovery, repair where it can succeed, first-token limits and
//! hedging — against scripted upstreams, with the exact number of requests
//! each target received and timing bounds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backstop::config::Config;
use backstop::server::Running;
use backstop_mock::{MockConfig, MockServer};
use common::scripted::{completion, Answer, Scripted};
use common::{client, gateway, header_text};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A route for `gpt-x` over `primary` then `backup`, each a model of its own.
fn routed(c: &mut Config, backup: &str, extra: Value) {
    c.upstreams.insert(
        "backup".into(),
        serde_json::from_value(json!({"url": backup, "prefill": true})).unwrap(),
    );
    let mut rule = json!({"name": "gpt-x", "models": ["gpt-x"], "targets": [
        {"upstream": "default", "model": "primary-model"},
        {"upstream": "backup", "model": "fallback-model"},
    ]});
    for (k, v) in extra.as_object().unwrap() {
        rule[k] = v.clone();
    }
    c.routes = vec![serde_json::from_value(rule).unwrap()];
}

async fn ask(gw: &Running) -> (u16, String, String, Value) {
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let header = |n: &str| header_text(resp.headers(), n);
    let (status, attempts, target) = (
        resp.status().as_u16(),
        header("x-backstop-attempts"),
        header("x-backstop-target"),
    );
    (
        status,
        attempts,
        target,
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out_on_the_primary() {
    let primary = Scripted::start(|_, n| {
        if n == 0 {
            let mut a = Answer::json(
                429,
                r#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#,
            );
            a.headers.push(("retry-after", "2".into()));
            a
        } else {
            Answer::json(200, &completion("primary-model"))
        }
    })
    .await;
    let backup = Scripted::answering().await;
    let gw = gateway(&primary.base_url(), |c| {
        routed(c, &backup.base_url(), json!({}))
    })
    .await;
    let started = Instant::now();
    let (status, attempts, target, body) = ask(&gw).await;
    let took = started.elapsed();
    assert_eq!(
        (status, attempts.as_str(), target.as_str()),
        (200, "2", "default/primary-model")
    );
    assert_eq!(body["model"], "primary-model");
    assert_eq!((primary.count(), backup.count()), (2, 0));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_lone_5xx_is_retried_on_the_primary_and_a_persistent_one_falls_over() {
    // A lone 500: the second attempt on the primary answers.
    let lone = Scripted::start(|_, n| {
        if n == 0 {
            Answer::json(500, r#"{"error":{"message":"boom","type":"server_error"}}"#)
        } else {
            Answer::json(200, &completion("primary-model"))
        }
    })
    .await;
    let backup = Scripted::answering().await;
    let gw = gateway(&lone.base_url(), |c| {
        routed(c, &backup.base_url(), json!({}))
    })
    .await;
    let (status, attempts, target, _) = ask(&gw).await;
    assert_eq!(
        (status, attempts.as_str(), target.as_str()),
        (200, "2", "default/primary-model")
    );
    assert_eq!((lone.count(), backup.count()), (2, 0));
    // A persistent 503: the primary twice, then the fallback.
    let down = Scripted::start(|_, _| Answer::json(503, r#"{"error":{"message":"down"}}"#)).await;
    let backup = Scripted::answering().await;
    let gw = gateway(&down.base_url(), |c| {
        routed(c, &backup.base_url(), json!({}))
    })
    .await;
    let (status, attempts, target, body) = ask(&gw).await;
    assert_eq!(
        (status, attempts.as_str(), target.as_str()),
        (200, "3", "backup/fallback-model")
    );
    assert_eq!(body["model"], "fallback-model");
    assert_eq!((down.count(), backup.count()), (2, 1));
    // attempts_per_target = 1: straight to the fallback.
    let down = Scripted::start(|_, _| Answer::json(503, r#"{"error":{"message":"down"}}"#)).await;
    let backup = Scripted::answering().await;
    let gw = gateway(&down.base_url(), |c| {
        routed(c, &backup.base_url(), json!({"attempts_per_target": 1}))
    })
    .await;
    let (status, attempts, _, _) = ask(&gw).await;
    assert_eq!((status, attempts.as_str()), (200, "2"));
    assert_eq!((down.count(), backup.count()), (1, 1));
}

#[tokio::test]
async fn a_silent_primary_costs_one_timeout_then_the_fallback_answers() {
    let silent = Scripted::start(|_, _| {
        let mut a = Answer::sse(vec![]);
        a.hang = true;
        a.status = http::StatusCode::OK;
        a.headers.clear();
        a
    })
    .await;
    let backup = Scripted::answering().await;
    let gw = gateway(&silent.base_url(), |c| {
        routed(c, &backup.base_url(), json!({}));
        c.upstream.first_byte_timeout_ms = 300;
    })
    .await;
    let started = Instant::now();
    let (status, attempts, target, _) = ask(&gw).await;
    let took = started.elapsed();
    assert_eq!(
        (status, attempts.as_str(), target.as_str()),
        (200, "2", "backup/fallback-model")
    );
    assert_eq!(
        (silent.count(), backup.count()),
        (1, 1),
        "a timeout moves on at once"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_recovered_primary_is_back_within_the_longest_cooldown() {
    // The 40 s outage, 5 s / 10 s cool-downs and the 10 s bound, scaled by
    // 1/20: down 2 s, cool-down 250 ms doubling to 500 ms.
    let down = Arc::new(AtomicBool::new(true));
    let primary = {
        let down = down.clone();
        Scripted::start(move |_, _| {
            if down.load(Ordering::SeqCst) {
                Answer::json(503, r#"{"error":{"message":"down"}}"#)
            } else {
                Answer::json(200, &completion("primary-model"))
            }
        })
        .await
    };
    let backup = Scripted::answering().await;
    let gw = gateway(&primary.base_url(), |c| {
        routed(c, &backup.base_url(), json!({}));
        c.circuit.consecutive_failures = 2;
        c.circuit.cooldown_ms = 250;
        c.circuit.max_cooldown_ms = 500;
    })
    .await;
    let started = Instant::now();
    let mut recovered_at = None;
    let mut back_at = None;
    // Bounded: at most 200 requests, 20 ms apart.
    for _ in 0..200 {
        if recovered_at.is_none() && started.elapsed() >= Duration::from_secs(2) {
            down.store(false, Ordering::SeqCst);
            recovered_at = Some(Instant::now());
        }
        let (status, _, target, _) = ask(&gw).await;
        assert_eq!(status, 200, "every request is answered");
        if recovered_at.is_some() && target == "default/primary-model" {
            back_at = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let back = back_at
        .expect("the primary came back")
        .duration_since(recovered_at.unwrap());
    assert!(
        back <= Duration::from_millis(700),
        "back {back:?} after recovery (bound: max_cooldown_ms + slack)"
    );
    // During the outage the primary was probed, not hammered: a few probes,
    // not one request per client request.
    let probes = primary.count();
    assert!(probes < 20, "{probes} requests reached the primary");
    let gauge = gw
        .app
        .metrics
        .target_state
        .with_label_values(&["default/primary-model"])
        .get();
    assert_eq!(gauge, 0, "closed again");
}

#[tokio::test]
async fn a_wildcard_target_has_a_circuit_per_model() {
    let primary = Scripted::start(|seen, _| {
        let sent: Value = serde_json::from_slice(&seen.body).unwrap();
        if sent["model"] == "bad-model" {
            Answer::json(503, r#"{"error":{"message":"down"}}"#)
        } else {
            Answer::json(200, &completion(sent["model"].as_str().unwrap()))
        }
    })
    .await;
    let backup = Scripted::answering().await;
    let gw = gateway(&primary.base_url(), |c| {
        c.upstreams.insert(
            "backup".into(),
            serde_json::from_value(json!({"url": backup.base_url()})).unwrap(),
        );
        c.routes = vec![serde_json::from_value(json!({"name": "any", "models": ["*"], "attempts_per_target": 1,
            "targets": [{"upstream": "default"}, {"upstream": "backup", "model": "fallback-model"}]}))
        .unwrap()];
        c.circuit.consecutive_failures = 2;
        c.circuit.cooldown_ms = 60_000;
        c.circuit.max_cooldown_ms = 60_000;
    })
    .await;
    let ask_model = |model: &'static str| {
        let url = format!("{}/chat/completions", gw.base_url());
        async move {
            let resp = client()
                .post(url)
                .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap();
            resp.headers()["x-backstop-target"]
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    for _ in 0..2 {
        assert_eq!(ask_model("bad-model").await, "backup/fallback-model");
    }
    // bad-model's circuit is open: skipped. good-model's is its own.
    assert_eq!(ask_model("bad-model").await, "backup/fallback-model");
    assert_eq!(primary.count(), 2);
    assert_eq!(ask_model("good-model").await, "default/good-model");
    assert_eq!(primary.count(), 3);
    let state = |t: &str| gw.app.metrics.target_state.with_label_values(&[t]).get();
    assert_eq!(
        (state("default/bad-model"), state("default/good-model")),
        (2, 0)
    );
}

/// The SSE events' data of a stream, in order.
fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_stalled_stream_continues_on_the_next_prefill_target_as_one_stream() {
    // The primary stalls after its first content event.
    let primary = MockServer::start(MockConfig {
        mix: vec![("stall:5000".into(), 1)],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let backup = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&primary.base_url(), |c| {
        // Both accept a prefill: a stall still never goes back to the
        // target that stalled.
        for (name, url) in [("primary", primary.base_url()), ("backup", backup.base_url())] {
            c.upstreams.insert(
                name.into(),
                serde_json::from_value(json!({"url": url, "prefill": true, "stream_idle_timeout_ms": 300})).unwrap(),
            );
        }
        c.routes = vec![serde_json::from_value(json!({"name": "gpt-x", "models": ["gpt-x"], "repair_streams": true,
            "targets": [{"upstream": "primary", "model": "primary-model"}, {"upstream": "backup", "model": "fallback-model"}]}))
        .unwrap()];
    })
    .await;
    let started = Instant::now();
    let body = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(
            &json!({"model": "gpt-x", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((primary.total(), backup.total()), (1, 1));
    let events = events(&body);
    assert_eq!(events.last().unwrap(), "[DONE]", "{body}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let first = &chunks[0];
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from backstop-mock.");
    let roles = chunks
        .iter()
        .filter(|c| !c["choices"][0]["delta"]["role"].is_null())
        .count();
    assert_eq!(roles, 1, "one role delta: {body}");
    for c in &chunks {
        assert_eq!(
            (&c["id"], &c["model"], &c["created"]),
            (&first["id"], &first["model"], &first["created"]),
            "{c}"
        );
    }
    // The usage of the whole answer, as an uncut stream reports it.
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        usage,
        &json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}),
        "{body}"
    );
    let repairs = gw
        .app
        .metrics
        .stream_repairs
        .with_label_values(&["/v1/chat/completions"])
        .get();
    assert_eq!(repairs, 1);
    // The stall counted against the primary's circuit, though the attempt
    // had been released as a success: five of them open it.
    for _ in 0..4 {
        client()
            .post(format!("{}/chat/completions", gw.base_url()))
            .json(&json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    let state = gw
        .app
        .metrics
        .target_state
        .with_label_values(&["primary/primary-model"])
        .get();
    assert_eq!(state, 2, "open after five stalls");
}

#[tokio::test]
async fn a_slow_first_token_falls_over_at_the_limit() {
    let slow = MockServer::start(MockConfig {
        mix: vec![("first_token:5000".into(), 1)],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let backup = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&slow.base_url(), |c| {
        c.upstreams.insert(
            "backup".into(),
            serde_json::from_value(json!({"url": backup.base_url()})).unwrap(),
        );
        c.routes =
            vec![
                serde_json::from_value(json!({"name": "gpt-x", "models": ["gpt-x"], "targets": [
            {"upstream": "default", "model": "primary-model", "first_token_timeout_ms": 400},
            {"upstream": "backup", "model": "fallback-model"}]}))
                .unwrap(),
            ];
    })
    .await;
    let started = Instant::now();
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-backstop-target"], "backup/fallback-model");
    assert_eq!(resp.headers()["x-backstop-attempts"], "2");
    let body = resp.text().await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(body.contains("\"model\":\"fallback-model\""), "{body}");
    assert_eq!(
        (slow.total(), backup.total()),
        (1, 1),
        "a timeout moves on at once"
    );
    let timeouts = gw
        .app
        .metrics
        .upstream_attempts
        .with_label_values(&["/v1/chat/completions", "hard", "timeout"])
        .get();
    assert_eq!(timeouts, 1);
}

#[tokio::test]
async fn a_hedge_answers_when_the_primary_is_slow_and_the_primary_is_cancelled() {
    let (dropped_tx, mut dropped) = mpsc::unbounded_channel();
    let primary_hits = Arc::new(AtomicUsize::new(0));
    let primary = {
        let hits = primary_hits.clone();
        Scripted::start(move |_, _| {
            hits.fetch_add(1, Ordering::SeqCst);
            let role = "data: {\"id\":\"p\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"primary-model\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
            let late = "data: {\"id\":\"p\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"primary-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
            let mut a = Answer::sse(vec![(Duration::ZERO, role), (Duration::from_secs(10), late)]);
            a.on_drop = Some(dropped_tx.clone());
            a
        })
        .await
    };
    let backup = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&primary.base_url(), |c| {
        routed(c, &backup.base_url(), json!({"hedge_after_ms": 300}));
    })
    .await;
    let started = Instant::now();
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-backstop-target"], "backup/fallback-model");
    let body = resp.text().await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let text: String = events(&body)
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Hello from backstop-mock.");
    assert!(!body.contains("late"));
    // The primary's request was cancelled: its body dropped before its end.
    let sent = tokio::time::timeout(Duration::from_secs(3), dropped.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent, 1, "only the role chunk had gone out");
    assert_eq!(
        (primary_hits.load(Ordering::SeqCst), backup.total()),
        (1, 1)
    );
    let hedges = |o: &str| {
        gw.app
            .metrics
            .hedges
            .with_label_values(&["/v1/chat/completions", o])
            .get()
    };
    assert_eq!((hedges("hedge_won"), hedges("primary_won")), (1, 0));
}

#[tokio::test]
async fn a_primary_that_answers_before_the_hedge_delay_is_not_hedged() {
    let primary = MockServer::start(MockConfig::default()).await.unwrap();
    let backup = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&primary.base_url(), |c| {
        routed(c, &backup.base_url(), json!({"hedge_after_ms": 2000}));
    })
    .await;
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-backstop-target"], "default/primary-model");
    resp.text().await.unwrap();
    assert_eq!((primary.total(), backup.total()), (1, 0));
    let hedged: u64 = [
        "hedge_won",
        "primary_won",
        "both_failed",
        "budget_exhausted",
    ]
    .iter()
    .map(|o| {
        gw.app
            .metrics
            .hedges
            .with_label_values(&["/v1/chat/completions", o])
            .get()
    })
    .sum();
    assert_eq!(hedged, 0);
}

/// A `MakeWriter` into a shared buffer, for reading the JSON log lines.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn repair_log_lines_belong_to_the_request() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(logs.clone())
        .finish();
    // The test's runtime is single-threaded: every task logs here.
    let _guard = tracing::subscriber::set_default(subscriber);
    // tracing caches each callsite's interest process-wide. With one live
    // dispatcher it is computed against the default of whichever thread
    // reaches the callsite first: a sibling test (no subscriber) driving the
    // same repair would cache `never` and this test would capture nothing.
    // A second live dispatcher, interested in everything, makes tracing ask
    // every live dispatcher instead, this test's included.
    let _anchor = tracing::Dispatch::new(tracing_subscriber::registry());
    let primary = MockServer::start(MockConfig {
        mix: vec![("stall:5000".into(), 1)],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let backup = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&primary.base_url(), |c| {
        routed(c, &backup.base_url(), json!({"repair_streams": true}));
        c.upstream.stream_idle_timeout_ms = 300;
    })
    .await;
    let body = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("x-request-id", "req-repair-1")
        .json(&json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let repair: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("cut stream"))
        })
        .collect();
    assert_eq!(repair.len(), 1, "{text}");
    assert_eq!(
        repair[0]["span"]["request_id"], "req-repair-1",
        "{}",
        repair[0]
    );
    // No record carries two `target` keys.
    for line in text.lines() {
        assert!(line.matches("\"target\":").count() <= 1, "{line}");
    }
}
