//! In-process tests of the mock's SSE streams over real HTTP: event
//! framing, `cut`, `nodone`, `malformed`, `error_event`, `stall`, and the
//! other text routes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{post, start};

/// The body's frames as received, and whether it ended with an error.
pub(super) async fn frames(mut resp: reqwest::Response) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => out.push(String::from_utf8_lossy(&bytes).into_owned()),
            Ok(None) => return (out, false),
            Err(_) => return (out, true),
        }
    }
}

/// The `data:` payloads of a whole stream text.
pub(super) fn data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.trim_start_matches("data: ").to_owned())
        .collect()
}

fn delta(event: &str) -> Value {
    let v: Value = serde_json::from_str(event).unwrap_or_default();
    json!([
        v["choices"][0]["delta"].clone(),
        v["choices"][0]["finish_reason"].clone()
    ])
}

const STREAM: &str = "/chat/completions";

fn stream_body() -> Value {
    json!({"model": "gpt-x", "stream": true, "messages": []})
}

#[tokio::test]
async fn one_frame_per_event() {
    let server = start().await;
    let headers = [("x-mock-chunks", "2"), ("x-mock-chunk-delay-ms", "15")];
    let body = json!({"model": "gpt-x", "stream": true, "stream_options": {"include_usage": true}});
    let resp = post(&server, STREAM, &headers, body).await;
    assert_eq!(
        resp.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/event-stream"[..])
    );
    let (got, failed) = frames(resp).await;
    assert!(!failed);
    assert!(
        got.iter().all(|f| f.starts_with("data: ")
            && f.ends_with("\n\n")
            && f.matches("\n\n").count() == 1),
        "{got:?}"
    );
    let events: Vec<Value> = got
        .iter()
        .take(4)
        .map(|f| delta(f.trim_start_matches("data: ").trim_end()))
        .collect();
    assert_eq!(
        events,
        vec![
            json!([{"role": "assistant", "content": ""}, null]),
            json!([{"content": "tok0 "}, null]),
            json!([{"content": "tok1 "}, null]),
            json!([{}, "stop"]),
        ]
    );
    let usage: Value =
        serde_json::from_str(got[4].trim_start_matches("data: ").trim_end()).unwrap();
    assert_eq!(
        (
            usage["choices"].clone(),
            usage["usage"]["completion_tokens"].clone()
        ),
        (json!([]), json!(2))
    );
    assert_eq!(got[5], "data: [DONE]\n\n");
    assert_eq!(got.len(), 6);
}

#[tokio::test]
async fn default_stream_says_hello() {
    let server = start().await;
    let (got, failed) = frames(post(&server, STREAM, &[], stream_body()).await).await;
    let events = data(&got.concat());
    let text: String = events
        .iter()
        .filter_map(|e| delta(e)[0]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        (text.as_str(), failed),
        ("Hello from backstop-mock.", false)
    );
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(events.len(), 6);
}

#[tokio::test]
async fn cut_drops_the_connection_after_n_chunks() {
    let server = start().await;
    let resp = post(
        &server,
        STREAM,
        &[("x-mock-scenario", "cut:2"), ("x-mock-chunks", "5")],
        stream_body(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let (got, failed) = frames(resp).await;
    let events: Vec<Value> = data(&got.concat()).iter().map(|e| delta(e)).collect();
    assert_eq!(
        events,
        vec![
            json!([{"role": "assistant", "content": ""}, null]),
            json!([{"content": "tok0 "}, null]),
            json!([{"content": "tok1 "}, null])
        ]
    );
    assert!(failed, "the client must see an error, not a clean end");
}

#[tokio::test]
async fn nodone_finishes_without_done() {
    let server = start().await;
    let (got, failed) = frames(
        post(
            &server,
            STREAM,
            &[("x-mock-scenario", "nodone")],
            stream_body(),
        )
        .await,
    )
    .await;
    let events = data(&got.concat());
    assert!(!failed);
    assert_eq!(events.len(), 5);
    assert_eq!(delta(&events[4]), json!([{}, "stop"]));
    assert!(!events.iter().any(|e| e == "[DONE]"));
}

#[tokio::test]
async fn malformed_and_error_event() {
    let server = start().await;
    let (got, _) = frames(
        post(
            &server,
            STREAM,
            &[("x-mock-scenario", "malformed")],
            stream_body(),
        )
        .await,
    )
    .await;
    let events = data(&got.concat());
    assert_eq!(events[2], "{not json");
    assert_eq!(
        (events.len(), events.last().map(String::as_str)),
        (7, Some("[DONE]"))
    );
    let resp = post(
        &server,
        STREAM,
        &[("x-mock-scenario", "error_event")],
        stream_body(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let (got, failed) = frames(resp).await;
    assert_eq!(
        (got.concat(), failed),
        (
            "data: {\"error\":{\"message\":\"upstream overloaded\",\"type\":\"server_error\",\"code\":\"internal_error\"}}\n\n"
                .to_owned(),
            false
        )
    );
}

#[tokio::test]
async fn stall_goes_silent_after_the_first_chunk() {
    let server = start().await;
    let resp = post(
        &server,
        STREAM,
        &[("x-mock-scenario", "stall:150")],
        stream_body(),
    )
    .await;
    let started = Instant::now();
    let (got, failed) = frames(resp).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!((data(&got.concat()).len(), failed), (6, false));
}

#[tokio::test]
async fn finish_steps_stream_too() {
    let server = start().await;
    let (got, _) = frames(
        post(
            &server,
            STREAM,
            &[("x-mock-scenario", "finish:tool_calls")],
            stream_body(),
        )
        .await,
    )
    .await;
    let events: Vec<Value> = data(&got.concat()).iter().map(|e| delta(e)).collect();
    assert_eq!(
        events[0],
        json!([{"role": "assistant", "content": null}, null])
    );
    assert_eq!(
        events[1][0]["tool_calls"][0]["function"]["arguments"],
        "{\"city\": \"Paris\"}"
    );
    assert_eq!(events[2], json!([{}, "tool_calls"]));
    assert_eq!(events.len(), 4);
}

#[tokio::test]
async fn other_text_routes_stream() {
    let server = start().await;
    let body = json!({"model": "c", "prompt": "hi", "stream": true});
    let (got, _) = frames(post(&server, "/completions", &[], body.clone()).await).await;
    let events = data(&got.concat());
    let text: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        (text.as_str(), events.last().map(String::as_str)),
        ("Hello from backstop-mock.", Some("[DONE]"))
    );
    let (got, _) = frames(post(&server, "/responses", &[], body).await).await;
    let text = got.concat();
    assert!(text.starts_with("event: response.created\n"));
    assert_eq!(
        text.matches("event: response.output_text.delta\n").count(),
        3
    );
    assert!(text.contains("event: response.completed\n"));
    assert!(!text.contains("[DONE]"));
}
