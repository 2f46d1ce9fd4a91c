//! In-process tests of the mock over real HTTP (reqwest): error formats,
//! sequencing by key, echo, counters, the mix.

use serde_json::{json, Value};

use crate::{MockConfig, MockServer};

pub(super) fn client() -> reqwest::Client {
    // Bytes as sent: no decompression, whatever features the workspace
    // turned on for reqwest.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .build()
        .unwrap()
}

pub(super) async fn start() -> MockServer {
    MockServer::start(MockConfig::default()).await.unwrap()
}

pub(super) async fn post(
    server: &MockServer,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}{path}", server.base_url()))
        .json(&body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

pub(super) async fn chat(server: &MockServer, headers: &[(&str, &str)]) -> reqwest::Response {
    post(
        server,
        "/chat/completions",
        headers,
        json!({"model": "gpt-x", "messages": []}),
    )
    .await
}

pub(super) fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn status_formats() {
    let server = start().await;
    let cases = [
        (
            "status:429",
            429,
            Some("application/json"),
            r#"{"error":{"message":"mock error 429","type":"rate_limit_error","param":null,"code":"too_many_requests"}}"#.to_owned(),
        ),
        (
            "status:500:comet",
            500,
            Some("application/json"),
            r#"{"error":{"message":"mock error 500 (request id: mock-2)","type":"comet_api_error","param":"","code":""}}"#.to_owned(),
        ),
        (
            "status:403:code",
            403,
            Some("application/json"),
            r#"{"code":"forbidden","message":"mock error 403","data":null}"#.to_owned(),
        ),
        ("status:502:html", 502, Some("text/html; charset=utf-8"), crate::errors::html_page(502)),
        ("status:503:empty", 503, None, String::new()),
        ("status:504:text", 504, Some("text/plain; charset=utf-8"), "mock error 504".to_owned()),
    ];
    for (i, (step, status, content_type, body)) in cases.into_iter().enumerate() {
        let resp = chat(&server, &[("x-mock-scenario", step)]).await;
        assert_eq!(resp.status().as_u16(), status, "{step}");
        assert_eq!(
            header(&resp, "content-type").as_deref(),
            content_type,
            "{step}"
        );
        assert_eq!(
            header(&resp, "x-request-id"),
            Some(format!("mock-{}", i + 1)),
            "{step}"
        );
        assert_eq!(resp.text().await.unwrap(), body, "{step}");
    }
}

#[tokio::test]
async fn sequences_by_key() {
    let server = start().await;
    let scenario = ("x-mock-scenario", "status:503,error:rate_limit_exceeded,ok");
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(
            chat(&server, &[scenario, ("x-mock-key", "k1")])
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(got, vec![503, 429, 200, 200]);
    // Without a key: always the first step.
    assert_eq!(chat(&server, &[scenario]).await.status().as_u16(), 503);
    assert_eq!(chat(&server, &[scenario]).await.status().as_u16(), 503);
    // Another key starts over.
    assert_eq!(
        chat(&server, &[scenario, ("x-mock-key", "k2")])
            .await
            .status()
            .as_u16(),
        503
    );
    assert_eq!(
        (
            server.hits("k1"),
            server.hits("k2"),
            server.hits("k3"),
            server.total()
        ),
        (4, 1, 0, 7)
    );
    let last = server.last_request("k1").unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        last.headers.get("x-mock-key").map(|v| v.as_bytes()),
        Some(&b"k1"[..])
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&last.body).unwrap(),
        json!({"model": "gpt-x", "messages": []})
    );
}

#[tokio::test]
async fn echoes_the_request() {
    let server = start().await;
    let resp = client()
        .post(format!("{}/chat/completions?x=1", server.base_url()))
        .header("x-mock-echo", "1")
        .header("x-custom", "a")
        .header("authorization", "Bearer sk-test")
        .header("content-type", "application/json")
        .body("{\"a\":\"é\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.unwrap();
    let host = server.addr().to_string();
    assert_eq!(
        v,
        json!({
            "method": "POST",
            "path": "/v1/chat/completions?x=1",
            "headers": {
                "accept": "*/*",
                "authorization": "Bearer sk-test",
                "content-length": "10",
                "content-type": "application/json",
                "host": host,
                "x-custom": "a",
                "x-mock-echo": "1",
            },
            "body_len": 10,
            "body": "{\"a\":\"é\"}",
        })
    );
}

#[tokio::test]
async fn stats_and_reset() {
    let server = start().await;
    chat(&server, &[("x-mock-key", "a")]).await;
    chat(&server, &[("x-mock-key", "a")]).await;
    chat(&server, &[("x-mock-key", "b")]).await;
    chat(&server, &[]).await;
    let stats = |s: &MockServer| {
        client()
            .get(format!("http://{}/mock/stats", s.addr()))
            .send()
    };
    let v: Value = stats(&server).await.unwrap().json().await.unwrap();
    assert_eq!(v, json!({"total": 4, "by_key": {"a": 2, "b": 1}}));
    let resp = client()
        .post(format!("http://{}/mock/reset", server.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), r#"{"reset":true}"#);
    let v: Value = stats(&server).await.unwrap().json().await.unwrap();
    assert_eq!(v, json!({"total": 0, "by_key": {}}));
    assert_eq!(
        header(&chat(&server, &[]).await, "x-request-id").as_deref(),
        Some("mock-2")
    );
}

#[tokio::test]
async fn mix_draws_by_weight() {
    let config = MockConfig {
        mix: vec![("status:418".into(), 1), ("ok".into(), 0)],
        ..MockConfig::default()
    };
    let server = MockServer::start(config).await.unwrap();
    for _ in 0..3 {
        assert_eq!(chat(&server, &[]).await.status().as_u16(), 418);
    }
    // A scenario header wins over the mix.
    assert_eq!(
        chat(&server, &[("x-mock-scenario", "ok")])
            .await
            .status()
            .as_u16(),
        200
    );
    let bad = MockConfig {
        mix: vec![("nope".into(), 1)],
        ..MockConfig::default()
    };
    assert_eq!(
        MockServer::start(bad).await.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );
}

#[tokio::test]
async fn named_errors_and_rate_limits() {
    let server = start().await;
    let resp = chat(&server, &[("x-mock-scenario", "error:invalid_token")]).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":{"code":"","message":"invalid token (request id: mock-1)","type":"comet_api_error"}}"#
    );
    let resp = chat(&server, &[("x-mock-scenario", "error:model_not_found")]).await;
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"code":"model_not_found","message":"model 'gpt-x' not found","data":null}"#
    );
    let resp = chat(&server, &[("x-mock-scenario", "retry_after:3")]).await;
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "retry-after")),
        (429, Some("3".to_owned()))
    );
    let resp = chat(&server, &[("x-mock-scenario", "retry_after:1500:ms")]).await;
    assert_eq!(
        (
            header(&resp, "retry-after-ms"),
            header(&resp, "retry-after")
        ),
        (Some("1500".to_owned()), None)
    );
    let resp = chat(&server, &[("x-mock-scenario", "ratelimit_reset:6m0s")]).await;
    assert_eq!(
        header(&resp, "x-ratelimit-reset-requests").as_deref(),
        Some("6m0s")
    );
    let resp = chat(&server, &[("x-mock-scenario", "error:cloudflare_524")]).await;
    assert_eq!(
        (
            resp.status().as_u16(),
            header(&resp, "content-type").as_deref()
        ),
        (524, Some("text/html; charset=utf-8"))
    );
    let resp = chat(&server, &[("x-mock-scenario", "redirect")]).await;
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "location").as_deref()),
        (301, Some("https://example.invalid/v1/chat/completions"))
    );
    let resp = chat(&server, &[("x-mock-scenario", "html")]).await;
    assert_eq!(
        (
            resp.status().as_u16(),
            header(&resp, "content-type").as_deref()
        ),
        (200, Some("text/html; charset=utf-8"))
    );
}

#[tokio::test]
async fn bad_directives_are_400() {
    let server = start().await;
    let resp = chat(&server, &[("x-mock-scenario", "ok,status:42")]).await;
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["param"], "x-mock-scenario");
    assert_eq!(
        v["error"]["message"],
        "backstop-mock: x-mock-scenario: bad step 'status:42': status needs a code from 200 to 999"
    );
    let resp = chat(&server, &[("x-mock-chunks", "lots")]).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(server.total(), 2);
}
