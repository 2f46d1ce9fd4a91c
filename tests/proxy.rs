//! The gateway as a transparent streaming proxy (issue: foundation), against
//! a scripted upstream on an ephemeral port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::scripted::{Answer, Scripted};
use common::{chat, client, gateway};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

fn sse_events(n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i} \"}},\"finish_reason\":null}}]}}\n\n"
            )
        })
        .collect();
    v.push("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".into());
    v.push("data: [DONE]\n\n".into());
    v
}

#[tokio::test]
async fn non_streaming_body_passes_through_byte_for_byte() {
    let up = Scripted::start(|_, _| Answer::json(200, COMPLETION)).await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-backstop-attempts"], "1");
    assert_eq!(resp.headers()["x-backstop-class"], "none");
    assert_eq!(resp.headers()["x-backstop-kind"], "ok");
    assert!(resp.headers().get("x-should-retry").is_none());
    assert_eq!(resp.text().await.unwrap(), COMPLETION);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].uri, "/v1/chat/completions");
    assert_eq!(seen[0].body, serde_json::to_vec(&chat(false)).unwrap());
}

#[tokio::test]
async fn every_method_and_path_under_v1_is_forwarded_with_its_query() {
    let up = Scripted::start(|_, _| Answer::json(200, "{}")).await;
    let gw = gateway(&format!("{}/", up.base_url()), |_| {}).await;
    let c = client();
    let base = gw.base_url();
    c.get(format!("{base}/models?limit=2"))
        .send()
        .await
        .unwrap();
    c.delete(format!("{base}/files/file-1"))
        .send()
        .await
        .unwrap();
    c.post(format!("{base}/embeddings"))
        .json(&serde_json::json!({"model":"e","input":"x"}))
        .send()
        .await
        .unwrap();
    c.get(format!("{base}/videos/video_9"))
        .send()
        .await
        .unwrap();
    let seen: Vec<(String, String)> = up.seen().into_iter().map(|s| (s.method, s.uri)).collect();
    assert_eq!(
        seen,
        [
            ("GET".to_string(), "/v1/models?limit=2".to_string()),
            ("DELETE".into(), "/v1/files/file-1".into()),
            ("POST".into(), "/v1/embeddings".into()),
            ("GET".into(), "/v1/videos/video_9".into()),
        ]
    );
}

#[tokio::test]
async fn multipart_audio_reaches_the_upstream_intact() {
    let up = Scripted::start(|_, _| Answer::json(200, r#"{"text":"ok"}"#)).await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let audio: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .text("model", "whisper-1")
        .part(
            "file",
            reqwest::multipart::Part::bytes(audio.clone()).file_name("a.wav"),
        );
    let resp = client()
        .post(format!("{}/audio/transcriptions", gw.base_url()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = &up.seen()[0];
    let ct = seen.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
    let body = &seen.body;
    assert!(
        body.windows(audio.len()).any(|w| w == audio.as_slice()),
        "file bytes intact"
    );
}

#[tokio::test]
async fn streaming_passes_through_byte_for_byte() {
    let events = sse_events(5);
    let chunks: Vec<(Duration, String)> =
        events.iter().map(|e| (Duration::ZERO, e.clone())).collect();
    let up = Scripted::start(move |_, _| {
        Answer::sse(chunks.iter().map(|(d, c)| (*d, c.as_str())).collect())
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&chat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.text().await.unwrap(), events.concat());
}

#[tokio::test]
async fn the_first_chunk_arrives_long_before_the_last_is_produced() {
    // 5 events, 200 ms apart: the client must see the first while the
    // upstream is still producing. Causal check, not a timing threshold:
    // the first event is received before the upstream sent the last one.
    let events = sse_events(3);
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<usize>();
    let up = Scripted::start(move |_, _| {
        let mut a = Answer::sse(
            events
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    (
                        if i == 0 {
                            Duration::ZERO
                        } else {
                            Duration::from_millis(200)
                        },
                        e.as_str(),
                    )
                })
                .collect(),
        );
        a.on_drop = Some(sent_tx.clone());
        a
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&chat(true))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_at = Instant::now();
    assert!(first.starts_with(b"data: {"), "{first:?}");
    // The upstream has not finished: its body stream is still alive.
    assert!(
        sent_rx.try_recv().is_err(),
        "upstream already done when the first chunk arrived"
    );
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(rest.ends_with(b"data: [DONE]\n\n"));
    assert_eq!(sent_rx.recv().await, Some(5));
    assert!(
        first_at.elapsed() >= Duration::from_millis(600),
        "the rest took the upstream's pacing"
    );
}

#[tokio::test]
async fn headers_pass_both_ways_less_hop_by_hop_with_the_upstreams_host() {
    let up = Scripted::start(|_, _| {
        let mut a = Answer::json(200, "{}");
        a.headers.push(("x-upstream-thing", "42".into()));
        a.headers.push(("x-request-id", "up-77".into()));
        a
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = client()
        .get(format!("{}/models", gw.base_url()))
        .header("x-custom", "kept")
        .header("connection", "x-private")
        .header("x-private", "dropped")
        .header("x-request-id", "client-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-upstream-thing"], "42");
    assert_eq!(resp.headers()["x-request-id"], "client-id-1");
    assert_eq!(resp.headers()["x-upstream-request-id"], "up-77");
    let seen = &up.seen()[0];
    assert_eq!(seen.headers["x-custom"], "kept");
    assert!(seen.headers.get("x-private").is_none());
    assert_eq!(seen.headers["host"], up.addr.to_string());
    assert_eq!(seen.headers["x-request-id"], "client-id-1");
}

#[tokio::test]
async fn a_request_id_is_made_when_the_client_sends_none() {
    let up = Scripted::start(|_, _| Answer::json(200, "{}")).await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = client()
        .get(format!("{}/models", gw.base_url()))
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(up.seen()[0].headers["x-request-id"], id.as_str());
}

#[tokio::test]
async fn client_authorization_passes_and_the_configured_key_fills_in() {
    let up = Scripted::start(|_, _| Answer::json(200, "{}")).await;
    let gw = gateway(&up.base_url(), |c| {
        c.upstream.api_key = "sk-configured".into()
    })
    .await;
    let c = client();
    c.get(format!("{}/models", gw.base_url()))
        .header("authorization", "Bearer sk-client")
        .send()
        .await
        .unwrap();
    c.get(format!("{}/models", gw.base_url()))
        .send()
        .await
        .unwrap();
    let seen = up.seen();
    assert_eq!(seen[0].headers["authorization"], "Bearer sk-client");
    assert_eq!(seen[1].headers["authorization"], "Bearer sk-configured");
}

#[tokio::test]
async fn no_key_anywhere_sends_no_authorization() {
    let up = Scripted::start(|_, _| Answer::json(200, "{}")).await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    client()
        .get(format!("{}/models", gw.base_url()))
        .send()
        .await
        .unwrap();
    assert!(up.seen()[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_never_reaches_the_upstream() {
    let up = Scripted::start(|_, _| Answer::json(200, "{}")).await;
    let gw = gateway(&up.base_url(), |c| c.limits.max_request_body_bytes = 1024).await;
    let c = client();
    let big = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    // With a Content-Length, and streamed without one (chunked).
    let with_length = c
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&big)
        .send()
        .await
        .unwrap();
    let bytes = serde_json::to_vec(&big).unwrap();
    let chunked = c
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            bytes
                .chunks(100)
                .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                .collect::<Vec<_>>(),
        )))
        .send()
        .await
        .unwrap();
    for resp in [with_length, chunked] {
        assert_eq!(resp.status(), 413);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["backstop"]["kind"], "payload_too_large");
        assert_eq!(body["error"]["backstop"]["attempts"], 0);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1024 bytes"));
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let (dropped_tx, mut dropped_rx) = mpsc::unbounded_channel::<usize>();
    let up = Scripted::start(move |_, _| {
        let first = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n";
        let mut a = Answer::sse(vec![(Duration::ZERO, first)]);
        a.hang = true;
        a.on_drop = Some(dropped_tx.clone());
        a
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&chat(true))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(body);
    // The upstream's body stream is dropped once the gateway lets go of the
    // upstream connection; the timeout only bounds a failing test.
    let sent = tokio::time::timeout(Duration::from_secs(10), dropped_rx.recv())
        .await
        .expect("upstream stream was not cancelled");
    assert_eq!(sent, Some(1));
}

#[tokio::test]
async fn graceful_shutdown_lets_an_inflight_stream_finish() {
    let events = sse_events(4);
    let up = Scripted::start(move |_, _| {
        Answer::sse(
            events
                .iter()
                .map(|e| (Duration::from_millis(100), e.as_str()))
                .collect(),
        )
    })
    .await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let addr = gw.addr;
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&chat(true))
        .send()
        .await
        .unwrap();
    let ready = gw.app.ready.clone();
    let shutdown = tokio::spawn(gw.shutdown());
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(text.matches("data: ").count(), 6);
    shutdown.await.unwrap().unwrap();
    assert!(!ready.load(std::sync::atomic::Ordering::Relaxed));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn ops_endpoints_answer() {
    let up = Scripted::start(|_, _| Answer::json(200, COMPLETION)).await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let c = client();
    let base = format!("http://{}", gw.addr);
    assert_eq!(
        c.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = c
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    resp.bytes().await.unwrap();
    let metrics = c.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"backstop_requests_total{class="none",kind="ok",model="test-model",route="/v1/chat/completions"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"backstop_inflight_requests{route="/v1/chat/completions"} 0"#));
    let nf = c
        .get(format!("{base}/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(nf.status(), 404);
    let body: serde_json::Value = nf.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("/v1"));
}

#[tokio::test]
async fn only_paths_under_v1_reach_the_upstream() {
    let up = Scripted::start(|_, _| Answer::json(200, COMPLETION)).await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    let c = client();
    let base = format!("http://{}", gw.addr);
    for path in [
        "/chat/completions",
        "/v1",
        "/v1/",
        "/v2/models",
        "/v1x/models",
        "/",
    ] {
        let resp = c.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["backstop"]["kind"], "not_found", "{path}");
        assert_eq!(
            body["error"]["message"].as_str().unwrap().split(" [backstop:").next(),
            Some(
                format!(
                    "backstop serves the OpenAI API under /v1/ (got {path}): set the SDK's base_url to http://<gateway>/v1"
                )
                .as_str()
            ),
            "{path}"
        );
    }
    assert_eq!(up.count(), 0);
    let resp = c.get(format!("{base}/v1/models")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn the_configured_key_can_replace_the_clients() {
    let up = Scripted::start(|_, _| Answer::json(200, "{}")).await;
    let gw = gateway(&up.base_url(), |c| {
        c.upstream.api_key = "sk-configured".into();
        c.upstream.replace_client_key = true;
    })
    .await;
    client()
        .get(format!("{}/models", gw.base_url()))
        .header("authorization", "Bearer placeholder")
        .send()
        .await
        .unwrap();
    assert_eq!(
        up.seen()[0].headers["authorization"],
        "Bearer sk-configured"
    );
}
