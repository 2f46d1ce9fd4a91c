//! The report: every figure as JSON (`latest.json`) and as one markdown
//! table (`latest.md`, rows per metric, columns direct / nginx / floor /
//! backstop / target / met?) with the machine described. Targets are judged here, on
//! backstop's figures; nothing is asserted (a smoke run's figures mean
//! nothing on a shared machine).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::figures::{ratio, Added, Load, Memory, StreamAdded, Streams, CHUNKS};
use crate::machine::Machine;
use crate::plan::Plan;

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

    /// Judges backstop's figures against the targets.
    pub fn judge(&mut self) {
        let b1 = self.added(1, "backstop").and_then(|a| a.p99_us);
        let n1 = self.added(1, "nginx").and_then(|a| a.p99_us);
        let mut checks = vec![check(
            "added p99 at c=1 (µs)",
            b1,
            "≤ 1.5× nginx's and < 300",
            b1.zip(n1).map(|(b, n)| b <= 1.5 * n && b < 300.0),
        )];
        let r = self.throughput_backstop_over_nginx;
        checks.push(check(
            "throughput backstop / nginx",
            r,
            "≥ 0.8",
            r.map(|r| r >= 0.8),
        ));
        let c = self.cpu_backstop_over_nginx;
        checks.push(check(
            "CPU per request backstop / nginx (c=64)",
            c,
            "≤ 1.5",
            c.map(|c| c <= 1.5),
        ));
        let mem = self.memory.get("backstop").copied();
        let idle = mem.map(|m| m.idle_rss_mib);
        let peak = mem.map(|m| m.peak_rss_mib);
        checks.push(check(
            "RSS idle (MiB)",
            idle,
            "< 30",
            idle.map(|v| v < 30.0),
        ));
        checks.push(check(
            "RSS peak (MiB)",
            peak,
            "< 80",
            peak.map(|v| v < 80.0),
        ));
        for s in [&self.paced, &self.unpaced] {
            let name = format!("stream {}×{} ms", s.chunks, s.delay_ms);
            let a = s.added.get("backstop").copied().unwrap_or_default();
            checks.push(check(
                &format!("{name}: added TTFB p99 (µs)"),
                a.ttfb_p99_us,
                "≤ 300",
                a.ttfb_p99_us.map(|v| v <= 300.0),
            ));
            let total = format!("total / {CHUNKS}");
            for (how, v) in [
                ("mean gap", a.per_chunk_gap_us),
                (total.as_str(), a.per_chunk_total_us),
            ] {
                checks.push(check(
                    &format!("{name}: added per chunk, {how} (µs)"),
                    v,
                    "≤ 10",
                    v.map(|v| v <= 10.0),
                ));
            }
        }
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
        out
    }
}

/// backstop's CPU per request over `other`'s at concurrency `conc`.
pub fn cpu_ratio(latency: &[LatencyAt], conc: usize, other: &str) -> Option<f64> {
    let l = latency.iter().find(|l| l.conc == conc)?;
    let cpu = |t: &str| l.by_target.get(t).and_then(|x| x.cpu_ms_per_1k);
    ratio(cpu("backstop"), cpu(other))
}
