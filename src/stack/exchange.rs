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
use std::time::{Duration, SystemTime};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http::{header, Response, StatusCode};
use tokio::time::Instant;

use crate::attempt::{AnswerBody, Attempt, AttemptRequest, Purpose};
use crate::classify::{self, TransportFailure};
use crate::outcome::Outcome;
use crate::proxy::body::{prefixed, read_prefix};
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
    let limit = req
        .first_byte_timeout
        .min(call.facts.deadline.saturating_duration_since(now));
    let path_and_query = call.uri.path_and_query().map_or("/", |pq| pq.as_str());

    let exchange = async {
        let resp = req
            .upstream
            .send(
                &call.method,
                path_and_query,
                &call.headers,
                req.body.clone(),
                &call.facts.request_id,
            )
            .await?;
        let advertised = Advertised::read(resp.headers(), SystemTime::now());
        let status = resp.status();
        let mut first_byte = now.elapsed();
        let mut attempt = if !status.is_success() || is_html(resp.headers()) {
            let (status, headers) = (resp.status(), resp.headers().clone());
            let body = read_prefix(resp, ERROR_BODY_CAP).await;
            Attempt::failed(classify::classify(status, &headers, &body))
        } else if stream {
            let (attempt, waited) = first_event(resp).await;
            first_byte = waited.map_or(first_byte, |_| now.elapsed());
            attempt
        } else {
            Attempt {
                outcome: success_outcome(status, resp.headers()),
                response: Some(forward(resp, Bytes::new())),
                ..Attempt::default()
            }
        };
        attempt.first_byte = Some(first_byte);
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
                        ..Attempt::default()
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
                    ..Attempt::default()
                };
                return (attempt, None);
            }
            Err(e) => {
                return (
                    Attempt::failed(classify::transport(
                        TransportFailure::Reset,
                        &error_chain(&e),
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
fn forward(resp: reqwest::Response, prefix: Bytes) -> Response<AnswerBody> {
    let resp: Response<reqwest::Body> = resp.into();
    let (mut parts, body) = resp.into_parts();
    headers::downstream_response(&mut parts.headers);
    // The prefix is part of the same body: Content-Length still holds.
    Response::from_parts(parts, AnswerBody::Plain(prefixed(prefix, Body::new(body))))
}
