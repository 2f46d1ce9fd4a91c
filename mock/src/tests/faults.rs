//! In-process tests over real HTTP of the faults a gateway must bound:
//! `hold`, `stall` and `first_token` timing, `cut_body` and
//! `drop_after_headers` connection drops, `gzip`, `error_body`,
//! `retry_after_5xx`, `garbage`, `json_for_stream`, and the silent
//! failures of embeddings and transcriptions.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{chat, client, header, post, start};
use super::stream::{data, frames};

fn scenario(step: &str) -> [(&str, &str); 1] {
    [("x-mock-scenario", step)]
}

fn stream_body() -> Value {
    json!({"model": "gpt-x", "stream": true, "messages": []})
}

const HELLO_BODY_START: &str = r#"{"id":"chatcmpl-mock-"#;

#[tokio::test]
async fn hold_sends_headers_then_silence_then_the_answer() {
    let server = start().await;
    for (path, body) in [
        (
            "/chat/completions",
            json!({"model": "gpt-x", "messages": []}),
        ),
        ("/chat/completions", stream_body()),
        ("/embeddings", json!({"input": ["a"]})),
    ] {
        let started = Instant::now();
        let resp = post(&server, path, &scenario("hold:600"), body.clone()).await;
        let headers_at = started.elapsed();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert!(
            headers_at < Duration::from_millis(450),
            "{path}: headers after {headers_at:?}"
        );
        let text = resp.text().await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(600), "{path}");
        assert!(text.contains("\"object\""), "{path}: {text}");
    }
}

#[tokio::test]
async fn stall_pauses_a_whole_body_in_its_middle() {
    let server = start().await;
    for path in ["/chat/completions", "/embeddings"] {
        let started = Instant::now();
        let mut resp = post(&server, path, &scenario("stall:500"), json!({"input": "x"})).await;
        let len = resp.content_length().unwrap_or_default() as usize;
        let first = resp.chunk().await.unwrap().unwrap_or_default();
        assert!(started.elapsed() < Duration::from_millis(400), "{path}");
        assert_eq!(first.len(), len / 2, "{path}");
        let rest = resp.bytes().await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(500), "{path}");
        let whole: Value = serde_json::from_slice(&[first, rest].concat()).unwrap();
        assert!(whole.is_object(), "{path}");
    }
}

#[tokio::test]
async fn first_token_holds_back_the_first_content_event() {
    let server = start().await;
    let started = Instant::now();
    let mut resp = post(
        &server,
        "/chat/completions",
        &scenario("first_token:500"),
        stream_body(),
    )
    .await;
    let role = resp.chunk().await.unwrap().unwrap_or_default();
    assert!(started.elapsed() < Duration::from_millis(400));
    assert!(String::from_utf8_lossy(&role).contains(r#""delta":{"role":"assistant","content":""}"#));
    let first = resp.chunk().await.unwrap().unwrap_or_default();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(String::from_utf8_lossy(&first).contains(r#""delta":{"content":"Hello"}"#));
    let (rest, failed) = frames(resp).await;
    assert_eq!((data(&rest.concat()).len(), failed), (4, false));
}

#[tokio::test]
async fn cut_body_and_drop_after_headers_drop_the_connection() {
    let server = start().await;
    let resp = chat(&server, &scenario("ok")).await;
    let full = resp.bytes().await.unwrap();
    let resp = chat(&server, &scenario("cut_body")).await;
    assert_eq!(resp.status().as_u16(), 200);
    let len = resp.content_length().unwrap_or_default() as usize;
    // The same body as ok but for the request number in its id.
    assert_eq!(len, full.len());
    let (got, failed) = frames(resp).await;
    let got = got.concat();
    assert!(failed, "the client must see an error");
    assert_eq!(got.len(), len / 2);
    assert!(got.starts_with(HELLO_BODY_START), "{got}");

    let resp = post(
        &server,
        "/embeddings",
        &scenario("drop_after_headers"),
        json!({"input": "a"}),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.content_length().is_some_and(|n| n > 0));
    assert_eq!(frames(resp).await, (vec![], true));

    let resp = post(
        &server,
        "/chat/completions",
        &scenario("drop_after_headers"),
        stream_body(),
    )
    .await;
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(frames(resp).await, (vec![], true));

    // A stream torn in the middle of an event.
    let resp = post(
        &server,
        "/chat/completions",
        &scenario("cut_body"),
        stream_body(),
    )
    .await;
    let (got, failed) = frames(resp).await;
    let text = got.concat();
    assert!(failed);
    assert!(!text.ends_with("\n\n"), "{text}");
    // Role chunk, "Hello", then half of " from"'s event (about 190 bytes each).
    let events = data(&text);
    assert_eq!(events.len(), 3, "{text}");
    assert!(events[1].contains(r#""delta":{"content":"Hello"}"#));
    assert!(serde_json::from_str::<Value>(&events[2]).is_err());
}

fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .unwrap();
    out
}

async fn gzipped(server: &crate::MockServer, delay: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", server.base_url()))
        .header("x-mock-scenario", "gzip")
        .header("x-mock-chunk-delay-ms", delay)
        .header("accept-encoding", "identity")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn gzip_whole_and_streamed() {
    let server = start().await;
    let resp = gzipped(&server, "0", json!({"model": "gpt-x"})).await;
    assert_eq!(header(&resp, "content-encoding").as_deref(), Some("gzip"));
    let len = resp.content_length();
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(len, Some(bytes.len() as u64));
    let v: Value = serde_json::from_str(&gunzip(&bytes)).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from backstop-mock."
    );

    // A stream: each event decompresses on its own as it arrives.
    let mut resp = gzipped(&server, "40", stream_body()).await;
    assert_eq!(header(&resp, "content-encoding").as_deref(), Some("gzip"));
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("text/event-stream")
    );
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let mut events = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        decoder.write_all(&chunk).unwrap();
        decoder.flush().unwrap();
        let plain = String::from_utf8(std::mem::take(decoder.get_mut())).unwrap();
        if !plain.is_empty() {
            events.push(plain);
        }
    }
    assert!(
        events.iter().all(|e| e.matches("\n\n").count() == 1),
        "{events:?}"
    );
    let text: String = events.concat();
    assert_eq!(data(&text).len(), 6);
    assert!(text.ends_with("data: [DONE]\n\n"));
    decoder.try_finish().unwrap();
}

#[tokio::test]
async fn error_bodies_in_a_200_on_every_route() {
    let server = start().await;
    let default = r#"{"error":{"message":"mock error in a 200","type":"server_error","code":"server_error"}}"#;
    let cases = [
        (
            "/chat/completions",
            "error_body",
            json!({"messages": []}),
            default,
        ),
        ("/chat/completions", "error_body", stream_body(), default),
        (
            "/images/generations",
            "error_body:code",
            json!({"prompt": "cat"}),
            r#"{"code":"server_error","message":"mock error in a 200","data":null}"#,
        ),
        (
            "/embeddings",
            "error_body:rate_limit_exceeded",
            json!({"input": "a"}),
            r#"{"error":{"message":"mock error in a 200","type":"rate_limit_exceeded","code":"rate_limit_exceeded"}}"#,
        ),
        // failed:CODE outside the Responses API is an error body too.
        (
            "/chat/completions",
            "failed:invalid_prompt",
            json!({}),
            r#"{"error":{"message":"mock error in a 200","type":"invalid_prompt","code":"invalid_prompt"}}"#,
        ),
    ];
    for (path, step, body, want) in cases {
        let resp = post(&server, path, &scenario(step), body).await;
        assert_eq!(
            (
                resp.status().as_u16(),
                header(&resp, "content-type").as_deref()
            ),
            (200, Some("application/json")),
            "{path} {step}"
        );
        assert_eq!(resp.text().await.unwrap(), want, "{path} {step}");
    }
    let resp = chat(&server, &scenario("retry_after_5xx:4")).await;
    assert_eq!(
        (
            resp.status().as_u16(),
            header(&resp, "retry-after").as_deref()
        ),
        (503, Some("4"))
    );
}

#[tokio::test]
async fn garbage_and_json_for_stream() {
    let server = start().await;
    let garbage = crate::stream::garbage().to_vec();
    let resp = chat(&server, &scenario("garbage")).await;
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), garbage);

    let resp = post(
        &server,
        "/chat/completions",
        &scenario("garbage:1"),
        stream_body(),
    )
    .await;
    let bytes = resp.bytes().await.unwrap();
    let (events, tail) = bytes.split_at(bytes.len() - garbage.len());
    assert_eq!(tail, &garbage[..]);
    let events = data(&String::from_utf8_lossy(events));
    assert_eq!(events.len(), 2);
    assert!(events[1].contains(r#""delta":{"content":"Hello"}"#));

    let resp = post(
        &server,
        "/chat/completions",
        &scenario("json_for_stream"),
        stream_body(),
    )
    .await;
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/json")
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            v["object"].clone(),
            v["choices"][0]["message"]["content"].clone()
        ),
        (json!("chat.completion"), json!("Hello from backstop-mock."))
    );
}

#[tokio::test]
async fn silent_failures_of_embeddings_and_transcriptions() {
    let server = start().await;
    let two = json!({"model": "e", "input": ["a", "b"]});
    let count = |v: &Value| v["data"].as_array().map(Vec::len);
    let v: Value = post(&server, "/embeddings", &scenario("short_data"), two.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count(&v), Some(1));
    let v: Value = post(
        &server,
        "/embeddings",
        &scenario("empty_vector"),
        two.clone(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (
            count(&v),
            v["data"][0]["embedding"].clone(),
            v["data"][1]["embedding"].clone()
        ),
        (Some(2), json!([]), json!([]))
    );
    let v: Value = post(&server, "/embeddings", &scenario("empty_data"), two)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"], json!([]));
    for (step, want) in [("empty", r#"{"text":""}"#), ("blank", r#"{"text":"   "}"#)] {
        let resp = client()
            .post(format!("{}/audio/transcriptions", server.base_url()))
            .header("x-mock-scenario", step)
            .header("content-type", "multipart/form-data; boundary=b")
            .body("--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b--\r\n")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.text().await.unwrap(), want, "{step}");
    }
}
