//! In-process tests over real HTTP of the Responses API (streams bent by
//! steps, background create / poll / cancel) and of chat prefill
//! continuations.

use serde_json::{json, Value};

use super::http::{client, header, post, start};
use super::stream::{data, frames};
use crate::MockServer;

/// The event names of a Responses stream, and whether it ended with an error.
async fn names(server: &MockServer, step: &str) -> (Vec<String>, bool) {
    let resp = post(
        server,
        "/responses",
        &[("x-mock-scenario", step)],
        json!({"model": "r", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("text/event-stream")
    );
    let (got, failed) = frames(resp).await;
    let text = got.concat();
    assert!(!text.contains("[DONE]"));
    let names = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("event: ")
                .to_owned()
        })
        .collect();
    (names, failed)
}

const HEAD: [&str; 4] = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
];
const DELTA: &str = "response.output_text.delta";
const TAIL: [&str; 3] = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
];

fn seq(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect()
}

#[tokio::test]
async fn streams_bent_by_steps() {
    let server = start().await;
    let d3: &[&str] = &[DELTA, DELTA, DELTA];
    let cases: Vec<(&str, Vec<String>, bool)> = vec![
        (
            "ok",
            seq(&[&HEAD, d3, &TAIL, &["response.completed"]]),
            false,
        ),
        (
            "finish:length",
            seq(&[&HEAD, d3, &TAIL, &["response.incomplete"]]),
            false,
        ),
        ("cut:2", seq(&[&HEAD, &[DELTA, DELTA]]), true),
        ("no_done", seq(&[&HEAD, d3, &TAIL]), false),
        (
            "failed:server_error",
            seq(&[&HEAD[..2], &["response.failed"]]),
            false,
        ),
        ("error_event", seq(&[&["error"]]), false),
        (
            "malformed",
            seq(&[
                &HEAD,
                &[DELTA, "data: {not json", DELTA, DELTA],
                &TAIL,
                &["response.completed"],
            ]),
            false,
        ),
    ];
    for (step, want, failed) in cases {
        assert_eq!(names(&server, step).await, (want, failed), "{step}");
    }
    let resp = post(
        &server,
        "/responses",
        &[("x-mock-scenario", "error_event")],
        json!({"stream": true}),
    )
    .await;
    assert_eq!(
        resp.text().await.unwrap(),
        "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"mock in-band error\",\"param\":null,\"sequence_number\":0}\n\n"
    );
}

async fn get(server: &MockServer, path: &str, step: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}{path}", server.base_url()))
        .header("x-mock-scenario", step)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or_default(),
    )
}

#[tokio::test]
async fn background_create_poll_cancel() {
    let server = start().await;
    let created: Value = post(
        &server,
        "/responses",
        &[],
        json!({"model": "r", "input": "hi", "background": true}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (
            created["id"].clone(),
            created["status"].clone(),
            created["background"].clone(),
            created["output"].clone()
        ),
        (
            json!("resp_mock_1"),
            json!("queued"),
            json!(true),
            json!([])
        )
    );
    let path = "/responses/resp_mock_1";
    let (status, v) = get(&server, path, "pending").await;
    assert_eq!(
        (status, v["status"].clone(), v["model"].clone()),
        (200, json!("in_progress"), json!("r"))
    );
    let (_, v) = get(&server, path, "ok").await;
    assert_eq!(
        (
            v["id"].clone(),
            v["status"].clone(),
            v["output"][0]["content"][0]["text"].clone(),
            v["usage"]["output_tokens"].clone()
        ),
        (
            json!("resp_mock_1"),
            json!("completed"),
            json!("Hello from backstop-mock."),
            json!(3)
        )
    );
    assert_eq!(v["output"][0]["id"], "msg_mock_1");
    let (_, v) = get(&server, path, "failed:rate_limit_exceeded").await;
    assert_eq!(
        (v["status"].clone(), v["error"].clone()),
        (
            json!("failed"),
            json!({"code": "rate_limit_exceeded", "message": "mock failure rate_limit_exceeded"})
        )
    );
    let (_, v) = get(&server, path, "finish:length").await;
    assert_eq!(
        v["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    let cancelled: Value = post(&server, "/responses/resp_mock_1/cancel", &[], json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (cancelled["id"].clone(), cancelled["status"].clone()),
        (json!("resp_mock_1"), json!("cancelled"))
    );
    assert_eq!(get(&server, path, "ok").await.1["status"], "cancelled");

    // pending on a create; an unknown id; errors still apply to polls.
    let v: Value = post(
        &server,
        "/responses",
        &[("x-mock-scenario", "pending")],
        json!({"background": true}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["status"], "in_progress");
    let v: Value = post(
        &server,
        "/responses",
        &[("x-mock-scenario", "pending")],
        json!({}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (v["status"].clone(), v["background"].clone()),
        (json!("in_progress"), json!(false))
    );
    let (status, v) = get(&server, "/responses/resp_mock_99", "ok").await;
    assert_eq!(
        (status, v["error"]["message"].clone()),
        (404, json!("Response with id 'resp_mock_99' not found."))
    );
    let resp = post(&server, "/responses/resp_nope/cancel", &[], json!({})).await;
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(get(&server, path, "status:503").await.0, 503);
}

/// The content of a chat answer (whole or streamed), its id and its usage.
async fn said(server: &MockServer, prefill: Value, stream: bool) -> (String, String, Value) {
    let body = json!({
        "model": "gpt-x", "stream": stream, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": prefill}],
    });
    let resp = post(server, "/chat/completions", &[], body).await;
    if !stream {
        let v: Value = resp.json().await.unwrap();
        let content = v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        return (content, id, v["usage"].clone());
    }
    let (got, _) = frames(resp).await;
    let events: Vec<Value> = data(&got.concat())
        .iter()
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect();
    let content = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    let id = events[0]["id"].as_str().unwrap_or_default().to_owned();
    let usage = events
        .iter()
        .rev()
        .find(|e| e["usage"].is_object())
        .map_or(Value::Null, |e| e["usage"].clone());
    (content, id, usage)
}

#[tokio::test]
async fn prefill_is_continued_exactly() {
    let server = start().await;
    let usage =
        |p: u64, c: u64| json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
    let cases = [
        (json!("Hello from"), " backstop-mock.", usage(7, 1)),
        (json!("Hel"), "lo from backstop-mock.", usage(6, 3)),
        (
            json!([{"type": "text", "text": "Hello"}]),
            " from backstop-mock.",
            usage(6, 2),
        ),
        (json!("Bonjour"), "Hello from backstop-mock.", usage(6, 3)),
    ];
    for stream in [false, true] {
        for (prefill, want, want_usage) in &cases {
            let (content, id, got_usage) = said(&server, prefill.clone(), stream).await;
            assert_eq!(
                (content.as_str(), &got_usage),
                (*want, want_usage),
                "{prefill} stream {stream}"
            );
            assert!(id.starts_with("chatcmpl-mock-"));
        }
    }
    // Every continuation has an id of its own.
    let a = said(&server, json!("Hello"), true).await.1;
    let b = said(&server, json!("Hello"), true).await.1;
    assert_ne!(a, b);
    // The stream's pieces: the rest of the cut piece, then the next ones.
    let body = json!({"stream": true, "messages": [{"role": "assistant", "content": "Hel"}]});
    let (got, _) = frames(post(&server, "/chat/completions", &[], body).await).await;
    let pieces: Vec<String> = data(&got.concat())
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .filter(|p| !p.is_empty())
        .collect();
    assert_eq!(pieces, vec!["lo", " from", " backstop-mock."]);
}
