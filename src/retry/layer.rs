//! The retry mechanism (a tower layer around the per-attempt service): it
//! replays the buffered request while [`super::policy::decide`] says so,
//! sleeps the decided wait, and spends the shared retry budget — when the
//! budget is gone the failure goes back unretried. Attempts are counted
//! here, once each, after inspection has had its say.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Request;
use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service, ServiceExt};

use crate::config::{ms, InspectConfig, Policy, RetryConfig};
use crate::context::{Ledger, RequestFacts};
use crate::metrics::Metrics;
use crate::proxy::attempt::Attempt;
use crate::taxonomy::{Class, Kind};

use super::backoff::full_jitter;
use super::policy::{decide, Decision, Step, Stop};

/// The rolling window of the retry budget (CONTRACT.md: 10 s).
const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// Settings and shared state of the retry layer.
#[derive(Clone)]
pub struct RetryLayer {
    shared: Arc<Shared>,
}

struct Shared {
    retry: RetryConfig,
    inspect: InspectConfig,
    budget: TpsBudget,
    metrics: Arc<Metrics>,
}

impl RetryLayer {
    pub fn new(retry: RetryConfig, inspect: InspectConfig, metrics: Arc<Metrics>) -> Self {
        // Validation keeps the ratio within what TpsBudget accepts.
        let budget = TpsBudget::new(
            BUDGET_WINDOW,
            retry.budget_min_retries_per_sec,
            retry.budget_ratio as f32,
        );
        RetryLayer {
            shared: Arc::new(Shared {
                retry,
                inspect,
                budget,
                metrics,
            }),
        }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The retrying service.
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request<Bytes>> for Retry<S>
where
    S: Service<Request<Bytes>, Response = Attempt, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Attempt;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Attempt, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        Box::pin(async move { Ok(run(inner, &shared, req).await) })
    }
}

/// Whether a kind may be retried: hard kinds by the taxonomy, soft and
/// silent ones when their `[inspect]` policy says `retry`.
pub fn retryable(kind: Kind, inspect: &InspectConfig) -> bool {
    match kind.class() {
        Class::None => false,
        Class::Hard => kind.is_retryable(),
        Class::Soft | Class::Silent => inspect_policy(kind, inspect) == Policy::Retry,
    }
}

/// The `[inspect]` policy for a soft or silent kind (`pass` for the rest).
pub fn inspect_policy(kind: Kind, inspect: &InspectConfig) -> Policy {
    match kind {
        Kind::ContentFilter => inspect.content_filter,
        Kind::Length => inspect.length,
        Kind::EmptyData => inspect.empty_data,
        Kind::EmptyContent => inspect.empty_content,
        Kind::InvalidJson => inspect.invalid_json,
        Kind::SchemaMismatch => inspect.schema_mismatch,
        Kind::StreamTruncated => inspect.stream_truncated,
        // Dropped malformed events never fail an answer by themselves.
        Kind::MalformedEvent => Policy::Pass,
        Kind::Ok
        | Kind::BadRequest
        | Kind::ContextLengthExceeded
        | Kind::Unauthorized
        | Kind::Forbidden
        | Kind::QuotaExceeded
        | Kind::NotFound
        | Kind::PayloadTooLarge
        | Kind::RateLimited
        | Kind::ServerError
        | Kind::Timeout
        | Kind::ConnectError
        | Kind::BadUpstreamResponse => Policy::Pass,
    }
}

async fn run<S>(inner: S, shared: &Shared, req: Request<Bytes>) -> Attempt
where
    S: Service<Request<Bytes>, Response = Attempt, Error = Infallible> + Clone,
{
    let ledger = req.extensions().get::<Arc<Ledger>>().cloned();
    let route = ledger.as_ref().map_or(crate::route::OTHER, |l| l.route);
    let facts = req.extensions().get::<RequestFacts>().cloned();
    let deadline = facts.as_ref().map(|f| f.deadline);
    let defer_to_client = facts.as_ref().is_some_and(|f| f.client_retrying)
        && !shared.retry.retry_when_client_retries;
    let metrics = &shared.metrics;
    shared.budget.deposit();

    let mut attempts = 0u32;
    loop {
        let Ok(attempt) = inner.clone().oneshot(replay(&req)).await;
        attempts += 1;
        let kind = attempt.outcome.kind;
        metrics.record_attempt(route, kind);
        if let Some(l) = &ledger {
            l.entry().attempts = attempts;
        }
        let backoff = full_jitter(
            attempts - 1,
            ms(shared.retry.base_delay_ms),
            ms(shared.retry.max_delay_ms),
            &mut rand::rng(),
        );
        let remaining = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        let step = Step {
            outcome: &attempt.outcome,
            attempts,
            max_attempts: shared.retry.max_attempts,
            retryable: retryable(kind, &shared.inspect) || attempt.outcome.transient,
            defer_to_client,
            backoff,
            max_retry_after: ms(shared.retry.max_retry_after_ms),
            remaining,
        };
        match decide(&step) {
            Decision::Stop(stop) => {
                if stop != Stop::Success {
                    tracing::debug!(kind = %kind, attempts, reason = ?stop, "not retrying");
                }
                return attempt;
            }
            Decision::Retry(wait) => {
                if !shared.budget.withdraw() {
                    metrics
                        .retry_budget_exhausted
                        .with_label_values(&[route])
                        .inc();
                    tracing::debug!(kind = %kind, attempts, "retry budget exhausted");
                    return attempt;
                }
                metrics
                    .retries
                    .with_label_values(&[route, kind.as_str()])
                    .inc();
                tracing::debug!(kind = %kind, attempts, wait_ms = wait.as_millis() as u64, "retrying");
                // The failed answer's connection is released before the wait.
                drop(attempt);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// A copy of the buffered request for one more attempt (the body is a
/// cheap `Bytes` clone; extensions carry the ledger and facts).
fn replay(req: &Request<Bytes>) -> Request<Bytes> {
    let mut copy = Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    *copy.extensions_mut() = req.extensions().clone();
    copy
}

#[cfg(test)]
#[path = "layer_tests.rs"]
mod tests;
