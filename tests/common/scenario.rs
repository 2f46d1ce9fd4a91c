//! Requests to the gateway in front of the chaos mock, scripted per request
//! with `x-mock-scenario`, and what the client got — status, kind,
//! attempts, body — with how many requests reached the mock for that one
//! request (`x-mock-key`).

use std::borrow::Borrow;
use std::sync::atomic::{AtomicUsize, Ordering};

use backstop::config::{Action, Config};
use backstop::server::Running;
use backstop_mock::{MockConfig, MockServer};
use serde_json::Value;

use super::{client, gateway, header_text};

static KEYS: AtomicUsize = AtomicUsize::new(0);

/// A fresh `x-mock-key`: the mock counts the requests under each.
pub fn key() -> String {
    format!("k{}", KEYS.fetch_add(1, Ordering::SeqCst))
}

/// The chaos mock and a gateway in front of it.
pub async fn setup(tweak: impl FnOnce(&mut Config)) -> (MockServer, Running) {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock.base_url(), tweak).await;
    (mock, gw)
}

/// What the client got.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub kind: String,
    pub attempts: String,
    pub body: String,
    /// Requests that reached the mock for this one.
    pub hits: u64,
}

impl Got {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The SSE events' data, in order.
    pub fn events(&self) -> Vec<String> {
        self.body
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }

    /// The SSE events as (name, data), in order.
    pub fn named_events(&self) -> Vec<(String, String)> {
        self.body
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                let mut name = String::new();
                let mut data = String::new();
                for line in e.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = d.to_string();
                    }
                }
                (name, data)
            })
            .collect()
    }

    /// The last SSE event's name and data.
    pub fn last_event(&self) -> (String, Value) {
        let (name, data) = self.named_events().pop().expect("an event");
        (name, serde_json::from_str(&data).unwrap_or(Value::Null))
    }
}

/// POSTs `body` to `path` under the gateway's `/v1`, scripted with `scenario`.
pub async fn call(
    mock: &MockServer,
    gw: &Running,
    path: &str,
    body: impl Borrow<Value>,
    scenario: &str,
) -> Got {
    let k = key();
    let resp = client()
        .post(format!("{}{path}", gw.base_url()))
        .header("x-mock-scenario", scenario)
        .header("x-mock-key", &k)
        .json(body.borrow())
        .send()
        .await
        .unwrap();
    let header = |name: &str| header_text(resp.headers(), name);
    let (status, kind, attempts) = (
        resp.status().as_u16(),
        header("x-backstop-kind"),
        header("x-backstop-attempts"),
    );
    let body = resp.text().await.unwrap();
    Got {
        status,
        kind,
        attempts,
        body,
        hits: mock.hits(&k),
    }
}

/// Sets the `[inspect]` action for a soft or silent kind.
pub fn set(config: &mut Config, kind: &str, policy: Action) {
    let i = &mut config.inspect;
    match kind {
        "content_filter" => i.content_filter = policy,
        "length" => i.length = policy,
        "empty_data" => i.empty_data = policy,
        "empty_content" => i.empty_content = policy,
        "invalid_json" => i.invalid_json = policy,
        "schema_mismatch" => i.schema_mismatch = policy,
        "stream_truncated" => i.stream_truncated = policy,
        other => panic!("{other}"),
    }
}
