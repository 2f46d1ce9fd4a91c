//! Observation (the outermost layer of the proxy stack): gives the request
//! its id (the client's `x-request-id` or a new UUID), opens its [`Record`]
//! and tracing span (and, with traces on, its OpenTelemetry span, which goes
//! down with the request), holds the in-flight gauge, and — when the
//! answer's last byte has gone or the client went away — reads the record
//! into metrics, one log line and the trace span's final attributes. It is
//! the record's only reader. Reading at the end of the body, not at the
//! headers, is what makes a stream's final kind count.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::{Frame, SizeHint};
use tower::{Layer, Service};
use tracing::instrument::Instrumented;
use tracing::{field, Instrument, Span};

use crate::attempt::ClientRequest;
use crate::metrics::Metrics;
use crate::otel::{Otel, RequestEnd, RequestSpan};
use crate::outcome::Outcome;
use crate::path;
use crate::proxy::headers::REQUEST_ID;
use crate::record::{Final, Record};
use crate::support::{self, FailureLog, FailureRecord};
use crate::taxonomy::{Class, Kind};

/// Marks the answer the panic handler made: the request counts as the
/// server error it is, not as a client that left.
#[derive(Debug, Clone, Copy)]
pub struct Panicked;

/// Layer that observes every proxied request.
#[derive(Clone)]
pub struct ObserveLayer {
    metrics: Arc<Metrics>,
    failures: Option<Arc<FailureLog>>,
    otel: Option<Arc<Otel>>,
}

impl ObserveLayer {
    /// `failures`: where to keep failure records for `/debug/failures`,
    /// when that endpoint is on; `otel`: the tracer, when traces are on.
    pub fn new(
        metrics: Arc<Metrics>,
        failures: Option<Arc<FailureLog>>,
        otel: Option<Arc<Otel>>,
    ) -> Self {
        ObserveLayer {
            metrics,
            failures,
            otel,
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            metrics: self.metrics.clone(),
            failures: self.failures.clone(),
            otel: self.otel.clone(),
        }
    }
}

/// The observing service.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
    failures: Option<Arc<FailureLog>>,
    otel: Option<Arc<Otel>>,
}

impl<S> Service<Request<Body>> for Observe<S>
where
    S: Service<ClientRequest, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<ObservedBody>;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Observed<S::Future> {
        let request_id = request_id(req.headers().get(REQUEST_ID));
        let route = path::template(req.uri().path());
        let record = Record::new(request_id.clone(), req.method().clone(), route);
        let span = tracing::info_span!(
            "request",
            request_id = %record.request_id_str(),
            method = %req.method(),
            route,
            status = field::Empty,
            attempts = field::Empty,
            kind = field::Empty,
            latency_ms = field::Empty,
        );
        // The request's trace span, when traces are on; it goes down with
        // the request for the attempts' spans.
        let (otel_span, trace) = match self.otel.as_ref() {
            Some(otel) => {
                let (otel_span, trace) = otel.request(
                    req.headers(),
                    req.method(),
                    route,
                    req.uri().path(),
                    record.request_id_str(),
                );
                (Some(otel_span), Some(trace))
            }
            None => (None, None),
        };
        self.metrics.inflight_add(route, 1);
        let closer = Closer {
            record: record.clone(),
            metrics: self.metrics.clone(),
            failures: self.failures.clone(),
            span: span.clone(),
            otel_span,
            closed: false,
            panicked: false,
        };
        let fut = self
            .inner
            .call(ClientRequest {
                http: req,
                record,
                trace,
            })
            .instrument(span);
        Observed {
            fut,
            request_id: Some(request_id),
            closer: Some(closer),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer on its way: it gets the request id and its body the
    /// closer. Dropped first (the client left), the closer records that.
    pub struct Observed<F> {
        #[pin]
        fut: Instrumented<F>,
        request_id: Option<HeaderValue>,
        closer: Option<Closer>,
    }
}

impl<F> Future for Observed<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<ObservedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut resp) = ready!(this.fut.poll(cx));
        if let Some(id) = this.request_id.take() {
            resp.headers_mut().insert(REQUEST_ID, id);
        }
        let mut closer = this.closer.take();
        let panicked = resp.extensions().get::<Panicked>().is_some();
        Poll::Ready(Ok(resp.map(|inner| {
            if let Some(c) = closer.as_mut() {
                c.panicked = panicked;
                if http_body::Body::is_end_stream(&inner) {
                    // An empty body is never polled: the answer is complete now.
                    c.close(true);
                }
            }
            ObservedBody { inner, closer }
        })))
    }
}

/// The client's request id when it is a sane header value (visible ASCII,
/// at most 128 bytes), else a new UUID.
fn request_id(client: Option<&HeaderValue>) -> HeaderValue {
    client
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            // Encoded on the stack: the header value is the one copy.
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
            HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("unknown"))
        })
}

/// Reads the record exactly once: at the end of the body or when it is
/// dropped (client gone), whichever comes first.
struct Closer {
    record: Arc<Record>,
    metrics: Arc<Metrics>,
    failures: Option<Arc<FailureLog>>,
    span: Span,
    /// The request's trace span, ended here with the final outcome.
    otel_span: Option<RequestSpan>,
    closed: bool,
    /// The answer is the panic handler's.
    panicked: bool,
}

impl Closer {
    fn close(&mut self, completed: bool) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let record = &*self.record;
        let route = record.route;
        let elapsed = record.started.elapsed();
        let model = self.metrics.model_label(record.model());
        // Nobody finished the answer: the request path broke off (a panic)
        // or the client went away first — never an `ok`.
        let last = match record.last() {
            Some(last) => Cow::Borrowed(last),
            None => Cow::Owned(match self.panicked {
                true => Final {
                    outcome: Outcome::gateway(Kind::ServerError, "the request path panicked"),
                    status: 500,
                },
                false => Final {
                    outcome: Outcome::gateway(
                        Kind::ClientClosed,
                        "the client went away before the answer ended",
                    ),
                    status: 499,
                },
            }),
        };
        let (attempts, last_target) = record.attempts_made();
        let kind = last.outcome.kind;
        self.metrics.inflight_add(route, -1);
        self.metrics
            .record_request(route, &model, kind, elapsed.as_secs_f64());
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        self.span.record("status", last.status);
        self.span.record("attempts", attempts);
        self.span.record("kind", kind.as_str());
        self.span.record("latency_ms", latency_ms);
        if let Some(otel_span) = self.otel_span.take() {
            otel_span.close(&RequestEnd {
                status: last.status,
                outcome: &last.outcome,
                attempts,
                target: last_target.as_deref(),
                model: record.model(),
            });
        }
        let _in = self.span.enter();
        if kind.class() == Class::None {
            // Successes at debug: a line per request costs more CPU than the
            // proxying itself; the span (and its fields) is there either way.
            tracing::debug!(completed, "request finished");
            return;
        }
        let o = &last.outcome;
        let failure = FailureRecord {
            timestamp: support::timestamp(std::time::SystemTime::now()),
            request_id: record.request_id_str().to_string(),
            method: record.method.to_string(),
            route,
            model: record.model().map(str::to_string),
            status: last.status,
            class: kind.class().as_str(),
            kind: kind.as_str(),
            attempts,
            latency_ms: elapsed.as_millis() as u64,
            upstream_status: o.upstream_status,
            upstream_code: o.code.clone(),
            upstream_message: o.message.clone(),
            upstream_request_id: o.upstream_request_id.clone(),
            completed,
            request_body: record.request_body().cloned(),
        };
        tracing::warn!(
            completed,
            class = failure.class,
            model = failure.model.as_deref().unwrap_or(""),
            upstream_status = failure.upstream_status,
            upstream_code = failure.upstream_code.as_deref().unwrap_or(""),
            upstream_message = failure.upstream_message.as_deref().unwrap_or(""),
            upstream_request_id = failure.upstream_request_id.as_deref().unwrap_or(""),
            request_body = failure
                .request_body
                .as_ref()
                .map(|b| b.to_string())
                .as_deref()
                .unwrap_or(""),
            "request failed"
        );
        if let Some(log) = &self.failures {
            log.push(failure);
        }
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.close(false);
    }
}

pin_project_lite::pin_project! {
    /// The response body, watched for its end.
    pub struct ObservedBody {
        #[pin]
        inner: Body,
        closer: Option<Closer>,
    }
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let polled = inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(mut c) = this.closer.take() {
                    c.close(true);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(mut c) = this.closer.take() {
                    c.close(false);
                }
            }
            // A body that knows it is done (a full envelope, a Content-Length
            // reached) may never be polled to its `None`: close on its last frame.
            Poll::Ready(Some(Ok(_))) if inner.is_end_stream() => {
                if let Some(mut c) = this.closer.take() {
                    c.close(true);
                }
            }
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
