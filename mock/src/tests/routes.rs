//! In-process tests of the mock's routes over real HTTP: content steps,
//! every `ok` route, video polling, timing and connection steps.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{chat, client, post, start};

#[tokio::test]
async fn content_steps_and_choices() {
    let server = start().await;
    let body = json!({"model": "gpt-x", "n": 2, "messages": []});
    let v: Value = post(&server, "/chat/completions", &[], body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["model"].clone(), v["choices"][1]["index"].clone()),
        (json!("gpt-x"), json!(1))
    );
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11})
    );
    let cases = [
        ("finish:content_filter", json!(null), "content_filter"),
        ("empty", json!(null), "stop"),
        ("blank", json!("   "), "stop"),
        ("json", json!("{\"answer\": 42}"), "stop"),
        ("bad_json", json!("Sure! {\"answer\": 4"), "stop"),
        ("schema_bad", json!("{\"answer\": \"forty-two\"}"), "stop"),
        (
            "finish:length",
            json!("Hello from backstop-mock."),
            "length",
        ),
    ];
    for (step, content, finish) in cases {
        let v: Value = chat(&server, &[("x-mock-scenario", step)])
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], content, "{step}");
        assert_eq!(v["choices"][0]["finish_reason"], finish, "{step}");
    }
    let v: Value = chat(&server, &[("x-mock-scenario", "bad_args")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\": "
    );
    let v: Value = post(&server, "/chat/completions", &[], json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"], "mock-model");
}

#[tokio::test]
async fn other_routes() {
    let server = start().await;
    let v: Value = client()
        .get(format!("{}/models", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"].as_array().map(Vec::len), Some(3));
    let v: Value = post(
        &server,
        "/embeddings",
        &[],
        json!({"model": "e", "input": ["a", "b"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (
            v["data"].as_array().map(Vec::len),
            v["data"][1]["embedding"].as_array().map(Vec::len)
        ),
        (Some(2), Some(8))
    );
    let v: Value = post(
        &server,
        "/completions",
        &[],
        json!({"model": "c", "prompt": "hi"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (v["object"].clone(), v["choices"][0]["text"].clone()),
        (json!("text_completion"), json!("Hello from backstop-mock."))
    );
    let v: Value = post(
        &server,
        "/responses",
        &[],
        json!({"model": "r", "input": "hi"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (v["object"].clone(), v["status"].clone()),
        (json!("response"), json!("completed"))
    );
    let v: Value = post(
        &server,
        "/images/generations",
        &[],
        json!({"prompt": "cat"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["data"][0]["revised_prompt"], "cat");
    let resp = post(
        &server,
        "/images/generations",
        &[("x-mock-scenario", "empty_data")],
        json!({"prompt": "cat"}),
    )
    .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"], json!([]));
    let resp = client()
        .post(format!("{}/audio/transcriptions", server.base_url()))
        .body(vec![0u8; 1234])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"text":"transcribed 1234 bytes"}"#
    );
    let resp = post(&server, "/nope", &[], json!({})).await;
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":{"message":"Invalid URL (POST /v1/nope)","type":"invalid_request_error","param":null,"code":"unknown_url"}}"#
    );
}

#[tokio::test]
async fn video_queued_then_succeed() {
    let server = start().await;
    let v: Value = post(
        &server,
        "/videos",
        &[],
        json!({"model": "kling-v1", "prompt": "cat"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (v["id"].clone(), v["status"].clone(), v["model"].clone()),
        (json!("video-1"), json!("queued"), json!("kling-v1"))
    );
    let poll = |headers: Vec<(&'static str, &'static str)>, id: &'static str| {
        let mut req = client().get(format!("{}/videos/{id}", server.base_url()));
        for (n, v) in headers {
            req = req.header(n, v);
        }
        req.send()
    };
    let v: Value = poll(vec![], "video-1").await.unwrap().json().await.unwrap();
    assert_eq!(
        (v["status"].clone(), v["progress"].clone()),
        (json!("queued"), json!(0))
    );
    let v: Value = poll(vec![], "video-1").await.unwrap().json().await.unwrap();
    assert_eq!(
        (v["status"].clone(), v["model"].clone(), v["output"].clone()),
        (
            json!("succeed"),
            json!("kling-v1"),
            json!(["https://example.invalid/video.mp4"])
        )
    );
    let missing = vec![("x-mock-scenario", "task_not_exist:2")];
    let mut got = Vec::new();
    for _ in 0..4 {
        let resp = poll(missing.clone(), "video-9").await.unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap();
        got.push((
            status,
            v.get("status")
                .cloned()
                .unwrap_or_else(|| v["code"].clone()),
        ));
    }
    assert_eq!(
        got,
        vec![
            (404, json!("task_not_exist")),
            (404, json!("task_not_exist")),
            (200, json!("queued")),
            (200, json!("succeed"))
        ]
    );
    let v: Value = poll(vec![("x-mock-scenario", "video_failed")], "video-1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["status"].clone(), v.get("error").cloned()),
        (json!("failed"), None)
    );
}

#[tokio::test]
async fn timing_and_connection_steps() {
    let server = start().await;
    let started = Instant::now();
    assert_eq!(
        chat(&server, &[("x-mock-scenario", "slow:120")])
            .await
            .status()
            .as_u16(),
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(120));
    let started = Instant::now();
    assert_eq!(
        chat(&server, &[("x-mock-first-byte-delay-ms", "80")])
            .await
            .status()
            .as_u16(),
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(80));
    let url = format!("{}/chat/completions", server.base_url());
    let reset = client()
        .post(&url)
        .header("x-mock-scenario", "reset")
        .body("{}")
        .send()
        .await;
    assert!(reset.is_err());
    let hang = client()
        .post(&url)
        .header("x-mock-scenario", "hang")
        .timeout(Duration::from_millis(200))
        .body("{}")
        .send()
        .await;
    assert!(hang.err().is_some_and(|e| e.is_timeout()));
    // Non-stream cut: fewer bytes than Content-Length, then the connection closes.
    let resp = client()
        .post(&url)
        .header("x-mock-scenario", "cut:10")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.content_length().is_some_and(|n| n > 10));
    assert!(resp.bytes().await.is_err());
    assert_eq!(server.total(), 5);
}
