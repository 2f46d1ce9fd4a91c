//! The live state of every routing target: its upstream client, its circuit
//! breaker and its rate-limit pacer, keyed by the routing table's stable
//! target ids. The decisions are [`crate::routing`]'s; this carries them out
//! and reports their state changes (logs, `backstop_target_state`,
//! `backstop_circuit_transitions_total`, rate-limit gauges).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;
use tokio::time::Instant;

use crate::config::{Config, UpstreamConfig, DEFAULT_UPSTREAM};
use crate::metrics::Metrics;
use crate::ratelimit::advertised::Advertised;
use crate::routing::{
    Admission, Circuit, CircuitState, Pacer, Plan, Reservation, RoutingTable, Target, Transition,
};
use crate::taxonomy::Kind;

use super::upstream::Upstream;

/// Why targets could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    #[error("upstream HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("routing: {0}: {1}")]
    Routing(String, String),
}

/// Every target's live state.
pub struct Targets {
    table: RoutingTable,
    upstreams: HashMap<String, Arc<Upstream>>,
    circuits: Vec<Circuit>,
    pacers: Vec<Pacer>,
    labels: Vec<String>,
    metrics: Arc<Metrics>,
}

/// What a circuit makes of an attempt's kind.
fn circuit_verdict(kind: Kind) -> Option<bool> {
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
        // Rate limits are the pacer's business, not a sign of an outage.
        Kind::RateLimited => None,
    }
}

impl Targets {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Targets, TargetsError> {
        let table =
            RoutingTable::new(&config.routing()).map_err(|(k, m)| TargetsError::Routing(k, m))?;
        let mut upstreams = HashMap::new();
        upstreams.insert(
            DEFAULT_UPSTREAM.to_string(),
            Arc::new(Upstream::new(&config.upstream)?),
        );
        for (name, entry) in &config.upstreams {
            let base = &config.upstream;
            let cfg = UpstreamConfig {
                url: entry.url.clone(),
                api_key: entry.api_key.clone(),
                replace_client_key: base.replace_client_key,
                connect_timeout_ms: entry.connect_timeout_ms.unwrap_or(base.connect_timeout_ms),
                first_byte_timeout_ms: entry
                    .first_byte_timeout_ms
                    .unwrap_or(base.first_byte_timeout_ms),
                stream_idle_timeout_ms: entry
                    .stream_idle_timeout_ms
                    .unwrap_or(base.stream_idle_timeout_ms),
                request_timeout_ms: base.request_timeout_ms,
            };
            upstreams.insert(name.clone(), Arc::new(Upstream::new(&cfg)?));
        }
        let infos = table.targets();
        let circuits = infos
            .iter()
            .map(|_| Circuit::new(&config.circuit))
            .collect();
        let pacers = infos.iter().map(|_| Pacer::new(&config.pacing)).collect();
        let labels: Vec<String> = infos.iter().map(|t| t.label.clone()).collect();
        // Every target's series exist from the start (at 0), so rates and
        // dashboards have a value before the first event.
        for label in &labels {
            let label = label.as_str();
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
        Ok(Targets {
            table,
            upstreams,
            circuits,
            pacers,
            labels,
            metrics,
        })
    }

    /// The plan for a requested model.
    pub fn plan(&self, model: Option<&str>) -> Arc<Plan> {
        self.table.plan(model)
    }

    /// The upstream a target sends to (validation guarantees it exists).
    pub fn upstream(&self, target: &Target) -> Option<&Arc<Upstream>> {
        self.upstreams.get(&target.upstream)
    }

    /// The target's label (`upstream/model`, or `upstream`).
    pub fn label(&self, target: &Target) -> &str {
        self.labels
            .get(target.index)
            .map_or("unknown", String::as_str)
    }

    /// Whether the target's circuit lets a request through now (a half-open
    /// circuit lets one probe through at a time).
    pub fn admit(&self, target: &Target, now: Instant) -> bool {
        let Some(circuit) = self.circuits.get(target.index) else {
            return true;
        };
        let before = circuit.state();
        let admission = circuit.admit(now);
        let after = circuit.state();
        if before != after {
            self.transition(
                target,
                Transition {
                    from: before,
                    to: after,
                },
            );
        }
        !matches!(admission, Admission::Reject { .. })
    }

    /// Gives back an admission that was not used (a half-open circuit's
    /// probe place).
    pub fn release(&self, target: &Target) {
        if let Some(circuit) = self.circuits.get(target.index) {
            if circuit.state() == crate::routing::CircuitState::HalfOpen {
                circuit.release_probe();
            }
        }
    }

    /// Tells the target's circuit how an attempt went.
    pub fn record(&self, target: &Target, kind: Kind, now: Instant) {
        let Some(circuit) = self.circuits.get(target.index) else {
            return;
        };
        match circuit_verdict(kind) {
            Some(success) => {
                if let Some(t) = circuit.record(success, now) {
                    self.transition(target, t);
                }
            }
            None => circuit.release_probe(),
        }
    }

    fn transition(&self, target: &Target, t: Transition) {
        let label = self.label(target);
        tracing::warn!(
            target = label,
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

    /// Asks the target's pacer for room, waiting for a reset when told to.
    /// `Err(until)` when the wait would be too long (queue full, past
    /// `max_wait_ms` or the deadline).
    pub async fn pace(&self, target: &Target, deadline: Instant) -> Result<(), Instant> {
        let Some(pacer) = self.pacers.get(target.index) else {
            return Ok(());
        };
        let mut counted = false;
        loop {
            match pacer.reserve(Instant::now(), deadline) {
                Reservation::Go => return Ok(()),
                Reservation::Refuse { until } => return Err(until),
                Reservation::Wait(at) => {
                    if !counted {
                        counted = true;
                        self.metrics
                            .pacing_waits
                            .with_label_values(&[self.label(target)])
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

    /// Reads a target's rate-limit headers from an answer.
    pub fn observe(&self, target: &Target, headers: &HeaderMap) {
        let Some(pacer) = self.pacers.get(target.index) else {
            return;
        };
        let now = Instant::now();
        pacer.observe(&Advertised::read(headers, SystemTime::now()), now);
        let (requests, tokens) = pacer.snapshot(now);
        let label = self.label(target);
        for (kind, value) in [("requests", requests), ("tokens", tokens)] {
            if let Some(v) = value {
                self.metrics
                    .ratelimit_remaining
                    .with_label_values(&[label, kind])
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            }
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
