//! Fleet mode's figures (what `fleet_mode.rs` measured) and their markdown
//! table: latency, CPU and Redis traffic with fleet mode on vs off, at
//! steady state and during an outage. Not judged: the fleet issue asks for
//! the figures, not a target.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::figures::{minus, ratio, Added, Load};

/// One concurrency at steady state (every answer ok).
#[derive(Debug, Clone, Serialize)]
pub struct SteadyAt {
    pub conc: usize,
    /// "direct", "fleet_off", "fleet_on".
    pub by_target: BTreeMap<&'static str, Load>,
    /// Per gateway: its percentile − direct's.
    pub added: BTreeMap<&'static str, Added>,
    /// Fleet on − fleet off, percentile by percentile: what fleet mode adds.
    pub on_minus_off: Added,
    /// CPU per request, fleet on / fleet off.
    pub cpu_on_over_off: Option<f64>,
    /// `backstop_fleet_operations_total` delta of the fleet-on gateway per
    /// request it served (warm-ups included).
    pub fleet_ops_per_request: Option<f64>,
    /// Redis commands served (`INFO commandstats`, `INFO` left out) per
    /// request the fleet-on gateway served.
    pub redis_commands_per_request: Option<f64>,
    /// Those commands by name.
    pub redis_commands: BTreeMap<String, u64>,
}

/// One side (fleet off or on) of the outage.
#[derive(Debug, Clone, Serialize, Default)]
pub struct OutageSide {
    /// Latency, CPU (summed over the replicas), throughput, success rate;
    /// `amplification` = requests to the failing primary per client request.
    pub load: Load,
    /// Requests that reached the failing primary per 1000 client requests.
    pub primary_per_1k: Option<f64>,
    /// The same per second of outage, all replicas together.
    pub primary_per_s: Option<f64>,
    /// `backstop_fleet_operations_total` deltas, summed over the replicas.
    pub fleet_ops: u64,
    pub fleet_ops_per_request: Option<f64>,
    pub fleet_ops_per_s: Option<f64>,
    /// Those operations by `op`.
    pub fleet_ops_by_op: BTreeMap<String, u64>,
    /// Of those, the ones that answered `error` or `timeout` (the replica
    /// then decided alone, e.g. probed without the fleet's lock).
    pub fleet_ops_not_ok: u64,
    /// Redis commands served (`INFO commandstats`, `INFO` left out).
    pub redis_commands: u64,
    pub redis_commands_per_request: Option<f64>,
    pub redis_commands_per_s: Option<f64>,
    pub redis_commands_by_name: BTreeMap<String, u64>,
    /// What replicas heard from each other and applied
    /// (`backstop_fleet_events_total`, summed).
    pub fleet_events_applied: u64,
    /// redis-server's CPU per 1000 client requests, ms.
    pub redis_cpu_ms_per_1k: Option<f64>,
    /// Measured wall time, s.
    pub seconds: f64,
}

/// The outage: a route whose primary answers 503 to everything, with a
/// fallback on the `ok` mock.
#[derive(Debug, Clone, Serialize)]
pub struct Outage {
    pub replicas: usize,
    /// Workers per replica, at once on every replica.
    pub conc_per_replica: usize,
    /// `[circuit]` of the outage config.
    pub circuit: String,
    pub off: OutageSide,
    pub on: OutageSide,
}

/// Everything fleet mode measured.
#[derive(Debug, Clone, Serialize)]
pub struct FleetFigures {
    pub redis_version: String,
    pub steady: Vec<SteadyAt>,
    pub outage: Outage,
}

/// The difference `on − off` of every percentile.
pub fn on_minus_off(on: &Load, off: &Load) -> Added {
    Added {
        p50_us: minus(on.p50_us, off.p50_us),
        p99_us: minus(on.p99_us, off.p99_us),
        p999_us: minus(on.p999_us, off.p999_us),
    }
}

/// `n / d` when `d` is not 0.
pub fn per(n: f64, d: f64) -> Option<f64> {
    ratio(Some(n), Some(d))
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.decimals$}"))
}

impl FleetFigures {
    /// The markdown section: one table, columns direct / fleet off / fleet
    /// on / on − off.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let o = &self.outage;
        let _ = writeln!(
            out,
            "## Fleet mode ([fleet] redis_url), on vs off\n\n{}; the same gateway build and \
             config with and without `BACKSTOP_FLEET__REDIS_URL`, interleaved rounds. Steady \
             state: every answer ok, one gateway each. Outage: {} replicas per side, {} \
             workers on each at once, a route whose primary answers 503 to everything \
             (`--mix status:503=1`) and whose fallback is the `ok` mock; `[circuit] {}`.\n",
            self.redis_version, o.replicas, o.conc_per_replica, o.circuit
        );
        let _ = writeln!(out, "| metric | direct | fleet off | fleet on | on − off |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let mut row = |cells: [String; 5]| {
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        };
        let dash = || "—".to_string();
        for s in &self.steady {
            let c = s.conc;
            let g = |t: &str| s.by_target.get(t).copied().unwrap_or_default();
            let a = |t: &str| s.added.get(t).copied().unwrap_or_default();
            for (name, pick, diff) in [
                (
                    "p50",
                    (|l: &Load| l.p50_us) as fn(&Load) -> Option<f64>,
                    s.on_minus_off.p50_us,
                ),
                ("p99", |l: &Load| l.p99_us, s.on_minus_off.p99_us),
            ] {
                row([
                    format!("steady c={c}: latency {name} (µs)"),
                    num(pick(&g("direct")), 1),
                    num(pick(&g("fleet_off")), 1),
                    num(pick(&g("fleet_on")), 1),
                    num(diff, 1),
                ]);
            }
            row([
                format!("steady c={c}: added p50 / p99 vs direct (µs)"),
                dash(),
                format!(
                    "{} / {}",
                    num(a("fleet_off").p50_us, 1),
                    num(a("fleet_off").p99_us, 1)
                ),
                format!(
                    "{} / {}",
                    num(a("fleet_on").p50_us, 1),
                    num(a("fleet_on").p99_us, 1)
                ),
                dash(),
            ]);
            row([
                format!("steady c={c}: CPU per 1000 requests (ms)"),
                dash(),
                num(g("fleet_off").cpu_ms_per_1k, 1),
                num(g("fleet_on").cpu_ms_per_1k, 1),
                format!("{}×", num(s.cpu_on_over_off, 2)),
            ]);
            row([
                format!("steady c={c}: throughput (req/s)"),
                num(g("direct").rps, 0),
                num(g("fleet_off").rps, 0),
                num(g("fleet_on").rps, 0),
                dash(),
            ]);
            row([
                format!("steady c={c}: Redis operations per proxied request (metric / INFO)"),
                dash(),
                dash(),
                format!(
                    "{} / {}",
                    num(s.fleet_ops_per_request, 4),
                    num(s.redis_commands_per_request, 4)
                ),
                dash(),
            ]);
        }
        let side = |f: &dyn Fn(&OutageSide) -> String| -> [String; 2] { [f(&o.off), f(&o.on)] };
        let mut outage_row = |name: &str, cells: [String; 2], diff: String| {
            let [off, on] = cells;
            let _ = writeln!(out, "| outage: {name} | — | {off} | {on} | {diff} |");
        };
        let d = on_minus_off(&o.on.load, &o.off.load);
        outage_row(
            "latency p50 (µs)",
            side(&|s| num(s.load.p50_us, 1)),
            num(d.p50_us, 1),
        );
        outage_row(
            "latency p99 (µs)",
            side(&|s| num(s.load.p99_us, 1)),
            num(d.p99_us, 1),
        );
        outage_row(
            "success rate (%)",
            side(&|s| num(s.load.success_pct, 2)),
            String::new(),
        );
        outage_row(
            "throughput, all replicas (req/s)",
            side(&|s| num(s.load.rps, 0)),
            String::new(),
        );
        outage_row(
            "CPU per 1000 requests, replicas summed (ms)",
            side(&|s| num(s.load.cpu_ms_per_1k, 1)),
            format!(
                "{}×",
                num(ratio(o.on.load.cpu_ms_per_1k, o.off.load.cpu_ms_per_1k), 2)
            ),
        );
        outage_row(
            "requests to the failing primary per 1000 client requests",
            side(&|s| num(s.primary_per_1k, 2)),
            String::new(),
        );
        outage_row(
            "requests to the failing primary per second, all replicas",
            side(&|s| num(s.primary_per_s, 2)),
            String::new(),
        );
        outage_row(
            "Redis operations per proxied request (backstop_fleet_operations_total)",
            side(&|s| num(s.fleet_ops_per_request, 4)),
            String::new(),
        );
        outage_row(
            "Redis operations per second, fleet-wide",
            side(&|s| num(s.fleet_ops_per_s, 2)),
            String::new(),
        );
        outage_row(
            "Redis commands per proxied request (INFO commandstats)",
            side(&|s| num(s.redis_commands_per_request, 4)),
            String::new(),
        );
        outage_row(
            "Redis commands per second",
            side(&|s| num(s.redis_commands_per_s, 2)),
            String::new(),
        );
        outage_row(
            "Redis operations by op",
            side(&|s| by_name(&s.fleet_ops_by_op)),
            String::new(),
        );
        outage_row(
            "Redis operations not ok (error, timeout)",
            side(&|s| s.fleet_ops_not_ok.to_string()),
            String::new(),
        );
        outage_row(
            "fleet events applied (backstop_fleet_events_total)",
            side(&|s| s.fleet_events_applied.to_string()),
            String::new(),
        );
        outage_row(
            "redis-server CPU per 1000 requests (ms)",
            side(&|s| num(s.redis_cpu_ms_per_1k, 2)),
            String::new(),
        );
        out
    }
}

fn by_name(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "—".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_and_rates() {
        let on = Load {
            p50_us: Some(110.0),
            p99_us: Some(300.0),
            ..Load::default()
        };
        let off = Load {
            p50_us: Some(100.0),
            p99_us: None,
            ..Load::default()
        };
        let d = on_minus_off(&on, &off);
        assert_eq!(d.p50_us, Some(10.0));
        assert_eq!(d.p99_us, None);
        assert_eq!(per(3.0, 4.0), Some(0.75));
        assert_eq!(per(3.0, 0.0), None);
        let m = BTreeMap::from([("publish".to_owned(), 3u64), ("probe_take".to_owned(), 2)]);
        assert_eq!(by_name(&m), "probe_take 2, publish 3");
    }
}
