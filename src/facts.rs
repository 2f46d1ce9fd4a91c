//! [`RequestFacts`]: what the layers below admission need to know about the
//! client's request, read once from its headers and buffered body — the
//! model, whether it streams, its deadline, the targets it may go to, the
//! `[inspect]` actions in force, what the answer must look like, the
//! secrets to redact. Immutable; it travels down with every attempt.

use std::sync::Arc;
use std::time::Duration;

use crate::json_field::Json;
use http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use crate::actions::Actions;
use crate::inspect::Expectation;
use crate::routing::Plan;
use crate::secrets::Secrets;

/// Facts about one client request, parsed once.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    /// This request's `x-request-id` (also sent upstream).
    pub request_id: HeaderValue,
    /// The path template (`/v1/chat/completions`), the `route` label.
    pub route: &'static str,
    /// Shared with the request's record.
    pub model: Option<Arc<str>>,
    /// `"stream": true` in a JSON body.
    pub stream: bool,
    /// When the whole request must be over (config, or the client's own
    /// `x-stainless-timeout` when shorter).
    pub deadline: Instant,
    /// The client said it is retrying itself (`x-stainless-retry-count` > 0).
    pub client_retrying: bool,
    /// The request may start a billed job that exists even when its answer
    /// is lost ([`crate::path::creates_something`]).
    pub creates: bool,
    /// The targets this request may go to, in fallback order.
    pub plan: Arc<Plan>,
    /// The `[inspect]` actions for this request's route and model.
    pub actions: Actions,
    /// What the request asked for (JSON mode, schema, stream), for the
    /// inspection rules; compiled once per request.
    pub expect: Expectation,
    /// The credentials to redact from anything passed on (the client's,
    /// every configured one).
    pub secrets: Secrets,
}

/// The body as JSON: the pre-flight checks' reading for the JSON endpoints,
/// else a reading of any body that looks like an object.
pub fn json_body<'a>(parsed: Option<Json<'a>>, body: &'a [u8]) -> Option<Json<'a>> {
    match parsed {
        Some(v) => Some(v),
        None if body.first() == Some(&b'{') => Json::parse(body).ok().filter(|j| j.is_object()),
        None => None,
    }
}

/// `model` and `stream` of a JSON body.
pub fn model_and_stream(json: Option<Json<'_>>) -> (Option<Arc<str>>, bool) {
    let [model, stream] = match json {
        Some(j) => j.fields(["model", "stream"]),
        None => [None, None],
    };
    (
        model.and_then(Json::as_str).map(|m| Arc::from(&*m)),
        stream.and_then(Json::as_bool).unwrap_or(false),
    )
}

/// The request's time budget: the configured one, or the client's own
/// (`x-stainless-timeout`, `x-stainless-read-timeout`) when shorter.
pub fn time_budget(configured: Duration, headers: &HeaderMap) -> Duration {
    ["x-stainless-timeout", "x-stainless-read-timeout"]
        .into_iter()
        .filter_map(|name| seconds_header(headers, name))
        .fold(configured, Duration::min)
}

/// Whether the client says it is retrying by itself
/// (`x-stainless-retry-count` > 0).
pub fn client_retrying(headers: &HeaderMap) -> bool {
    headers
        .get("x-stainless-retry-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .is_some_and(|n| n > 0)
}

/// A header holding seconds (the Stainless SDKs send e.g. `600` or `60.5`).
fn seconds_header(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let secs = headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_deadline_headers_shorten_the_timeout_only() {
        let ten = Duration::from_secs(600);
        let mut h = HeaderMap::new();
        assert_eq!(time_budget(ten, &h), ten);
        h.insert("x-stainless-timeout", HeaderValue::from_static("60.5"));
        assert_eq!(time_budget(ten, &h), Duration::from_millis(60_500));
        h.insert("x-stainless-read-timeout", HeaderValue::from_static("30"));
        assert_eq!(time_budget(ten, &h), Duration::from_secs(30));
        h.insert("x-stainless-read-timeout", HeaderValue::from_static("9999"));
        assert_eq!(time_budget(ten, &h), Duration::from_millis(60_500));
        for bad in ["-1", "soon", "NaN", "0"] {
            let mut h = HeaderMap::new();
            h.insert("x-stainless-timeout", HeaderValue::from_static(bad));
            assert_eq!(time_budget(ten, &h), ten, "{bad}");
        }
    }

    #[test]
    fn a_client_that_retries_says_so_with_a_positive_count() {
        let mut h = HeaderMap::new();
        assert!(!client_retrying(&h));
        for (v, want) in [("0", false), ("1", true), (" 2 ", true), ("x", false)] {
            h.insert("x-stainless-retry-count", HeaderValue::from_static(v));
            assert_eq!(client_retrying(&h), want, "{v}");
        }
    }

    #[test]
    fn the_body_is_read_as_json_once() {
        let parsed = Json::parse(br#"{"model": "m", "stream": true}"#).ok();
        let json = json_body(parsed, b"ignored");
        assert_eq!(model_and_stream(json), (Some("m".into()), true));
        let json = json_body(None, br#"{"model":"x"}"#);
        assert_eq!(model_and_stream(json), (Some("x".into()), false));
        assert!(json_body(None, b"[1]").is_none());
        assert!(json_body(None, b"{not json").is_none());
    }
}
