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
use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Service, ServiceExt};

use crate::attempt::{
    AnswerBody, Attempt, AttemptRequest, Call, Chain, Continuation, Purpose, Resumed, Tally,
};
use crate::config::{ms, RetryConfig};
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::proxy::targets::{Permit, Targets};
use crate::record::AttemptNote;
use crate::repair::{continuation_body, continuation_target};
use crate::retry::backoff::full_jitter;
use crate::retry::decide::{decide, Decision, Step, Stop};
use crate::routing::{next_target, Target};
use crate::taxonomy::{Class, Kind};

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

        // The first target whose circuit lets a request through.
        let mut permit = None;
        let first = plan
            .targets
            .iter()
            .position(|t| admit(&self.shared.targets, t, self.breaking, &mut permit));
        let (Some(mut position), Some(mut permit)) = (first, permit) else {
            return Attempt::failed(Outcome::gateway(
                Kind::ServerError,
                "every target for this model is out of rotation after repeated failures (circuit open); retry shortly",
            ));
        };
        loop {
            let body = self.body_for(position);
            let attempt = self.attempt(position, permit, body, Purpose::Answer).await;
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
            let fallback = if may_continue {
                next_target(plan, position, kind, |t| {
                    admit(&self.shared.targets, t, self.breaking, &mut next_permit)
                })
            } else {
                None
            };
            let step = Step {
                outcome: &attempt.outcome,
                attempts,
                max_attempts: retry.max_attempts,
                retryable: retryable(kind, &facts.actions) || attempt.outcome.transient,
                defer_to_client,
                creates: facts.creates,
                backoff: full_jitter(
                    attempts.saturating_sub(1),
                    ms(retry.base_delay_ms),
                    ms(retry.max_delay_ms),
                    &mut rand::rng(),
                ),
                max_retry_after: ms(retry.max_retry_after_ms),
                remaining,
                fallback,
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
                        .and_then(|t| self.shared.targets.again(t, self.breaking));
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
                }
                (Decision::Fallback(_), None) => return attempt,
            }
        }
    }

    /// One attempt on the target at `position`: room from its pacer, the
    /// exchange through the inner layers, and the count everywhere.
    async fn attempt(
        &mut self,
        position: usize,
        mut permit: Permit,
        body: Bytes,
        purpose: Purpose,
    ) -> Attempt {
        let facts = self.call.facts.clone();
        let Some(target) = facts.plan.targets.get(position) else {
            return Attempt::failed(internal("no such target in the plan"));
        };
        let Some(upstream) = self.shared.targets.upstream(target) else {
            return Attempt::failed(internal("the target's upstream is not configured"));
        };
        let label = permit.label().clone();
        self.position = position;
        // Hold back rather than fire into a 429 when the target said it is
        // about to run out before its reset.
        let attempt = match permit.pace(facts.deadline).await {
            Err(until) => Attempt::failed(Outcome {
                retry_after: Some(until.saturating_duration_since(Instant::now())),
                unsent: true,
                ..Outcome::gateway(
                    Kind::RateLimited,
                    format!(
                        "held back by the gateway: {label} advertised no requests left before its rate-limit reset"
                    ),
                )
            }),
            Ok(()) => {
                let stream = facts.stream || purpose == Purpose::Continuation;
                let first_byte_timeout = match target.first_token_timeout {
                    Some(t) if stream => t,
                    Some(_) | None => upstream.first_byte_timeout,
                };
                let req = AttemptRequest {
                    call: self.call.clone(),
                    number: self.tally.attempts + 1,
                    position,
                    label: label.clone(),
                    upstream,
                    body,
                    purpose,
                    first_byte_timeout,
                };
                let Ok(attempt) = self.inner.clone().oneshot(req).await;
                attempt
            }
        };
        let kind = attempt.outcome.kind;
        permit.record(kind, &attempt.advertised);
        self.tally.attempts += 1;
        self.tally.kinds.push(kind);
        self.tally.target = Some(label.clone());
        let metrics = &self.shared.metrics;
        metrics.record_attempt(facts.route, kind);
        if let Some(first_byte) = attempt.first_byte {
            metrics
                .upstream_first_byte
                .with_label_values(&[facts.route])
                .observe(first_byte.as_secs_f64());
        }
        self.call.record.push_attempt(AttemptNote {
            kind,
            target: label,
        });
        attempt
    }

    /// The body for a target: the client's, with `model` replaced when the
    /// target sends another model than the one asked for.
    fn body_for(&self, position: usize) -> Bytes {
        let call = &self.call;
        let target = call.facts.plan.targets.get(position);
        let (Some(model), Some(json)) = (target.and_then(|t| t.model.as_ref()), &call.facts.json)
        else {
            return call.body.clone();
        };
        if call.facts.model.as_deref() == Some(model.as_str()) {
            return call.body.clone();
        }
        let mut rewritten = (**json).clone();
        match rewritten.as_object_mut() {
            Some(obj) => {
                obj.insert("model".into(), serde_json::Value::String(model.clone()));
                serde_json::to_vec(&rewritten).map_or_else(|_| call.body.clone(), Bytes::from)
            }
            None => call.body.clone(),
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

    /// Stream repair: one continuation attempt on a prefill-capable target,
    /// as the attempts, the budget and the deadline allow.
    async fn continue_stream(&mut self, cut: Continuation) -> Option<Resumed> {
        let facts = self.call.facts.clone();
        if !facts.plan.repair_streams
            || self.tally.attempts >= self.shared.retry.max_attempts
            || Instant::now() >= facts.deadline
        {
            return None;
        }
        let position = continuation_target(&facts.plan, self.position)?;
        let target = facts.plan.targets.get(position)?;
        let mut permit = None;
        if !admit(&self.shared.targets, target, self.breaking, &mut permit) {
            return None;
        }
        let permit = permit?;
        let body = continuation_body(
            facts.json.as_deref()?,
            &cut.partial,
            target.model.as_deref(),
        )?;
        if !self.spend_budget(Kind::StreamTruncated) {
            return None;
        }
        let attempt = self
            .attempt(position, permit, body, Purpose::Continuation)
            .await;
        let label = self.tally.target.clone()?;
        let body = match attempt.response.map(http::Response::into_body) {
            Some(AnswerBody::Plain(body)) if attempt.outcome.is_ok() => body,
            Some(_) | None => {
                tracing::info!(kind = %attempt.outcome.kind, target = &*label, "the stream's continuation failed: the original failure stands");
                return None;
            }
        };
        self.shared
            .metrics
            .stream_repairs
            .with_label_values(&[facts.route])
            .inc();
        tracing::info!(to = &*label, position, cause = ?cut.cause, "continuing a cut stream with a prefill");
        Some(Resumed {
            body,
            target: label,
        })
    }
}

impl<S> Chain for RetryChain<S>
where
    S: Service<AttemptRequest, Response = Attempt, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    fn tally(&self) -> &Tally {
        &self.tally
    }

    fn max_attempts(&self) -> u32 {
        self.shared.retry.max_attempts
    }

    fn resume(&mut self, cut: Continuation) -> BoxFuture<'_, Option<Resumed>> {
        Box::pin(self.continue_stream(cut))
    }
}

/// Asks `target`'s circuit for a permit; on success keeps it in `slot`.
fn admit(targets: &Targets, target: &Target, breaking: bool, slot: &mut Option<Permit>) -> bool {
    match targets.admit(target, breaking) {
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
