//! The retry mechanism (a tower layer around the per-attempt service): it
//! replays the buffered request while [`super::decide::decide`] says so,
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

use crate::actions::Actions;
use crate::config::{ms, Action, RetryConfig};
use crate::context::{Ledger, RequestFacts};
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::proxy::attempt::Attempt;
use crate::proxy::targets::Targets;
use crate::routing::next_target;
use crate::taxonomy::{Class, Kind};

use super::backoff::full_jitter;
use super::decide::{decide, Decision, Step, Stop};

/// The rolling window of the retry budget (CONTRACT.md: 10 s).
const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// Settings and shared state of the retry layer.
#[derive(Clone)]
pub struct RetryLayer {
    shared: Arc<Shared>,
}

struct Shared {
    retry: RetryConfig,
    budget: TpsBudget,
    metrics: Arc<Metrics>,
    targets: Arc<Targets>,
}

impl RetryLayer {
    pub fn new(retry: RetryConfig, metrics: Arc<Metrics>, targets: Arc<Targets>) -> Self {
        // Validation keeps the ratio within what TpsBudget accepts.
        let budget = TpsBudget::new(
            BUDGET_WINDOW,
            retry.budget_min_retries_per_sec,
            retry.budget_ratio as f32,
        );
        RetryLayer {
            shared: Arc::new(Shared {
                retry,
                budget,
                metrics,
                targets,
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
pub fn retryable(kind: Kind, actions: &Actions) -> bool {
    match kind.class() {
        Class::None => false,
        Class::Hard => kind.is_retryable(),
        Class::Soft | Class::Silent => actions.get(kind) == Action::Retry,
    }
}

async fn run<S>(inner: S, shared: &Shared, req: Request<Bytes>) -> Attempt
where
    S: Service<Request<Bytes>, Response = Attempt, Error = Infallible> + Clone,
{
    let (Some(ledger), Some(facts)) = (
        req.extensions().get::<Arc<Ledger>>().cloned(),
        req.extensions().get::<Arc<RequestFacts>>().cloned(),
    ) else {
        // Outside the assembled stack (no facts): one plain attempt.
        let Ok(attempt) = inner.oneshot(req).await;
        return attempt;
    };
    let route = ledger.route;
    let plan = &facts.plan;
    let targets = &shared.targets;
    let defer_to_client = facts.client_retrying && !shared.retry.retry_when_client_retries;
    let metrics = &shared.metrics;
    shared.budget.deposit();

    // Circuits skip a failing target only when the route has somewhere else
    // to go: a single-target route (and the plain `[upstream]`) is never cut
    // off — holding its load down is the retry budget's job.
    let breaking = plan.targets.len() > 1;
    let admit = |t: &crate::routing::Target| !breaking || targets.admit(t, Instant::now());
    // The first target whose circuit lets a request through.
    let Some(mut position) = plan.targets.iter().position(admit) else {
        return Attempt::failed(Outcome::gateway(
            Kind::ServerError,
            "every target for this model is out of rotation after repeated failures (circuit open); retry shortly",
        ));
    };
    let mut attempts = 0u32;
    loop {
        let Some(target) = plan.targets.get(position) else {
            return Attempt::failed(Outcome::gateway(
                Kind::ServerError,
                "internal: no such target",
            ));
        };
        {
            let mut entry = ledger.entry();
            entry.target = position;
            entry.target_label = Some(targets.label(target).to_string());
        }
        let Ok(attempt) = inner.clone().oneshot(replay(&req)).await;
        attempts += 1;
        let kind = attempt.outcome.kind;
        if breaking {
            targets.record(target, kind, Instant::now());
        }
        metrics.record_attempt(route, kind);
        {
            let mut entry = ledger.entry();
            entry.attempts = attempts;
            entry.attempt_kinds.push(kind);
        }
        let remaining = facts.deadline.saturating_duration_since(Instant::now());
        // Where this failure may fall over to, asked only when another
        // attempt is possible at all (asking admits a half-open target's probe).
        let may_continue = !attempt.outcome.is_ok()
            && attempts < shared.retry.max_attempts
            && !defer_to_client
            && !remaining.is_zero();
        let fallback = if may_continue {
            next_target(plan, position, kind, admit)
        } else {
            None
        };
        let step = Step {
            outcome: &attempt.outcome,
            attempts,
            max_attempts: shared.retry.max_attempts,
            retryable: retryable(kind, &facts.actions) || attempt.outcome.transient,
            defer_to_client,
            backoff: full_jitter(
                attempts - 1,
                ms(shared.retry.base_delay_ms),
                ms(shared.retry.max_delay_ms),
                &mut rand::rng(),
            ),
            max_retry_after: ms(shared.retry.max_retry_after_ms),
            remaining,
            fallback,
        };
        let decision = decide(&step);
        let unused_fallback = fallback.filter(|n| decision != Decision::Fallback(*n));
        if let Some(t) = unused_fallback.and_then(|n| plan.targets.get(n)) {
            targets.release(t);
        }
        match decision {
            Decision::Stop(stop) => {
                if stop != Stop::Success {
                    tracing::debug!(kind = %kind, attempts, reason = ?stop, "not retrying");
                }
                return attempt;
            }
            Decision::Retry(wait) => {
                if !spend_budget(shared, route, kind, attempts) {
                    return attempt;
                }
                tracing::debug!(kind = %kind, attempts, wait_ms = wait.as_millis() as u64, "retrying");
                // The failed answer's connection is released before the wait.
                drop(attempt);
                tokio::time::sleep(wait).await;
            }
            Decision::Fallback(next) => {
                let to = plan.targets.get(next);
                if !spend_budget(shared, route, kind, attempts) {
                    if let Some(t) = to {
                        targets.release(t);
                    }
                    return attempt;
                }
                let from_label = targets.label(target);
                let to_label = to.map_or("unknown", |t| targets.label(t));
                metrics
                    .fallbacks
                    .with_label_values(&[from_label, to_label, kind.as_str()])
                    .inc();
                tracing::info!(kind = %kind, attempts, from = from_label, to = to_label, "falling over to the next target");
                position = next;
            }
        }
    }
}

/// Takes one retry from the shared budget; when it is spent the failure
/// goes back unretried and the exhaustion is counted.
fn spend_budget(shared: &Shared, route: &str, kind: Kind, attempts: u32) -> bool {
    if !shared.budget.withdraw() {
        shared
            .metrics
            .retry_budget_exhausted
            .with_label_values(&[route])
            .inc();
        tracing::debug!(kind = %kind, attempts, "retry budget exhausted");
        return false;
    }
    shared
        .metrics
        .retries
        .with_label_values(&[route, kind.as_str()])
        .inc();
    true
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
mod tests;
