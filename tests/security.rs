//! Secure by default, end to end: a client reaches only the API under the
//! upstream's base URL (hostile paths and methods are refused and never
//! forwarded), each target of a route receives exactly the credentials its
//! rule allows (fallbacks and stream repair included, with and without
//! inbound auth), and inbound auth consumes the gateway token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use backstop::server::Running;
use common::scripted::{Answer, Scripted, Seen};
use common::{client, gateway};
use serde_json::{json, Value};

const COMPLETION: &str = r#"{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;

async fn recording() -> Scripted {
    Scripted::start(|_, _| Answer::json(200, COMPLETION)).await
}

/// Sends `method path` raw (so nothing on the way normalizes it).
async fn raw(gw: &Running, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn a_client_reaches_only_the_api_under_the_base_path() {
    let up = recording().await;
    let base = format!("http://{}/tenant-a/v1", up.addr);
    let gw = gateway(&base, |_| {}).await;
    let hostile = [
        "/v1/../../admin/keys",
        "/v1/%2e%2e/%2E%2E/admin/keys",
        "/v1/..%5c..%5cx",
        "/v1/files/%2F..%2Fadmin",
        "/v1/%252e%252e/admin",
        "/v1//models",
        "/v1/./models",
        "/v1/..;/admin",
    ];
    for path in hostile {
        let (status, text) = raw(&gw, "GET", path).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("\"kind\":\"bad_request\""), "{path}: {text}");
        assert!(text.contains("x-backstop-attempts: 0"), "{path}: {text}");
    }
    assert_eq!(up.count(), 0, "nothing hostile was forwarded");
    // The legitimate path goes to exactly base path + the path after /v1.
    let (status, _) = raw(&gw, "GET", "/v1/models?limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(up.seen()[0].uri, "/tenant-a/v1/models?limit=2");
}

#[tokio::test]
async fn only_the_api_methods_are_forwarded() {
    let up = recording().await;
    let gw = gateway(&up.base_url(), |_| {}).await;
    for method in ["TRACE", "PROPFIND", "get", "PUT", "PATCH", "OPTIONS"] {
        let (status, text) = raw(&gw, method, "/v1/models").await;
        assert_eq!(status, 405, "{method}: {text}");
        assert!(
            text.contains("\"kind\":\"bad_request\""),
            "{method}: {text}"
        );
    }
    let (status, _) = raw(&gw, "CONNECT", "/v1/models").await;
    assert!(status == 405 || status == 400, "CONNECT: {status}");
    assert_eq!(up.count(), 0);
    for method in ["GET", "POST", "DELETE", "HEAD"] {
        let (status, _) = raw(&gw, method, "/v1/models").await;
        assert_eq!(status, 200, "{method}");
    }
    assert_eq!(
        up.seen()
            .iter()
            .map(|s| s.method.as_str())
            .collect::<Vec<_>>(),
        ["GET", "POST", "DELETE", "HEAD"]
    );
}

/// The credential headers an upstream received.
fn creds(seen: &Seen) -> (Option<String>, Option<String>, Option<String>) {
    let h = |name: &str| {
        seen.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    (h("authorization"), h("x-api-key"), h("api-key"))
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// A route `gpt-x` → default (a 503), then `backup`.
async fn two_providers(
    backup_entry: Value,
    tweak: impl FnOnce(&mut backstop::config::Config) + Send + 'static,
) -> (Scripted, Scripted, Running) {
    let primary =
        Scripted::start(|_, _| Answer::json(503, r#"{"error":{"message":"down"}}"#)).await;
    let backup = recording().await;
    let mut entry = backup_entry;
    entry["url"] = json!(backup.base_url());
    let gw = gateway(&primary.base_url(), move |c| {
        c.upstream.api_key = "sk-default-configured".into();
        c.upstreams
            .insert("backup".into(), serde_json::from_value(entry).unwrap());
        c.routes = vec![serde_json::from_value(json!({
            "name": "r", "models": ["gpt-x"],
            "targets": [{"upstream": "default"}, {"upstream": "backup"}]
        }))
        .unwrap()];
        tweak(c);
    })
    .await;
    (primary, backup, gw)
}

async fn ask(gw: &Running, auth: Option<&str>, extra: &[(&str, &str)]) -> u16 {
    let mut req = client()
        .post(format!(
            "{}/chat/completions?key=query-key-1",
            gw.base_url()
        ))
        .json(&json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_client_key_reaches_only_the_default_upstream_and_a_fallback_gets_its_own() {
    let (primary, backup, gw) = two_providers(json!({"api_key": "sk-backup-own"}), |_| {}).await;
    let status = ask(
        &gw,
        Some("Bearer sk-client-openai"),
        &[("x-api-key", "ak-client")],
    )
    .await;
    assert_eq!(status, 200);
    // The default upstream: the client's credentials, as sent.
    assert_eq!(
        creds(&primary.seen()[0]),
        (s("Bearer sk-client-openai"), s("ak-client"), None)
    );
    assert!(primary.seen()[0].uri.contains("key=query-key-1"));
    // The fallback: its own key only; no client credential, not even in the query.
    assert_eq!(
        creds(&backup.seen()[0]),
        (s("Bearer sk-backup-own"), None, None)
    );
    assert!(
        !backup.seen()[0].uri.contains("query-key-1"),
        "{}",
        backup.seen()[0].uri
    );
}

#[tokio::test]
async fn without_a_key_of_its_own_a_named_upstream_gets_nothing_unless_it_forwards() {
    let (_, backup, gw) = two_providers(json!({}), |_| {}).await;
    ask(&gw, Some("Bearer sk-client-openai"), &[]).await;
    assert_eq!(creds(&backup.seen()[0]), (None, None, None));
    let (_, backup, gw) = two_providers(json!({"forward_client_key": true}), |_| {}).await;
    ask(&gw, Some("Bearer sk-client-openai"), &[]).await;
    assert_eq!(
        creds(&backup.seen()[0]),
        (s("Bearer sk-client-openai"), None, None)
    );
}

#[tokio::test]
async fn with_inbound_auth_the_token_is_consumed_and_each_upstream_gets_its_key() {
    let (primary, backup, gw) = two_providers(json!({"api_key": "sk-backup-own"}), |c| {
        c.auth.tokens = vec!["gw-token-123".into()];
    })
    .await;
    // No token, a wrong one: 401, nothing forwarded.
    for auth in [
        None,
        Some("Bearer sk-client-openai"),
        Some("Bearer gw-token-12"),
    ] {
        assert_eq!(ask(&gw, auth, &[]).await, 401, "{auth:?}");
    }
    assert_eq!(primary.count() + backup.count(), 0);
    // The token, any case of the scheme.
    assert_eq!(
        ask(
            &gw,
            Some("bearer gw-token-123"),
            &[("x-api-key", "ak-client")]
        )
        .await,
        200
    );
    assert_eq!(
        creds(&primary.seen()[0]),
        (s("Bearer sk-default-configured"), None, None)
    );
    assert_eq!(
        creds(&backup.seen()[0]),
        (s("Bearer sk-backup-own"), None, None)
    );
    for seen in primary.seen().iter().chain(backup.seen().iter()) {
        let all = format!("{:?}", seen.headers);
        assert!(
            !all.contains("gw-token-123"),
            "the token was consumed: {all}"
        );
    }
}

#[tokio::test]
async fn a_stream_continued_on_a_named_upstream_carries_its_key_not_the_clients() {
    let mock = backstop_mock::MockServer::start(backstop_mock::MockConfig::default())
        .await
        .unwrap();
    let backup = Scripted::start(|_, _| {
        Answer::sse(vec![
            (Duration::ZERO, "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" backstop-mock.\"},\"finish_reason\":null}]}\n\n"),
            (Duration::ZERO, "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"),
            (Duration::ZERO, "data: [DONE]\n\n"),
        ])
    })
    .await;
    let backup_url = backup.base_url();
    let gw = gateway(&mock.base_url(), move |c| {
        c.upstreams.insert(
            "backup".into(),
            serde_json::from_value(
                json!({"url": backup_url, "prefill": true, "api_key": "sk-backup-own"}),
            )
            .unwrap(),
        );
        c.routes = vec![serde_json::from_value(json!({
            "name": "r", "models": ["gpt-x"], "repair_streams": true,
            "targets": [{"upstream": "default"}, {"upstream": "backup"}]
        }))
        .unwrap()];
    })
    .await;
    let text = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("authorization", "Bearer sk-client-openai")
        .header("x-mock-scenario", "cut:2")
        .json(&json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "repaired: {text}");
    assert_eq!(backup.count(), 1);
    assert_eq!(
        creds(&backup.seen()[0]),
        (s("Bearer sk-backup-own"), None, None)
    );
}
