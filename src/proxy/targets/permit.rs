//! [`Permit`]: the right to send one attempt to a target — its circuit's
//! admission (a half-open circuit's one probe) and, before sending, a slot
//! of its pacer. It records the attempt's outcome; dropped unrecorded (the
//! attempt was cancelled) it gives the probe and the slot back.

use std::sync::Arc;

use tokio::time::Instant;

use super::state::{circuit_verdict, TargetState};
use crate::fleet::Take;
use crate::ratelimit::advertised::Advertised;
use crate::routing::{Pacer, Reservation};
use crate::taxonomy::Kind;

/// The right to send one attempt to a target: see the module doc.
pub struct Permit {
    pub(super) state: Arc<TargetState>,
    /// The circuit counts this attempt's outcome.
    pub(super) breaking: bool,
    /// This attempt is the half-open circuit's probe.
    pub(super) probe: bool,
    /// A request of the pacer's advertised remainder was taken.
    pub(super) slot: bool,
    /// The outcome was recorded.
    pub(super) done: bool,
    /// This replica holds the fleet's probe lock for the target.
    pub(super) fleet_probe: bool,
}

impl Permit {
    /// A permit on `state`; `probe`: the half-open circuit's probe.
    pub(super) fn new(state: Arc<TargetState>, breaking: bool, probe: bool) -> Permit {
        Permit {
            state,
            breaking,
            probe,
            slot: false,
            done: false,
            fleet_probe: false,
        }
    }

    /// The target's label.
    pub fn label(&self) -> &Arc<str> {
        &self.state.label
    }

    /// Asks the target's pacer for room, waiting for a reset when told to.
    /// `Err(until)` when the wait would be too long (queue full, past
    /// `max_wait_ms` or the deadline).
    pub async fn pace(&mut self, deadline: Instant) -> Result<(), Instant> {
        let pacer = &self.state.pacer;
        let mut counted = false;
        loop {
            match pacer.reserve(Instant::now(), deadline) {
                Reservation::Go => {
                    self.slot = true;
                    // A tight window is the fleet's to count.
                    let Some(until) = self.fleet_says_wait().await else {
                        return Ok(());
                    };
                    self.state.pacer.give_back();
                    self.slot = false;
                    let now = Instant::now();
                    if until >= deadline || until.saturating_duration_since(now) > pacer.max_wait()
                    {
                        return Err(until);
                    }
                    tokio::time::sleep_until(until).await;
                }
                Reservation::Refuse { until } => return Err(until),
                Reservation::Wait(at) => {
                    if !counted {
                        counted = true;
                        self.state
                            .metrics
                            .pacing_waits
                            .with_label_values(&[&*self.state.label])
                            .inc();
                    }
                    // Cancel the place in the queue if this request goes away.
                    let guard = WaitGuard {
                        pacer,
                        at,
                        done: false,
                    };
                    tokio::time::sleep_until(at).await;
                    guard.finish();
                }
            }
        }
    }

    /// Fleet mode, in a tight window: takes one request from the fleet's
    /// count. `Some(reset)`: the fleet's count is spent until then.
    async fn fleet_says_wait(&self) -> Option<Instant> {
        let fleet = self.state.fleet.as_ref().filter(|f| f.is_connected())?;
        let until = self
            .state
            .pacer
            .tight(Instant::now(), fleet.shared_pacing_below)?;
        match fleet.take(&self.state.label).await {
            Take::Exhausted => Some(until),
            Take::Taken | Take::Unknown => None,
        }
    }

    /// Records how the attempt went: the circuit's verdict (when it
    /// counts) and the rate limits the answer advertised.
    pub fn record(mut self, kind: Kind, advertised: &Advertised) {
        self.done = true;
        let state = &self.state;
        let now = Instant::now();
        if self.breaking {
            match circuit_verdict(kind) {
                Some(up) => {
                    if let Some(t) = state.circuit.record(up, now) {
                        state.transition(t);
                    }
                }
                None => state.circuit.release_probe(),
            }
        }
        if self.fleet_probe {
            if let Some(fleet) = &state.fleet {
                // A failed probe reopened the circuit: the lock lasts the
                // new cool-down. Otherwise it is given back.
                match state.circuit.opened() {
                    Some((until, _)) => {
                        fleet.hold_probe(&state.label, until.saturating_duration_since(now))
                    }
                    None => fleet.release_probe(&state.label),
                }
            }
        }
        if advertised.is_empty() {
            return;
        }
        state.pacer.observe(advertised, now);
        if let Some(fleet) = &state.fleet {
            match state.pacer.requests_window(now) {
                Some((remaining, reset_at)) if remaining <= fleet.shared_pacing_below => {
                    fleet.observe(&state.label, remaining, reset_at - now);
                }
                Some(_) | None => {}
            }
        }
        let (requests, tokens) = state.pacer.snapshot(now);
        for (kind, value) in [("requests", requests), ("tokens", tokens)] {
            if let Some(v) = value {
                state
                    .metrics
                    .ratelimit_remaining
                    .with_label_values(&[&*state.label, kind])
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.probe {
            self.state.circuit.release_probe();
        }
        if self.fleet_probe {
            if let Some(fleet) = &self.state.fleet {
                fleet.release_probe(&self.state.label);
            }
        }
        if self.slot {
            self.state.pacer.give_back();
        }
    }
}

/// Gives a pacer's queue place back when a waiting request is dropped.
struct WaitGuard<'a> {
    pacer: &'a Pacer,
    at: Instant,
    done: bool,
}

impl WaitGuard<'_> {
    /// The wait ran its course: past `at` the pacer has let the place go.
    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.pacer.cancel_wait(self.at);
        }
    }
}
