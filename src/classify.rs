//! The one classifier of upstream answers (CONTRACT.md §2): a pure function
//! of (status, headers, body) into an [`Outcome`] — its [`Kind`] plus the
//! upstream's code, message, param, request id and the wait it asked for.
//! The retry layer, the envelope, response headers, logs and metrics all
//! read that one result. Soft and silent failures inside a successful body
//! are `inspect`'s; this module only decides hard failures (and `ok`).
//!
//! Also here: [`classify_error_object`] for an in-band error event of a
//! stream (`data: {"error": {...}}`) and [`transport`] for attempts that got
//! no answer at all. Body parsing (every shape providers send) is in
//! [`body`].

pub mod body;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use http::{header, HeaderMap, StatusCode};
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::outcome::Outcome;
use crate::ratelimit::after;
use crate::taxonomy::Kind;

use body::ErrorFields;

/// Codes that mean the account is out of money or quota (never retried).
const QUOTA_CODES: [&str; 6] = [
    "insufficient_quota",
    "quota_not_enough",
    "insufficient_user_quota",
    "billing_hard_limit_reached",
    "billing_not_active",
    "quota_exceeded",
];

/// Codes of a request rejected by a content policy.
const CONTENT_FILTER_CODES: [&str; 4] = [
    "content_filtered",
    "content_policy_violation",
    "content_filter",
    "image_content_policy_violation",
];

/// Code prefixes that name something wrong with the request itself: the
/// Responses API's `invalid_prompt`, `invalid_image_url`, `image_too_large`,
/// `unsupported_image_media_type`, `empty_image_file`, ...
const REQUEST_CODE_PREFIXES: [&str; 5] = [
    "invalid_",
    "unsupported_",
    "empty_",
    "image_",
    "failed_to_download",
];

/// Message phrases providers use for an over-long prompt.
const CONTEXT_LENGTH_PHRASES: [&str; 3] = [
    "maximum context length",
    "context_length_exceeded",
    "prompt is too long",
];

/// Headers that carry the upstream's request id, most specific first
/// (`cf-ray` is used only when the message has no id either).
const REQUEST_ID_HEADERS: [&str; 3] = ["x-request-id", "request-id", "x-oneapi-request-id"];

/// Why an attempt got no HTTP answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// The connection could not be made (refused, DNS, TLS, connect timeout).
    Connect,
    /// No response headers (or first stream event) within the first-byte timeout.
    FirstByteTimeout,
    /// The connection was closed or reset before a response.
    Reset,
    /// The answer started, then went silent (or the deadline came) before
    /// anything of it reached the client.
    Stalled,
    /// A stream gave no content or reasoning delta within its target's
    /// first-token limit.
    NoFirstToken,
}

/// Classifies an upstream answer. `body` is the whole body, or empty when it
/// was not buffered (a stream): an empty 2xx is `ok`. HTTP-date
/// `Retry-After` values are read against the system clock; see
/// [`classify_at`] for a fixed one.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Outcome {
    classify_at(status, headers, body, SystemTime::now())
}

/// [`classify`] with the current time given (for HTTP-date waits).
pub fn classify_at(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Outcome {
    let code = status.as_u16();
    let mut outcome = if status.is_success() {
        success(status, headers, body)
    } else if status.is_redirection() {
        redirect(status, headers)
    } else if status.is_client_error() || status.is_server_error() {
        let fields = body::parse(headers, body);
        let kind = error_kind(code, &fields);
        from_fields(kind, fields)
    } else {
        Outcome::gateway(
            Kind::BadUpstreamResponse,
            format!("The upstream answered with the unexpected status {status}"),
        )
    };
    outcome.upstream_status = Some(code);
    outcome.retry_after = wait_asked(outcome.kind, headers, now).or(outcome.retry_after);
    outcome.upstream_request_id = upstream_request_id(headers, outcome.message.as_deref());
    outcome
}

/// Classifies an in-band error of a stream, `data: {"error": <error>}`
/// (`error` may also be the whole `{"error": ...}` object). With an error
/// `status` (≥ 400) the kind follows the status as in [`classify`];
/// otherwise it follows the error's code and type.
pub fn classify_error_object(error: &Value, status: Option<u16>) -> Outcome {
    let fields = body::from_error_value(error);
    let kind = match status {
        Some(s) if s >= 400 => error_kind(s, &fields),
        Some(_) | None => inband_kind(&fields),
    };
    let mut outcome = from_fields(kind, fields);
    outcome.upstream_status = status;
    outcome.upstream_request_id = outcome.message.as_deref().and_then(body::request_id_in);
    outcome
}

/// The outcome of an attempt that got no answer; `detail` (the transport
/// error's text) is appended to the message.
pub fn transport(failure: TransportFailure, detail: &str) -> Outcome {
    let (kind, what) = match failure {
        TransportFailure::Connect => (Kind::ConnectError, "Could not connect to the upstream"),
        TransportFailure::FirstByteTimeout => (
            Kind::Timeout,
            "The upstream did not start answering within the first-byte timeout",
        ),
        TransportFailure::Reset => (
            Kind::ConnectError,
            "The upstream closed or reset the connection before answering",
        ),
        TransportFailure::Stalled => (Kind::Timeout, "The upstream's answer stalled"),
        TransportFailure::NoFirstToken => (
            Kind::Timeout,
            "The upstream's stream gave no first token within the target's first-token limit",
        ),
    };
    let detail = body::cap(detail);
    let message = if detail.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {detail}")
    };
    Outcome {
        unsent: failure == TransportFailure::Connect,
        ..Outcome::gateway(kind, message)
    }
}

/// The kind of an error status (4xx/5xx), refined by the body's code.
fn error_kind(status: u16, fields: &ErrorFields) -> Kind {
    match status {
        400 | 422 => request_kind(fields),
        401 => Kind::Unauthorized,
        403 if is_quota(fields) => Kind::QuotaExceeded,
        403 => Kind::Forbidden,
        404 => Kind::NotFound,
        408 => Kind::Timeout,
        413 => Kind::PayloadTooLarge,
        429 if is_quota(fields) => Kind::QuotaExceeded,
        429 => Kind::RateLimited,
        // Comet: a malformed request can surface as a 500 (seeds/002).
        500 if fields.code_lower() == "invalid_request" => request_kind(fields),
        504 | 524 => Kind::Timeout,
        500..=599 => Kind::ServerError,
        _ => Kind::BadRequest,
    }
}

/// A rejected request: too long, refused by a content policy, or just wrong.
fn request_kind(fields: &ErrorFields) -> Kind {
    if is_context_length(fields) {
        Kind::ContextLengthExceeded
    } else if CONTENT_FILTER_CODES.contains(&fields.code_lower().as_str()) {
        Kind::ContentFilter
    } else {
        Kind::BadRequest
    }
}

/// The kind of an error that came without an error status: by code and type.
fn inband_kind(fields: &ErrorFields) -> Kind {
    if let Some(status) = fields.status_code {
        return error_kind(status, fields);
    }
    let code = fields.code_lower();
    let ty = fields.type_lower();
    let either = |names: &[&str]| names.contains(&code.as_str()) || names.contains(&ty.as_str());
    if is_context_length(fields) {
        Kind::ContextLengthExceeded
    } else if either(&CONTENT_FILTER_CODES) {
        Kind::ContentFilter
    } else if is_quota(fields) {
        Kind::QuotaExceeded
    } else if code.contains("rate_limit") || ty.contains("rate_limit") {
        Kind::RateLimited
    } else if either(&[
        "authentication_error",
        "invalid_api_key",
        "expired_api_key",
        "revoked_api_key",
    ]) {
        Kind::Unauthorized
    } else if either(&["permission_error"]) {
        Kind::Forbidden
    } else if either(&["not_found_error", "model_not_found"]) {
        Kind::NotFound
    } else if either(&["timeout_error", "timeout"]) {
        Kind::Timeout
    } else if either(&["invalid_request_error", "invalid_request"])
        || REQUEST_CODE_PREFIXES.iter().any(|p| code.starts_with(p))
    {
        Kind::BadRequest
    } else {
        // server_error, vector_store_timeout, overloaded_error, unknown: the provider failed.
        Kind::ServerError
    }
}

fn is_quota(fields: &ErrorFields) -> bool {
    QUOTA_CODES.contains(&fields.code_lower().as_str())
        || fields.type_lower() == "insufficient_quota"
}

fn is_context_length(fields: &ErrorFields) -> bool {
    let message = fields.message_lower();
    fields.code_lower() == "context_length_exceeded"
        || CONTEXT_LENGTH_PHRASES.iter().any(|p| message.contains(p))
}

/// An outcome of `kind` carrying what the body said.
fn from_fields(kind: Kind, fields: ErrorFields) -> Outcome {
    Outcome {
        kind,
        code: fields.code,
        message: fields.message,
        param: fields.param,
        retry_after: fields.retry_after,
        ..Outcome::default()
    }
}

/// A 2xx: `ok`, unless the body is HTML, unparseable JSON, or nothing but an
/// `{"error": ...}` object.
fn success(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return Outcome::default();
    }
    if body::is_html(headers, text) {
        let page = body::html_text(text);
        let page = if page.is_empty() {
            String::new()
        } else {
            format!(" ({page})")
        };
        return Outcome::gateway(
            Kind::BadUpstreamResponse,
            format!(
                "The upstream answered {status} with an HTML page{page} instead of JSON: \
                 the upstream base URL is probably wrong or lacks /v1"
            ),
        );
    }
    if !is_json(headers) {
        return Outcome::default();
    }
    // Validate without building a tree: success bodies can be large.
    if let Err(e) = serde_json::from_str::<IgnoredAny>(text) {
        return Outcome::gateway(
            Kind::BadUpstreamResponse,
            format!("The upstream answered {status} with a body that is not valid JSON ({e})"),
        );
    }
    match lone_error(text) {
        Some(error) => {
            let fields = body::from_error_value(&error);
            from_fields(inband_kind(&fields), fields)
        }
        None => Outcome::default(),
    }
}

/// The error of a 2xx body that is nothing but an error: an object whose
/// only key is `error` (an object or a string), or aiapi's
/// `{"code", "message", "data": null}` whose code is not a success code
/// (Kling's `{"code": 0, "message": "SUCCEED", "data": {...}}` is success).
fn lone_error(text: &str) -> Option<Value> {
    if !text.starts_with('{') || !(text.contains("\"error\"") || text.contains("\"code\"")) {
        return None;
    }
    let keys = serde_json::from_str::<HashMap<String, IgnoredAny>>(text).ok()?;
    if keys.len() == 1 && keys.contains_key("error") {
        let mut object = serde_json::from_str::<serde_json::Map<String, Value>>(text).ok()?;
        return object
            .remove("error")
            .filter(|error| error.is_object() || error.is_string());
    }
    const ENVELOPE: [&str; 6] = ["code", "message", "msg", "data", "success", "request_id"];
    let only_envelope = keys.keys().all(|k| ENVELOPE.contains(&k.as_str()));
    let has_message = keys.contains_key("message") || keys.contains_key("msg");
    if !only_envelope || !keys.contains_key("code") || !has_message {
        return None;
    }
    let object = serde_json::from_str::<serde_json::Map<String, Value>>(text).ok()?;
    let success_code = match object.get("code") {
        Some(Value::Number(n)) => n.as_i64().is_some_and(|c| c == 0 || c == 200),
        Some(Value::String(s)) => {
            ["0", "200", "ok", "success", ""].contains(&s.to_ascii_lowercase().as_str())
        }
        Some(Value::Null) | None => true,
        Some(_) => false,
    };
    let has_data = object.get("data").is_some_and(|d| !d.is_null());
    let succeeded = object.get("success") == Some(&Value::Bool(true));
    (!success_code && !has_data && !succeeded).then_some(Value::Object(object))
}

/// A 3xx: never followed; almost always a base URL without `/v1`.
fn redirect(status: StatusCode, headers: &HeaderMap) -> Outcome {
    let target = headers
        .get(header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .filter(|l| !l.is_empty());
    let to = match target {
        Some(location) => format!("a redirect to {location}"),
        None => "a redirect without a Location".to_owned(),
    };
    Outcome::gateway(
        Kind::BadUpstreamResponse,
        format!(
            "The upstream answered {status}, {to} (not followed): \
             the upstream base URL probably lacks /v1 or is wrong"
        ),
    )
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().as_bytes();
            mime.len() >= 4 && mime[mime.len() - 4..].eq_ignore_ascii_case(b"json")
        })
}

/// The wait an answer of this kind asks for. The `x-ratelimit-reset-*`
/// headers ride on every OpenAI answer and only mean "wait" on a rate limit.
fn wait_asked(kind: Kind, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    match kind {
        Kind::RateLimited => after::retry_after(headers, now),
        Kind::Ok => None,
        Kind::BadRequest
        | Kind::ContextLengthExceeded
        | Kind::Unauthorized
        | Kind::Forbidden
        | Kind::QuotaExceeded
        | Kind::NotFound
        | Kind::PayloadTooLarge
        | Kind::ServerError
        | Kind::Timeout
        | Kind::ConnectError
        | Kind::BadUpstreamResponse
        | Kind::ContentFilter
        | Kind::Length
        | Kind::EmptyData
        | Kind::EmptyContent
        | Kind::InvalidJson
        | Kind::SchemaMismatch
        | Kind::StreamTruncated
        | Kind::MalformedEvent
        | Kind::Overloaded
        | Kind::ClientClosed
        | Kind::Shutdown => after::explicit(headers, now),
    }
}

/// The upstream's request id: its headers, else `(request id: X)` in its
/// message, else Cloudflare's `cf-ray`.
fn upstream_request_id(headers: &HeaderMap, message: Option<&str>) -> Option<String> {
    let from_header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
    };
    REQUEST_ID_HEADERS
        .into_iter()
        .find_map(from_header)
        .or_else(|| message.and_then(body::request_id_in))
        .or_else(|| from_header("cf-ray"))
}

#[cfg(test)]
mod tests;
