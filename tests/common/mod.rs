//! Shared test harness: a gateway started in-process on `127.0.0.1:0` in
//! front of an upstream (the chaos mock, or a scripted one written in the
//! test), and a plain HTTP client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod scenario;
pub mod scripted;

use std::io::{BufRead, BufReader};
use std::process::Child;

use backstop::config::Config;
use backstop::server::{self, Running};

/// Starts a gateway in front of `upstream` (a base URL with `/v1`), with
/// fast retry delays; `tweak` adjusts the config further.
pub async fn gateway(upstream: &str, tweak: impl FnOnce(&mut Config)) -> Running {
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    };
    config.upstream.url = upstream.to_string();
    config.retry.base_delay_ms = 1;
    config.retry.max_delay_ms = 5;
    config.shutdown.drain_timeout_ms = 5_000;
    tweak(&mut config);
    config.validate().expect("test config must be valid");
    server::start(config).await.expect("gateway starts")
}

/// A client that never retries and never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A header's value as text, or "" when absent.
pub fn header_text(headers: &http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A minimal chat request body.
pub fn chat(stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": "test-model",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    })
}

/// The base URL a `backstop` process printed on its first stdout line:
/// `backstop listening on URL`, or in JSON mode a record with `url`.
pub fn listening_on(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    match serde_json::from_str::<serde_json::Value>(&line) {
        Ok(record) => record["url"].as_str().unwrap().to_string(),
        Err(_) => line
            .trim()
            .strip_prefix("backstop listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string(),
    }
}
