//! Soft and silent failures end to end (issue: soft and silent failures):
//! every kind under every policy, streamed and not, against the chaos
//! upstream, with the upstream's attempt count asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backstop::config::Action;
use common::client;
use common::scenario::{call, key, set, setup};
use serde_json::{json, Value};

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

fn json_mode(stream: bool) -> Value {
    let mut b = chat(stream);
    b["response_format"] = json!({"type": "json_object"});
    b
}

fn schema_mode(stream: bool) -> Value {
    let mut b = chat(stream);
    b["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "a", "schema": {
        "type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}}});
    b
}

/// (kind, scenario that produces it, request body)
fn non_stream_cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("content_filter", "finish:content_filter", chat(false)),
        ("length", "finish:length", chat(false)),
        ("empty_content", "empty", chat(false)),
        ("empty_content", "blank", chat(false)),
        ("invalid_json", "bad_json", json_mode(false)),
        ("invalid_json", "bad_args", chat(false)),
        ("schema_mismatch", "schema_bad", schema_mode(false)),
    ]
}

#[tokio::test]
async fn every_non_streamed_kind_under_every_policy() {
    for policy in [Action::Pass, Action::Retry, Action::Fail] {
        for (kind, scenario, body) in non_stream_cases() {
            let (mock, gw) = setup(|c| set(c, kind, policy)).await;
            let got = call(&mock, &gw, "/chat/completions", body.clone(), scenario).await;
            let what = format!("{kind} via {scenario} under {policy:?}: {got:?}");
            match policy {
                // Under pass the schema is not compiled: nobody acts on it.
                Action::Pass if kind == "schema_mismatch" => {
                    assert_eq!(
                        (got.status, got.hits, got.kind.as_str()),
                        (200, 1, "ok"),
                        "{what}"
                    );
                }
                Action::Pass => {
                    assert_eq!((got.status, got.hits), (200, 1), "{what}");
                    assert_eq!(got.kind, kind, "{what}");
                    assert_eq!(got.json()["object"], "chat.completion", "{what}");
                }
                Action::Retry | Action::Fail => {
                    let attempts = if policy == Action::Retry { 3 } else { 1 };
                    let status = if kind == "content_filter" { 400 } else { 502 };
                    assert_eq!((got.status, got.hits), (status, attempts), "{what}");
                    let env = got.json();
                    assert_eq!(env["error"]["backstop"]["kind"], kind, "{what}");
                    assert_eq!(env["error"]["backstop"]["attempts"], attempts, "{what}");
                    assert_eq!(env["error"]["backstop"]["upstream_status"], 200, "{what}");
                    assert_eq!(env["error"]["backstop"]["model"], "gpt-test", "{what}");
                    assert!(
                        env["error"]["backstop"]["hint"]
                            .as_str()
                            .is_some_and(|h| !h.is_empty()),
                        "{what}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn a_retry_that_succeeds_answers_with_the_good_attempt() {
    let (mock, gw) = setup(|_| {}).await;
    let got = call(&mock, &gw, "/chat/completions", chat(false), "empty,ok").await;
    assert_eq!(
        (
            got.status,
            got.hits,
            got.kind.as_str(),
            got.attempts.as_str()
        ),
        (200, 2, "ok", "2")
    );
    assert_eq!(
        got.json()["choices"][0]["message"]["content"],
        "Hello from backstop-mock."
    );
    let got = call(
        &mock,
        &gw,
        "/chat/completions",
        json_mode(false),
        "bad_json,json",
    )
    .await;
    assert_eq!((got.status, got.hits, got.kind.as_str()), (200, 2, "ok"));
}

#[tokio::test]
async fn content_filter_envelope_names_the_filter_and_the_finish_reason() {
    let (mock, gw) = setup(|_| {}).await;
    let got = call(
        &mock,
        &gw,
        "/chat/completions",
        chat(false),
        "finish:content_filter",
    )
    .await;
    assert_eq!(got.status, 400);
    let e = &got.json()["error"];
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(e["backstop"]["class"], "soft");
    assert_eq!(e["backstop"]["finish_reason"], "content_filter");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("content filter"),
        "{e}"
    );
}

#[tokio::test]
async fn tool_calls_with_null_content_pass_untouched() {
    let (mock, gw) = setup(|_| {}).await;
    let got = call(
        &mock,
        &gw,
        "/chat/completions",
        chat(false),
        "finish:tool_calls",
    )
    .await;
    assert_eq!((got.status, got.kind.as_str(), got.hits), (200, "ok", 1));
    let msg = &got.json()["choices"][0]["message"];
    assert_eq!(msg["content"], Value::Null);
    assert!(msg["tool_calls"][0]["function"]["arguments"].is_string());
}

#[tokio::test]
async fn empty_image_data_under_each_policy() {
    let body = json!({"model": "dall-e-3", "prompt": "a cat"});
    for (policy, status, hits) in [
        (Action::Pass, 200, 1),
        (Action::Fail, 502, 1),
        (Action::Retry, 502, 3),
    ] {
        let (mock, gw) = setup(|c| c.inspect.empty_data = policy).await;
        let got = call(
            &mock,
            &gw,
            "/images/generations",
            body.clone(),
            "empty_data",
        )
        .await;
        assert_eq!((got.status, got.hits), (status, hits), "{policy:?} {got:?}");
        if policy == Action::Pass {
            assert_eq!(got.kind, "empty_data");
            assert_eq!(got.json()["data"], json!([]));
        } else {
            assert_eq!(got.json()["error"]["backstop"]["kind"], "empty_data");
        }
    }
}

// ---- streams ----

#[tokio::test]
async fn a_clean_stream_is_forwarded_with_its_done() {
    let (mock, gw) = setup(|_| {}).await;
    let got = call(&mock, &gw, "/chat/completions", chat(true), "ok").await;
    assert_eq!((got.status, got.kind.as_str(), got.hits), (200, "ok", 1));
    let events = got.events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let text: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Hello from backstop-mock.");
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_an_error_event_and_no_done() {
    for policy in [Action::Retry, Action::Fail] {
        let (mock, gw) = setup(|c| c.inspect.stream_truncated = policy).await;
        let got = call(&mock, &gw, "/chat/completions", chat(true), "cut:2").await;
        assert_eq!((got.status, got.hits), (200, 1), "{policy:?}");
        let events = got.events();
        assert!(!events.contains(&"[DONE]".to_string()), "{events:?}");
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(
            last["error"]["backstop"]["kind"], "stream_truncated",
            "{policy:?}"
        );
        assert_eq!(last["error"]["type"], "server_error");
        assert_eq!(
            events.len(),
            4,
            "role chunk, two content chunks, the error: {events:?}"
        );
    }
}

#[tokio::test]
async fn a_cut_stream_under_pass_is_only_annotated() {
    let (mock, gw) = setup(|c| c.inspect.stream_truncated = Action::Pass).await;
    let got = call(&mock, &gw, "/chat/completions", chat(true), "cut:2").await;
    assert_eq!((got.status, got.hits), (200, 1));
    let events = got.events();
    // The stream ends as the upstream cut it: no error event, and no [DONE]
    // either (that would present a cut answer as complete).
    assert_eq!(
        events.len(),
        3,
        "role chunk, two content chunks: {events:?}"
    );
    assert!(events
        .iter()
        .all(|e| !e.contains("\"error\"") && e != "[DONE]"));
    let m = gw.app.metrics.requests.with_label_values(&[
        "/v1/chat/completions",
        "gpt-test",
        "silent",
        "stream_truncated",
    ]);
    assert_eq!(m.get(), 1, "counted for what it was");
}

#[tokio::test]
async fn a_stream_missing_done_gets_one() {
    let (mock, gw) = setup(|_| {}).await;
    let got = call(&mock, &gw, "/chat/completions", chat(true), "nodone").await;
    assert_eq!(got.status, 200);
    assert!(got.body.ends_with("data: [DONE]\n\n"), "{}", got.body);
    assert_eq!(got.body.matches("[DONE]").count(), 1);
}

#[tokio::test]
async fn a_malformed_event_is_dropped_and_the_stream_flows_on() {
    let (mock, gw) = setup(|_| {}).await;
    let got = call(&mock, &gw, "/chat/completions", chat(true), "malformed").await;
    assert_eq!(got.status, 200);
    assert!(!got.body.contains("{not json"), "{}", got.body);
    for e in got.events() {
        assert!(
            e == "[DONE]" || serde_json::from_str::<Value>(&e).is_ok(),
            "{e}"
        );
    }
    assert!(got.body.ends_with("data: [DONE]\n\n"));
    let metrics = metrics_of(&gw).await;
    assert!(
        metrics.contains("backstop_malformed_events_total{route=\"/v1/chat/completions\"} 1"),
        "{metrics}"
    );
}

/// The gateway's metrics page.
async fn metrics_of(gw: &backstop::server::Running) -> String {
    client()
        .get(format!("http://{}/metrics", gw.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// An SSE event past the parser's 4 MiB cap (a streamed image, say) cannot
/// be read, but it is the client's answer: it goes out unread, byte for
/// byte, and the stream's verdict no longer rests on the content.
#[tokio::test]
async fn an_event_too_large_to_read_goes_out_unread_and_the_stream_ends_clean() {
    let (mock, gw) = setup(|_| {}).await;
    let responses = json!({"model": "gpt-test", "input": "hi", "stream": true});
    for (path, body) in [("/chat/completions", chat(true)), ("/responses", responses)] {
        let got = call(&mock, &gw, path, body, "oversized:5000000:1").await;
        assert_eq!((got.status, got.hits), (200, 1), "{path}");
        // The big event went out whole (the Responses API repeats the text
        // in its terminal event, past the cap too).
        let big = got.named_events().iter().map(|(_, data)| data.len()).max();
        let big = big.unwrap_or_default();
        assert!(big >= 4_999_990, "{path}: the largest event is {big} bytes");
        assert!(
            !got.body.contains("\"error\":{"),
            "{path}: no closing error"
        );
        if path == "/chat/completions" {
            assert!(got.body.ends_with("data: [DONE]\n\n"));
        } else {
            assert_eq!(got.named_events().last().unwrap().0, "response.completed");
        }
    }
    let metrics = metrics_of(&gw).await;
    for route in ["/v1/chat/completions", "/v1/responses"] {
        let line = format!("backstop_uninspected_responses_total{{route=\"{route}\"}} 1");
        assert!(metrics.contains(&line), "{line}");
    }
    assert!(
        !metrics.contains("backstop_malformed_events_total{"),
        "nothing was malformed"
    );
}

#[tokio::test]
async fn a_stalled_stream_is_truncated_at_the_idle_timeout() {
    let (mock, gw) = setup(|c| c.upstream.stream_idle_timeout_ms = 150).await;
    let got = call(&mock, &gw, "/chat/completions", chat(true), "stall:5000").await;
    assert_eq!(got.status, 200);
    let last: Value = serde_json::from_str(got.events().last().unwrap()).unwrap();
    assert_eq!(last["error"]["backstop"]["kind"], "stream_truncated");
}

#[tokio::test]
async fn a_stream_that_opens_with_a_content_filter_is_answered_like_a_body() {
    // Nothing reached the client yet, so the answer is the 400 envelope,
    // not a 200 stream with an error inside.
    let (mock, gw) = setup(|_| {}).await;
    let got = call(
        &mock,
        &gw,
        "/chat/completions",
        chat(true),
        "finish:content_filter",
    )
    .await;
    assert_eq!((got.status, got.hits), (400, 1), "{got:?}");
    assert_eq!(got.json()["error"]["backstop"]["kind"], "content_filter");
    // Under retry it is tried again, before any byte went out.
    let (mock, gw) = setup(|c| c.inspect.content_filter = Action::Retry).await;
    let got = call(
        &mock,
        &gw,
        "/chat/completions",
        chat(true),
        "finish:content_filter,ok",
    )
    .await;
    assert_eq!(
        (got.status, got.hits, got.attempts.as_str()),
        (200, 2, "2"),
        "{got:?}"
    );
}

#[tokio::test]
async fn an_empty_stream_is_retried_before_the_first_byte() {
    let (mock, gw) = setup(|_| {}).await;
    let got = call(&mock, &gw, "/chat/completions", chat(true), "empty,ok").await;
    assert_eq!((got.status, got.hits), (200, 2), "{got:?}");
    assert!(got.body.contains("Hello"));
}

#[tokio::test]
async fn length_on_a_stream_under_pass_and_fail() {
    let (mock, gw) = setup(|_| {}).await;
    let got = call(&mock, &gw, "/chat/completions", chat(true), "finish:length").await;
    assert_eq!(got.status, 200);
    assert!(got.body.ends_with("data: [DONE]\n\n"));
    let (mock, gw) = setup(|c| c.inspect.length = Action::Fail).await;
    let got = call(&mock, &gw, "/chat/completions", chat(true), "finish:length").await;
    assert_eq!(got.status, 200, "content already went out");
    let last: Value = serde_json::from_str(got.events().last().unwrap()).unwrap();
    assert_eq!(last["error"]["backstop"]["kind"], "length");
    assert_eq!(last["error"]["backstop"]["finish_reason"], "length");
}

#[tokio::test]
async fn invalid_json_on_a_stream_fails_at_the_end() {
    let (mock, gw) = setup(|_| {}).await;
    let got = call(&mock, &gw, "/chat/completions", json_mode(true), "bad_json").await;
    let last: Value = serde_json::from_str(got.events().last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["backstop"]["kind"], "invalid_json",
        "{}",
        got.body
    );
    let got = call(&mock, &gw, "/chat/completions", json_mode(true), "json").await;
    assert!(got.body.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn video_tasks_are_normalized_and_early_not_found_polls_retried() {
    let (mock, gw) = setup(|c| c.inspect.task_not_ready_retry_ms = 10).await;
    let c = client();
    let created: Value = c
        .post(format!("{}/videos", gw.base_url()))
        .json(&json!({"model": "kling-v1", "prompt": "a cat"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let poll = |scenario: &'static str, k: String| {
        let url = format!("{}/videos/{id}", gw.base_url());
        let c = c.clone();
        async move {
            c.get(url)
                .header("x-mock-scenario", scenario)
                .header("x-mock-key", k)
                .send()
                .await
                .unwrap()
        }
    };
    // Two "task_not_exist" answers, then the task: retried inside the gateway.
    let k = key();
    let first = poll("task_not_exist:2", k.clone()).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-backstop-attempts"], "3");
    assert_eq!(mock.hits(&k), 3);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    let done: Value = poll("ok", key()).await.json().await.unwrap();
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["backstop_original_status"], "succeed");
    let failed = poll("video_failed", key()).await;
    assert!(failed.headers()["x-backstop-hint"]
        .to_str()
        .unwrap()
        .contains("filtered"));
    // An id this gateway never saw created: the 404 surfaces at once.
    let k = key();
    let unknown = c
        .get(format!("{}/videos/never-created", gw.base_url()))
        .header("x-mock-scenario", "task_not_exist:5")
        .header("x-mock-key", &k)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(mock.hits(&k), 1);
}

#[tokio::test]
async fn policies_are_overridden_per_model_and_per_route() {
    let (mock, gw) = setup(|c| {
        c.inspect.overrides = serde_json::from_value(json!([
            {"models": ["gpt-strict*"], "length": "fail"},
            {"routes": ["/v1/images/generations"], "empty_data": "fail"},
        ]))
        .unwrap();
    })
    .await;
    let mut strict = chat(false);
    strict["model"] = json!("gpt-strict-1");
    let got = call(&mock, &gw, "/chat/completions", strict, "finish:length").await;
    assert_eq!((got.status, got.hits), (502, 1), "{got:?}");
    assert_eq!(got.json()["error"]["backstop"]["kind"], "length");
    let got = call(
        &mock,
        &gw,
        "/chat/completions",
        chat(false),
        "finish:length",
    )
    .await;
    assert_eq!(
        (got.status, got.kind.as_str()),
        (200, "length"),
        "other models keep the global pass"
    );
    let image = json!({"model": "dall-e-3", "prompt": "a cat"});
    let got = call(&mock, &gw, "/images/generations", image, "empty_data").await;
    assert_eq!(got.status, 502);
}
