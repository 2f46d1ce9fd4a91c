//! The redaction matrix: every form of secret × every output channel, with
//! the real binary at `trace` in text and JSON. An upstream echoes every
//! secret it can in its error message, `param`, `code`, request id, a
//! response header and a stream's in-band error; a dead upstream behind a
//! URL with userinfo gives the connect-error path. Not one occurrence may
//! reach the client's bodies and headers, stdout, stderr, `/metrics` or
//! `/debug/failures`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::client;
use common::scripted::{Answer, Scripted};
use http::StatusCode;
use serde_json::json;

/// Every secret form, each a distinct value.
const CLIENT_BEARER: &str = "sk-client-bearer-0001";
const DEFAULT_KEY: &str = "sk-default-configured-0002";
const NAMED_KEY: &str = "sk-named-configured-0003";
const X_API_KEY: &str = "xak-client-0004";
const API_KEY: &str = "azure-client-0005";
const GOOG_KEY: &str = "goog-client-0006";
const Q_KEY: &str = "query-key-0007";
const Q_API_KEY: &str = "query-apikey-0008";
const Q_API_DASH: &str = "query-api-dash-0009";
const USERINFO: &str = "userinfo-pass-0010";
const ADMIN: &str = "admin-token-0011";

const ALL: [&str; 11] = [
    CLIENT_BEARER,
    DEFAULT_KEY,
    NAMED_KEY,
    X_API_KEY,
    API_KEY,
    GOOG_KEY,
    Q_KEY,
    Q_API_KEY,
    Q_API_DASH,
    USERINFO,
    ADMIN,
];

/// An upstream that echoes every secret, however it got them.
async fn echoing() -> Scripted {
    Scripted::start(|seen, _| {
        let all = ALL.join(" ");
        let body: serde_json::Value =
            serde_json::from_slice(&seen.body).unwrap_or(serde_json::Value::Null);
        let model = body["model"].as_str().unwrap_or_default().to_string();
        let mut answer = if seen.uri.starts_with("/v1/models") {
            Answer::json(200, r#"{"object":"list","data":[]}"#)
        } else if model == "gpt-stream" {
            let error = json!({"error": {"message": format!("in-band {all}"), "code": CLIENT_BEARER}});
            let chunk = r#"{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
            // Content first (it goes out), then the in-band error: the
            // stream's closing event carries the echo.
            let first: &'static str = Box::leak(format!("data: {chunk}\n\n").into_boxed_str());
            let last: &'static str = Box::leak(format!("data: {error}\n\n").into_boxed_str());
            Answer::sse(vec![(Duration::ZERO, first), (Duration::from_millis(100), last)])
        } else {
            let error = json!({"error": {
                "message": format!("Incorrect API key provided: {all} (request id: {X_API_KEY})"),
                "param": all, "code": DEFAULT_KEY, "type": "invalid_request_error"
            }});
            Answer::json(401, &error.to_string())
        };
        answer.headers.push(("x-request-id", CLIENT_BEARER.to_string()));
        answer.headers.push(("x-echo", ALL.join(",")));
        answer.status = if seen.uri.starts_with("/v1/models") || model == "gpt-stream" {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        answer
    })
    .await
}

fn config(upstream: &str, dead: &str, format: &str) -> String {
    let up = upstream.replace("http://", &format!("http://user:{USERINFO}@"));
    format!(
        r#"
listen = "127.0.0.1:0"
[upstream]
url = "{up}"
api_key = "{DEFAULT_KEY}"
[upstreams.named]
url = "{upstream}"
api_key = "{NAMED_KEY}"
[upstreams.dead]
url = "{dead}"
[[routes]]
name = "named"
models = ["gpt-named"]
targets = [{{ upstream = "named" }}]
[[routes]]
name = "dead"
models = ["gpt-dead"]
targets = [{{ upstream = "dead" }}]
[retry]
max_attempts = 1
[log]
level = "trace"
format = "{format}"
request_bodies = true
[debug]
failures = true
admin_token = "{ADMIN}"
"#
    )
}

/// Runs the binary with `format`, sends every kind of request with every
/// client secret, and returns everything it let out.
async fn everything_out(format: &str) -> String {
    let up = echoing().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://user:{USERINFO}@{}/v1", l.local_addr().unwrap())
    };
    let path = std::env::temp_dir().join(format!(
        "backstop-redaction-{format}-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, config(&up.base_url(), &dead, format)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_backstop"))
        .args(["--config", path.to_str().unwrap()])
        .env_clear()
        .env("RUST_LOG", "trace")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first
        .rsplit("http://")
        .next()
        .unwrap()
        .trim()
        .trim_end_matches(['"', '}'])
        .to_string();
    let mut out = String::new();
    let query = format!("key={Q_KEY}&api_key={Q_API_KEY}&api-key={Q_API_DASH}");
    for (method, path, model, stream) in [
        ("POST", "chat/completions", "gpt-x", false),
        ("POST", "chat/completions", "gpt-named", false),
        ("POST", "chat/completions", "gpt-dead", false),
        ("POST", "chat/completions", "gpt-stream", true),
        ("GET", "models", "", false),
    ] {
        let url = format!("http://{addr}/v1/{path}?{query}");
        let req = match method {
            "GET" => client().get(url),
            _ => client().post(url).json(&json!({
                "model": model, "stream": stream,
                "messages": [{"role": "user", "content": format!("my key is {CLIENT_BEARER}")}],
                "metadata": {"api_key": X_API_KEY, "note": GOOG_KEY},
            })),
        };
        let resp = req
            .header("authorization", format!("bearer {CLIENT_BEARER}"))
            .header("x-api-key", X_API_KEY)
            .header("api-key", API_KEY)
            .header("x-goog-api-key", GOOG_KEY)
            .send()
            .await
            .unwrap();
        out.push_str(&format!("{:?}\n", resp.headers()));
        out.push_str(&resp.text().await.unwrap());
        out.push('\n');
    }
    for (path, token) in [("metrics", None), ("debug/failures", Some(ADMIN))] {
        let mut req = client().get(format!("http://{addr}/{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        out.push_str(&resp.text().await.unwrap());
    }
    assert!(
        out.contains("\"kind\":\"connect_error\""),
        "the dead upstream was tried: {out}"
    );
    assert!(
        out.contains("\"kind\":\"unauthorized\""),
        "the echo was an error: {out}"
    );
    assert!(
        out.contains("data: {\"error\""),
        "a stream closed with the echo: {out}"
    );
    unsafe_free_kill(&mut child);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_file(&path);
    assert!(
        stderr.lines().count() > 5,
        "trace logs were written ({format}): {stderr}"
    );
    if std::env::var_os("BACKSTOP_SHOW_REDACTION").is_some() {
        eprintln!("{stderr}");
    }
    format!("{out}\n--- stdout ---\n{first}{rest}\n--- stderr ---\n{stderr}")
}

/// SIGTERM, so the process drains and flushes its logs.
fn unsafe_free_kill(child: &mut std::process::Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
}

fn assert_no_secret(out: &str, format: &str) {
    for secret in ALL {
        let found: Vec<&str> = out.lines().filter(|l| l.contains(secret)).take(3).collect();
        assert!(
            found.is_empty(),
            "{format}: {secret} leaked in {} line(s), e.g.:\n{}",
            out.lines().filter(|l| l.contains(secret)).count(),
            found.join("\n")
        );
    }
    assert!(
        out.contains("[REDACTED]"),
        "{format}: the echoes were redacted, not lost"
    );
}

#[tokio::test]
async fn no_secret_reaches_any_channel_in_text_logs() {
    let out = everything_out("text").await;
    assert_no_secret(&out, "text");
}

#[tokio::test]
async fn no_secret_reaches_any_channel_in_json_logs() {
    let out = everything_out("json").await;
    assert_no_secret(&out, "json");
}
