//! One attempt of a chain: launched (pacing, the exchange through the
//! inner layers, its span) and then counted once — in the tally, the
//! metrics, the record and the circuit. A hedge launches two before it
//! counts either.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use super::{internal, RetryChain};
use crate::attempt::{AnswerBody, Attempt, AttemptRequest, Purpose};
use crate::otel::{AttemptSpan, AttemptStart};
use crate::outcome::Outcome;
use crate::proxy::targets::Permit;
use crate::record::AttemptNote;
use crate::taxonomy::Kind;

/// An attempt sent but not yet counted (see [`RetryChain::launch`]).
pub(in crate::stack::retry) struct Launched {
    pub position: usize,
    pub permit: Permit,
    pub label: Arc<str>,
    pub attempt: Attempt,
    /// The attempt's span, when traced (ended when it is counted).
    pub span: Option<AttemptSpan>,
}

impl<S> RetryChain<S>
where
    S: Service<AttemptRequest, Response = Attempt, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    /// One attempt on the target at `position`, counted.
    pub(super) async fn attempt(
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
    pub(in crate::stack::retry) fn launch(
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
    pub(in crate::stack::retry) fn account(&mut self, launched: Launched) -> Attempt {
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
            metrics.record_first_byte(facts.route, first_byte.as_secs_f64());
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
}
