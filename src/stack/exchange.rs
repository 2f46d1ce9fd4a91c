//! One upstream exchange, classified: the innermost service of the proxy
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
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::attempt::{AnswerBody, Attempt, AttemptRequest, Purpose};
use crate::classify::{self, TransportFailure};
use crate::outcome::Outcome;
use crate::proxy::body::{first_bytes, prefixed, read_prefix, timeout_of, Bounded};
use crate::proxy::headers;
use crate::proxy::upstream::{error_chain, TransportError};
use crate::ratelimit::advertised::Advertised;
use crate::sse::SseParser;

/// Error bodies are read up to this size; the rest is not needed to say
/// what broke.
const ERROR_BODY_CAP: usize = 64 * 1024;

/// The per-attempt service: the innermost of the stack.
#[derive(Clone, Default)]
pub struct ExchangeService;

impl tower::Service<AttemptRequest> for ExchangeService {
    type Response = Attempt;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Attempt, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: AttemptRequest) -> Self::Future {
        Box::pin(async move { Ok(exchange(req).await) })
    }
}

async fn exchange(req: AttemptRequest) -> Attempt {
    let call = &req.call;
    let stream = call.facts.stream || req.purpose == Purpose::Continuation;
    let now = Instant::now();
    let deadline = call.facts.deadline;
    let limit = req
        .first_byte_timeout
        .min(deadline.saturating_duration_since(now));

    let exchange = async {
        let resp = req
            .upstream
            .send(
                &call.method,
                &call.path,
                &call.headers,
                req.body.clone(),
                &call.facts.request_id,
                req.trace.as_ref(),
            )
            .await?;
        let advertised = Advertised::read(resp.headers(), SystemTime::now());
        // From here every read of the body is bounded by the deadline and
        // the upstream's idle timeout, whoever reads it.
        let (mut parts, body) = resp.into_parts();
        let body = Body::new(Bounded::new(
            body,
            req.upstream.stream_idle_timeout,
            deadline,
        ));
        let status = parts.status;
        let mut attempt = if !status.is_success() || headers::is_html(&parts.headers) {
            let body = read_prefix(body, ERROR_BODY_CAP).await;
            Attempt::failed(classify::classify(status, &parts.headers, &body))
        } else {
            headers::downstream_response(&mut parts.headers);
            let outcome = success_outcome(status, &parts.headers);
            let first = if stream && headers::is_event_stream(&parts.headers) {
                first_event(body).await
            } else {
                // A whole body (or a JSON answer to a stream request): its
                // first bytes are waited for here, so a stall before them
                // is a retryable timeout like one before the headers.
                first_bytes(body).await.map_err(|e| failure(&e))
            };
            match first {
                Ok((prefix, rest)) => Attempt {
                    outcome,
                    // The prefix is part of the same body: Content-Length still holds.
                    response: Some(Response::from_parts(
                        parts,
                        AnswerBody::Plain(prefixed(prefix, rest)),
                    )),
                    ..Attempt::default()
                },
                // An in-band error still names the upstream's request id.
                Err(mut failed) => {
                    if failed.upstream_request_id.is_none() {
                        failed.upstream_request_id = outcome.upstream_request_id;
                    }
                    Attempt::failed(failed)
                }
            }
        };
        attempt.first_byte = Some(now.elapsed());
        attempt.advertised = advertised;
        Ok::<_, TransportError>(attempt)
    };

    match tokio::time::timeout(limit, exchange).await {
        Ok(Ok(attempt)) => attempt,
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

/// A body that broke off before anything of it was forwarded: a stall is a
/// timeout, anything else a reset.
fn failure(e: &axum::Error) -> Outcome {
    match timeout_of(e) {
        Some(t) => classify::transport(TransportFailure::Stalled, &t.to_string()),
        None => classify::transport(TransportFailure::Reset, &error_chain(e)),
    }
}

fn success_outcome(status: StatusCode, headers: &http::HeaderMap) -> Outcome {
    let mut outcome = Outcome::ok(status.as_u16());
    outcome.upstream_request_id = headers
        .get(headers::UPSTREAM_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    outcome
}

/// Waits for the first complete SSE event of a streamed success: the bytes
/// read so far and the rest of the body, or the failure — the stream broke,
/// stalled, or opened with an in-band error — while it is still retryable.
async fn first_event(mut body: Body) -> Result<(Bytes, Body), Outcome> {
    let mut parser = SseParser::new();
    let mut seen = BytesMut::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(chunk) = frame.into_data() else {
                    continue;
                };
                seen.extend_from_slice(&chunk);
                parser.push(chunk);
                if let Some(event) = parser.next_event() {
                    let data = event
                        .data
                        .as_deref()
                        .and_then(|d| serde_json::from_slice::<serde_json::Value>(d).ok());
                    if let Some(error) = data
                        .as_ref()
                        .and_then(|v| in_band_error(event.event.as_deref(), v))
                    {
                        let mut outcome = classify::classify_error_object(&error, None);
                        outcome.upstream_status = Some(200);
                        return Err(outcome);
                    }
                    return Ok((seen.freeze(), body));
                }
            }
            None if seen.is_empty() => {
                return Err(classify::transport(
                    TransportFailure::Reset,
                    "the upstream ended the stream before its first event",
                ));
            }
            // A body without a complete event: forward what came; the
            // stream inspector judges it.
            None => return Ok((seen.freeze(), body)),
            Some(Err(e)) => return Err(failure(&e)),
        }
    }
}

/// The error an event carries: chat's `{"error": {...}}`, or the Responses
/// API's `event: error` whose data is the error itself.
fn in_band_error(name: Option<&str>, data: &serde_json::Value) -> Option<serde_json::Value> {
    if let Some(error) = data.get("error").filter(|e| !e.is_null()) {
        return Some(error.clone());
    }
    let typed = data.get("type").and_then(serde_json::Value::as_str) == Some("error");
    (name == Some("error") || typed).then(|| data.clone())
}
