//! Allocation counts: how many heap allocations backstop makes per
//! non-streamed request and per SSE event. `bench/run` builds the gateway
//! a second time with the `alloc-count` feature (a counting wrapper around
//! mimalloc, exported as `backstop_allocations_total{op}` on `/metrics`) as
//! `target/release/backstop-alloc-count`; this module runs that build with
//! the default config in front of the `ok` mock, apart from the timed
//! scenarios (the counting costs atomics on every allocation).
//!
//! A figure is the counter's delta over a load (alloc + realloc calls),
//! minus one scrape's own allocations (measured by scraping back to back),
//! divided by the requests; per SSE event it is the difference between
//! streams of many and of few content chunks, divided by the difference in
//! chunks, so what every stream costs once cancels out.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::client::Call;
use crate::load::{closed_loop, Budget};
use crate::plan::AllocPlan;
use crate::scrape;
use crate::setup::{start_gateway, wait_ready, Gateway, Paths, Service};
use crate::stream::streams;

/// The series the `alloc-count` build exports.
const SERIES: &str = "backstop_allocations_total";

/// Allocation figures (allocations = alloc + realloc calls).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Allocations {
    /// One `/metrics` scrape's own allocations (median of back-to-back
    /// scrapes), taken off every delta below.
    pub per_scrape: f64,
    /// Per non-streamed chat completion, all rounds together.
    pub per_request: Option<f64>,
    /// Of those, reallocations.
    pub per_request_realloc: Option<f64>,
    /// Per request, round by round (how steady the count is).
    pub per_request_rounds: Vec<f64>,
    /// Requests counted.
    pub requests: u64,
    /// Per SSE content event, events 1 ms apart (each arrives on its own,
    /// as an LLM's tokens do): the judged figure.
    pub per_event_paced: Option<f64>,
    /// Per SSE content event, no delay (events may arrive several per read).
    pub per_event_unpaced: Option<f64>,
    /// Per streamed request of `few_chunks` content chunks, 1 ms apart
    /// (what a stream costs besides its events, plus those few events).
    pub per_short_stream: Option<f64>,
    /// Streams counted, of each length and pacing.
    pub streams: u64,
    pub many_chunks: u32,
    pub few_chunks: u32,
}

/// (alloc, realloc) calls so far.
#[derive(Debug, Clone, Copy, Default)]
struct Count {
    alloc: f64,
    realloc: f64,
}

impl Count {
    fn total(self) -> f64 {
        self.alloc + self.realloc
    }

    fn minus(self, earlier: Count) -> Count {
        Count {
            alloc: self.alloc - earlier.alloc,
            realloc: self.realloc - earlier.realloc,
        }
    }
}

async fn count(addr: SocketAddr) -> Result<Count> {
    let text = scrape::metrics(addr).await?;
    let ops = scrape::by_label(&text, SERIES, "op");
    match (ops.get("alloc"), ops.get("realloc")) {
        (Some(&alloc), Some(&realloc)) => Ok(Count { alloc, realloc }),
        _ => {
            bail!("{addr}/metrics has no {SERIES}{{op=alloc|realloc}}: not the alloc-count build?")
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Starts the `alloc-count` build in front of `mock`.
async fn start(paths: &Paths, mock: SocketAddr) -> Result<Service> {
    let gateway = Gateway {
        bin: "backstop-alloc-count",
        config: paths.repo.join("config/backstop.toml"),
    };
    let mut s = start_gateway(paths, "backstop-alloc-count", &gateway, mock, &[]).await?;
    wait_ready(&mut s.proc, s.addr, "/readyz").await?;
    Ok(s)
}

/// Fails when the gateway measured for time exports the allocation count
/// (it would then be the counting build, and its timings would be off).
pub async fn check_uncounted(addr: SocketAddr) -> Result<()> {
    if scrape::metrics(addr).await?.contains(SERIES) {
        bail!("the backstop measured for time exports {SERIES}: it is the alloc-count build");
    }
    Ok(())
}

/// Allocations per stream of `call`: `n` streams, `conc` at a time.
async fn per_stream(
    addr: SocketAddr,
    call: &Call,
    conc: usize,
    n: u64,
    scrape_cost: f64,
) -> Result<f64> {
    let before = count(addr).await?;
    let budget = Budget {
        requests: n,
        duration: None,
    };
    let set = streams(addr, call, conc, budget).await?;
    let after = count(addr).await?;
    if set.complete != n {
        bail!(
            "{} of {n} streams failed (first error: {:?})",
            set.failed,
            set.first_error
        );
    }
    Ok((after.minus(before).total() - scrape_cost) / n as f64)
}

/// (Allocations per SSE event, per short stream) with events `delay_ms`
/// apart: long streams, then short ones.
async fn per_event(
    addr: SocketAddr,
    plan: &AllocPlan,
    delay_ms: u64,
    scrape_cost: f64,
) -> Result<(f64, f64)> {
    let st = plan.streams;
    let (many, few) = (plan.many_chunks, plan.few_chunks);
    let long = Call::chat_stream(many, delay_ms);
    let short = Call::chat_stream(few, delay_ms);
    let l = per_stream(addr, &long, st.conc, st.requests, scrape_cost).await?;
    let s = per_stream(addr, &short, st.conc, st.requests, scrape_cost).await?;
    let events = f64::from(many.saturating_sub(few).max(1));
    Ok(((l - s) / events, s))
}

/// Measures everything (see the module doc).
pub async fn measure(plan: &AllocPlan, paths: &Paths, mock: SocketAddr) -> Result<Allocations> {
    let gw = start(paths, mock).await?;
    let result = run(plan, gw.addr).await;
    gw.proc.stop(std::time::Duration::from_secs(5)).await;
    result.context("allocation counts (backstop-alloc-count)")
}

async fn run(plan: &AllocPlan, addr: SocketAddr) -> Result<Allocations> {
    let chat = Call::chat();
    let req = plan.requests;
    let st = plan.streams;
    let (many, few) = (plan.many_chunks, plan.few_chunks);
    // Warm-up: connection pools, lazily built series and caches.
    let warm = Budget {
        requests: (req.requests / 10).max(req.conc as u64 * 4),
        duration: None,
    };
    closed_loop(addr, &chat, req.conc, 1, warm).await?;
    for call in [Call::chat_stream(few, 1), Call::chat_stream(few, 0)] {
        per_stream(addr, &call, st.conc, st.conc as u64, 0.0).await?;
    }

    let mut scrapes = vec![count(addr).await?];
    for _ in 0..plan.scrapes.max(2) {
        scrapes.push(count(addr).await?);
    }
    let per_scrape = median(
        scrapes
            .windows(2)
            .map(|w| w[1].minus(w[0]).total())
            .collect(),
    );

    let mut out = Allocations {
        per_scrape,
        many_chunks: many,
        few_chunks: few,
        ..Allocations::default()
    };
    let (mut total, mut reallocs) = (0.0, 0.0);
    for round in 0..req.rounds {
        let before = count(addr).await?;
        let budget = Budget {
            requests: req.requests,
            duration: None,
        };
        let seg = closed_loop(addr, &chat, req.conc, 0, budget).await?;
        let d = count(addr).await?.minus(before);
        if seg.ok != seg.sent() {
            bail!("{} of {} requests failed", seg.sent() - seg.ok, seg.sent());
        }
        let n = seg.sent() as f64;
        let per = (d.total() - per_scrape) / n;
        eprintln!(
            "  [allocations round {}/{}] {:.1} per request ({} requests)",
            round + 1,
            req.rounds,
            per,
            seg.sent()
        );
        out.per_request_rounds.push(per);
        out.requests += seg.sent();
        total += d.total() - per_scrape;
        reallocs += d.realloc;
    }
    if out.requests > 0 {
        out.per_request = Some(total / out.requests as f64);
        out.per_request_realloc = Some(reallocs / out.requests as f64);
    }

    let (mut paced_sum, mut unpaced_sum, mut short_sum) = (0.0, 0.0, 0.0);
    for round in 0..st.rounds {
        let (p, short) = per_event(addr, plan, 1, per_scrape).await?;
        let (u, _) = per_event(addr, plan, 0, per_scrape).await?;
        eprintln!(
            "  [allocations per SSE event round {}/{}] {p:.2} paced, {u:.2} unpaced; {short:.1} per {few}-chunk stream",
            round + 1,
            st.rounds
        );
        paced_sum += p;
        unpaced_sum += u;
        short_sum += short;
        out.streams += st.requests;
    }
    if st.rounds > 0 {
        let r = f64::from(st.rounds);
        out.per_event_paced = Some(paced_sum / r);
        out.per_event_unpaced = Some(unpaced_sum / r);
        out.per_short_stream = Some(short_sum / r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_deltas() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 4.0);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
