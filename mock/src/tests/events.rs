//! In-process tests over real HTTP of the stream steps that add events:
//! `role_only`, `keepalive`, `reasoning`, `oversized`, `error_after`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{post, start};
use super::stream::{data, frames};

fn stream_body() -> Value {
    json!({"model": "gpt-x", "stream": true, "messages": []})
}

fn delta(event: &str) -> Value {
    let v: Value = serde_json::from_str(event).unwrap_or_default();
    v["choices"][0]["delta"].clone()
}

async fn stream(step: &str, more: &[(&str, &str)]) -> (Vec<String>, bool) {
    let server = start().await;
    let mut headers = vec![("x-mock-scenario", step)];
    headers.extend_from_slice(more);
    let (got, failed) =
        frames(post(&server, "/chat/completions", &headers, stream_body()).await).await;
    (data(&got.concat()), failed)
}

#[tokio::test]
async fn role_only_chunks_lead_the_stream_lazily() {
    let (events, failed) = stream("role_only:3", &[]).await;
    let deltas: Vec<Value> = events.iter().take(5).map(|e| delta(e)).collect();
    assert_eq!(
        deltas,
        vec![
            json!({"role": "assistant"}),
            json!({"role": "assistant"}),
            json!({"role": "assistant"}),
            json!({"role": "assistant", "content": ""}),
            json!({"content": "Hello"}),
        ]
    );
    assert_eq!((events.len(), failed), (3 + 6, false));
    // A hundred thousand of them, one frame in memory.
    let (events, failed) = stream("role_only:100000", &[]).await;
    assert_eq!((events.len(), failed), (100_000 + 6, false));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn keepalive_comments_come_first_one_per_delay() {
    let server = start().await;
    let headers = [
        ("x-mock-scenario", "keepalive:3"),
        ("x-mock-chunk-delay-ms", "100"),
    ];
    let started = Instant::now();
    let (got, failed) =
        frames(post(&server, "/chat/completions", &headers, stream_body()).await).await;
    let text = got.concat();
    assert!(
        text.starts_with(": keep-alive\n\n: keep-alive\n\n: keep-alive\n\ndata: {"),
        "{text}"
    );
    // 3 comments and 6 events, 100 ms apart after the first.
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!((data(&text).len(), failed), (9, false));
}

#[tokio::test]
async fn reasoning_deltas_before_the_content() {
    for (step, field) in [
        ("reasoning:2", "reasoning_content"),
        ("reasoning:2:reasoning", "reasoning"),
    ] {
        let (events, _) = stream(step, &[]).await;
        let deltas: Vec<Value> = events.iter().take(4).map(|e| delta(e)).collect();
        assert_eq!(
            deltas,
            vec![
                json!({"role": "assistant", "content": ""}),
                json!({ field: "thinking…" }),
                json!({ field: "thinking…" }),
                json!({"content": "Hello"}),
            ],
            "{step}"
        );
    }
}

#[tokio::test]
async fn oversized_event_has_a_data_line_of_the_asked_length() {
    for (step, at) in [("oversized:70000", 1), ("oversized:1048576:2", 3)] {
        let (events, failed) = stream(step, &[]).await;
        assert!(!failed);
        let bytes: usize = step
            .split(':')
            .nth(1)
            .and_then(|b| b.parse().ok())
            .unwrap_or_default();
        // `data: ` and the JSON: the data line.
        assert_eq!("data: ".len() + events[at].len(), bytes, "{step}");
        let content = delta(&events[at])["content"].as_str().map(str::len);
        assert!(content.is_some_and(|n| n > bytes - 300), "{step}");
        assert_eq!(events.len(), 7, "{step}");
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    }
    let server = start().await;
    let resp = post(
        &server,
        "/responses",
        &[("x-mock-scenario", "oversized:5000:1")],
        json!({"model": "r", "stream": true}),
    )
    .await;
    let text = resp.text().await.unwrap();
    let line = text
        .split("\n\n")
        .filter(|e| e.starts_with("event: response.output_text.delta\n"))
        .nth(1)
        .and_then(|e| e.lines().nth(1))
        .unwrap_or_default();
    assert_eq!(line.len(), 5000);
    assert_eq!(
        text.matches("event: response.output_text.delta\n").count(),
        4
    );
}

#[tokio::test]
async fn error_after_n_content_events() {
    let (events, failed) = stream("error_after:2", &[]).await;
    assert_eq!(
        events
            .iter()
            .skip(1)
            .take(2)
            .map(|e| delta(e))
            .collect::<Vec<_>>(),
        vec![json!({"content": "Hello"}), json!({"content": " from"})]
    );
    assert_eq!(
        (events.len(), events[3].as_str(), failed),
        (
            4,
            r#"{"error":{"message":"mock in-band error","type":"server_error","code":"server_error"}}"#,
            false
        )
    );
    let server = start().await;
    let resp = post(
        &server,
        "/responses",
        &[("x-mock-scenario", "error_after:1")],
        json!({"model": "r", "stream": true}),
    )
    .await;
    let text = resp.text().await.unwrap();
    let last = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .last()
        .unwrap_or_default();
    assert_eq!(
        last,
        "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"mock in-band error\",\"param\":null,\"sequence_number\":5}"
    );
    assert_eq!(
        text.matches("event: response.output_text.delta\n").count(),
        1
    );
}
