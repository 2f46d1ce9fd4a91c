//! Hedging (`hedge_after_ms` on a route): when the current target has given
//! no first token after that long, the next target that admits a request
//! starts in parallel; the first attempt to give a token (a whole answer,
//! for a request that does not stream) wins and the other is cancelled —
//! dropping it closes its upstream connection and gives its circuit probe
//! and pacing slot back. The hedge is paid from the retry budget; without
//! budget there is no hedge. A cancelled attempt is not counted as one (it
//! came to nothing): `backstop_hedges_total{route,outcome}` and a log line
//! say what happened.

use std::convert::Infallible;

use tokio::time::Instant;
use tower::Service;

use crate::attempt::{Attempt, AttemptRequest, Purpose};
use crate::proxy::targets::Permit;

use super::chain::{admit, circuit_model, RetryChain};

/// How a hedged answer came about (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hedged {
    /// The first target gave its token first; the hedge was cancelled.
    PrimaryWon,
    /// The hedge gave its token first; the first target was cancelled.
    HedgeWon,
    /// Neither gave a token: both attempts failed and are counted.
    BothFailed,
    /// The retry budget had nothing left for a hedge.
    BudgetExhausted,
}

impl Hedged {
    fn as_str(self) -> &'static str {
        match self {
            Hedged::PrimaryWon => "primary_won",
            Hedged::HedgeWon => "hedge_won",
            Hedged::BothFailed => "both_failed",
            Hedged::BudgetExhausted => "budget_exhausted",
        }
    }
}

impl<S> RetryChain<S>
where
    S: Service<AttemptRequest, Response = Attempt, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    /// One answer from the target at `position` — hedged when the route
    /// says so and a later target admits a request. Returns the position
    /// the chain goes on from (the hedge's, when it was used) and the
    /// attempt that answered.
    pub(super) async fn answer(&mut self, position: usize, permit: Permit) -> (usize, Attempt) {
        let facts = self.call().facts.clone();
        let body = self.body_for(position);
        let Some(after) = facts.plan.hedge_after else {
            let launched = self
                .launch(position, permit, body, Purpose::Answer, false, 0)
                .await;
            return (position, self.account(launched));
        };
        let primary = self.launch(position, permit, body, Purpose::Answer, true, 0);
        tokio::pin!(primary);
        let start = Instant::now() + after;
        tokio::select! {
            launched = &mut primary => return (position, self.account(launched)),
            () = tokio::time::sleep_until(start) => {}
        }
        // No first token yet: is there somewhere to hedge to?
        let model = circuit_model(&facts);
        let mut slot = None;
        let next = facts
            .plan
            .targets
            .iter()
            .enumerate()
            .skip(position + 1)
            .find(|(_, t)| admit(self.targets(), t, model, self.breaking(), &mut slot))
            .map(|(i, _)| i);
        let hedge_permit = match slot {
            Some(permit) => self.targets().confirm(permit).await,
            None => None,
        };
        let (Some(next), Some(hedge_permit)) = (next, hedge_permit) else {
            return (position, self.account(primary.await));
        };
        if !self.withdraw() {
            self.count_hedge(Hedged::BudgetExhausted);
            return (position, self.account(primary.await));
        }
        let hedge_label = hedge_permit.label().clone();
        tracing::info!(
            after_ms = after.as_millis() as u64,
            to = &*hedge_label,
            "no first token yet: hedging on the next target"
        );
        let hedge = self.launch(
            next,
            hedge_permit,
            self.body_for(next),
            Purpose::Answer,
            true,
            1,
        );
        tokio::pin!(hedge);
        // The first success wins (the other is dropped: cancelled); a
        // failure waits for the other. Both failed: both count, and the
        // chain goes on from the hedge's target.
        let first = tokio::select! {
            launched = &mut primary => Ok(launched),
            launched = &mut hedge => Err(launched),
        };
        let (outcome, failed, answer) = match first {
            Ok(p) if p.attempt.outcome.is_ok() => (Hedged::PrimaryWon, None, p),
            Err(h) if h.attempt.outcome.is_ok() => (Hedged::HedgeWon, None, h),
            Ok(p) => {
                let h = hedge.await;
                let outcome = if h.attempt.outcome.is_ok() {
                    Hedged::HedgeWon
                } else {
                    Hedged::BothFailed
                };
                (outcome, Some(p), h)
            }
            Err(h) => {
                let p = primary.await;
                if p.attempt.outcome.is_ok() {
                    (Hedged::PrimaryWon, Some(h), p)
                } else {
                    (Hedged::BothFailed, Some(p), h)
                }
            }
        };
        self.count_hedge(outcome);
        tracing::info!(
            outcome = outcome.as_str(),
            answered = &*answer.label,
            "hedged request settled"
        );
        if let Some(failed) = failed {
            self.account(failed);
        }
        let answered_at = answer.position;
        (answered_at, self.account(answer))
    }

    fn count_hedge(&self, outcome: Hedged) {
        self.metrics()
            .hedges
            .with_label_values(&[self.call().facts.route, outcome.as_str()])
            .inc();
    }
}
