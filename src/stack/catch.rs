//! The panic net (a tower layer between `observe` and `admit`): a panic
//! anywhere below — admission, the retry chain, inspection, the exchange —
//! is logged and answered with the 500 envelope instead of dropping the
//! connection. The request path is written not to panic; this is belt and
//! braces. The answer carries [`Panicked`], so that `observe` counts the
//! server error it is, not a client that left.
//!
//! tower-http's `CatchPanic` does the same, but boxes every response body
//! (and the stack then boxed it once more): two allocations per request
//! for a path that should never run. Here the answer passes through as it
//! is, and the future is a plain wrapper.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use futures_util::future::{CatchUnwind, FutureExt};
use http::{Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::attempt::ClientRequest;
use crate::envelope::{self, EnvelopeContext};
use crate::outcome::Outcome;
use crate::record::Record;
use crate::taxonomy::Kind;

use super::observe::Panicked;

/// Catches panics below it.
#[derive(Clone, Copy)]
pub struct CatchPanicLayer {
    /// `envelope.hint_in_message`, for the 500 envelope.
    hint_in_message: bool,
}

impl CatchPanicLayer {
    pub fn new(hint_in_message: bool) -> Self {
        CatchPanicLayer { hint_in_message }
    }
}

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic {
            inner,
            hint_in_message: self.hint_in_message,
        }
    }
}

/// The panic net over `S`.
#[derive(Clone)]
pub struct CatchPanic<S> {
    inner: S,
    hint_in_message: bool,
}

impl<S> Service<ClientRequest> for CatchPanic<S>
where
    S: Service<ClientRequest, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Caught<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ClientRequest) -> Caught<S::Future> {
        // The record `observe` opened names the request in the envelope.
        let record = req.record.clone();
        let hint_in_message = self.hint_in_message;
        let inner = &mut self.inner;
        let state = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
            Ok(fut) => State::Running {
                fut: AssertUnwindSafe(fut).catch_unwind(),
            },
            Err(_panic) => State::Panicked,
        };
        Caught {
            state,
            record,
            hint_in_message,
        }
    }
}

pin_project! {
    /// The inner service's answer, or the 500 envelope if it panicked.
    pub struct Caught<F> {
        #[pin]
        state: State<F>,
        record: Arc<Record>,
        hint_in_message: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] fut: CatchUnwind<AssertUnwindSafe<F>> },
        /// `call` itself panicked.
        Panicked,
    }
}

impl<F> Future for Caught<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let panic = match this.state.project() {
            StateProj::Running { fut } => match ready!(fut.poll(cx)) {
                Ok(answer) => return Poll::Ready(answer),
                Err(panic) => Some(panic),
            },
            StateProj::Panicked => None,
        };
        let request_id = this.record.request_id_str();
        Poll::Ready(Ok(panic_answer(
            panic.as_deref(),
            request_id,
            *this.hint_in_message,
        )))
    }
}

/// The gateway's own 500: an internal error, not a bad upstream.
fn panic_answer(
    panic: Option<&(dyn Any + Send)>,
    request_id: &str,
    hint_in_message: bool,
) -> Response<Body> {
    let what = panic
        .and_then(|p| {
            p.downcast_ref::<&str>()
                .copied()
                .or(p.downcast_ref::<String>().map(String::as_str))
        })
        .unwrap_or("(no message)");
    tracing::error!(request_id, panic = what, "panic in the request path");
    let outcome = Outcome::gateway(
        Kind::ServerError,
        "backstop hit an internal error while handling this request; it has been logged",
    );
    let mut resp = envelope::response(
        &outcome,
        &EnvelopeContext::gateway(request_id, hint_in_message),
    )
    .map(Body::from);
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    // Counted as the server error it is, not as a client that left.
    resp.extensions_mut().insert(Panicked);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::{ready, Ready};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// Panics in `call` when `in_call`, else in its future (on a path
    /// other than `/ok`).
    #[derive(Clone)]
    struct Buggy {
        in_call: bool,
    }

    impl Service<ClientRequest> for Buggy {
        type Response = Response<Body>;
        type Error = Infallible;
        type Future = futures_util::future::Either<
            Ready<Result<Response<Body>, Infallible>>,
            std::pin::Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>,
        >;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        #[allow(clippy::panic)]
        fn call(&mut self, req: ClientRequest) -> Self::Future {
            if req.http.uri().path() == "/ok" {
                return futures_util::future::Either::Left(ready(Ok(Response::new(Body::from(
                    "fine",
                )))));
            }
            if self.in_call {
                panic!("a bug in call");
            }
            futures_util::future::Either::Right(Box::pin(async { panic!("a bug in the future") }))
        }
    }

    async fn answer(in_call: bool, path: &str) -> (Response<Body>, String) {
        let record = Record::new(
            http::HeaderValue::from_static("req-7"),
            http::Method::POST,
            "/v1/chat/completions",
        );
        let req = ClientRequest {
            http: http::Request::post(path).body(Body::empty()).unwrap(),
            record,
            trace: None,
        };
        let svc = CatchPanicLayer::new(true).layer(Buggy { in_call });
        let Ok(resp) = svc.oneshot(req).await;
        let (parts, body) = resp.into_parts();
        let text = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
        (Response::from_parts(parts, Body::empty()), text)
    }

    #[tokio::test]
    async fn a_panic_in_the_future_or_in_call_is_the_500_envelope() {
        for in_call in [false, true] {
            let (resp, text) = answer(in_call, "/v1/chat/completions").await;
            assert_eq!(resp.status(), 500, "in_call={in_call}");
            assert!(resp.extensions().get::<Panicked>().is_some());
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["error"]["backstop"]["kind"], "server_error");
            assert_eq!(v["error"]["backstop"]["request_id"], "req-7");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("backstop hit an internal error"),
                "{v}"
            );
        }
    }

    #[tokio::test]
    async fn an_answer_passes_through_as_it_is() {
        let (resp, text) = answer(false, "/ok").await;
        assert_eq!((resp.status().as_u16(), text.as_str()), (200, "fine"));
        assert!(resp.extensions().get::<Panicked>().is_none());
    }
}
