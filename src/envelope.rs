//! The one mapping from an [`Outcome`] to what the client sees (CONTRACT.md
//! §3): the status, the `x-backstop-*` / `x-should-retry` / `retry-after`
//! headers and the OpenAI-style error body with its `backstop` block. Every
//! error the gateway returns — the upstream's, normalized, or its own — is
//! built here, whether as an HTTP response ([`response`]) or as the last
//! event of a stream that must end in error ([`sse_error_event`]).
//!
//! Pure functions; API keys in `EnvelopeContext::secrets` never leave
//! through any upstream-provided text.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::actions::Actions;
use crate::inspect::{Endpoint, ErrorStyle};
use crate::outcome::Outcome;
use crate::ratelimit::after::client_retry_after;
use crate::secrets::Secrets;
use crate::taxonomy::Kind;

mod hint;

pub use hint::hint;

/// What replaces a secret found in upstream text.
pub use crate::outcome::REDACTED;

/// `x-backstop-attempts`: upstream attempts made for this request.
pub const X_BACKSTOP_ATTEMPTS: HeaderName = HeaderName::from_static("x-backstop-attempts");
/// `x-backstop-class`: `none` / `hard` / `soft` / `silent`.
pub const X_BACKSTOP_CLASS: HeaderName = HeaderName::from_static("x-backstop-class");
/// `x-backstop-kind`: the kind label.
pub const X_BACKSTOP_KIND: HeaderName = HeaderName::from_static("x-backstop-kind");
/// `x-should-retry`: tells OpenAI SDKs not to retry on their own.
/// `x-backstop-target`: the routing target (`upstream/model`) that answered.
pub const X_BACKSTOP_TARGET: HeaderName = HeaderName::from_static("x-backstop-target");
/// `x-should-retry`.
pub const X_SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");

/// The client's `retry-after` on a rate limit that came without a wait.
const DEFAULT_CLIENT_WAIT: Duration = Duration::from_secs(1);

/// What the envelope needs beyond the outcome itself.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeContext<'a> {
    /// Upstream attempts made (0 when the gateway answered by itself).
    pub attempts: u32,
    /// This request's `x-request-id`.
    pub request_id: &'a str,
    /// Values that must never be echoed (the credentials in play).
    pub secrets: &'a Secrets,
    /// `retry.max_attempts`: with 1, retryable failures leave the retrying
    /// to the client (no `x-should-retry: false`).
    pub max_attempts: u32,
    /// The last attempt's target label, when routing chose one.
    pub target: Option<&'a str>,
    /// Every attempt's kind, in order.
    pub attempt_kinds: &'a [Kind],
    /// The API the request called, for the hint's wording.
    pub endpoint: Endpoint,
    /// The `[inspect]` actions in force: `retryable` follows them.
    pub actions: Actions,
    /// `envelope.hint_in_message`: end `error.message` with the
    /// `[backstop: <kind> after <N> attempt(s): <hint>]` tail.
    pub hint_in_message: bool,
}

/// An `x-backstop-attempts` value; the usual counts are static (a number
/// formatted into a header value costs two allocations, on every answer).
pub fn attempts_value(attempts: u32) -> HeaderValue {
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match usize::try_from(attempts).ok().and_then(|i| SMALL.get(i)) {
        Some(digits) => HeaderValue::from_static(digits),
        None => HeaderValue::from(attempts),
    }
}

/// No credentials: what the gateway's own answers outside a request's
/// stack (not found, a panic) redact, having echoed nothing of a client's.
static NO_SECRETS: std::sync::LazyLock<Secrets> = std::sync::LazyLock::new(Secrets::default);

impl<'a> EnvelopeContext<'a> {
    /// For the gateway's own answer to `request_id` (no upstream attempt,
    /// no endpoint-specific wording).
    pub fn gateway(request_id: &'a str, hint_in_message: bool) -> EnvelopeContext<'a> {
        EnvelopeContext {
            endpoint: Endpoint::Other,
            actions: Actions::of(&crate::config::InspectConfig::default()),
            hint_in_message,
            target: None,
            attempt_kinds: &[],
            attempts: 0,
            request_id,
            secrets: &NO_SECRETS,
            max_attempts: 1,
        }
    }
}

/// The status the client gets: the upstream's, except where the gateway
/// knows better (CONTRACT.md §3), or a default per kind when there was no
/// upstream error status.
pub fn client_status(outcome: &Outcome) -> StatusCode {
    if let Some(status) = outcome.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        return status;
    }
    let upstream_error = outcome.upstream_status.filter(|s| (400..=599).contains(s));
    let upstream_or = |default: u16| upstream_error.unwrap_or(default);
    let code = match outcome.kind {
        Kind::Ok => outcome.upstream_status.unwrap_or(200),
        // A request problem surfaced as a 5xx (Comet's 500 invalid_request) is a 400.
        Kind::BadRequest | Kind::ContextLengthExceeded => {
            upstream_error.filter(|s| *s < 500).unwrap_or(400)
        }
        Kind::Unauthorized => upstream_or(401),
        Kind::Forbidden => upstream_or(403),
        Kind::QuotaExceeded => upstream_or(429),
        Kind::NotFound => upstream_or(404),
        Kind::PayloadTooLarge => upstream_or(413),
        Kind::RateLimited => upstream_or(429),
        // An in-band error (a 200 whose body, or first stream event, was an
        // error) and the gateway's own server errors: a bad gateway.
        Kind::ServerError => upstream_or(502),
        Kind::Timeout => upstream_or(504),
        Kind::ConnectError | Kind::BadUpstreamResponse => 502,
        Kind::Overloaded | Kind::Shutdown => 503,
        // nginx's "client closed request": logged, never received.
        Kind::ClientClosed => 499,
        Kind::ContentFilter => 400,
        Kind::Length
        | Kind::EmptyData
        | Kind::EmptyContent
        | Kind::InvalidJson
        | Kind::SchemaMismatch
        | Kind::StreamTruncated
        | Kind::MalformedEvent => 502,
    };
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY)
}

/// `error.message`: the upstream's message verbatim (or the gateway's own),
/// then, with `hint_in_message`, the tail
/// `[backstop: <kind> after <N> attempt(s): <hint>]` — where SDKs' exception
/// text and apps' log lines show it.
pub fn message(outcome: &Outcome, ctx: &EnvelopeContext, hint: &str) -> String {
    let text = match &outcome.message {
        Some(m) => ctx.secrets.redact(m).into_owned(),
        None => default_message(outcome),
    };
    if !ctx.hint_in_message {
        return text;
    }
    format!(
        "{text} [backstop: {} after {} attempt(s): {hint}]",
        outcome.kind.as_str(),
        ctx.attempts
    )
}

/// The JSON error envelope (CONTRACT.md §3), secrets redacted.
pub fn body(outcome: &Outcome, ctx: &EnvelopeContext) -> Bytes {
    let redact = |text: &String| ctx.secrets.redact(text).into_owned();
    let kind = outcome.kind;
    let hint = hint(outcome, ctx.endpoint);
    let envelope = Envelope {
        error: ErrorObject {
            message: message(outcome, ctx, hint),
            error_type: kind.openai_type(),
            param: outcome.param.as_ref().map(redact),
            code: outcome.code.as_ref().map(redact),
            backstop: Backstop {
                class: kind.class().as_str(),
                kind: kind.as_str(),
                retryable: ctx.actions.retryable(kind),
                attempts: ctx.attempts,
                upstream_status: outcome.upstream_status,
                request_id: ctx.request_id,
                upstream_request_id: outcome.upstream_request_id.as_ref().map(redact),
                hint,
                model: outcome.model.as_ref().map(redact),
                finish_reason: outcome.finish_reason.as_ref().map(redact),
                target: ctx.target,
                attempt_kinds: if ctx.attempt_kinds.len() > 1 {
                    ctx.attempt_kinds.iter().map(|k| k.as_str()).collect()
                } else {
                    Vec::new()
                },
            },
        },
    };
    // Serializing plain strings and numbers cannot fail; the fallback is
    // still a valid envelope rather than an empty body.
    let json = serde_json::to_vec(&envelope).unwrap_or_else(|_| {
        br#"{"error":{"message":"backstop failed to serialize the error","type":"server_error","param":null,"code":null}}"#
            .to_vec()
    });
    Bytes::from(json)
}

/// The envelope's headers: `content-type`, `x-backstop-*`, `x-should-retry`
/// and, on `rate_limited`, `retry-after` (whole seconds in [1, 60]).
pub fn headers(outcome: &Outcome, ctx: &EnvelopeContext) -> HeaderMap {
    let kind = outcome.kind;
    let mut map = HeaderMap::new();
    map.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    map.insert(X_BACKSTOP_ATTEMPTS, attempts_value(ctx.attempts));
    map.insert(
        X_BACKSTOP_CLASS,
        HeaderValue::from_static(kind.class().as_str()),
    );
    map.insert(X_BACKSTOP_KIND, HeaderValue::from_static(kind.as_str()));
    // A retryable failure the gateway did not retry itself is the client's
    // to retry: with `max_attempts = 1`, and the gateway's own shedding.
    let client_may_retry =
        kind.is_retryable() && (ctx.max_attempts == 1 || kind == Kind::Overloaded);
    if !outcome.is_ok() && !client_may_retry {
        map.insert(X_SHOULD_RETRY, HeaderValue::from_static("false"));
    }
    if matches!(kind, Kind::RateLimited | Kind::Overloaded) {
        let wait = outcome.retry_after.unwrap_or(DEFAULT_CLIENT_WAIT);
        map.insert(
            header::RETRY_AFTER,
            HeaderValue::from(client_retry_after(wait)),
        );
    }
    map
}

/// The whole error response: [`client_status`], [`headers`], [`body`].
pub fn response(outcome: &Outcome, ctx: &EnvelopeContext) -> Response<Bytes> {
    let mut response = Response::new(body(outcome, ctx));
    *response.status_mut() = client_status(outcome);
    *response.headers_mut() = headers(outcome, ctx);
    response
}

/// The envelope as the last event of a stream that fails after its first
/// byte, so SDKs raise: `data: {"error": {...}}` on chat; on the Responses
/// API `event: error` with that API's error event — `type`,
/// `sequence_number`, `code`, `message`, `param` — and the envelope's
/// `error` beside them (the official SDKs raise on `error`, the Vercel AI
/// SDK validates the event's own fields).
pub fn sse_error_event(outcome: &Outcome, ctx: &EnvelopeContext, style: ErrorStyle) -> Bytes {
    let json = body(outcome, ctx);
    let json = match style {
        ErrorStyle::Data => json,
        ErrorStyle::Named { sequence_number } => {
            let envelope: serde_json::Value = serde_json::from_slice(&json).unwrap_or_default();
            let error = &envelope["error"];
            let event = serde_json::json!({
                "type": "error",
                "sequence_number": sequence_number,
                "code": error["code"],
                "message": error["message"],
                "param": error["param"],
                "error": error,
            });
            Bytes::from(serde_json::to_vec(&event).unwrap_or_else(|_| json.to_vec()))
        }
    };
    let mut event = Vec::with_capacity(json.len() + 22);
    if matches!(style, ErrorStyle::Named { .. }) {
        event.extend_from_slice(b"event: error\n");
    }
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(&json);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: String,
    #[serde(rename = "type")]
    error_type: &'static str,
    param: Option<String>,
    code: Option<String>,
    backstop: Backstop<'a>,
}

#[derive(Serialize)]
struct Backstop<'a> {
    class: &'static str,
    kind: &'static str,
    retryable: bool,
    attempts: u32,
    upstream_status: Option<u16>,
    request_id: &'a str,
    upstream_request_id: Option<String>,
    hint: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<String>,
    /// The target (`upstream/model`) of the last attempt, when routing
    /// rules are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    /// Every attempt's kind in order, when there was more than one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attempt_kinds: Vec<&'static str>,
}

/// The message when the upstream gave none.
pub fn default_message(outcome: &Outcome) -> String {
    let what = match outcome.kind {
        Kind::Ok => "The request succeeded",
        Kind::BadRequest => "The request is invalid",
        Kind::ContextLengthExceeded => "The request exceeds the model's context length",
        Kind::Unauthorized => "The API key was rejected",
        Kind::Forbidden => "The upstream refused the request",
        Kind::QuotaExceeded => "The account's quota or balance is exhausted",
        Kind::NotFound => "The model, endpoint or resource was not found",
        Kind::PayloadTooLarge => "The request body is too large",
        Kind::RateLimited => "The upstream rate-limited the request",
        Kind::ServerError => "The upstream failed with a server error",
        Kind::Timeout => "The upstream did not answer in time",
        Kind::ConnectError => "The upstream could not be reached",
        Kind::BadUpstreamResponse => "The upstream's answer is not the JSON that was due",
        Kind::ContentFilter => "The provider's content filter blocked the output",
        Kind::Length => "The output was cut at the token limit (finish_reason: length)",
        Kind::EmptyData => "The upstream returned an empty `data` array",
        Kind::EmptyContent => "The model returned no content and no tool calls",
        Kind::InvalidJson => "The model's output is not valid JSON",
        Kind::SchemaMismatch => "The model's output does not match the requested JSON schema",
        Kind::StreamTruncated => "The stream ended before the answer was complete",
        Kind::MalformedEvent => "The upstream sent a stream event that is not valid JSON",
        Kind::Overloaded => {
            "The gateway is overloaded and shed this request before any upstream attempt"
        }
        Kind::ClientClosed => "The client went away before the answer ended",
        Kind::Shutdown => "The gateway shut down before the answer ended",
    };
    match outcome.upstream_status {
        Some(status) if !(200..=299).contains(&status) => {
            format!("{what} (upstream status {status})")
        }
        Some(_) | None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests;
