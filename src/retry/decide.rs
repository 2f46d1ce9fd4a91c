//! The retry decision, apart from the mechanism that carries it out (the
//! [`super::layer`]): given what the last attempt came to and what is left
//! (attempts, time), retry after how long — or stop, and why.

use std::time::Duration;

use crate::outcome::Outcome;
use crate::taxonomy::Kind;

/// Everything the decision reads about one finished attempt.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    pub outcome: &'a Outcome,
    /// Attempts made so far, this one included.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Whether this outcome's kind may be retried at all: the taxonomy for
    /// hard kinds, the `[inspect]` policy for soft and silent ones.
    pub retryable: bool,
    /// The client retries by itself and the gateway was told not to stack
    /// its own retries on top.
    pub defer_to_client: bool,
    /// The request may create something billed: it is sent again only when
    /// the upstream certainly did not act on it.
    pub creates: bool,
    /// The jittered backoff drawn for this retry.
    pub backoff: Duration,
    pub max_retry_after: Duration,
    /// Time left until the request's deadline.
    pub remaining: Duration,
    /// The next target of the route this failure may fall over to (the
    /// routing rules' decision), if any.
    pub fallback: Option<usize>,
    /// Attempts made in a row on the target that just failed, this one
    /// included.
    pub on_target: u32,
    /// The route's `attempts_per_target`: how many attempts one target gets
    /// for a failure it may get over before the chain moves on.
    pub per_target: u32,
    /// The target's circuit lets requests through (an open one moves on).
    pub target_closed: bool,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then attempt again (if the budget allows).
    Retry(Duration),
    /// Attempt at once on this target of the plan (if the budget allows).
    Fallback(usize),
    /// Answer the client with this attempt.
    Stop(Stop),
}

/// Why the attempt goes back to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Success,
    NotRetryable,
    AttemptsExhausted,
    ClientRetries,
    /// The request creates something and the upstream may have acted on it
    /// (a timeout, a reset, a 5xx): another attempt could create it twice.
    MayHaveActed,
    /// The upstream asked for a wait longer than `max_retry_after_ms`.
    RetryAfterTooLong,
    /// The wait would end past the request's deadline.
    DeadlineTooClose,
}

/// Decides what follows an attempt. Pure: no clock, no randomness.
pub fn decide(step: &Step<'_>) -> Decision {
    if step.outcome.is_ok() {
        return Decision::Stop(Stop::Success);
    }
    // One attempt count covers the whole chain: a fallback does not
    // restart it.
    if step.attempts >= step.max_attempts {
        return Decision::Stop(Stop::AttemptsExhausted);
    }
    if step.defer_to_client {
        return Decision::Stop(Stop::ClientRetries);
    }
    if step.creates && !step.outcome.unsent && step.outcome.kind != Kind::RateLimited {
        return Decision::Stop(Stop::MayHaveActed);
    }
    let asked = step.outcome.retry_after.unwrap_or(Duration::ZERO);
    let wait = step.backoff.max(asked);
    // A failure the target may get over — a rate limit with a short wait, a
    // lone 5xx, a silent kind under `retry` — is retried there first: users
    // chose that model. A timeout, a refused connection, a wrong base URL,
    // a long wait or an open circuit moves on at once.
    let short = asked <= step.max_retry_after && wait < step.remaining;
    if step.fallback.is_some()
        && step.retryable
        && short
        && step.target_closed
        && step.on_target < step.per_target
        && stays_on_target(step.outcome.kind)
    {
        return Decision::Retry(wait);
    }
    // Another target needs no backoff: it is not the one that failed.
    if let Some(next) = step.fallback {
        return if step.remaining.is_zero() {
            Decision::Stop(Stop::DeadlineTooClose)
        } else {
            Decision::Fallback(next)
        };
    }
    if !step.retryable {
        return Decision::Stop(Stop::NotRetryable);
    }
    if asked > step.max_retry_after {
        return Decision::Stop(Stop::RetryAfterTooLong);
    }
    if wait >= step.remaining {
        return Decision::Stop(Stop::DeadlineTooClose);
    }
    Decision::Retry(wait)
}

/// Whether a failure of this kind is worth another attempt on the same
/// target before falling over: the target answered, and may answer better.
fn stays_on_target(kind: Kind) -> bool {
    match kind {
        Kind::RateLimited | Kind::ServerError => true,
        // No answer at all, or the wrong service: another try there waits
        // for nothing.
        Kind::Timeout | Kind::ConnectError | Kind::BadUpstreamResponse => false,
        kind => matches!(
            kind.class(),
            crate::taxonomy::Class::Soft | crate::taxonomy::Class::Silent
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taxonomy::Kind;

    fn step(outcome: &Outcome) -> Step<'_> {
        Step {
            outcome,
            attempts: 1,
            max_attempts: 3,
            retryable: true,
            defer_to_client: false,
            creates: false,
            backoff: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(30),
            remaining: Duration::from_secs(600),
            fallback: None,
            on_target: 1,
            per_target: 1,
            target_closed: true,
        }
    }

    fn with_retry_after(kind: Kind, secs: u64) -> Outcome {
        Outcome {
            retry_after: Some(Duration::from_secs(secs)),
            ..Outcome::of(kind)
        }
    }

    #[test]
    fn decisions_table() {
        let ok = Outcome::ok(200);
        let failed = Outcome::of(Kind::ServerError);
        let asks_2s = with_retry_after(Kind::RateLimited, 2);
        let asks_60s = with_retry_after(Kind::RateLimited, 60);
        let unsent = Outcome {
            unsent: true,
            ..Outcome::of(Kind::ConnectError)
        };
        let ms = Duration::from_millis;
        let cases: Vec<(&str, Step<'_>, Decision)> = vec![
            ("success", step(&ok), Decision::Stop(Stop::Success)),
            ("backoff", step(&failed), Decision::Retry(ms(300))),
            (
                "not retryable",
                Step {
                    retryable: false,
                    ..step(&failed)
                },
                Decision::Stop(Stop::NotRetryable),
            ),
            (
                "attempts exhausted",
                Step {
                    attempts: 3,
                    ..step(&failed)
                },
                Decision::Stop(Stop::AttemptsExhausted),
            ),
            (
                "client retries",
                Step {
                    defer_to_client: true,
                    ..step(&failed)
                },
                Decision::Stop(Stop::ClientRetries),
            ),
            (
                "retry-after is a lower bound",
                step(&asks_2s),
                Decision::Retry(ms(2000)),
            ),
            (
                "backoff above retry-after wins",
                Step {
                    backoff: ms(2500),
                    ..step(&asks_2s)
                },
                Decision::Retry(ms(2500)),
            ),
            (
                "retry-after too long",
                step(&asks_60s),
                Decision::Stop(Stop::RetryAfterTooLong),
            ),
            (
                "a fallback goes at once, even for a kind not retried in place",
                Step {
                    fallback: Some(1),
                    retryable: false,
                    ..step(&failed)
                },
                Decision::Fallback(1),
            ),
            (
                "a fallback still counts against max_attempts",
                Step {
                    fallback: Some(1),
                    attempts: 3,
                    ..step(&failed)
                },
                Decision::Stop(Stop::AttemptsExhausted),
            ),
            (
                "no fallback past the deadline",
                Step {
                    fallback: Some(1),
                    remaining: Duration::ZERO,
                    ..step(&failed)
                },
                Decision::Stop(Stop::DeadlineTooClose),
            ),
            (
                "a request that creates something is not sent again after a server error",
                Step {
                    creates: true,
                    ..step(&failed)
                },
                Decision::Stop(Stop::MayHaveActed),
            ),
            (
                "nor falls over after one",
                Step {
                    creates: true,
                    fallback: Some(1),
                    ..step(&failed)
                },
                Decision::Stop(Stop::MayHaveActed),
            ),
            (
                "but is after a rate limit",
                Step {
                    creates: true,
                    ..step(&asks_2s)
                },
                Decision::Retry(ms(2000)),
            ),
            (
                "and after a connection that failed before sending",
                Step {
                    creates: true,
                    ..step(&unsent)
                },
                Decision::Retry(ms(300)),
            ),
            (
                "wait past the deadline",
                Step {
                    remaining: ms(1999),
                    ..step(&asks_2s)
                },
                Decision::Stop(Stop::DeadlineTooClose),
            ),
        ];
        for (name, s, want) in cases {
            assert_eq!(decide(&s), want, "{name}");
        }
    }

    #[test]
    fn a_target_gets_its_attempts_before_the_chain_moves_on() {
        let ms = Duration::from_millis;
        let failed = Outcome::of(Kind::ServerError);
        let asks_2s = with_retry_after(Kind::RateLimited, 2);
        let asks_60s = with_retry_after(Kind::RateLimited, 60);
        let timeout = Outcome::of(Kind::Timeout);
        let refused = Outcome::of(Kind::ConnectError);
        let empty = Outcome::of(Kind::EmptyContent);
        let routed = |outcome| Step {
            fallback: Some(1),
            per_target: 2,
            ..step(outcome)
        };
        let cases: Vec<(&str, Step<'_>, Decision)> = vec![
            (
                "a lone 5xx is retried on the same target",
                routed(&failed),
                Decision::Retry(ms(300)),
            ),
            (
                "a short Retry-After is honoured there",
                routed(&asks_2s),
                Decision::Retry(ms(2000)),
            ),
            (
                "a silent kind under retry stays too",
                routed(&empty),
                Decision::Retry(ms(300)),
            ),
            (
                "its second failure moves on",
                Step {
                    on_target: 2,
                    ..routed(&failed)
                },
                Decision::Fallback(1),
            ),
            (
                "a timeout moves on at once",
                routed(&timeout),
                Decision::Fallback(1),
            ),
            (
                "a refused connection moves on at once",
                routed(&refused),
                Decision::Fallback(1),
            ),
            (
                "a long Retry-After moves on at once",
                routed(&asks_60s),
                Decision::Fallback(1),
            ),
            (
                "a wait past the deadline moves on",
                Step {
                    remaining: ms(1_500),
                    ..routed(&asks_2s)
                },
                Decision::Fallback(1),
            ),
            (
                "an open circuit moves on",
                Step {
                    target_closed: false,
                    ..routed(&failed)
                },
                Decision::Fallback(1),
            ),
            (
                "attempts_per_target = 1 moves on at once",
                Step {
                    per_target: 1,
                    ..routed(&failed)
                },
                Decision::Fallback(1),
            ),
            (
                "a kind not retried in place still falls over",
                Step {
                    retryable: false,
                    ..routed(&failed)
                },
                Decision::Fallback(1),
            ),
            (
                "max_attempts bounds the whole chain",
                Step {
                    attempts: 3,
                    ..routed(&failed)
                },
                Decision::Stop(Stop::AttemptsExhausted),
            ),
        ];
        for (name, s, want) in cases {
            assert_eq!(decide(&s), want, "{name}");
        }
    }
}
