//! [`RetryChain`]: the attempts of one client request. It picks each
//! attempt's target (circuits admit it, the pacer makes room for it), hands
//! the attempt down with everything the inner layers need, and carries out
//! [`crate::retry::decide`]'s decision on what came back — wait and retry,
//! fall over, or stop — within `max_attempts`, the shared retry budget and
//! the request's deadline. Every attempt is counted once, here: in the
//! tally the client is told, in `backstop_upstream_attempts_total` and in
//! the request's record.
//!
//! A watched stream takes the chain along ([`Chain`]): when the stream is
//! cut after content went out, its continuation is one more attempt made
//! here, under the same rules.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};
use tower::Service;

use crate::attempt::{Attempt, AttemptRequest, Call, Tally};
use crate::config::{ms, RetryConfig};
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::proxy::targets::{Permit, Targets};
use crate::retry::backoff::full_jitter;
use crate::retry::decide::{decide, Decision, Step, Stop};
use crate::routing::{next_target, Target};
use crate::taxonomy::{Class, Kind};

mod launch;
mod resume;

/// The rolling window of the retry budget (CONTRACT.md: 10 s).
const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// What every chain shares: the settings, the budget, the targets.
pub struct Shared {
    pub retry: RetryConfig,
    budget: TpsBudget,
    pub metrics: Arc<Metrics>,
    pub targets: Arc<Targets>,
}

impl Shared {
    pub fn new(retry: RetryConfig, metrics: Arc<Metrics>, targets: Arc<Targets>) -> Shared {
        // Validation keeps the ratio within what TpsBudget accepts.
        let budget = TpsBudget::new(
            BUDGET_WINDOW,
            retry.budget_min_retries_per_sec,
            retry.budget_ratio as f32,
        );
        Shared {
            retry,
            budget,
            metrics,
            targets,
        }
    }
}

/// Whether a kind may be retried: hard kinds by the taxonomy, soft and
/// silent ones when their `[inspect]` action says `retry`.
pub fn retryable(kind: Kind, actions: &crate::actions::Actions) -> bool {
    match kind.class() {
        // The gateway's own kinds are never its own to retry: shedding is
        // the client's to retry later.
        Class::None | Class::Aborted => false,
        Class::Hard if kind == Kind::Overloaded => false,
        Class::Hard | Class::Soft | Class::Silent => actions.retryable(kind),
    }
}

/// The attempts of one request; see the module doc.
pub struct RetryChain<S> {
    shared: Arc<Shared>,
    inner: S,
    call: Arc<Call>,
    tally: Tally,
    /// The last attempt's position in the plan.
    position: usize,
    /// Circuits are asked only when the route has somewhere else to go: a
    /// single-target route (and the plain `[upstream]`) is never cut off —
    /// holding its load down is the retry budget's job.
    breaking: bool,
    /// The request's span, for what the chain logs after the answer went
    /// out (stream repair).
    span: tracing::Span,
}

impl<S> RetryChain<S>
where
    S: Service<AttemptRequest, Response = Attempt, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    pub fn new(shared: Arc<Shared>, inner: S, call: Arc<Call>) -> Self {
        let breaking = call.facts.plan.targets.len() > 1;
        RetryChain {
            shared,
            inner,
            call,
            tally: Tally::default(),
            position: 0,
            breaking,
            span: tracing::Span::current(),
        }
    }

    /// Attempts until the decision is to stop; the last attempt is the
    /// answer.
    pub async fn run(&mut self) -> Attempt {
        let facts = self.call.facts.clone();
        let plan = &facts.plan;
        let shared = self.shared.clone();
        let retry = &shared.retry;
        let defer_to_client = facts.client_retrying && !retry.retry_when_client_retries;
        self.shared.budget.deposit();

        // The first target whose circuit lets a request through. A route's
        // targets keep a circuit per model sent; the implicit plan (no rule
        // matched) keeps one for its one target.
        let model = circuit_model(&facts);
        let mut start = 0;
        let first = loop {
            let mut slot = None;
            let found = plan
                .targets
                .iter()
                .enumerate()
                .skip(start)
                .find(|(_, t)| admit(&self.shared.targets, t, model, self.breaking, &mut slot))
                .map(|(i, _)| i);
            let (Some(i), Some(permit)) = (found, slot) else {
                break None;
            };
            // A half-open probe is the fleet's one probe, or another target.
            match self.shared.targets.confirm(permit).await {
                Some(permit) => break Some((i, permit)),
                None => start = i + 1,
            }
        };
        let Some((mut position, mut permit)) = first else {
            return Attempt::failed(Outcome::gateway(
                Kind::ServerError,
                "every target for this model is out of rotation after repeated failures (circuit open); retry shortly",
            ));
        };
        // Attempts made in a row on the current target.
        let mut on_target = 0;
        loop {
            let (answered_at, attempt) = self.answer(position, permit).await;
            if answered_at != position {
                // The hedge answered (or both failed): go on from there.
                position = answered_at;
                on_target = 0;
            }
            on_target += 1;
            let kind = attempt.outcome.kind;
            let attempts = self.tally.attempts;
            let remaining = facts.deadline.saturating_duration_since(Instant::now());
            // Where this failure may fall over to, asked only when another
            // attempt is possible at all (asking admits a half-open
            // target's probe, which the permit gives back if unused).
            let may_continue = !attempt.outcome.is_ok()
                && attempts < retry.max_attempts
                && !defer_to_client
                && !remaining.is_zero();
            let mut next_permit = None;
            let mut fallback = None;
            let mut from = position;
            // Each turn moves `from` on, or ends: bounded by the plan's length.
            while may_continue && from < plan.targets.len() {
                let mut slot = None;
                let Some(next) = next_target(plan, from, kind, |t| {
                    admit(&self.shared.targets, t, model, self.breaking, &mut slot)
                }) else {
                    break;
                };
                let Some(permit) = slot else { break };
                match self.shared.targets.confirm(permit).await {
                    Some(permit) => {
                        fallback = Some(next);
                        next_permit = Some(permit);
                        break;
                    }
                    None => from = next,
                }
            }
            let target_closed = !self.breaking
                || plan
                    .targets
                    .get(position)
                    .is_some_and(|t| self.shared.targets.is_closed(t, model));
            let step = Step {
                outcome: &attempt.outcome,
                attempts,
                max_attempts: retry.max_attempts,
                retryable: retryable(kind, &facts.actions) || attempt.outcome.transient,
                defer_to_client,
                creates: facts.creates,
                // Drawn only when another attempt is possible at all.
                backoff: match may_continue {
                    true => full_jitter(
                        attempts.saturating_sub(1),
                        ms(retry.base_delay_ms),
                        ms(retry.max_delay_ms),
                        &mut rand::rng(),
                    ),
                    false => Duration::ZERO,
                },
                max_retry_after: ms(retry.max_retry_after_ms),
                remaining,
                fallback,
                on_target,
                per_target: plan.attempts_per_target,
                target_closed,
            };
            match (decide(&step), next_permit) {
                (Decision::Stop(stop), _) => {
                    if stop != Stop::Success {
                        tracing::debug!(kind = %kind, attempts, reason = ?stop, "not retrying");
                    }
                    return attempt;
                }
                (Decision::Retry(wait), _) => {
                    if !self.spend_budget(kind) {
                        return attempt;
                    }
                    tracing::debug!(kind = %kind, attempts, wait_ms = wait.as_millis() as u64, "retrying");
                    // The failed answer's connection is released before the wait.
                    drop(attempt);
                    tokio::time::sleep(wait).await;
                    let again = plan
                        .targets
                        .get(position)
                        .and_then(|t| self.shared.targets.again(t, model, self.breaking));
                    let Some(again) = again else {
                        return Attempt::failed(internal("no such target"));
                    };
                    permit = again;
                }
                (Decision::Fallback(next), Some(next_permit)) => {
                    if !self.spend_budget(kind) {
                        return attempt;
                    }
                    let from = self
                        .tally
                        .target
                        .clone()
                        .unwrap_or_else(|| Arc::from("unknown"));
                    let to = next_permit.label().clone();
                    self.shared
                        .metrics
                        .fallbacks
                        .with_label_values(&[&*from, &*to, kind.as_str()])
                        .inc();
                    tracing::info!(kind = %kind, attempts, from = &*from, to = &*to, "falling over to the next target");
                    position = next;
                    permit = next_permit;
                    on_target = 0;
                }
                (Decision::Fallback(_), None) => return attempt,
            }
        }
    }

    pub(super) fn call(&self) -> &Arc<Call> {
        &self.call
    }

    pub(super) fn targets(&self) -> &Targets {
        &self.shared.targets
    }

    pub(super) fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    pub(super) fn breaking(&self) -> bool {
        self.breaking
    }

    /// Takes one request's worth from the retry budget (for a hedge);
    /// counts the exhaustion when there is none.
    pub(super) fn withdraw(&self) -> bool {
        let ok = self.shared.budget.withdraw();
        if !ok {
            self.shared
                .metrics
                .retry_budget_exhausted
                .with_label_values(&[self.call.facts.route])
                .inc();
        }
        ok
    }

    /// The body for a target: the client's, with `model` replaced when the
    /// target sends another model than the one asked for.
    pub(super) fn body_for(&self, position: usize) -> Bytes {
        let call = &self.call;
        let target = call.facts.plan.targets.get(position);
        // Only a JSON body that named a model (read at admission) is edited.
        let (Some(model), Some(asked)) = (target.and_then(|t| t.model.as_ref()), &call.facts.model)
        else {
            return call.body.clone();
        };
        if **asked == **model {
            return call.body.clone();
        }
        // A targeted edit of the one member; a tree only if the scan could
        // not find it (an escaped key).
        if let Some(body) = crate::json_field::with_string(&call.body, "model", model) {
            return body;
        }
        match serde_json::from_slice::<serde_json::Value>(&call.body) {
            Ok(serde_json::Value::Object(mut obj)) => {
                obj.insert("model".into(), serde_json::Value::String(model.clone()));
                serde_json::to_vec(&obj).map_or_else(|_| call.body.clone(), Bytes::from)
            }
            Ok(_) | Err(_) => call.body.clone(),
        }
    }

    /// Takes one retry from the shared budget; when it is spent the failure
    /// goes back unretried and the exhaustion is counted.
    fn spend_budget(&self, kind: Kind) -> bool {
        let route = self.call.facts.route;
        let metrics = &self.shared.metrics;
        if !self.shared.budget.withdraw() {
            metrics
                .retry_budget_exhausted
                .with_label_values(&[route])
                .inc();
            tracing::debug!(kind = %kind, attempts = self.tally.attempts, "retry budget exhausted");
            return false;
        }
        metrics
            .retries
            .with_label_values(&[route, kind.as_str()])
            .inc();
        true
    }
}

/// The client's model, for keying circuits — of a route's targets only:
/// the implicit plan (no rule matched) keeps one for its one target.
pub(super) fn circuit_model(facts: &crate::facts::RequestFacts) -> Option<&str> {
    facts.plan.route.as_ref().and(facts.model.as_deref())
}

/// Asks `target`'s circuit (for the model it sends) for a permit; on
/// success keeps it in `slot`.
pub(super) fn admit(
    targets: &Targets,
    target: &Target,
    client_model: Option<&str>,
    breaking: bool,
    slot: &mut Option<Permit>,
) -> bool {
    match targets.admit(target, client_model, breaking) {
        Some(permit) => {
            *slot = Some(permit);
            true
        }
        None => false,
    }
}

fn internal(what: &str) -> Outcome {
    Outcome::gateway(Kind::ServerError, format!("internal: {what}"))
}
