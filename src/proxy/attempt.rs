//! One upstream attempt, classified: the innermost service of the proxy
//! stack. It sends the buffered request, waits for the answer within the
//! attempt's first-byte timeout (capped by the request's deadline) and turns
//! whatever came back into an [`Attempt`]:
//! - no answer (connect error, reset, timeout) → a hard outcome, no response;
//! - an error status, a redirect or HTML → the body is read (capped) and
//!   classified; the client will get the envelope, not this body;
//! - a success → the response, body still streaming. For a stream, headers
//!   are held until the first SSE event has arrived (lazy headers), so a
//!   failure before it — including an in-band `{"error": …}` first event —
//!   is still retryable.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::{stream, StreamExt};
use http::{header, Request, Response, StatusCode};
use tokio::time::Instant;

use crate::classify::{self, TransportFailure};
use crate::context::{Ledger, RequestFacts};
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::routing::Target;
use crate::sse::SseParser;
use crate::taxonomy::Kind;

use super::headers;
use super::targets::Targets;
use super::upstream::TransportError;

/// Error bodies are read up to this size; the rest is not needed to say
/// what broke.
const ERROR_BODY_CAP: usize = 64 * 1024;

/// The result of one attempt: its classification and, when the answer is to
/// be forwarded, the response with its body still streaming.
#[derive(Debug)]
pub struct Attempt {
    pub outcome: Outcome,
    pub response: Option<Response<Body>>,
}

impl Attempt {
    /// An attempt that produced no forwardable answer.
    pub fn failed(outcome: Outcome) -> Attempt {
        Attempt {
            outcome,
            response: None,
        }
    }
}

/// The per-attempt service.
#[derive(Clone)]
pub struct AttemptService {
    targets: Arc<Targets>,
    metrics: Arc<Metrics>,
}

impl AttemptService {
    pub fn new(targets: Arc<Targets>, metrics: Arc<Metrics>) -> Self {
        AttemptService { targets, metrics }
    }
}

impl tower::Service<Request<Bytes>> for AttemptService {
    type Response = Attempt;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Attempt, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let targets = self.targets.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move { Ok(attempt(&targets, &metrics, req).await) })
    }
}

async fn attempt(targets: &Targets, metrics: &Metrics, req: Request<Bytes>) -> Attempt {
    let internal = |what: &str| {
        Attempt::failed(Outcome::gateway(
            Kind::ServerError,
            format!("internal: {what}"),
        ))
    };
    let (Some(ledger), Some(facts)) = (
        req.extensions().get::<Arc<Ledger>>().cloned(),
        req.extensions().get::<Arc<RequestFacts>>().cloned(),
    ) else {
        return internal("request reached the upstream leg without its ledger");
    };
    let position = ledger.entry().target;
    let Some(target) = facts.plan.targets.get(position) else {
        return internal("no such target in the plan");
    };
    let Some(upstream) = targets.upstream(target) else {
        return internal("the target's upstream is not configured");
    };
    // Hold back rather than fire into a 429 when the target said it is
    // about to run out before its reset.
    if let Err(until) = targets.pace(target, facts.deadline).await {
        return Attempt::failed(Outcome {
            retry_after: Some(until.saturating_duration_since(Instant::now())),
            ..Outcome::gateway(
                Kind::RateLimited,
                format!(
                    "held back by the gateway: {} advertised no requests left before its rate-limit reset",
                    targets.label(target)
                ),
            )
        });
    }
    let stream = facts.stream;
    let body = body_for(req.body(), &facts, target);
    let now = Instant::now();
    let first_byte_timeout = match target.first_token_timeout {
        Some(t) if stream => t,
        Some(_) | None => upstream.first_byte_timeout,
    };
    let limit = first_byte_timeout.min(facts.deadline.saturating_duration_since(now));

    let exchange = async {
        let resp = upstream.send(&req, body, &ledger.request_id).await?;
        targets.observe(target, resp.headers());
        let status = resp.status();
        let mut first_byte = now.elapsed();
        let attempt = if !status.is_success() || is_html(resp.headers()) {
            let (status, headers) = (resp.status(), resp.headers().clone());
            let body = read_capped(resp, ERROR_BODY_CAP).await;
            Attempt::failed(classify::classify(status, &headers, &body))
        } else if stream {
            let (attempt, waited) = first_event(resp).await;
            first_byte = waited.map_or(first_byte, |_| now.elapsed());
            attempt
        } else {
            Attempt {
                outcome: success_outcome(status, resp.headers()),
                response: Some(forward(resp, Bytes::new())),
            }
        };
        Ok::<_, TransportError>((attempt, first_byte))
    };

    match tokio::time::timeout(limit, exchange).await {
        Ok(Ok((attempt, first_byte))) => {
            metrics
                .upstream_first_byte
                .with_label_values(&[ledger.route])
                .observe(first_byte.as_secs_f64());
            attempt
        }
        Ok(Err(TransportError::Connect(detail))) => {
            Attempt::failed(classify::transport(TransportFailure::Connect, &detail))
        }
        Ok(Err(TransportError::Reset(detail))) => {
            Attempt::failed(classify::transport(TransportFailure::Reset, &detail))
        }
        Err(_) => Attempt::failed(classify::transport(
            TransportFailure::FirstByteTimeout,
            &format!("no answer within {} ms", limit.as_millis()),
        )),
    }
}

/// The body for a target: the client's, with `model` replaced when the
/// target sends another model than the one asked for.
fn body_for(client: &Bytes, facts: &RequestFacts, target: &Target) -> Bytes {
    let (Some(model), Some(json)) = (&target.model, &facts.json) else {
        return client.clone();
    };
    if facts.model.as_deref() == Some(model.as_str()) {
        return client.clone();
    }
    let mut rewritten = (**json).clone();
    match rewritten.as_object_mut() {
        Some(obj) => {
            obj.insert("model".into(), serde_json::Value::String(model.clone()));
            serde_json::to_vec(&rewritten).map_or_else(|_| client.clone(), Bytes::from)
        }
        None => client.clone(),
    }
}

fn is_html(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/html")
        })
}

fn success_outcome(status: StatusCode, headers: &http::HeaderMap) -> Outcome {
    let mut outcome = Outcome::ok(status.as_u16());
    outcome.upstream_request_id = headers
        .get(headers::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    outcome
}

/// Reads at most `cap` bytes of a body; a body that fails midway yields what
/// arrived (it is only used to say what broke).
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Bytes {
    let mut buf = BytesMut::new();
    while buf.len() < cap {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(cap - buf.len());
                buf.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    buf.freeze()
}

/// Waits for the first complete SSE event of a streamed success. Returns the
/// attempt (forwardable, or failed when the stream broke or opened with an
/// in-band error) and whether an event arrived.
async fn first_event(mut resp: reqwest::Response) -> (Attempt, Option<Duration>) {
    let status = resp.status();
    let headers = resp.headers().clone();
    let started = Instant::now();
    let mut parser = SseParser::new();
    let mut seen = BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                seen.extend_from_slice(&chunk);
                parser.push(chunk);
                if let Some(event) = parser.next_event() {
                    if let Some(error) = event
                        .data
                        .as_deref()
                        .and_then(|d| serde_json::from_slice::<serde_json::Value>(d).ok())
                        .and_then(|v| v.get("error").cloned())
                    {
                        let mut outcome = classify::classify_error_object(&error, None);
                        outcome.upstream_status = Some(status.as_u16());
                        return (Attempt::failed(outcome), Some(started.elapsed()));
                    }
                    let attempt = Attempt {
                        outcome: success_outcome(status, &headers),
                        response: Some(forward(resp, seen.freeze())),
                    };
                    return (attempt, Some(started.elapsed()));
                }
            }
            Ok(None) if seen.is_empty() => {
                return (
                    Attempt::failed(classify::transport(
                        TransportFailure::Reset,
                        "the upstream ended the stream before its first event",
                    )),
                    None,
                );
            }
            Ok(None) => {
                // A body without a complete event: forward what came; the
                // stream inspector judges it.
                let attempt = Attempt {
                    outcome: success_outcome(status, &headers),
                    response: Some(forward(resp, seen.freeze())),
                };
                return (attempt, None);
            }
            Err(e) => {
                return (
                    Attempt::failed(classify::transport(
                        TransportFailure::Reset,
                        &super::upstream::error_chain(&e),
                    )),
                    None,
                );
            }
        }
    }
}

/// The upstream response as the client will get it: status, headers (less
/// hop-by-hop), and `prefix` (bytes already read) followed by the rest of
/// the body, streamed.
fn forward(resp: reqwest::Response, prefix: Bytes) -> Response<Body> {
    let resp: Response<reqwest::Body> = resp.into();
    let (mut parts, body) = resp.into_parts();
    headers::downstream_response(&mut parts.headers);
    // The prefix is part of the same body: Content-Length still holds.
    Response::from_parts(parts, prefixed(prefix, Body::new(body)))
}

/// `prefix` (bytes already read) followed by the rest of `body`, streamed.
pub fn prefixed(prefix: Bytes, body: Body) -> Body {
    if prefix.is_empty() {
        return body;
    }
    let rest = body.into_data_stream();
    Body::from_stream(stream::once(async move { Ok(prefix) }).chain(rest))
}
