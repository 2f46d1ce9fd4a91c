//! Closed-loop load: `conc` workers, each on its own keep-alive connection,
//! send the same request back to back and time each one from send to last
//! body byte. A segment opens its connections, warms each one up, starts
//! every worker at once (a barrier) and stops on a request count or a
//! deadline, whichever comes first.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::client::{Call, Conn};

/// Nanosecond histograms from 1 ns to 10 min, 3 significant digits.
pub fn histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000_000, 3)?)
}

/// When a segment stops.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Requests in the whole segment (all workers); 0 = no limit.
    pub requests: u64,
    /// Measured time; `None` = no limit.
    pub duration: Option<Duration>,
}

/// What one segment measured.
pub struct Segment {
    /// Latency of every answered request, ns.
    pub hist: Histogram<u64>,
    /// 200 answers.
    pub ok: u64,
    /// Other statuses.
    pub http_errors: u64,
    /// Requests that got no answer (connection errors).
    pub transport_errors: u64,
    /// Warm-up requests sent before the measured part.
    pub warmup: u64,
    /// Connections reopened because the server closed them.
    pub reopened: u64,
    /// Measured time, barrier to the last worker's end.
    pub elapsed: Duration,
}

impl Segment {
    /// Requests sent in the measured part.
    pub fn sent(&self) -> u64 {
        self.ok + self.http_errors + self.transport_errors
    }
}

struct Worker {
    hist: Histogram<u64>,
    ok: u64,
    http_errors: u64,
    transport_errors: u64,
    warmup: u64,
    reopened: u64,
}

async fn prepare(addr: SocketAddr, call: &Call, warmup: u32) -> Result<(Conn, u64)> {
    let mut conn = Conn::open(addr).await?;
    for _ in 0..warmup {
        conn.ready().await?;
        let (status, body) = conn.fetch(call).await?;
        if status != 200 {
            return Err(anyhow!(
                "warm-up {} {} at {addr}: {status} {}",
                call.method,
                call.path,
                String::from_utf8_lossy(&body)
            ));
        }
    }
    Ok((conn, u64::from(warmup)))
}

async fn work(
    prepared: Result<(Conn, u64)>,
    call: Arc<Call>,
    barrier: Arc<Barrier>,
    tickets: Arc<AtomicU64>,
    budget: Budget,
) -> Result<Worker> {
    barrier.wait().await;
    let deadline = budget.duration.map(|d| Instant::now() + d);
    let (mut conn, warmup) = prepared?;
    let mut w = Worker {
        hist: histogram()?,
        ok: 0,
        http_errors: 0,
        transport_errors: 0,
        warmup,
        reopened: 0,
    };
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if budget.requests > 0 && tickets.fetch_add(1, Ordering::Relaxed) >= budget.requests {
            break;
        }
        conn.ready().await?;
        let start = Instant::now();
        match conn.fetch(&call).await {
            Ok((status, _body)) => {
                let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                w.hist.saturating_record(ns.max(1));
                if status == 200 {
                    w.ok += 1;
                } else {
                    w.http_errors += 1;
                }
            }
            Err(_) => w.transport_errors += 1,
        }
    }
    w.reopened = conn.reopened;
    Ok(w)
}

/// Runs one segment of `conc` workers against `addr`.
pub async fn closed_loop(
    addr: SocketAddr,
    call: &Call,
    conc: usize,
    warmup: u32,
    budget: Budget,
) -> Result<Segment> {
    let call = Arc::new(call.clone());
    let barrier = Arc::new(Barrier::new(conc + 1));
    let tickets = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for _ in 0..conc {
        let (call, barrier, tickets) = (call.clone(), barrier.clone(), tickets.clone());
        set.spawn(async move {
            let prepared = prepare(addr, &call, warmup).await;
            work(prepared, call, barrier, tickets, budget).await
        });
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut seg = Segment {
        hist: histogram()?,
        ok: 0,
        http_errors: 0,
        transport_errors: 0,
        warmup: 0,
        reopened: 0,
        elapsed: Duration::ZERO,
    };
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        match joined.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(w) => {
                seg.hist.add(&w.hist)?;
                seg.ok += w.ok;
                seg.http_errors += w.http_errors;
                seg.transport_errors += w.transport_errors;
                seg.warmup += w.warmup;
                seg.reopened += w.reopened;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    seg.elapsed = start.elapsed();
    match first_error {
        Some(e) => Err(e.context(format!("load on {addr}"))),
        None => Ok(seg),
    }
}
