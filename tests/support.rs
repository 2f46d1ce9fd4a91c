//! Support records: one per failed request, kept for `/debug/failures`
//! when enabled (admin-only), with the sanitized body only when asked for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::scripted::{Answer, Scripted};
use common::{client, gateway};
use serde_json::{json, Value};

#[tokio::test]
async fn failures_are_recorded_for_support_with_sanitized_bodies() {
    let up = Scripted::start(|_, n| {
        if n > 0 {
            return Answer::json(200, "{}");
        }
        let mut a = Answer::json(
            429,
            r#"{"error":{"message":"Rate limit reached (request id: up-9)","code":"rate_limit_exceeded"}}"#,
        );
        a.headers.push(("retry-after", "90".into()));
        a
    })
    .await;
    let gw = gateway(&up.base_url(), |c| {
        c.debug.failures = true;
        c.debug.failures_capacity = 10;
        c.debug.admin_token = "admin-t0ken".into();
        c.log.request_bodies = true;
    })
    .await;
    let c = client();
    let resp = c
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("authorization", "Bearer sk-user-key")
        .header("x-request-id", "support-1")
        .json(&json!({
            "model": "gpt-x",
            "api_key": "sk-in-body",
            "messages": [{"role": "user", "content": "y".repeat(300)}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    resp.bytes().await.unwrap();
    // An ok request leaves no record.
    let ok = c
        .get(format!("{}/models", gw.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    ok.bytes().await.unwrap();

    let url = format!("http://{}/debug/failures", gw.addr);
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        c.get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let records: Value = c
        .get(&url)
        .bearer_auth("admin-t0ken")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 1);
    let mut r = records[0].clone();
    let ts = r.as_object_mut().unwrap().remove("timestamp").unwrap();
    assert!(ts.as_str().unwrap().ends_with('Z'), "{ts}");
    r.as_object_mut().unwrap().remove("latency_ms").unwrap();
    assert_eq!(
        r,
        json!({
            "request_id": "support-1",
            "method": "POST",
            "route": "/v1/chat/completions",
            "model": "gpt-x",
            "status": 429,
            "class": "hard",
            "kind": "rate_limited",
            "attempts": 1,
            "upstream_status": 429,
            "upstream_code": "rate_limit_exceeded",
            "upstream_message": "Rate limit reached (request id: up-9)",
            "upstream_request_id": "up-9",
            "completed": true,
            "request_body": {
                "model": "gpt-x",
                "messages": [{"role": "user", "content": format!("{}…[44 more chars]", "y".repeat(256))}],
            },
        })
    );
}

#[tokio::test]
async fn the_debug_endpoint_is_off_by_default() {
    let up = Scripted::start(|_, _| Answer::json(200, "{}")).await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = client()
        .get(format!("http://{}/debug/failures", gw.addr))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
