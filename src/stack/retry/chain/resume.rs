//! Stream repair: when a watched stream is cut after content went out, its
//! continuation is one more attempt of the chain — on a prefill-capable
//! target other than one that stalled — under the same attempts, budget,
//! deadline, circuits and pacing as any other.

use std::convert::Infallible;

use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tower::Service;
use tracing::Instrument;

use super::{admit, circuit_model, RetryChain};
use crate::attempt::{
    AnswerBody, Attempt, AttemptRequest, Chain, Continuation, Purpose, Resumed, Tally,
};
use crate::inspect::StreamEnd;
use crate::repair::{continuation_body, continuation_target};
use crate::taxonomy::Kind;

impl<S> RetryChain<S>
where
    S: Service<AttemptRequest, Response = Attempt, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
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
        // The client's request, read once for every continuation tried.
        let request = serde_json::from_slice::<serde_json::Value>(&self.call.body).ok()?;
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
