//! What support needs about a failed request, in one record (the seeds'
//! "before you contact support" list): method, route, model, status, kind,
//! the upstream's message and request id, attempts, timestamp — and the
//! request body only when `log.request_bodies` is on, sanitized: key-like
//! fields removed, long strings cut. Each record is logged once; when
//! `[debug] failures` is on, the last N are also kept for
//! `GET /debug/failures`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::secrets::Secrets;

/// Strings in a logged body longer than this are cut.
const MAX_STRING_CHARS: usize = 256;

/// Object keys whose values are never logged.
const SECRET_KEYS: [&str; 8] = [
    "authorization",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "token",
    "secret",
    "password",
];

/// One failed request.
#[derive(Debug, Clone, Serialize)]
pub struct FailureRecord {
    pub timestamp: String,
    pub request_id: String,
    pub method: String,
    pub route: &'static str,
    pub model: Option<String>,
    pub status: u16,
    pub class: &'static str,
    pub kind: &'static str,
    pub attempts: u32,
    pub latency_ms: u64,
    pub upstream_status: Option<u16>,
    pub upstream_code: Option<String>,
    pub upstream_message: Option<String>,
    pub upstream_request_id: Option<String>,
    /// Whether the answer reached its end (false: the client went away).
    pub completed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<Value>,
}

/// RFC 3339 with milliseconds, UTC.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// The last `capacity` failure records, oldest first.
pub struct FailureLog {
    capacity: usize,
    records: Mutex<VecDeque<FailureRecord>>,
}

impl FailureLog {
    pub fn new(capacity: usize) -> Self {
        FailureLog {
            capacity,
            records: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
        }
    }

    pub fn push(&self, record: FailureRecord) {
        if self.capacity == 0 {
            return;
        }
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() == self.capacity {
            records.pop_front();
        }
        records.push_back(record);
    }

    pub fn snapshot(&self) -> Vec<FailureRecord> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.iter().cloned().collect()
    }
}

/// A request body fit for a log: JSON with secret-looking keys removed and
/// long strings cut; a non-JSON body (multipart, binary) is described by
/// its size only. `secrets` (the request's keys) are redacted wherever they
/// appear in a string.
pub fn sanitize(body: &[u8], secrets: &Secrets) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            scrub(&mut v, secrets);
            v
        }
        Err(_) => Value::String(format!("<{} bytes, not JSON>", body.len())),
    }
}

fn scrub(v: &mut Value, secrets: &Secrets) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()));
            for value in map.values_mut() {
                scrub(value, secrets);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| scrub(i, secrets)),
        Value::String(s) => {
            let redacted = secrets.redact(s).into_owned();
            *s = cut(&redacted);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_STRING_CHARS) {
        Some((at, _)) => format!("{}…[{} more chars]", &s[..at], s[at..].chars().count()),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_lose_keys_and_long_content() {
        let body = json!({
            "model": "m",
            "api_key": "sk-1",
            "messages": [{"role": "user", "content": "x".repeat(300)}],
            "metadata": {"Authorization": "Bearer sk-2", "note": "uses sk-3 inline"},
        });
        let mut h = http::HeaderMap::new();
        h.insert("x-api-key", http::HeaderValue::from_static("sk-3"));
        let secrets = Secrets::default().with_client(&h, &http::Uri::from_static("/v1/x"));
        let got = sanitize(body.to_string().as_bytes(), &secrets);
        assert_eq!(
            got,
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": format!("{}…[44 more chars]", "x".repeat(256))}],
                "metadata": {"note": "uses [REDACTED] inline"},
            })
        );
        assert_eq!(
            sanitize(b"\x00\x01binary", &Secrets::default()),
            json!("<8 bytes, not JSON>")
        );
    }

    #[test]
    fn the_log_keeps_the_last_n() {
        let log = FailureLog::new(2);
        for i in 0..3u32 {
            log.push(FailureRecord {
                timestamp: timestamp(SystemTime::UNIX_EPOCH),
                request_id: i.to_string(),
                method: "POST".into(),
                route: "/v1/chat/completions",
                model: None,
                status: 503,
                class: "hard",
                kind: "server_error",
                attempts: 3,
                latency_ms: 1,
                upstream_status: Some(503),
                upstream_code: None,
                upstream_message: None,
                upstream_request_id: None,
                completed: true,
                request_body: None,
            });
        }
        let ids: Vec<String> = log.snapshot().into_iter().map(|r| r.request_id).collect();
        assert_eq!(ids, ["1", "2"]);
        assert_eq!(
            timestamp(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
