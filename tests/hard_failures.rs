//! Hard failures end to end (issue: hard failures): the gateway in front of
//! a scripted upstream on an ephemeral port; attempts counted at the
//! upstream, envelopes compared as exact JSON where the whole body is known.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::scripted::{Answer, Scripted};
use common::{chat, client, gateway};
use serde_json::{json, Value};
use tokio::time::Instant;

async fn post_chat(base: &str, stream: bool) -> reqwest::Response {
    client()
        .post(format!("{base}/chat/completions"))
        .header("x-request-id", "req-test")
        .json(&chat(stream))
        .send()
        .await
        .unwrap()
}

fn error_answer(status: u16, body: &str) -> Answer {
    let mut a = Answer::json(status, body);
    a.headers.push(("x-request-id", "up-1".into()));
    a
}

#[tokio::test]
async fn an_always_503_upstream_gets_max_attempts_and_the_client_an_envelope() {
    let up = Scripted::start(|_, _| {
        error_answer(503, r#"{"error":{"message":"service unavailable","type":"server_error","code":"service_unavailable"}}"#)
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = post_chat(&gw.base_url(), false).await;
    assert_eq!(up.count(), 3);
    assert_eq!(resp.status(), 503);
    let h = resp.headers();
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-should-retry"], "false");
    assert_eq!(h["x-backstop-attempts"], "3");
    assert_eq!(h["x-backstop-class"], "hard");
    assert_eq!(h["x-backstop-kind"], "server_error");
    assert_eq!(h["x-request-id"], "req-test");
    assert!(h.get("retry-after").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {
            "message": "service unavailable [backstop: server_error after 3 attempt(s): Retry later with backoff and keep the upstream request id; try another model if it persists]",
            "type": "server_error",
            "param": null,
            "code": "service_unavailable",
            "backstop": {
                "class": "hard", "kind": "server_error", "retryable": true,
                "attempts": 3, "upstream_status": 503,
                "request_id": "req-test", "upstream_request_id": "up-1",
                "hint": "Retry later with backoff and keep the upstream request id; try another model if it persists",
                "target": "default",
                "attempt_kinds": ["server_error", "server_error", "server_error"]
            }
        }})
    );
}

#[tokio::test]
async fn with_one_attempt_a_retryable_failure_leaves_x_should_retry_absent() {
    let up = Scripted::start(|_, _| error_answer(503, "{}")).await;
    let gw = gateway(&up.base_url(), |c| c.retry.max_attempts = 1).await;
    let resp = post_chat(&gw.base_url(), false).await;
    assert_eq!(up.count(), 1);
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("x-should-retry").is_none());
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_the_wait_and_succeeds() {
    let up = Scripted::start(|_, n| {
        if n == 0 {
            let mut a = error_answer(429, r#"{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#);
            a.headers.push(("retry-after", "1".into()));
            a
        } else {
            Answer::json(200, r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#)
        }
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let start = Instant::now();
    let resp = post_chat(&gw.base_url(), false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-backstop-attempts"], "2");
    assert_eq!(up.count(), 2);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_goes_back_at_once_with_retry_after() {
    let up = Scripted::start(|_, _| {
        let mut a = error_answer(
            429,
            r#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#,
        );
        a.headers.push(("retry-after", "120".into()));
        a
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = post_chat(&gw.base_url(), false).await;
    assert_eq!(up.count(), 1);
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.headers()["retry-after"],
        "60",
        "capped at 60 s for clients"
    );
    assert_eq!(resp.headers()["x-should-retry"], "false");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["backstop"]["attempts"], 1);
}

#[tokio::test]
async fn a_500_carrying_invalid_request_is_a_400_and_not_retried() {
    let up = Scripted::start(|_, _| {
        error_answer(500, r#"{"error":{"message":"field messages is required (request id: 2025abc)","type":"comet_api_error","param":"","code":"invalid_request"}}"#)
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = post_chat(&gw.base_url(), false).await;
    assert_eq!(up.count(), 1);
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "field messages is required (request id: 2025abc) [backstop: bad_request after 1 attempt(s): Fix the request before retrying: check error.param, then validate `model`, `messages`, the JSON shape and field types]"
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(body["error"]["param"], Value::Null);
    assert_eq!(body["error"]["backstop"]["kind"], "bad_request");
    assert_eq!(body["error"]["backstop"]["upstream_status"], 500);
    assert_eq!(body["error"]["backstop"]["retryable"], false);
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_says_the_base_url_is_wrong() {
    let up = Scripted::start(|_, _| {
        let mut a = Answer::json(301, "<html>Moved</html>");
        a.headers = vec![
            ("content-type", "text/html".into()),
            (
                "location",
                "https://api.example.com/v1/chat/completions".into(),
            ),
        ];
        a
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = post_chat(&gw.base_url(), false).await;
    assert_eq!(up.count(), 1);
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["backstop"]["kind"], "bad_upstream_response");
    assert_eq!(body["error"]["backstop"]["upstream_status"], 301);
    assert!(body["error"]["backstop"]["hint"]
        .as_str()
        .unwrap()
        .contains("/v1"));
}

#[tokio::test]
async fn html_where_json_was_due_is_a_bad_upstream_response() {
    let up = Scripted::start(|_, _| {
        let mut a = Answer::json(
            200,
            "<!doctype html><html><head><title>Welcome to nginx!</title></head></html>",
        );
        a.headers = vec![("content-type", "text/html; charset=utf-8".into())];
        a
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = post_chat(&gw.base_url(), false).await;
    assert_eq!(up.count(), 1);
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["backstop"]["kind"], "bad_upstream_response");
    assert_eq!(
        body["error"]["message"],
        "The upstream answered 200 OK with an HTML page (Welcome to nginx!) instead of JSON: the upstream base URL is probably wrong or lacks /v1 [backstop: bad_upstream_response after 1 attempt(s): Check upstream.url points at an OpenAI-compatible API, including /v1 (e.g. https://api.cometapi.com/v1)]"
    );
}

#[tokio::test]
async fn comet_flat_error_bodies_are_normalized() {
    let up = Scripted::start(|_, _| {
        error_answer(
            403,
            r#"{"code":"quota_not_enough","message":"user quota is not enough","data":null}"#,
        )
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = post_chat(&gw.base_url(), false).await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], "user quota is not enough [backstop: quota_exceeded after 1 attempt(s): Top up the account or raise its quota: retrying will not help]");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(body["error"]["code"], "quota_not_enough");
    assert_eq!(body["error"]["backstop"]["kind"], "quota_exceeded");
}

#[tokio::test]
async fn connect_errors_are_retried_then_answered_with_502() {
    // A port with nothing listening: bind, learn the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gw = gateway(&format!("http://127.0.0.1:{port}/v1"), |_| {}).await;
    let resp = post_chat(&gw.base_url(), false).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-backstop-attempts"], "3");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["backstop"]["kind"], "connect_error");
    assert_eq!(body["error"]["backstop"]["upstream_status"], Value::Null);
}

#[tokio::test]
async fn a_silent_upstream_times_out_per_attempt() {
    let up = Scripted::start(|_, _| {
        let mut a = Answer::sse(vec![]);
        a.hang = true;
        a
    })
    .await;
    let gw = gateway(&up.base_url(), |c| {
        c.upstream.first_byte_timeout_ms = 200;
        c.retry.max_attempts = 2;
    })
    .await;
    // A stream: headers come at once but no event ever does.
    let resp = post_chat(&gw.base_url(), true).await;
    assert_eq!(up.count(), 2);
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "timeout_error");
    assert_eq!(body["error"]["backstop"]["kind"], "timeout");
    assert_eq!(body["error"]["backstop"]["attempts"], 2);
}

#[tokio::test]
async fn the_clients_shorter_deadline_is_respected() {
    let up = Scripted::start(|_, _| {
        let mut a = Answer::sse(vec![]);
        a.hang = true;
        a
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let start = Instant::now();
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("x-stainless-timeout", "0.5")
        .json(&chat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    // One attempt used the whole deadline; no retry fits in what is left.
    assert_eq!(resp.headers()["x-backstop-attempts"], "1");
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn a_client_that_retries_itself_gets_one_attempt() {
    let up = Scripted::start(|_, _| error_answer(503, "{}")).await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("x-stainless-retry-count", "1")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn lazy_stream_headers_let_a_503_before_the_first_byte_be_retried() {
    let up = Scripted::start(|_, n| match n {
        0 => error_answer(503, r#"{"error":{"message":"overloaded"}}"#),
        _ => Answer::sse(vec![
            (Duration::ZERO, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n"),
            (Duration::ZERO, "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"),
        ]),
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = post_chat(&gw.base_url(), true).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-backstop-attempts"], "2");
    assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn an_in_band_error_as_the_first_event_is_retried() {
    let up = Scripted::start(|_, n| match n {
        0 => Answer::sse(vec![(
            Duration::ZERO,
            "data: {\"error\":{\"message\":\"upstream overloaded\",\"type\":\"server_error\",\"code\":\"internal_error\"}}\n\n",
        )]),
        _ => Answer::sse(vec![(
            Duration::ZERO,
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
        )]),
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = post_chat(&gw.base_url(), true).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-backstop-attempts"], "2");
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn preflight_rejects_a_key_without_bearer_before_any_upstream_call() {
    let up = Scripted::start(|_, _| Answer::json(200, "{}")).await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("authorization", "sk-live-secret-123")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["x-backstop-attempts"], "0");
    let text = resp.text().await.unwrap();
    assert!(!text.contains("sk-live-secret-123"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["param"], "Authorization");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn preflight_names_the_bad_field() {
    let up = Scripted::start(|_, _| Answer::json(200, "{}")).await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let c = client();
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (json!({"model": "m", "messages": "hello"}), "messages"),
    ];
    for (body, param) in cases {
        let resp = c
            .post(format!("{}/chat/completions", gw.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["param"], param);
        assert_eq!(body["error"]["backstop"]["attempts"], 0);
    }
    let not_json = c
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn an_upstream_message_echoing_the_key_is_redacted() {
    let up = Scripted::start(|_, _| {
        error_answer(401, r#"{"error":{"message":"Incorrect API key provided: sk-abc123xyz","code":"invalid_api_key"}}"#)
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("authorization", "Bearer sk-abc123xyz")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "Incorrect API key provided: [REDACTED] [backstop: unauthorized after 1 attempt(s): Check the header is exactly `Authorization: Bearer <key>` and the key is current]"
    );
    assert_eq!(body["error"]["type"], "authentication_error");
}
