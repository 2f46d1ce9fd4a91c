//! The report: every figure as JSON (`latest.json`) and as markdown
//! (`latest.md`: the targets met or missed, then one table with rows per
//! metric, columns direct / nginx / floor / backstop / target / met?, then
//! fleet mode's table) with the machine described. Targets are judged here,
//! on backstop's figures; nothing is asserted (a smoke run's figures mean
//! nothing on a shared machine).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::allocs::Allocations;
use crate::figures::{ratio, Added, Load, Memory, StreamAdded, Streams, CHUNKS};
use crate::fleet_figures::FleetFigures;
use crate::machine::Machine;
use crate::plan::Plan;

/// The judged figures: a check's `metric`, and the table row it annotates.
pub const CPU_RATIO: &str = "CPU per request backstop / nginx (c=64)";
pub const THROUGHPUT_RATIO: &str = "throughput backstop / nginx";
pub const ADDED_P99_C1: &str = "added p99 at c=1 (µs)";
pub const INSPECT_RATIO: &str = "throughput inspection on / off";
pub const RSS_IDLE: &str = "RSS idle (MiB)";
pub const RSS_PEAK: &str = "RSS peak (MiB)";
pub const ALLOC_REQUEST: &str = "allocations per non-streamed request";
pub const ALLOC_EVENT: &str = "allocations per SSE event (1 ms apart)";

/// The name of a streaming scenario in rows and checks.
pub fn stream_name(s: &StreamScenario) -> String {
    format!("stream {}×{} ms", s.chunks, s.delay_ms)
}

/// The row and check of a stream's added TTFB p99.
pub fn stream_ttfb_key(s: &StreamScenario) -> String {
    format!("{}: added TTFB p99 (µs)", stream_name(s))
}

/// The row and check of a stream's added cost per chunk (total / chunks).
pub fn stream_per_chunk_key(s: &StreamScenario) -> String {
    format!("{}: added per chunk, total / {CHUNKS} (µs)", stream_name(s))
}

/// Non-streaming figures at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyAt {
    pub conc: usize,
    pub by_target: BTreeMap<&'static str, Load>,
    /// Per proxy: its percentile − direct's.
    pub added: BTreeMap<&'static str, Added>,
}

/// One streaming scenario.
#[derive(Debug, Clone, Serialize)]
pub struct StreamScenario {
    pub chunks: u32,
    pub delay_ms: u64,
    pub conc: usize,
    pub by_target: BTreeMap<&'static str, Streams>,
    pub added: BTreeMap<&'static str, StreamAdded>,
}

/// One target judged.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub metric: String,
    pub value: Option<f64>,
    pub target: String,
    /// `None` when the figure is missing.
    pub met: Option<bool>,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub plan: Plan,
    pub duration_s: f64,
    pub latency: Vec<LatencyAt>,
    /// Requests per second at the highest concurrency, per target.
    pub throughput_rps: BTreeMap<&'static str, Option<f64>>,
    pub throughput_backstop_over_nginx: Option<f64>,
    /// backstop / the framework floor (a bare hyper proxy).
    pub throughput_backstop_over_floor: Option<f64>,
    /// backstop (inspection on) / backstop with `inspect.max_body_bytes = 1`.
    pub throughput_inspect_on_over_off: Option<f64>,
    pub cpu_backstop_over_nginx: Option<f64>,
    pub cpu_backstop_over_floor: Option<f64>,
    pub memory: BTreeMap<&'static str, Memory>,
    pub paced: StreamScenario,
    pub unpaced: StreamScenario,
    pub fault_mix: String,
    pub faults: BTreeMap<&'static str, Load>,
    /// Allocation counts (the `alloc-count` build).
    pub allocations: Option<Allocations>,
    /// Fleet mode on vs off.
    pub fleet: Option<FleetFigures>,
    pub checks: Vec<Check>,
}

fn check(metric: &str, value: Option<f64>, target: &str, met: Option<bool>) -> Check {
    Check {
        metric: metric.into(),
        value,
        target: target.into(),
        met,
    }
}

impl Report {
    pub(crate) fn added(&self, conc: usize, target: &str) -> Option<&Added> {
        self.latency
            .iter()
            .find(|l| l.conc == conc)?
            .added
            .get(target)
    }

    /// Judges backstop's figures against the performance issue's targets.
    pub fn judge(&mut self) {
        let mut checks = Vec::new();
        let c = self.cpu_backstop_over_nginx;
        checks.push(check(CPU_RATIO, c, "≤ 2", c.map(|c| c <= 2.0)));
        let r = self.throughput_backstop_over_nginx;
        checks.push(check(THROUGHPUT_RATIO, r, "≥ 0.5", r.map(|r| r >= 0.5)));
        let b1 = self.added(1, "backstop").and_then(|a| a.p99_us);
        let n1 = self.added(1, "nginx").and_then(|a| a.p99_us);
        checks.push(twice_nginx(ADDED_P99_C1, b1, n1, ""));
        let u = &self.unpaced;
        let added = |t: &str| u.added.get(t).copied().unwrap_or_default();
        let per_chunk = added("backstop").per_chunk_total_us;
        checks.push(check(
            &stream_per_chunk_key(u),
            per_chunk,
            "≤ 5",
            per_chunk.map(|v| v <= 5.0),
        ));
        checks.push(twice_nginx(
            &stream_ttfb_key(u),
            added("backstop").ttfb_p99_us,
            added("nginx").ttfb_p99_us,
            "; stream_lookahead on, content sent at once",
        ));
        let a = self.allocations.as_ref();
        let per_request = a.and_then(|a| a.per_request);
        checks.push(check(
            ALLOC_REQUEST,
            per_request,
            "≤ 60",
            per_request.map(|v| v <= 60.0),
        ));
        let per_event = a.and_then(|a| a.per_event_paced);
        checks.push(check(
            ALLOC_EVENT,
            per_event,
            "≤ 4",
            per_event.map(|v| v <= 4.0),
        ));
        let i = self.throughput_inspect_on_over_off;
        checks.push(check(
            INSPECT_RATIO,
            i,
            "within 5 % (0.95–1.05)",
            i.map(|i| (i - 1.0).abs() <= 0.05),
        ));
        let mem = self.memory.get("backstop").copied();
        let idle = mem.map(|m| m.idle_rss_mib);
        let peak = mem.map(|m| m.peak_rss_mib);
        checks.push(check(RSS_IDLE, idle, "< 30", idle.map(|v| v < 30.0)));
        checks.push(check(RSS_PEAK, peak, "< 80", peak.map(|v| v < 80.0)));
        self.checks = checks;
    }

    /// The markdown page.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(out, "# backstop benchmark ({} run)\n", self.plan.mode);
        let _ = writeln!(
            out,
            "Machine: {} cores ({}), kernel {}, {} MiB RAM; load average {} at start, {} at end. \
             {}; backstop {}. Took {:.0} s. Generated by `bench/run`; see bench/README.md for \
             how to read each figure.\n",
            m.nproc,
            m.cpu_model,
            m.kernel,
            m.mem_total_mib,
            m.loadavg_start,
            m.loadavg_end,
            m.nginx_version,
            m.backstop_commit,
            self.duration_s
        );
        if self.plan.mode == "smoke" {
            let _ = writeln!(
                out,
                "**Smoke run: tiny counts, the figures below mean nothing.**\n"
            );
        }
        let _ = writeln!(out, "## Targets\n");
        let _ = writeln!(out, "| figure | backstop | target | met? |");
        let _ = writeln!(out, "|---|---:|---|---|");
        for c in &self.checks {
            let value = c.value.map_or_else(
                || "—".into(),
                |v| {
                    let decimals = if v.abs() < 10.0 { 2 } else { 1 };
                    format!("{v:.decimals$}")
                },
            );
            let met = match c.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "? (no figure)",
            };
            let _ = writeln!(out, "| {} | {value} | {} | {met} |", c.metric, c.target);
        }
        let _ = writeln!(out, "\n## Every figure\n");
        let _ = writeln!(
            out,
            "| metric | direct | nginx | floor | backstop | target | met? |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|");
        for row in crate::table::rows(self) {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        let _ = writeln!(
            out,
            "\nLatencies are from sending the request to its last body byte, µs; \"added\" = \
             proxy − direct at the same percentile. Throughput and CPU come from the c={} \
             segments. nginx's CPU and RSS are its master + worker summed. floor = a bare hyper \
             reverse proxy (`backstop-floor`): what a Rust proxy on backstop's stack costs with \
             no layers. Inspection off = \
             backstop with `BACKSTOP_INSPECT__MAX_BODY_BYTES=1`. Faults: mock mix `{}`, backstop \
             with `BACKSTOP_RETRY__BASE_DELAY_MS=10`.",
            self.latency.last().map_or(0, |l| l.conc),
            self.fault_mix
        );
        if let Some(a) = &self.allocations {
            let _ = writeln!(
                out,
                "\nAllocations: the `alloc-count` build (`backstop-alloc-count`, mimalloc with \
                 every alloc and realloc counted), default config, in front of the `ok` mock; \
                 {} non-streamed requests; {} streams of each kind, {} vs {} content chunks, \
                 per event = the difference / {}. Each figure has one `/metrics` scrape's own \
                 allocations ({:.0}) taken off.",
                a.requests,
                a.streams,
                a.many_chunks,
                a.few_chunks,
                a.many_chunks.saturating_sub(a.few_chunks),
                a.per_scrape
            );
        }
        if let Some(f) = &self.fleet {
            let _ = writeln!(out, "\n{}", f.markdown());
        }
        out
    }
}

/// A figure judged against twice nginx's (`suffix` adds to the target's text).
fn twice_nginx(metric: &str, backstop: Option<f64>, nginx: Option<f64>, suffix: &str) -> Check {
    let target = match nginx {
        Some(n) => format!("≤ 2× nginx's ({n:.1} → ≤ {:.1}){suffix}", 2.0 * n),
        None => format!("≤ 2× nginx's{suffix}"),
    };
    check(
        metric,
        backstop,
        &target,
        backstop.zip(nginx).map(|(b, n)| b <= 2.0 * n),
    )
}

/// backstop's CPU per request over `other`'s at concurrency `conc`.
pub fn cpu_ratio(latency: &[LatencyAt], conc: usize, other: &str) -> Option<f64> {
    let l = latency.iter().find(|l| l.conc == conc)?;
    let cpu = |t: &str| l.by_target.get(t).and_then(|x| x.cpu_ms_per_1k);
    ratio(cpu("backstop"), cpu(other))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twice_nginx_states_the_bound_it_judged_against() {
        let c = twice_nginx("added", Some(300.0), Some(200.0), "");
        assert_eq!(c.met, Some(true));
        assert_eq!(c.target, "≤ 2× nginx's (200.0 → ≤ 400.0)");
        let c = twice_nginx("added", Some(401.0), Some(200.0), "; more");
        assert_eq!(c.met, Some(false));
        assert_eq!(c.target, "≤ 2× nginx's (200.0 → ≤ 400.0); more");
        let c = twice_nginx("added", Some(401.0), None, "");
        assert_eq!(c.met, None);
    }
}
