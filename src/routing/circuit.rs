//! Circuit breaking per target: after a run of failures (or a failure ratio
//! over a window) a target is skipped for a cool-down, then probed one
//! request at a time (half-open) and restored on success. The cool-down
//! starts short (`cooldown_ms`) and doubles on each failed probe up to
//! `max_cooldown_ms`; a successful probe resets it. So a target that
//! recovers is back within one short cool-down, and one that keeps failing
//! is probed less and less often.
//!
//! The proxy keeps one [`Circuit`] per `TargetId`, asks [`Circuit::admit`]
//! before an attempt and tells [`Circuit::record`] how it went. Which kinds
//! count as a failure of the *target* is the caller's decision. Outcomes
//! are not tied to the admission that allowed them: any outcome recorded
//! while half-open is taken as the probe's (a late answer from before the
//! circuit opened is as good evidence as the probe), and outcomes recorded
//! while open are ignored.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::CircuitConfig;

/// The state, as the gauge and logs show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    /// The gauge value (CONTRACT.md): closed 0, half-open 1, open 2.
    pub fn as_gauge(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }

    /// The label / log value.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// Whether an attempt may go to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go.
    Pass,
    /// Half-open: go, as the one probe. Its outcome must be recorded, or
    /// [`Circuit::release_probe`] called when it says nothing.
    Probe,
    /// Skip this target. Open: `until` is when the cool-down ends.
    /// Half-open with a probe in flight: `until` is `now` — the probe's
    /// outcome, not time, decides; do not sleep on it.
    Reject { until: Instant },
}

/// A change of state, for the log line and the gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: CircuitState,
    pub to: CircuitState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Failures in a row (closed only).
    consecutive: u32,
    /// The last `window` outcomes, `true` for a failure (closed only).
    outcomes: VecDeque<bool>,
    failures: usize,
    /// The cool-down the next opening gets: `cooldown`, doubled per failed
    /// probe up to `max_cooldown`, reset by a successful one.
    next_cooldown: Duration,
}

/// One target's circuit breaker. `Send + Sync`: share it in an `Arc`.
#[derive(Debug)]
pub struct Circuit {
    consecutive_failures: u32,
    failure_ratio: f64,
    window: usize,
    min_requests: usize,
    cooldown: Duration,
    max_cooldown: Duration,
    inner: Mutex<Inner>,
}

impl Circuit {
    /// A closed circuit with the `[circuit]` settings (validated).
    pub fn new(config: &CircuitConfig) -> Circuit {
        let window = config.window.max(1);
        Circuit {
            consecutive_failures: config.consecutive_failures.max(1),
            failure_ratio: config.failure_ratio,
            window,
            min_requests: config.min_requests,
            cooldown: Duration::from_millis(config.cooldown_ms),
            max_cooldown: Duration::from_millis(config.max_cooldown_ms.max(config.cooldown_ms)),
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                consecutive: 0,
                outcomes: VecDeque::with_capacity(window),
                failures: 0,
                next_cooldown: Duration::from_millis(config.cooldown_ms),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent whatever panicked while holding it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current state (an open circuit whose cool-down is over stays
    /// `Open` until the next `admit`).
    pub fn state(&self) -> CircuitState {
        match self.lock().phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether an attempt may go now. Open with the cool-down over turns
    /// half-open and makes this caller the probe.
    pub fn admit(&self, now: Instant) -> Admission {
        let mut inner = self.lock();
        match inner.phase {
            Phase::Closed => Admission::Pass,
            Phase::Open { until } if now < until => Admission::Reject { until },
            Phase::Open { .. } | Phase::HalfOpen { probing: false } => {
                inner.phase = Phase::HalfOpen { probing: true };
                Admission::Probe
            }
            Phase::HalfOpen { probing: true } => Admission::Reject { until: now },
        }
    }

    /// Records an attempt's outcome for the target; returns the transition
    /// it caused, if any.
    pub fn record(&self, success: bool, now: Instant) -> Option<Transition> {
        let mut inner = self.lock();
        let phase = inner.phase;
        let (from, open) = match phase {
            Phase::Open { .. } => return None,
            Phase::HalfOpen { .. } => (CircuitState::HalfOpen, !success),
            Phase::Closed if self.count(&mut inner, success) => (CircuitState::Closed, true),
            Phase::Closed => return None,
        };
        inner.consecutive = 0;
        inner.outcomes.clear();
        inner.failures = 0;
        let to = if open {
            // A failed probe: the target is still down; wait longer.
            if from == CircuitState::HalfOpen {
                inner.next_cooldown = (inner.next_cooldown * 2).min(self.max_cooldown);
            }
            let until = now.checked_add(inner.next_cooldown).unwrap_or(now);
            inner.phase = Phase::Open { until };
            CircuitState::Open
        } else {
            inner.next_cooldown = self.cooldown;
            inner.phase = Phase::Closed;
            CircuitState::Closed
        };
        Some(Transition { from, to })
    }

    /// Counts a closed-state outcome; true when it trips the circuit.
    fn count(&self, inner: &mut Inner, success: bool) -> bool {
        if inner.outcomes.len() == self.window && inner.outcomes.pop_front() == Some(true) {
            inner.failures -= 1;
        }
        inner.outcomes.push_back(!success);
        if success {
            inner.consecutive = 0;
            return false;
        }
        inner.failures += 1;
        inner.consecutive += 1;
        let seen = inner.outcomes.len();
        inner.consecutive >= self.consecutive_failures
            || (seen >= self.min_requests
                && inner.failures as f64 >= self.failure_ratio * seen as f64)
    }

    /// Until when it is open, and the cool-down a failed probe would get
    /// next (what the fleet is told when it opens).
    pub fn opened(&self) -> Option<(Instant, Duration)> {
        let inner = self.lock();
        match inner.phase {
            Phase::Open { until } => Some((until, inner.next_cooldown)),
            Phase::Closed | Phase::HalfOpen { .. } => None,
        }
    }

    /// Another replica opened it: open until `until` (unless already open
    /// longer), with its next cool-down. The transition, if any, is returned
    /// for the gauge and the log.
    pub fn open_remote(&self, until: Instant, next_cooldown: Duration) -> Option<Transition> {
        let mut inner = self.lock();
        let from = match inner.phase {
            Phase::Open { until: known } if known >= until => return None,
            Phase::Open { .. } => CircuitState::Open,
            Phase::Closed => CircuitState::Closed,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        };
        inner.phase = Phase::Open { until };
        inner.next_cooldown = next_cooldown.clamp(self.cooldown, self.max_cooldown);
        inner.consecutive = 0;
        inner.outcomes.clear();
        inner.failures = 0;
        (from != CircuitState::Open).then_some(Transition {
            from,
            to: CircuitState::Open,
        })
    }

    /// Another replica's probe succeeded: closed, the cool-down reset.
    pub fn close_remote(&self) -> Option<Transition> {
        let mut inner = self.lock();
        let from = match inner.phase {
            Phase::Closed => return None,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        };
        inner.phase = Phase::Closed;
        inner.next_cooldown = self.cooldown;
        Some(Transition {
            from,
            to: CircuitState::Closed,
        })
    }

    /// Another replica holds the fleet's probe: this one's half-open turn
    /// is given back and it waits until `until` before asking again (no
    /// transition is reported: the fleet's circuit did not change).
    pub fn defer_probe(&self, until: Instant) {
        let mut inner = self.lock();
        if matches!(inner.phase, Phase::HalfOpen { .. }) {
            inner.phase = Phase::Open { until };
        }
    }

    /// Gives the probe slot back without an outcome (the probe was
    /// cancelled, or failed for a reason that says nothing about the
    /// target), so the next caller can probe.
    pub fn release_probe(&self) {
        let mut inner = self.lock();
        if inner.phase == (Phase::HalfOpen { probing: true }) {
            inner.phase = Phase::HalfOpen { probing: false };
        }
    }
}

#[cfg(test)]
mod tests;
