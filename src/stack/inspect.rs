//! The inspection layer (between `retry` and `exchange`): every successful
//! attempt is read by the pure rules of [`crate::inspect`] before the retry
//! chain decides on it, so a soft or silent failure under a `retry` action
//! is retried like a hard one.
//! - Non-streamed chat/completions/images answers are read whole (up to
//!   `inspect.max_body_bytes`; a larger one passes uninspected, counted) and
//!   given their kind ([`whole`]).
//! - Streams are put under a [`watch::StreamWatch`], which looks ahead at
//!   their first events when an early verdict could still change the answer
//!   and then watches them to the end, event by event.
//! - Video tasks are normalized, and early not-found polls marked transient
//!   ([`tasks`]).
//!
//! A continuation (stream repair) is not watched here: its events extend a
//! stream whose watcher reads them.

mod splice;
mod state;
mod tasks;
mod watch;
mod whole;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::Method;
use tower::{Layer, Service, ServiceExt};

use crate::attempt::{AnswerBody, Attempt, AttemptRequest, Purpose};
use crate::config::Config;
use crate::drain::Drain;
use crate::inspect::Endpoint;
use crate::metrics::Metrics;
use crate::proxy::headers;

use state::InspectState;

/// The inspection layer.
#[derive(Clone)]
pub struct InspectLayer {
    state: Arc<InspectState>,
}

impl InspectLayer {
    pub fn new(config: &Config, metrics: Arc<Metrics>, drain: Drain) -> Self {
        InspectLayer {
            state: Arc::new(InspectState::new(config, metrics, drain)),
        }
    }
}

impl<S> Layer<S> for InspectLayer {
    type Service = Inspect<S>;

    fn layer(&self, inner: S) -> Inspect<S> {
        Inspect {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The inspecting service.
#[derive(Clone)]
pub struct Inspect<S> {
    inner: S,
    state: Arc<InspectState>,
}

impl<S> Service<AttemptRequest> for Inspect<S>
where
    S: Service<AttemptRequest, Response = Attempt, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Attempt;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Attempt, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: AttemptRequest) -> Self::Future {
        let inner = self.inner.clone();
        let state = self.state.clone();
        Box::pin(async move {
            let call = req.call.clone();
            let purpose = req.purpose;
            let first_token = watch::FirstToken::of(&req, tokio::time::Instant::now());
            let Ok(attempt) = inner.oneshot(req).await;
            if purpose == Purpose::Continuation {
                return Ok(attempt);
            }
            let facts = &call.facts;
            Ok(inspect(
                &state,
                &call.method,
                call.uri.path(),
                facts,
                attempt,
                first_token,
            )
            .await)
        })
    }
}

async fn inspect(
    state: &Arc<InspectState>,
    method: &Method,
    path: &str,
    facts: &Arc<crate::facts::RequestFacts>,
    mut attempt: Attempt,
    first_token: watch::FirstToken,
) -> Attempt {
    let expect = &facts.expect;
    if expect.endpoint == Endpoint::Videos && method == Method::GET {
        tasks::mark_task_not_ready(state, path, &mut attempt.outcome);
    }
    if !attempt.outcome.is_ok() {
        return attempt;
    }
    let Some(resp) = attempt.response.take() else {
        return attempt;
    };
    let (parts, body) = resp.into_parts();
    let AnswerBody::Plain(body) = body else {
        // Already watched (not produced below this layer).
        attempt.response = Some(http::Response::from_parts(parts, body));
        return attempt;
    };
    let resp = http::Response::from_parts(parts, body);
    // A stream request answered with plain JSON is inspected as JSON.
    let stream = expect.stream && headers::is_event_stream(resp.headers());
    match (expect.endpoint, stream) {
        (Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Responses, true) => {
            watch::watch(state, facts, attempt, resp, first_token).await
        }
        (Endpoint::Videos, _) => tasks::video(state, method, facts, attempt, resp).await,
        // An inspected endpoint's whole answer is read whatever its content
        // type says: it may be an error object in a 2xx, and the endpoint's
        // own rules apply. Anything else passes through, bounded.
        (endpoint, false) if endpoint != Endpoint::Other => {
            whole::inspect_whole(state, facts, attempt, resp).await
        }
        _ => {
            attempt.response = Some(resp.map(AnswerBody::Plain));
            attempt
        }
    }
}

#[cfg(test)]
mod tests;
