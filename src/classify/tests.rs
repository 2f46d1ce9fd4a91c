//! Table tests of the classifier, asserting exact `Outcome`s: `seeds` has
//! one row per case of the provider docs (seeds 000–004), `shapes` one per
//! body shape, header source and in-band / transport failure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

use super::*;
use crate::taxonomy::Kind;

mod seeds;
mod shapes;

/// Header pairs of a test row.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

/// 2022-01-01T00:00:00Z minus 100 s (seeds/004's reset stamp is 100 s away).
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_640_995_100)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("header name");
        let value = HeaderValue::from_bytes(value.as_bytes()).expect("header value");
        map.append(name, value);
    }
    map
}

fn run(status: u16, pairs: &[(&str, &str)], body: &str) -> Outcome {
    let status = StatusCode::from_u16(status).expect("status");
    classify_at(status, &headers(pairs), body.as_bytes(), now())
}

/// An expected outcome: kind, status, code, message, param, request id.
fn expect(
    kind: Kind,
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
    param: Option<&str>,
    request_id: Option<&str>,
) -> Outcome {
    Outcome {
        kind,
        upstream_status: Some(status),
        code: code.map(str::to_owned),
        message: message.map(str::to_owned),
        param: param.map(str::to_owned),
        upstream_request_id: request_id.map(str::to_owned),
        ..Outcome::default()
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn openai(message: &str, ty: &str, param: serde_json::Value, code: serde_json::Value) -> String {
    json!({"error": {"message": message, "type": ty, "param": param, "code": code}}).to_string()
}

fn comet(code: &str, message: &str) -> String {
    json!({"code": code, "message": message, "data": null}).to_string()
}
