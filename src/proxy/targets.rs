//! The live state of every routing target: its upstream client, its circuit
//! breaker and its rate-limit pacer, keyed by upstream and the model
//! actually sent — so a target that forwards the client's model (no `model`
//! in the rule) has one circuit per model, and two rules sending the same
//! model to the same upstream share one. Client-chosen models get states up
//! to `metrics.max_model_labels`; past that they share their target's. The
//! decisions are [`crate::routing`]'s; this carries them out and reports
//! their state changes (logs, `backstop_target_state`,
//! `backstop_circuit_transitions_total`, rate-limit gauges).
//!
//! Going to a target is a [`Permit`]: taken from the target's circuit (a
//! half-open circuit's one probe) and, before sending, from its pacer (one
//! of the requests it advertised). The permit records the attempt's
//! outcome; dropped unrecorded — the attempt was cancelled — it gives the
//! probe and the pacing slot back, so a client that leaves cannot keep a
//! target out of rotation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;

use crate::config::{ms, CircuitConfig, Config, PacingConfig, DEFAULT_UPSTREAM};
use crate::metrics::Metrics;
use crate::routing::{
    Admission, Circuit, CircuitState, Pacer, Plan, RoutingTable, Target, Transition,
};
use crate::taxonomy::Kind;

use super::egress::{process_env, tls_config};
use super::upstream::{Upstream, UpstreamError, UpstreamSettings};
use crate::fleet::{Fleet, Listener};

mod permit;
mod remote;
mod state;

pub use permit::Permit;
use state::{circuit_verdict, register, TargetState};

/// How long a replica that lost the fleet's probe race waits before it
/// asks again (the winner's outcome usually arrives first).
const PROBE_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Why targets could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    #[error("upstream: {0}")]
    Upstream(#[from] UpstreamError),
    #[error("routing: {0}: {1}")]
    Routing(String, String),
    #[error("{0}")]
    Fleet(String),
}

/// Every target's live state.
pub struct Targets {
    table: RoutingTable,
    upstreams: HashMap<String, Arc<Upstream>>,
    /// Per routing target id: the state used when the model sent is not
    /// known (no `model` anywhere) or past the cap.
    base: Vec<Arc<TargetState>>,
    /// Per (upstream, model sent).
    by_model: Mutex<HashMap<(String, String), Arc<TargetState>>>,
    /// How many client-chosen models get a state of their own.
    max_models: usize,
    circuit: CircuitConfig,
    pacing: PacingConfig,
    metrics: Arc<Metrics>,
    fleet: Option<Arc<Fleet>>,
}

impl Targets {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Targets, TargetsError> {
        let table =
            RoutingTable::new(&config.routing()).map_err(|(k, m)| TargetsError::Routing(k, m))?;
        let base = &config.upstream;
        let mut upstreams = HashMap::new();
        // One TLS configuration per distinct ca_file.
        let mut tls_by_ca: HashMap<String, Arc<rustls::ClientConfig>> = HashMap::new();
        let mut tls_for =
            |name: &str, ca_file: &str| -> Result<Arc<rustls::ClientConfig>, TargetsError> {
                if let Some(tls) = tls_by_ca.get(ca_file) {
                    return Ok(tls.clone());
                }
                let tls = tls_config(ca_file)
                    .map_err(|e| TargetsError::Upstream(UpstreamError::Ca(name.to_string(), e)))?;
                tls_by_ca.insert(ca_file.to_string(), tls.clone());
                Ok(tls)
            };
        let env = process_env;
        let announce = |name: &str, u: &Upstream| {
            if let Some(proxy) = u.route.shown() {
                tracing::info!(upstream = name, proxy = %proxy, "upstream reached through a proxy");
            }
        };
        let default = UpstreamSettings {
            url: &base.url,
            api_key: &base.api_key,
            default: true,
            replace_client_key: base.replace_client_key,
            forward_client_key: true,
            connect_timeout: ms(base.connect_timeout_ms),
            first_byte_timeout: ms(base.first_byte_timeout_ms),
            stream_idle_timeout: ms(base.stream_idle_timeout_ms),
            proxy: &base.proxy,
            ca_file: &base.ca_file,
        };
        let tls = tls_for(DEFAULT_UPSTREAM, &base.ca_file)?;
        let upstream = Upstream::new(&default, &tls, &env)?;
        announce(DEFAULT_UPSTREAM, &upstream);
        upstreams.insert(DEFAULT_UPSTREAM.to_string(), Arc::new(upstream));
        for (name, entry) in &config.upstreams {
            let named = UpstreamSettings {
                url: &entry.url,
                api_key: &entry.api_key,
                default: false,
                replace_client_key: false,
                forward_client_key: entry.forward_client_key,
                connect_timeout: ms(entry.connect_timeout_ms.unwrap_or(base.connect_timeout_ms)),
                first_byte_timeout: ms(entry
                    .first_byte_timeout_ms
                    .unwrap_or(base.first_byte_timeout_ms)),
                stream_idle_timeout: ms(entry
                    .stream_idle_timeout_ms
                    .unwrap_or(base.stream_idle_timeout_ms)),
                proxy: entry.proxy.as_deref().unwrap_or(&base.proxy),
                ca_file: entry.ca_file.as_deref().unwrap_or(&base.ca_file),
            };
            let tls = tls_for(name, named.ca_file)?;
            let upstream = Upstream::new(&named, &tls, &env)?;
            announce(name, &upstream);
            upstreams.insert(name.clone(), Arc::new(upstream));
        }
        let fleet = Fleet::new(&config.fleet, metrics.clone()).map_err(TargetsError::Fleet)?;
        let new_state = |label: &str| {
            let label: Arc<str> = Arc::from(label);
            register(&metrics, &label);
            Arc::new(TargetState {
                label,
                circuit: Circuit::new(&config.circuit),
                pacer: Pacer::new(&config.pacing),
                metrics: metrics.clone(),
                fleet: fleet.clone(),
            })
        };
        let mut by_model = HashMap::new();
        let base = table
            .targets()
            .iter()
            .map(|t| match &t.model {
                // A rule's own model: its state is the (upstream, model) one.
                Some(model) => by_model
                    .entry((t.upstream.clone(), model.clone()))
                    .or_insert_with(|| new_state(&t.label))
                    .clone(),
                None => new_state(&t.label),
            })
            .collect();
        let fixed = by_model.len();
        Ok(Targets {
            table,
            upstreams,
            base,
            by_model: Mutex::new(by_model),
            max_models: fixed + config.metrics.max_model_labels,
            circuit: config.circuit.clone(),
            pacing: config.pacing.clone(),
            metrics,
            fleet,
        })
    }

    /// Fleet mode: connects to Redis (in the background, reconnecting for
    /// as long as the targets live) and applies what other replicas say.
    pub fn start_fleet(self: &Arc<Self>) {
        if let Some(fleet) = &self.fleet {
            let me: Arc<dyn Listener> = self.clone();
            fleet.start(Arc::downgrade(&me));
        }
    }

    /// The state a target label names, if this replica has it.
    fn by_label(&self, label: &str) -> Option<Arc<TargetState>> {
        if let Some(s) = self.base.iter().find(|s| &*s.label == label) {
            return Some(s.clone());
        }
        let states = self.by_model.lock().unwrap_or_else(PoisonError::into_inner);
        states.values().find(|s| &*s.label == label).cloned()
    }

    /// An answer released as a success broke off afterwards (a stream cut
    /// or stalled after its first bytes): the target's circuit counts it.
    pub fn late_failure(&self, target: &Target, client_model: Option<&str>, kind: Kind) {
        let Some(state) = self.state(target, client_model) else {
            return;
        };
        if circuit_verdict(kind) == Some(false) {
            if let Some(t) = state.circuit.record(false, Instant::now()) {
                state.transition(t);
            }
        }
    }

    /// A half-open probe permit made fleet-wide: this replica probes only
    /// if it takes the fleet's probe lock (or Redis does not answer in
    /// time: then the local circuit decides). `None`: another replica is
    /// probing; this one skips the target for a moment.
    pub async fn confirm(&self, mut permit: Permit) -> Option<Permit> {
        let Some(fleet) = self.fleet.as_ref().filter(|f| f.is_connected()) else {
            return Some(permit);
        };
        if !permit.probe {
            return Some(permit);
        }
        match fleet.take_probe(&permit.state.label).await {
            Some(true) => {
                permit.fleet_probe = true;
                Some(permit)
            }
            Some(false) => {
                let state = permit.state.clone();
                drop(permit);
                state.circuit.defer_probe(Instant::now() + PROBE_RECHECK);
                None
            }
            None => Some(permit),
        }
    }

    /// The state of `target` when it sends `model` (the client's, for a
    /// target without its own).
    fn state(&self, target: &Target, client_model: Option<&str>) -> Option<Arc<TargetState>> {
        let base = self.base.get(target.index)?;
        let Some(model) = target.model.as_deref().or(client_model) else {
            return Some(base.clone());
        };
        let mut states = self.by_model.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (target.upstream.clone(), model.to_string());
        if let Some(state) = states.get(&key) {
            return Some(state.clone());
        }
        if states.len() >= self.max_models {
            return Some(base.clone());
        }
        let label: Arc<str> = Arc::from(format!("{}/{model}", target.upstream));
        register(&self.metrics, &label);
        let state = Arc::new(TargetState {
            label,
            circuit: Circuit::new(&self.circuit),
            pacer: Pacer::new(&self.pacing),
            metrics: self.metrics.clone(),
            fleet: self.fleet.clone(),
        });
        states.insert(key, state.clone());
        Some(state)
    }

    /// The plan for a requested model.
    pub fn plan(&self, model: Option<&str>) -> Arc<Plan> {
        self.table.plan(model)
    }

    /// The upstream a target sends to (validation guarantees it exists).
    pub fn upstream(&self, target: &Target) -> Option<Arc<Upstream>> {
        self.upstreams.get(&target.upstream).cloned()
    }

    /// The target's label when it sends `model`: `upstream/model`, or
    /// `upstream` when no model is known.
    pub fn label(&self, target: &Target, client_model: Option<&str>) -> Arc<str> {
        self.state(target, client_model)
            .map_or_else(|| Arc::from("unknown"), |s| s.label.clone())
    }

    /// Whether `target`'s circuit (for `model`) lets requests through: not
    /// open. Asks nothing of a half-open circuit's probe.
    pub fn is_closed(&self, target: &Target, client_model: Option<&str>) -> bool {
        self.state(target, client_model)
            .is_some_and(|s| s.circuit.state() != CircuitState::Open)
    }

    /// A permit to send to `target`, when its circuit lets a request
    /// through now (a half-open circuit lets one probe through at a time).
    /// With `breaking` off the circuit is not asked (a route with nowhere
    /// else to go), but outcomes still count.
    pub fn admit(
        &self,
        target: &Target,
        client_model: Option<&str>,
        breaking: bool,
    ) -> Option<Permit> {
        let state = self.state(target, client_model)?;
        let probe = if breaking {
            let before = state.circuit.state();
            let admission = state.circuit.admit(Instant::now());
            let after = state.circuit.state();
            if before != after {
                state.transition(Transition {
                    from: before,
                    to: after,
                });
            }
            match admission {
                Admission::Pass => false,
                Admission::Probe => true,
                Admission::Reject { .. } => return None,
            }
        } else {
            false
        };
        Some(Permit::new(state, breaking, probe))
    }

    /// A permit for another attempt on the same target, whatever its
    /// circuit says (a retry where no other target is left).
    pub fn again(
        &self,
        target: &Target,
        client_model: Option<&str>,
        breaking: bool,
    ) -> Option<Permit> {
        let state = self.state(target, client_model)?;
        Some(Permit::new(state, breaking, false))
    }
}
