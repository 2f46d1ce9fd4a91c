//! [`TargetState`]: one target's circuit and pacer, and how their changes
//! are reported — the log line, the metrics and, in fleet mode, the event
//! the other replicas act on.

use std::sync::Arc;

use crate::fleet::{unix_of, Event, Fleet};
use crate::metrics::Metrics;
use crate::routing::{Circuit, CircuitState, Pacer, Transition};
use crate::taxonomy::Kind;

/// One target's circuit and pacer, and what reports on them.
pub(super) struct TargetState {
    pub(super) label: Arc<str>,
    pub(super) circuit: Circuit,
    pub(super) pacer: Pacer,
    pub(super) metrics: Arc<Metrics>,
    /// Fleet mode: what this target learns is shared.
    pub(super) fleet: Option<Arc<Fleet>>,
}

/// What a circuit makes of an attempt's kind: `Some(true)` the target is
/// up, `Some(false)` it is failing, `None` it says nothing about the target.
pub(super) fn circuit_verdict(kind: Kind) -> Option<bool> {
    match kind {
        // The target itself is failing.
        Kind::ServerError | Kind::Timeout | Kind::ConnectError | Kind::BadUpstreamResponse => {
            Some(false)
        }
        // It answered; whatever the answer, it is up.
        Kind::Ok
        | Kind::BadRequest
        | Kind::ContextLengthExceeded
        | Kind::Unauthorized
        | Kind::Forbidden
        | Kind::QuotaExceeded
        | Kind::NotFound
        | Kind::PayloadTooLarge
        | Kind::ContentFilter
        | Kind::Length
        | Kind::EmptyData
        | Kind::EmptyContent
        | Kind::InvalidJson
        | Kind::SchemaMismatch
        | Kind::StreamTruncated
        | Kind::MalformedEvent => Some(true),
        // Rate limits are the pacer's business, not a sign of an outage; the
        // gateway's own kinds say nothing about the target.
        Kind::RateLimited | Kind::Overloaded | Kind::ClientClosed | Kind::Shutdown => None,
    }
}

/// Every target's series exist from the start (at 0), so rates and
/// dashboards have a value before the first event.
pub(super) fn register(metrics: &Metrics, label: &str) {
    metrics.target_state.with_label_values(&[label]).set(0);
    metrics.pacing_waits.with_label_values(&[label]).inc_by(0);
    for (from, to) in [
        (CircuitState::Closed, CircuitState::Open),
        (CircuitState::Open, CircuitState::HalfOpen),
        (CircuitState::HalfOpen, CircuitState::Closed),
        (CircuitState::HalfOpen, CircuitState::Open),
    ] {
        metrics
            .circuit_transitions
            .with_label_values(&[label, from.as_str(), to.as_str()])
            .inc_by(0);
    }
}

impl TargetState {
    /// A change of this replica's own making: reported, and told to the
    /// fleet.
    pub(super) fn transition(&self, t: Transition) {
        self.report(t);
        let Some(fleet) = &self.fleet else {
            return;
        };
        match (t.from, t.to) {
            (_, CircuitState::Open) => {
                if let Some((until, next_cooldown)) = self.circuit.opened() {
                    fleet.publish(Event::Open {
                        target: self.label.to_string(),
                        until_ms: unix_of(until),
                        next_cooldown_ms: u64::try_from(next_cooldown.as_millis())
                            .unwrap_or(u64::MAX),
                    });
                }
            }
            (CircuitState::HalfOpen, CircuitState::Closed) => fleet.publish(Event::Closed {
                target: self.label.to_string(),
            }),
            _ => {}
        }
    }

    /// The log line and the metrics of a transition.
    pub(super) fn report(&self, t: Transition) {
        let label = &*self.label;
        tracing::warn!(
            circuit = label,
            from = t.from.as_str(),
            to = t.to.as_str(),
            "circuit state changed"
        );
        self.metrics
            .circuit_transitions
            .with_label_values(&[label, t.from.as_str(), t.to.as_str()])
            .inc();
        self.metrics
            .target_state
            .with_label_values(&[label])
            .set(t.to.as_gauge());
    }
}
