//! The metrics owner (CONTRACT.md §4): one [`Metrics`] value with its own
//! registry, handed to the layers that count. Labels come from closed sets:
//! routes are templates (`route`), kinds and classes are enums, and the
//! upstream-supplied `model` and `finish_reason` values are capped
//! ([`BoundedLabels`]): past the cap they count as `other`.

use std::sync::Arc;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::taxonomy::Kind;

mod handles;
mod labels;

use handles::Handles;
pub use labels::{BoundedLabels, OTHER};

/// Buckets for LLM latencies: 50 ms to 10 min.
const DURATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Every series the gateway exports.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub upstream_attempts: IntCounterVec,
    pub retries: IntCounterVec,
    pub retry_budget_exhausted: IntCounterVec,
    pub finish_reasons: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_first_byte: HistogramVec,
    pub inflight: IntGaugeVec,
    pub tokens: IntCounterVec,
    pub malformed_events: IntCounterVec,
    pub uninspected: IntCounterVec,
    /// The per-request series, resolved once.
    handles: Handles,
    pub target_state: IntGaugeVec,
    pub fallbacks: IntCounterVec,
    pub circuit_transitions: IntCounterVec,
    pub ratelimit_remaining: IntGaugeVec,
    pub pacing_waits: IntCounterVec,
    pub stream_repairs: IntCounterVec,
    pub hedges: IntCounterVec,
    pub fleet_connected: prometheus::IntGauge,
    pub fleet_operations: IntCounterVec,
    pub fleet_events: IntCounterVec,
    models: BoundedLabels,
    finish_reason_labels: BoundedLabels,
    /// `backstop_allocations_total{op}` (the bench's `alloc-count` build
    /// only), brought up to the allocator's count at each scrape; the lock
    /// keeps two scrapes at once from adding the same allocations twice.
    #[cfg(feature = "alloc-count")]
    allocations: (IntCounterVec, std::sync::Mutex<()>),
}

/// Where the `alloc-count` build reads its allocation counts from: the
/// binary's counting global allocator, handed over at start by
/// [`count_allocations`]. A global because the allocator is one.
#[cfg(feature = "alloc-count")]
static ALLOCATION_COUNTS: std::sync::OnceLock<fn() -> (u64, u64)> = std::sync::OnceLock::new();

/// The `alloc-count` build: `counts` tells (allocations, reallocations) so
/// far; every scrape exports them as `backstop_allocations_total{op}`.
#[cfg(feature = "alloc-count")]
pub fn count_allocations(counts: fn() -> (u64, u64)) {
    let _ = ALLOCATION_COUNTS.set(counts);
}

impl Metrics {
    /// A fresh registry with every series registered.
    pub fn new(max_model_labels: usize) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        // CPU, memory, file descriptors, threads of this process (Linux):
        // the first thing an operator graphs for a sidecar.
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        // Which version runs where, during a rollout.
        let build_info = IntGaugeVec::new(
            Opts::new(
                "backstop_build_info",
                "The running build: always 1, labelled with its version.",
            ),
            &["version"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let histogram =
            |name: &str, help: &str, labels: &[&str]| -> Result<HistogramVec, prometheus::Error> {
                let h = HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec()),
                    labels,
                )?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let requests = counter(
            "backstop_requests_total",
            "Client requests by final class and kind.",
            &["route", "model", "class", "kind"],
        )?;
        let upstream_attempts = counter(
            "backstop_upstream_attempts_total",
            "Upstream attempts by the class and kind of their outcome.",
            &["route", "class", "kind"],
        )?;
        let retries = counter(
            "backstop_retries_total",
            "Retries, by the kind of failure that caused them.",
            &["route", "kind"],
        )?;
        let retry_budget_exhausted = counter(
            "backstop_retry_budget_exhausted_total",
            "Failures returned unretried because the retry budget was spent.",
            &["route"],
        )?;
        let finish_reasons = counter(
            "backstop_finish_reason_total",
            "finish_reason values seen per choice.",
            &["route", "model", "finish_reason"],
        )?;
        let request_duration = histogram(
            "backstop_request_duration_seconds",
            "Client request duration, until the last byte of the answer.",
            &["route", "class"],
        )?;
        let upstream_first_byte = histogram(
            "backstop_upstream_first_byte_seconds",
            "Time from sending an attempt to its response headers (streams: first event).",
            &["route"],
        )?;
        let inflight = IntGaugeVec::new(
            Opts::new("backstop_inflight_requests", "Client requests in progress."),
            &["route"],
        )?;
        registry.register(Box::new(inflight.clone()))?;
        let tokens = counter(
            "backstop_tokens_total",
            "Tokens reported in upstream usage.",
            &["model", "type"],
        )?;
        let malformed_events = counter(
            "backstop_malformed_events_total",
            "SSE events dropped because their data was not valid JSON.",
            &["route"],
        )?;
        let uninspected = counter(
            "backstop_uninspected_responses_total",
            "Successful answers passed through without inspection (too large).",
            &["route"],
        )?;
        let gauge =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
                let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };
        // Target labels come from the configuration (upstream/model pairs),
        // a closed set known at start.
        let target_state = gauge(
            "backstop_target_state",
            "Circuit state per target: 0 closed, 1 half-open, 2 open (skipped).",
            &["target"],
        )?;
        let fallbacks = counter(
            "backstop_fallbacks_total",
            "Moves to the next target of a route, by the failure that caused them.",
            &["from", "to", "kind"],
        )?;
        let circuit_transitions = counter(
            "backstop_circuit_transitions_total",
            "Circuit state changes per target.",
            &["target", "from", "to"],
        )?;
        let ratelimit_remaining = gauge(
            "backstop_target_ratelimit_remaining",
            "Remaining requests / tokens a target last advertised (x-ratelimit-remaining-*).",
            &["target", "type"],
        )?;
        let pacing_waits = counter(
            "backstop_pacing_waits_total",
            "Requests held back until a target's rate-limit reset.",
            &["target"],
        )?;
        let stream_repairs = counter(
            "backstop_stream_repairs_total",
            "Cut streams continued on a prefill-capable target.",
            &["route"],
        )?;
        let hedges = counter(
            "backstop_hedges_total",
            "Hedged requests by how they settled: primary_won, hedge_won, both_failed, budget_exhausted.",
            &["route", "outcome"],
        )?;
        let fleet_connected = prometheus::IntGauge::new(
            "backstop_fleet_connected",
            "1 while this replica shares state with the fleet through Redis; 0 when fleet mode is on but Redis is unreachable (or off).",
        )?;
        let fleet_operations = counter(
            "backstop_fleet_operations_total",
            "Redis calls made for fleet mode, by operation and result (ok, error, timeout).",
            &["op", "result"],
        )?;
        let fleet_events = counter(
            "backstop_fleet_events_total",
            "What other replicas told this one, applied: open, closed, tight.",
            &["event"],
        )?;
        #[cfg(feature = "alloc-count")]
        let allocations = (
            counter(
                "backstop_allocations_total",
                "Heap allocations by the process so far (op: alloc, realloc); the bench build only.",
                &["op"],
            )?,
            std::sync::Mutex::new(()),
        );
        Ok(Metrics {
            registry,
            requests,
            upstream_attempts,
            retries,
            retry_budget_exhausted,
            finish_reasons,
            request_duration,
            upstream_first_byte,
            inflight,
            tokens,
            malformed_events,
            uninspected,
            handles: Handles::new(),
            target_state,
            fallbacks,
            circuit_transitions,
            ratelimit_remaining,
            pacing_waits,
            stream_repairs,
            hedges,
            fleet_connected,
            fleet_operations,
            fleet_events,
            models: BoundedLabels::new(max_model_labels),
            finish_reason_labels: BoundedLabels::new(32),
            #[cfg(feature = "alloc-count")]
            allocations,
        })
    }

    /// Fleet mode is on: `backstop_fleet_connected` is exported from now
    /// (a gateway without fleet mode has no such series, rather than a 0
    /// that reads as "disconnected").
    pub fn register_fleet(&self) {
        let _ = self
            .registry
            .register(Box::new(self.fleet_connected.clone()));
    }

    /// The bounded `model` label for a model name.
    pub fn model_label(&self, model: Option<&str>) -> Arc<str> {
        match model {
            Some(m) if !m.is_empty() => self.models.label(m),
            _ => self.models.fixed("unknown"),
        }
    }

    /// Counts one finished client request.
    pub fn record_request(&self, route: &str, model: &str, kind: Kind, seconds: f64) {
        let class = kind.class();
        self.requests
            .with_label_values(&[route, model, class.as_str(), kind.as_str()])
            .inc();
        self.handles
            .duration(&self.request_duration, route, class, seconds);
    }

    /// One more (or one fewer) request in flight on `route`.
    pub fn inflight_add(&self, route: &str, delta: i64) {
        self.handles
            .inflight(&self.inflight, route, |g| g.add(delta));
    }

    /// How long an upstream took to its first byte.
    pub fn record_first_byte(&self, route: &str, seconds: f64) {
        self.handles
            .first_byte(&self.upstream_first_byte, route, seconds);
    }

    /// Counts one upstream attempt by its outcome.
    pub fn record_attempt(&self, route: &str, kind: Kind) {
        self.handles.attempt(&self.upstream_attempts, route, kind);
    }

    /// Counts one finish_reason (bounded label).
    pub fn record_finish_reason(&self, route: &str, model: &str, finish_reason: &str) {
        let reason = if finish_reason.is_empty() {
            self.finish_reason_labels.fixed("null")
        } else {
            self.finish_reason_labels.label(finish_reason)
        };
        self.finish_reasons
            .with_label_values(&[route, model, &reason])
            .inc();
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        #[cfg(feature = "alloc-count")]
        self.sync_allocations();
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(feature = "alloc-count")]
impl Metrics {
    /// Brings `backstop_allocations_total` up to the allocator's counts.
    fn sync_allocations(&self) {
        let Some(counts) = ALLOCATION_COUNTS.get() else {
            return;
        };
        let (counter, lock) = &self.allocations;
        let _guard = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (allocs, reallocs) = counts();
        for (op, now) in [("alloc", allocs), ("realloc", reallocs)] {
            let c = counter.with_label_values(&[op]);
            c.inc_by(now.saturating_sub(c.get()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_the_contract_names() {
        let m = Metrics::new(10).unwrap();
        m.record_request("/v1/chat/completions", "gpt", Kind::Ok, 0.2);
        m.inflight
            .with_label_values(&["/v1/chat/completions"])
            .set(0);
        let text = m.render();
        assert!(text.contains(
            "backstop_requests_total{class=\"none\",kind=\"ok\",model=\"gpt\",route=\"/v1/chat/completions\"} 1"
        ));
        assert!(text.contains("backstop_inflight_requests{route=\"/v1/chat/completions\"} 0"));
    }
}
