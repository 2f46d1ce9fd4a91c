//! Fleet mode: what another replica learnt about a target (a circuit
//! opened or closed, a tight rate-limit window), applied to this replica's
//! state. Reported like a change of its own, never published again.

use super::Targets;
use crate::fleet::{instant_of, Event, Listener};

impl Listener for Targets {
    /// What another replica learnt, applied to this one's state.
    fn apply(&self, event: &Event) {
        let name = match event {
            Event::Open { .. } => "open",
            Event::Closed { .. } => "closed",
            Event::Tight { .. } => "tight",
        };
        self.metrics.fleet_events.with_label_values(&[name]).inc();
        match event {
            Event::Open {
                target,
                until_ms,
                next_cooldown_ms,
            } => {
                let Some(state) = self.by_label(target) else {
                    return;
                };
                let until = instant_of(*until_ms);
                let next = std::time::Duration::from_millis(*next_cooldown_ms);
                if let Some(t) = state.circuit.open_remote(until, next) {
                    state.report(t);
                }
            }
            Event::Closed { target } => {
                let Some(state) = self.by_label(target) else {
                    return;
                };
                if let Some(t) = state.circuit.close_remote() {
                    state.report(t);
                }
            }
            Event::Tight { target, reset_ms } => {
                if let Some(state) = self.by_label(target) {
                    state.pacer.mark_tight(instant_of(*reset_ms));
                }
            }
        }
    }
}
