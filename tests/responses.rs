//! The Responses API (`/v1/responses`) end to end against the chaos
//! upstream: every kind under every policy, streamed and not, with the exact
//! status, kind, attempts, closing event and metric deltas; background
//! creates and polls; the 200-error-body rule on every inspected endpoint;
//! the hint in `error.message`, on and off.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backstop::config::Action;
use backstop::server::Running;
use backstop_mock::{MockConfig, MockServer};
use common::scenario::{call, set, setup};
use common::{client, gateway};
use serde_json::{json, Value};

const ROUTE: &str = "/v1/responses";
const MODEL: &str = "gpt-resp";

fn request(stream: bool) -> Value {
    json!({"model": MODEL, "input": "hi", "stream": stream})
}

fn json_object(stream: bool) -> Value {
    let mut b = request(stream);
    b["text"] = json!({"format": {"type": "json_object"}});
    b
}

fn json_schema(stream: bool) -> Value {
    let mut b = request(stream);
    b["text"] = json!({"format": {"type": "json_schema", "name": "a", "strict": true, "schema": {
        "type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}}});
    b
}

fn counter(gw: &Running, class: &str, kind: &str) -> u64 {
    gw.app
        .metrics
        .requests
        .with_label_values(&[ROUTE, MODEL, class, kind])
        .get()
}

fn finish_reason(gw: &Running, reason: &str) -> u64 {
    gw.app
        .metrics
        .finish_reasons
        .with_label_values(&[ROUTE, MODEL, reason])
        .get()
}

fn class_of(kind: &str) -> &'static str {
    match kind {
        "content_filter" | "length" => "soft",
        _ => "silent",
    }
}

/// (kind, scenario, request, the finish reason counted per attempt).
fn soft_and_silent(stream: bool) -> Vec<(&'static str, &'static str, Value, &'static str)> {
    vec![
        (
            "content_filter",
            "finish:content_filter",
            request(stream),
            "content_filter",
        ),
        ("length", "finish:length", request(stream), "length"),
        ("empty_content", "empty", request(stream), "stop"),
        ("invalid_json", "bad_json", json_object(stream), "stop"),
        ("invalid_json", "bad_args", request(stream), "tool_calls"),
        ("schema_mismatch", "schema_bad", json_schema(stream), "stop"),
    ]
}

#[tokio::test]
async fn every_whole_kind_under_every_policy() {
    for policy in [Action::Pass, Action::Retry, Action::Fail] {
        for (kind, scenario, body, reason) in soft_and_silent(false) {
            let (mock, gw) = setup(|c| set(c, kind, policy)).await;
            let got = call(&mock, &gw, "/responses", &body, scenario).await;
            let what = format!("{kind} via {scenario} under {policy:?}: {got:?}");
            let attempts = if policy == Action::Retry { 3 } else { 1 };
            assert_eq!(got.hits, attempts, "{what}");
            assert_eq!(got.attempts, attempts.to_string(), "{what}");
            assert_eq!(finish_reason(&gw, reason), attempts, "{what}");
            if policy == Action::Pass && kind == "schema_mismatch" {
                // Under pass the schema is not compiled: nobody acts on it.
                assert_eq!((got.status, got.kind.as_str()), (200, "ok"), "{what}");
                assert_eq!(counter(&gw, "none", "ok"), 1, "{what}");
                continue;
            }
            assert_eq!(got.kind, kind, "{what}");
            assert_eq!(counter(&gw, class_of(kind), kind), 1, "{what}");
            if policy == Action::Pass {
                assert_eq!(got.status, 200, "{what}");
                assert_eq!(got.json()["object"], "response", "{what}");
                continue;
            }
            let status = if kind == "content_filter" { 400 } else { 502 };
            assert_eq!(got.status, status, "{what}");
            let e = &got.json()["error"];
            assert_eq!(e["backstop"]["kind"], kind, "{what}");
            assert_eq!(e["backstop"]["attempts"], attempts, "{what}");
            assert_eq!(e["backstop"]["upstream_status"], 200, "{what}");
            assert_eq!(e["backstop"]["model"], MODEL, "{what}");
            assert_eq!(
                e["backstop"]["retryable"],
                policy == Action::Retry,
                "{what}"
            );
            let tail = format!(
                " [backstop: {kind} after {attempts} attempt(s): {}]",
                e["backstop"]["hint"].as_str().unwrap()
            );
            assert!(e["message"].as_str().unwrap().ends_with(&tail), "{what}");
        }
    }
}

#[tokio::test]
async fn a_good_answer_passes_intact_and_is_counted_in_the_chat_vocabulary() {
    let (mock, gw) = setup(|_| {}).await;
    let got = call(&mock, &gw, "/responses", &request(false), "ok").await;
    assert_eq!((got.status, got.kind.as_str(), got.hits), (200, "ok", 1));
    let body = got.json();
    assert_eq!(body["status"], "completed");
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "Hello from backstop-mock."
    );
    assert_eq!(finish_reason(&gw, "stop"), 1);
    let tokens = |t: &str| gw.app.metrics.tokens.with_label_values(&[MODEL, t]).get();
    assert_eq!((tokens("prompt"), tokens("completion")), (5, 3));
    let got = call(
        &mock,
        &gw,
        "/responses",
        &request(false),
        "finish:tool_calls",
    )
    .await;
    assert_eq!((got.status, got.kind.as_str()), (200, "ok"));
    assert_eq!(got.json()["output"][0]["type"], "function_call");
    assert_eq!(finish_reason(&gw, "tool_calls"), 1);
    let got = call(&mock, &gw, "/responses", &json_schema(false), "json").await;
    assert_eq!((got.status, got.kind.as_str()), (200, "ok"));
}

#[tokio::test]
async fn a_failed_response_is_its_errors_kind() {
    let (mock, gw) = setup(|_| {}).await;
    for stream in [false, true] {
        let got = call(
            &mock,
            &gw,
            "/responses",
            &request(stream),
            "failed:server_error",
        )
        .await;
        assert_eq!(
            (got.status, got.hits, got.kind.as_str()),
            (502, 3, "server_error"),
            "{got:?}"
        );
        let e = &got.json()["error"];
        assert_eq!(e["code"], "server_error");
        assert_eq!(e["backstop"]["upstream_status"], 200);
        assert_eq!(e["backstop"]["retryable"], true);
        let got = call(
            &mock,
            &gw,
            "/responses",
            &request(stream),
            "failed:invalid_prompt",
        )
        .await;
        assert_eq!(
            (got.status, got.hits, got.kind.as_str()),
            (400, 1, "bad_request"),
            "{got:?}"
        );
        assert_eq!(got.json()["error"]["code"], "invalid_prompt");
        let got = call(
            &mock,
            &gw,
            "/responses",
            &request(stream),
            "failed:server_error,ok",
        )
        .await;
        assert_eq!(
            (got.status, got.hits, got.kind.as_str()),
            (200, 2, "ok"),
            "{got:?}"
        );
    }
    assert_eq!(counter(&gw, "hard", "server_error"), 2);
    assert_eq!(counter(&gw, "hard", "bad_request"), 2);
    assert_eq!(counter(&gw, "none", "ok"), 2);
}

#[tokio::test]
async fn a_clean_stream_keeps_its_event_names_and_gets_no_done() {
    let (mock, gw) = setup(|_| {}).await;
    let got = call(&mock, &gw, "/responses", &request(true), "ok").await;
    assert_eq!((got.status, got.kind.as_str(), got.hits), (200, "ok", 1));
    let names: Vec<String> = got.named_events().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.first().unwrap(), "response.created");
    assert_eq!(names.last().unwrap(), "response.completed");
    assert!(
        !got.body.contains("[DONE]"),
        "the Responses API has no [DONE]"
    );
    let text: String = got
        .named_events()
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["delta"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, "Hello from backstop-mock.");
    assert_eq!(finish_reason(&gw, "stop"), 1);
    assert_eq!(counter(&gw, "none", "ok"), 1);
}

/// How a stream's failure reaches the client.
#[derive(Debug, PartialEq)]
enum Seen {
    /// The whole stream, complete: its terminal event last.
    Complete(&'static str),
    /// A 200 stream that ends with `event: error` carrying this kind.
    ErrorEvent,
    /// The envelope as the answer (nothing had gone out yet).
    Envelope(u16),
    /// The stream as the upstream cut it: no error event, no terminal one.
    Cut,
}

#[tokio::test]
async fn every_streamed_kind_under_every_policy() {
    use Seen::{Complete, Cut, Envelope, ErrorEvent};
    // (kind, scenario, request, policy, what the client sees, upstream hits)
    let cases: Vec<(&str, &str, Value, Action, Seen, u64)> = vec![
        // Filtered before any output: decided before the first byte.
        (
            "content_filter",
            "finish:content_filter",
            request(true),
            Action::Pass,
            Complete("response.incomplete"),
            1,
        ),
        (
            "content_filter",
            "finish:content_filter",
            request(true),
            Action::Fail,
            Envelope(400),
            1,
        ),
        (
            "content_filter",
            "finish:content_filter",
            request(true),
            Action::Retry,
            Envelope(400),
            3,
        ),
        // The text went out first: only the end can say so.
        (
            "length",
            "finish:length",
            request(true),
            Action::Pass,
            Complete("response.incomplete"),
            1,
        ),
        (
            "length",
            "finish:length",
            request(true),
            Action::Fail,
            ErrorEvent,
            1,
        ),
        (
            "length",
            "finish:length",
            request(true),
            Action::Retry,
            ErrorEvent,
            1,
        ),
        (
            "empty_content",
            "empty",
            request(true),
            Action::Pass,
            Complete("response.completed"),
            1,
        ),
        (
            "empty_content",
            "empty",
            request(true),
            Action::Fail,
            Envelope(502),
            1,
        ),
        (
            "empty_content",
            "empty",
            request(true),
            Action::Retry,
            Envelope(502),
            3,
        ),
        (
            "invalid_json",
            "bad_json",
            json_object(true),
            Action::Pass,
            Complete("response.completed"),
            1,
        ),
        (
            "invalid_json",
            "bad_json",
            json_object(true),
            Action::Fail,
            ErrorEvent,
            1,
        ),
        (
            "invalid_json",
            "bad_json",
            json_object(true),
            Action::Retry,
            ErrorEvent,
            1,
        ),
        (
            "invalid_json",
            "bad_args",
            request(true),
            Action::Fail,
            ErrorEvent,
            1,
        ),
        (
            "schema_mismatch",
            "schema_bad",
            json_schema(true),
            Action::Pass,
            Complete("response.completed"),
            1,
        ),
        (
            "schema_mismatch",
            "schema_bad",
            json_schema(true),
            Action::Retry,
            ErrorEvent,
            1,
        ),
        (
            "stream_truncated",
            "cut:2",
            request(true),
            Action::Pass,
            Cut,
            1,
        ),
        (
            "stream_truncated",
            "cut:2",
            request(true),
            Action::Fail,
            ErrorEvent,
            1,
        ),
        (
            "stream_truncated",
            "cut:2",
            request(true),
            Action::Retry,
            ErrorEvent,
            1,
        ),
        (
            "stream_truncated",
            "nodone",
            request(true),
            Action::Retry,
            ErrorEvent,
            1,
        ),
        (
            "stream_truncated",
            "nodone",
            request(true),
            Action::Pass,
            Cut,
            1,
        ),
    ];
    for (kind, scenario, body, policy, seen, hits) in cases {
        let (mock, gw) = setup(|c| {
            set(c, kind, policy);
            // Each step's events are apart, so what went out when is fixed.
            c.inspect.stream_lookahead_max_ms = 2_000;
        })
        .await;
        let got = call(&mock, &gw, "/responses", &body, scenario).await;
        let what = format!("{kind} via {scenario} under {policy:?}: {got:?}");
        assert_eq!(got.hits, hits, "{what}");
        // Under pass a schema is not compiled (nobody acts on it).
        let counted = if kind == "schema_mismatch" && policy == Action::Pass {
            ("none", "ok")
        } else {
            (class_of(kind), kind)
        };
        assert_eq!(counter(&gw, counted.0, counted.1), 1, "{what}");
        match seen {
            Complete(terminal) => {
                assert_eq!(got.status, 200, "{what}");
                assert_eq!(got.last_event().0, terminal, "{what}");
                assert!(!got.body.contains("\"error\":{\"message\""), "{what}");
            }
            Cut => {
                assert_eq!(got.status, 200, "{what}");
                let name = got.last_event().0;
                assert!(
                    ![
                        "error",
                        "response.completed",
                        "response.incomplete",
                        "response.failed"
                    ]
                    .contains(&name.as_str()),
                    "{what}"
                );
            }
            ErrorEvent => {
                assert_eq!(got.status, 200, "{what}");
                let (name, data) = got.last_event();
                assert_eq!(name, "error", "{what}");
                assert_eq!(data["error"]["backstop"]["kind"], kind, "{what}");
                assert_eq!(data["error"]["backstop"]["attempts"], hits, "{what}");
                // Nothing after a failure may look like the answer's end.
                assert_eq!(got.body.matches("event: error").count(), 1, "{what}");
                assert!(!got.body.contains("event: response.completed\n"), "{what}");
            }
            Envelope(status) => {
                assert_eq!(got.status, status, "{what}");
                assert_eq!(got.kind, kind, "{what}");
                assert_eq!(got.json()["error"]["backstop"]["attempts"], hits, "{what}");
            }
        }
    }
}

#[tokio::test]
async fn in_band_errors_before_and_after_the_first_byte() {
    let (mock, gw) = setup(|_| {}).await;
    // Before the first byte: a failed attempt like any 5xx, retried.
    let got = call(&mock, &gw, "/responses", &request(true), "error_event,ok").await;
    assert_eq!(
        (got.status, got.hits, got.kind.as_str()),
        (200, 2, "ok"),
        "{got:?}"
    );
    assert_eq!(got.last_event().0, "response.completed");
    let got = call(&mock, &gw, "/responses", &request(true), "error_event").await;
    assert_eq!(
        (got.status, got.hits, got.kind.as_str()),
        (502, 3, "server_error"),
        "{got:?}"
    );
    // After it: the stream ends with one `event: error`, the envelope.
    let got = call(&mock, &gw, "/responses", &request(true), "error_after:1").await;
    assert_eq!((got.status, got.hits), (200, 1), "{got:?}");
    let (name, data) = got.last_event();
    assert_eq!(name, "error");
    assert_eq!(data["error"]["backstop"]["kind"], "server_error");
    assert_eq!(data["error"]["code"], "server_error");
    // The Responses API's own error event fields, for clients that
    // validate them (the Vercel AI SDK), after the upstream's last event.
    assert_eq!(data["type"], "error");
    // 0..=4 went out; the upstream's own error event was 5.
    assert_eq!(data["sequence_number"], 6);
    assert_eq!(data["code"], "server_error");
    assert_eq!(data["message"], data["error"]["message"]);
    // The upstream's request id, from its header, is kept.
    assert!(
        data["error"]["backstop"]["upstream_request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("mock-")),
        "{data}"
    );
    let got = call(&mock, &gw, "/responses", &request(true), "error_event").await;
    let id = &got.json()["error"]["backstop"]["upstream_request_id"];
    assert!(
        id.as_str().is_some_and(|id| id.starts_with("mock-")),
        "{got:?}"
    );
}

#[tokio::test]
async fn background_creates_are_not_repeated_and_final_polls_are_inspected() {
    let (mock, gw) = setup(|_| {}).await;
    let mut body = request(false);
    body["background"] = json!(true);
    // A create that may have started a job is not sent twice after a 5xx.
    let got = call(&mock, &gw, "/responses", &body, "status:503,ok").await;
    assert_eq!(
        (got.status, got.hits, got.kind.as_str()),
        (503, 1, "server_error"),
        "{got:?}"
    );
    // A rate limit means the job was not started: retried.
    let got = call(&mock, &gw, "/responses", &body, "status:429,ok").await;
    assert_eq!((got.status, got.hits), (200, 2), "{got:?}");
    let created = got.json();
    assert_eq!(created["status"], "queued");
    let id = created["id"].as_str().unwrap().to_string();
    // A poll of a final response is judged like the answer itself.
    let poll = |scenario: &'static str| {
        let url = format!("{}/responses/{id}", gw.base_url());
        async move {
            let resp = client()
                .get(url)
                .header("x-mock-scenario", scenario)
                .send()
                .await
                .unwrap();
            let kind = resp.headers()["x-backstop-kind"]
                .to_str()
                .unwrap()
                .to_string();
            (
                resp.status().as_u16(),
                kind,
                resp.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, kind, pending) = poll("pending").await;
    assert_eq!(
        (status, kind.as_str(), pending["status"].as_str()),
        (200, "ok", Some("in_progress"))
    );
    let (status, kind, _) = poll("empty").await;
    assert_eq!((status, kind.as_str()), (502, "empty_content"));
    let (status, kind, done) = poll("ok").await;
    assert_eq!(
        (status, kind.as_str(), done["status"].as_str()),
        (200, "ok", Some("completed"))
    );
}

#[tokio::test]
async fn a_200_whose_body_is_an_error_is_that_error_on_every_endpoint() {
    let (mock, gw) = setup(|_| {}).await;
    let rows = [
        ("/chat/completions", common::chat(false)),
        ("/chat/completions", common::chat(true)),
        (
            "/images/generations",
            json!({"model": "dall-e-3", "prompt": "a cat"}),
        ),
        (
            "/embeddings",
            json!({"model": "text-embedding-3-small", "input": ["a", "b"]}),
        ),
        ("/responses", request(false)),
        (
            "/completions",
            json!({"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}),
        ),
    ];
    for (path, body) in rows {
        // Retryable: retried, then the envelope with the error's own words.
        let got = call(&mock, &gw, path, &body, "error_body").await;
        let what = format!("{path}: {got:?}");
        assert_eq!(
            (got.status, got.hits, got.kind.as_str()),
            (502, 3, "server_error"),
            "{what}"
        );
        let e = &got.json()["error"];
        assert_eq!(e["backstop"]["upstream_status"], 200, "{what}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("mock error in a 200 [backstop: server_error after 3 attempt(s)"),
            "{what}"
        );
        let got = call(&mock, &gw, path, &body, "error_body,ok").await;
        assert_eq!(
            (got.status, got.hits, got.kind.as_str()),
            (200, 2, "ok"),
            "{what}"
        );
        // aiapi's `{"code","message","data"}` shape.
        let got = call(&mock, &gw, path, &body, "error_body:code").await;
        assert_ne!(got.status, 200, "{path}: {got:?}");
        assert_ne!(got.kind, "ok", "{path}: {got:?}");
    }
}

#[tokio::test]
async fn embeddings_and_transcriptions_have_silent_failures_too() {
    let (mock, gw) = setup(|c| c.inspect.empty_data = Action::Fail).await;
    let two = json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    for scenario in ["short_data", "empty_vector", "empty_data"] {
        let got = call(&mock, &gw, "/embeddings", &two, scenario).await;
        assert_eq!(
            (got.status, got.hits, got.kind.as_str()),
            (502, 1, "empty_data"),
            "{scenario}: {got:?}"
        );
        assert_eq!(
            got.json()["error"]["backstop"]["hint"],
            "Check every input is a non-empty string or token array, then retry; send fewer inputs per request if it repeats"
        );
    }
    let got = call(&mock, &gw, "/embeddings", &two, "ok").await;
    assert_eq!((got.status, got.kind.as_str()), (200, "ok"), "{got:?}");
    assert_eq!(got.json()["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_hint_in_the_message_can_be_turned_off() {
    let (mock, gw) = setup(|_| {}).await;
    let got = call(&mock, &gw, "/responses", &request(false), "status:503").await;
    assert_eq!(
        got.json()["error"]["message"],
        "mock error 503 [backstop: server_error after 3 attempt(s): Retry later with backoff and keep the upstream request id; try another model if it persists]"
    );
    let (mock, gw) = setup(|c| c.envelope.hint_in_message = false).await;
    let got = call(&mock, &gw, "/responses", &request(false), "status:503").await;
    assert_eq!(got.json()["error"]["message"], "mock error 503");
    assert_eq!(
        got.json()["error"]["backstop"]["hint"],
        "Retry later with backoff and keep the upstream request id; try another model if it persists"
    );
    // On a stream's closing event too.
    let got = call(&mock, &gw, "/responses", &request(true), "cut:2").await;
    let (_, data) = got.last_event();
    assert!(
        !data["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[backstop:"),
        "{data}"
    );
}

#[tokio::test]
async fn a_fallback_answers_with_its_own_model() {
    let primary = common::scripted::Scripted::start(|_, _| {
        common::scripted::Answer::json(503, r#"{"error":{"message":"down","type":"server_error"}}"#)
    })
    .await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&primary.base_url(), |c| {
        c.upstreams.insert(
            "backup".into(),
            serde_json::from_value(json!({"url": mock.base_url()})).unwrap(),
        );
        c.routes =
            vec![
                serde_json::from_value(json!({"name": "resp", "models": [MODEL], "targets": [
                    {"upstream": "default", "model": MODEL},
                    {"upstream": "backup", "model": "gpt-fallback"}
                ]}))
                .unwrap(),
            ];
    })
    .await;
    let got = call(&mock, &gw, "/responses", &request(false), "ok").await;
    assert_eq!((got.status, got.kind.as_str()), (200, "ok"), "{got:?}");
    assert_eq!(got.json()["model"], "gpt-fallback");
    let got = call(&mock, &gw, "/responses", &request(true), "ok").await;
    assert_eq!(got.status, 200, "{got:?}");
    let (name, data) = got.last_event();
    assert_eq!(name, "response.completed");
    assert_eq!(data["response"]["model"], "gpt-fallback");
}
