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
use tracing::Instrument;

use crate::attempt::{
    AnswerBody, Attempt, AttemptRequest, Call, Chain, Continuation, Purpose, Resumed, Tally,
};
use crate::config::{ms, RetryConfig};
use crate::inspect::StreamEnd;
use crate::metrics::Metrics;
use crate::otel::{AttemptSpan, AttemptStart};
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

/// An attempt sent but not yet counted (see [`RetryChain::launch`]).
pub(super) struct Launched {
    pub position: usize,
    pub permit: Permit,
    pub label: Arc<str>,
    pub attempt: Attempt,
    /// The attempt's span, when traced (ended when it is counted).
    pub span: Option<AttemptSpan>,
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
                backoff: full_jitter(
                    attempts.saturating_sub(1),
                    ms(retry.base_delay_ms),
                    ms(retry.max_delay_ms),
                    &mut rand::rng(),
                ),
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

    /// One attempt on the target at `position`, counted.
    async fn attempt(
        &mut self,
        position: usize,
        permit: Permit,
        body: Bytes,
        purpose: Purpose,
    ) -> Attempt {
        let launched = self.launch(position, permit, body, purpose, false, 0).await;
        self.account(launched)
    }

    /// Sends one attempt to the target at `position` — room from its pacer,
    /// the exchange through the inner layers — without counting it yet (a
    /// hedge runs two at once). `await_first_token`: a stream's attempt
    /// comes back only once its first token arrived (or it failed).
    /// `ahead`: attempts launched and not yet counted (a hedge's primary),
    /// so that every attempt has its own number.
    pub(super) fn launch(
        &self,
        position: usize,
        mut permit: Permit,
        body: Bytes,
        purpose: Purpose,
        await_first_token: bool,
        ahead: u32,
    ) -> impl std::future::Future<Output = Launched> + Send + 'static {
        let call = self.call.clone();
        let inner = self.inner.clone();
        let number = self.tally.attempts + 1 + ahead;
        let target = call.facts.plan.targets.get(position).cloned();
        let upstream = target
            .as_ref()
            .and_then(|t| self.shared.targets.upstream(t));
        // The attempt's span opens now (pacing is part of the attempt).
        let span = call
            .trace
            .as_ref()
            .zip(target.as_ref().zip(upstream.as_ref()))
            .map(|(trace, (target, upstream))| {
                trace.attempt(&AttemptStart {
                    number,
                    target: permit.label(),
                    method: &call.method,
                    model: target.model.as_deref().or(call.facts.model.as_deref()),
                    address: upstream.address(),
                })
            });
        async move {
            let label = permit.label().clone();
            let (Some(target), Some(upstream)) = (target, upstream) else {
                let failed = Attempt::failed(internal("no such target in the plan"));
                return Launched {
                    position,
                    permit,
                    label,
                    attempt: failed,
                    span,
                };
            };
            let facts = &call.facts;
            // Hold back rather than fire into a 429 when the target said it
            // is about to run out before its reset.
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
                    let first_token = target.first_token_timeout.filter(|_| stream);
                    let req = AttemptRequest {
                        call: call.clone(),
                        number,
                        position,
                        label: label.clone(),
                        // No headers within the first-token limit: no token either.
                        first_byte_timeout: first_token
                            .map_or(upstream.first_byte_timeout, |t| t.min(upstream.first_byte_timeout)),
                        first_token_timeout: first_token,
                        await_first_token: await_first_token && stream,
                        upstream,
                        body,
                        purpose,
                        trace: span.as_ref().map(|s| s.headers().clone()),
                    };
                    let Ok(attempt) = inner.oneshot(req).await;
                    attempt
                }
            };
            Launched {
                position,
                permit,
                label,
                attempt,
                span,
            }
        }
    }

    /// Counts a finished attempt everywhere: the circuit and the pacer
    /// (through its permit), the tally, the metrics, the record, and its
    /// span — which the watcher of a stream that goes out ends instead,
    /// when the stream ends.
    pub(super) fn account(&mut self, launched: Launched) -> Attempt {
        let Launched {
            position,
            permit,
            label,
            mut attempt,
            span,
        } = launched;
        let facts = &self.call.facts;
        let kind = attempt.outcome.kind;
        permit.record(kind, &attempt.advertised);
        self.position = position;
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
        if let Some(mut span) = span {
            if let Some(findings) = &attempt.findings {
                span.answered(findings);
            }
            match attempt.response.as_mut().map(http::Response::body_mut) {
                Some(AnswerBody::Watched(stream)) => stream.follow(span),
                Some(AnswerBody::Plain(_)) | None => {
                    span.end(&attempt.outcome, &self.call.facts.secrets)
                }
            }
        }
        attempt
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
        if asked == model {
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

    /// Stream repair: continuation attempts on the prefill-capable targets
    /// after the one that broke off — never the one that stalled (a cut may
    /// continue where it happened, when that target accepts a prefill) —
    /// while the attempts, the budget and the deadline allow; circuits and
    /// pacing apply as to any attempt.
    async fn continue_stream(&mut self, cut: Continuation) -> Option<Resumed> {
        let facts = self.call.facts.clone();
        if !facts.plan.repair_streams {
            return None;
        }
        let stalled = cut.cause == StreamEnd::Idle;
        let mut from = if stalled {
            self.position + 1
        } else {
            self.position
        };
        while self.tally.attempts < self.shared.retry.max_attempts
            && Instant::now() < facts.deadline
        {
            let position = continuation_target(&facts.plan, from)?;
            from = position + 1;
            let target = facts.plan.targets.get(position)?;
            let mut permit = None;
            if !admit(
                &self.shared.targets,
                target,
                circuit_model(&facts),
                self.breaking,
                &mut permit,
            ) {
                continue;
            }
            let Some(permit) = self.shared.targets.confirm(permit?).await else {
                continue;
            };
            let request = serde_json::from_slice::<serde_json::Value>(&self.call.body).ok()?;
            let body = continuation_body(&request, &cut.partial, target.model.as_deref())?;
            if !self.spend_budget(Kind::StreamTruncated) {
                return None;
            }
            let attempt = self
                .attempt(position, permit, body, Purpose::Continuation)
                .await;
            let label = self.tally.target.clone()?;
            match attempt.response.map(http::Response::into_body) {
                Some(AnswerBody::Plain(body)) if attempt.outcome.is_ok() => {
                    self.shared
                        .metrics
                        .stream_repairs
                        .with_label_values(&[facts.route])
                        .inc();
                    tracing::info!(to = &*label, position, cause = ?cut.cause, "continuing a cut stream with a prefill");
                    return Some(Resumed {
                        body,
                        target: label,
                    });
                }
                Some(_) | None => {
                    tracing::info!(kind = %attempt.outcome.kind, to = &*label, "a continuation of the cut stream failed");
                }
            }
        }
        None
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

    fn broke(&mut self, cause: StreamEnd) {
        let facts = &self.call.facts;
        if !self.breaking {
            return;
        }
        let kind = match cause {
            StreamEnd::Idle => Kind::Timeout,
            StreamEnd::Cut | StreamEnd::Eof | StreamEnd::Done => Kind::ConnectError,
        };
        if let Some(target) = facts.plan.targets.get(self.position) {
            self.shared
                .targets
                .late_failure(target, circuit_model(facts), kind);
        }
    }

    fn resume(&mut self, cut: Continuation) -> BoxFuture<'_, Option<Resumed>> {
        // The continuation runs while the client reads the body, outside
        // the request's task: its log lines still belong to the request.
        let span = self.span.clone();
        Box::pin(self.continue_stream(cut).instrument(span))
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
