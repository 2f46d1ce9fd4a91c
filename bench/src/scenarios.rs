//! The measurements, interleaved: every scenario runs in rounds, and each
//! round visits every target in turn (direct / nginx / backstop / direct /
//! ...), so a noisy moment on this shared machine hits all of them alike.
//! Each target's segments are summed into one aggregate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;

use crate::client::{fetch_once, Call};
use crate::load::{closed_loop, histogram, Segment};
use crate::plan::{Plan, Step};
use crate::procs::usage;
use crate::stream::{streams, StreamSet};

/// Something the load goes to.
#[derive(Debug, Clone)]
pub struct Target {
    /// "direct", "nginx", "backstop", "backstop_no_inspect".
    pub name: &'static str,
    /// Where requests go.
    pub addr: SocketAddr,
    /// The proxy's processes, for CPU time (empty for direct).
    pub pids: Vec<u32>,
}

/// utime + stime of `pids`, summed, in clock ticks.
pub fn cpu_ticks(pids: &[u32]) -> Result<u64> {
    Ok(usage(pids)?.cpu_ticks)
}

/// One target's non-streaming segments, summed.
pub struct LoadAgg {
    /// Latency of every answered request, ns.
    pub hist: Histogram<u64>,
    /// 200 answers.
    pub ok: u64,
    /// Other statuses and transport errors.
    pub failed: u64,
    /// Measured time.
    pub elapsed: Duration,
    /// The proxy's CPU ticks over the segments (warm-ups included).
    pub cpu_ticks: u64,
    /// Requests those ticks paid for (warm-ups included).
    pub cpu_requests: u64,
    /// Upstream requests the mock counted (faults scenario only).
    pub upstream: u64,
}

impl LoadAgg {
    /// Nothing yet.
    pub fn new() -> Result<LoadAgg> {
        Ok(LoadAgg {
            hist: histogram()?,
            ok: 0,
            failed: 0,
            elapsed: Duration::ZERO,
            cpu_ticks: 0,
            cpu_requests: 0,
            upstream: 0,
        })
    }

    /// Adds one segment and the CPU ticks it cost.
    pub fn add(&mut self, seg: &Segment, ticks: u64) -> Result<()> {
        self.hist.add(&seg.hist)?;
        self.ok += seg.ok;
        self.failed += seg.http_errors + seg.transport_errors;
        self.elapsed += seg.elapsed;
        self.cpu_ticks += ticks;
        self.cpu_requests += seg.sent() + seg.warmup;
        Ok(())
    }

    /// Requests sent in the measured parts.
    pub fn sent(&self) -> u64 {
        self.ok + self.failed
    }
}

/// Per target name.
pub type ByTarget<T> = BTreeMap<&'static str, T>;

fn progress(what: &str, round: u32, rounds: u32, target: &str, detail: String) {
    eprintln!(
        "  [{what} round {}/{rounds}] {target:<20} {detail}",
        round + 1
    );
}

/// Warms every target up (not measured).
pub async fn warm_up(plan: &Plan, targets: &[Target]) -> Result<()> {
    let call = Call::chat();
    for t in targets {
        closed_loop(t.addr, &call, plan.warmup.conc, 1, plan.warmup.budget()).await?;
    }
    Ok(())
}

/// Non-streaming latency at one concurrency, interleaved over `targets`.
pub async fn latency(plan: &Plan, step: &Step, targets: &[Target]) -> Result<ByTarget<LoadAgg>> {
    let call = Call::chat();
    let mut out = ByTarget::new();
    for t in targets {
        out.insert(t.name, LoadAgg::new()?);
    }
    let what = format!("latency c={}", step.conc);
    for round in 0..step.rounds {
        for t in targets {
            let before = cpu_ticks(&t.pids)?;
            let seg =
                closed_loop(t.addr, &call, step.conc, plan.conn_warmup, step.budget()).await?;
            let ticks = cpu_ticks(&t.pids)?.saturating_sub(before);
            progress(
                &what,
                round,
                step.rounds,
                t.name,
                format!(
                    "{} ok {} failed, p99 {:.0} µs, {:.0} req/s",
                    seg.ok,
                    seg.http_errors + seg.transport_errors,
                    seg.hist.value_at_quantile(0.99) as f64 / 1000.0,
                    seg.sent() as f64 / seg.elapsed.as_secs_f64().max(1e-9)
                ),
            );
            if let Some(agg) = out.get_mut(t.name) {
                agg.add(&seg, ticks)?;
            }
        }
    }
    Ok(out)
}

/// Streams of `call`, interleaved over `targets`.
pub async fn streaming(
    what: &str,
    step: &Step,
    call: &Call,
    targets: &[Target],
) -> Result<ByTarget<StreamSet>> {
    let mut out: ByTarget<Option<StreamSet>> = ByTarget::new();
    for round in 0..step.rounds {
        for t in targets {
            let set = streams(t.addr, call, step.conc, step.budget()).await?;
            progress(
                what,
                round,
                step.rounds,
                t.name,
                format!(
                    "{} streams ({} failed, {} without [DONE]{}), TTFB p99 {:.0} µs",
                    set.complete,
                    set.failed,
                    set.no_done,
                    set.first_error
                        .as_deref()
                        .map(|e| format!(", first error: {e}"))
                        .unwrap_or_default(),
                    set.ttfb.value_at_quantile(0.99) as f64 / 1000.0
                ),
            );
            match out.entry(t.name).or_insert(None) {
                Some(agg) => agg.add(&set)?,
                slot => *slot = Some(set),
            }
        }
    }
    Ok(out
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

/// Requests the mock at `mock` has counted.
pub async fn mock_total(mock: SocketAddr) -> Result<u64> {
    let (status, body) = fetch_once(mock, &Call::get("/mock/stats")).await?;
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    v.get("total")
        .and_then(serde_json::Value::as_u64)
        .filter(|_| status == 200)
        .ok_or_else(|| anyhow!("/mock/stats answered {status}: {v}"))
}

/// Chat completions against the faulty mock, through each target: success
/// rate and upstream requests per client request.
pub async fn faults(
    step: &Step,
    targets: &[Target],
    faulty_mock: SocketAddr,
) -> Result<ByTarget<LoadAgg>> {
    let call = Call::chat();
    let mut out = ByTarget::new();
    for t in targets {
        out.insert(t.name, LoadAgg::new()?);
    }
    for round in 0..step.rounds {
        for t in targets {
            let before = mock_total(faulty_mock).await?;
            let ticks0 = cpu_ticks(&t.pids)?;
            let seg = closed_loop(t.addr, &call, step.conc, 0, step.budget()).await?;
            let ticks = cpu_ticks(&t.pids)?.saturating_sub(ticks0);
            let upstream = mock_total(faulty_mock).await?.saturating_sub(before);
            progress(
                "faults",
                round,
                step.rounds,
                t.name,
                format!(
                    "{} ok of {}, {} upstream requests",
                    seg.ok,
                    seg.sent(),
                    upstream
                ),
            );
            if let Some(agg) = out.get_mut(t.name) {
                agg.add(&seg, ticks)?;
                agg.upstream += upstream;
            }
        }
    }
    Ok(out)
}
