//! Rate-limit pacing per target: read what every answer says is left of
//! the target's rate limit (`x-ratelimit-remaining-*`, `x-ratelimit-reset-*`)
//! and hold requests back, in a bounded queue for a bounded wait, rather than
//! fire them into a 429 — a target that advertised 10 remaining requests
//! gets no 11th before its reset.
//!
//! The proxy keeps one [`Pacer`] per `TargetId`, calls
//! [`Pacer::observe`] with each answer's headers and [`Pacer::reserve`]
//! before each attempt. The pacer keeps a local count: each `Go` takes one
//! request off the advertised remainder; answers only ever lower it within
//! a window (an answer may predate requests already sent), and set the
//! reset instant. Past the reset the count is unknown and everyone goes
//! until the next answer says more. Tokens are not counted locally (a
//! request's size is not known here): only an advertised 0 holds requests
//! back.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::PacingConfig;
use crate::ratelimit::advertised::{self, Advertised};

/// What a request about to go to the target should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Go now (one request of the remainder is taken).
    Go,
    /// Sleep until this instant, then call `reserve` again (or
    /// `cancel_wait` with it when giving up first).
    Wait(Instant),
    /// Do not wait: the reset is further than `max_wait`, at or past the
    /// deadline, or the queue is full. `until` is the reset instant.
    Refuse { until: Instant },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    remaining: u64,
    reset_at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    /// Wake instant → requests told to wait until then.
    waiters: BTreeMap<Instant, usize>,
    /// The fleet said this target's window is tight until then.
    tight_until: Option<Instant>,
}

impl Inner {
    /// Forgets what the reset made stale.
    fn expire(&mut self, now: Instant) {
        let live = |b: &Bucket| b.reset_at > now;
        self.requests = self.requests.filter(live);
        self.tokens = self.tokens.filter(live);
        self.waiters.retain(|at, _| *at > now);
    }
}

/// One target's pacer. `Send + Sync`: share it in an `Arc`.
#[derive(Debug)]
pub struct Pacer {
    enabled: bool,
    reserve: u64,
    max_wait: Duration,
    max_queue: usize,
    inner: Mutex<Inner>,
}

impl Pacer {
    /// A pacer that knows nothing yet, with the `[pacing]` settings.
    pub fn new(config: &PacingConfig) -> Pacer {
        Pacer {
            enabled: config.enabled,
            reserve: config.reserve,
            max_wait: Duration::from_millis(config.max_wait_ms),
            max_queue: config.max_queue,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent whatever panicked while holding it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes what an answer (arrived at `now`) advertised. Done even when
    /// pacing is off, for the gauges.
    pub fn observe(&self, seen: &Advertised, now: Instant) {
        let at = |b: advertised::Bucket| {
            Some(Bucket {
                remaining: b.remaining,
                reset_at: now.checked_add(b.reset_in)?,
            })
        };
        let requests = seen.requests.and_then(at);
        let tokens = seen.tokens.and_then(at);
        let mut inner = self.lock();
        inner.expire(now);
        if let Some(seen) = requests {
            let remaining = inner
                .requests
                .map_or(seen.remaining, |known| known.remaining.min(seen.remaining));
            inner.requests = Some(Bucket { remaining, ..seen });
        }
        if tokens.is_some() {
            inner.tokens = tokens;
        }
    }

    /// Whether a request may go to the target now. `deadline` is the
    /// request's: a wait that would end at or after it is refused.
    pub fn reserve(&self, now: Instant, deadline: Instant) -> Reservation {
        if !self.enabled {
            return Reservation::Go;
        }
        let mut inner = self.lock();
        inner.expire(now);
        let requests_until = inner
            .requests
            .filter(|b| b.remaining <= self.reserve)
            .map(|b| b.reset_at);
        let tokens_until = inner
            .tokens
            .filter(|b| b.remaining == 0)
            .map(|b| b.reset_at);
        let Some(until) = requests_until.max(tokens_until) else {
            if let Some(b) = inner.requests.as_mut() {
                b.remaining = b.remaining.saturating_sub(1);
            }
            return Reservation::Go;
        };
        let waiting: usize = inner.waiters.values().sum();
        if until >= deadline
            || until.saturating_duration_since(now) > self.max_wait
            || waiting >= self.max_queue
        {
            return Reservation::Refuse { until };
        }
        *inner.waiters.entry(until).or_insert(0) += 1;
        Reservation::Wait(until)
    }

    /// The longest a request may wait for a reset.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// The requests window as last advertised: remaining, and its reset.
    pub fn requests_window(&self, now: Instant) -> Option<(u64, Instant)> {
        let inner = self.lock();
        inner
            .requests
            .filter(|b| b.reset_at > now)
            .map(|b| (b.remaining, b.reset_at))
    }

    /// The fleet said the window is tight until `until`.
    pub fn mark_tight(&self, until: Instant) {
        let mut inner = self.lock();
        inner.tight_until = Some(inner.tight_until.map_or(until, |t| t.max(until)));
    }

    /// Until when requests must take from the fleet's shared count: this
    /// replica saw `threshold` remaining or fewer, or the fleet said so.
    pub fn tight(&self, now: Instant, threshold: u64) -> Option<Instant> {
        let inner = self.lock();
        let seen = inner
            .requests
            .filter(|b| b.reset_at > now && b.remaining <= threshold)
            .map(|b| b.reset_at);
        let told = inner.tight_until.filter(|t| *t > now);
        seen.max(told)
    }

    /// A request told to `Wait(at)` gives up before `at`: its place in the
    /// queue is freed. (Past `at` it has left the queue already.)
    pub fn cancel_wait(&self, at: Instant) {
        let mut inner = self.lock();
        if let Some(n) = inner.waiters.get_mut(&at) {
            *n -= 1;
            if *n == 0 {
                inner.waiters.remove(&at);
            }
        }
    }

    /// Gives back a request taken by a `Go` that was never sent (its
    /// attempt was cancelled first).
    pub fn give_back(&self) {
        if let Some(b) = self.lock().requests.as_mut() {
            b.remaining = b.remaining.saturating_add(1);
        }
    }

    /// Remaining requests (the local count) and tokens, as far as known
    /// at `now`, for the gauges.
    pub fn snapshot(&self, now: Instant) -> (Option<u64>, Option<u64>) {
        let inner = self.lock();
        let known = |b: Option<Bucket>| b.filter(|b| b.reset_at > now).map(|b| b.remaining);
        (known(inner.requests), known(inner.tokens))
    }

    /// Requests waiting at `now`.
    pub fn waiting(&self, now: Instant) -> usize {
        let inner = self.lock();
        inner
            .waiters
            .iter()
            .filter(|(at, _)| **at > now)
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests;
