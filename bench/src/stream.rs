//! Streamed chat completions: a client that timestamps every SSE event as
//! its bytes arrive. Per stream: time to the first event (TTFB), the gaps
//! between consecutive events, and the time to the last one; workers run
//! streams back to back on their keep-alive connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::client::{Call, Conn};
use crate::load::{histogram, Budget};

/// Counts SSE event ends (`\n\n`, `\r` ignored) across frame boundaries.
#[derive(Debug, Default)]
pub struct EventSplitter {
    last_newline: bool,
}

impl EventSplitter {
    /// Event ends in `data`.
    pub fn feed(&mut self, data: &[u8]) -> u32 {
        let mut ends = 0;
        for &b in data {
            match b {
                b'\r' => {}
                b'\n' if self.last_newline => {
                    ends += 1;
                    self.last_newline = false;
                }
                b'\n' => self.last_newline = true,
                _ => self.last_newline = false,
            }
        }
        ends
    }
}

/// Whether `[DONE]` went by, even split across frames.
#[derive(Debug, Default)]
pub struct DoneSeen {
    tail: Vec<u8>,
    /// It did.
    pub seen: bool,
}

impl DoneSeen {
    const NEEDLE: &'static [u8] = b"[DONE]";

    /// Looks at the next bytes.
    pub fn feed(&mut self, data: &[u8]) {
        if self.seen {
            return;
        }
        self.tail.extend_from_slice(data);
        self.seen = self
            .tail
            .windows(Self::NEEDLE.len())
            .any(|w| w == Self::NEEDLE);
        let keep = Self::NEEDLE.len() - 1;
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
    }
}

/// What one stream showed.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Send to the first event's arrival.
    pub ttfb: Duration,
    /// Send to the last event's arrival.
    pub total: Duration,
    /// Events seen.
    pub events: u32,
    /// Sum of gaps between consecutive events.
    pub gaps: Duration,
    /// Whether `data: [DONE]` came.
    pub done: bool,
}

/// Streams one response of `call` on `conn`.
pub async fn one(conn: &mut Conn, call: &Call) -> Result<Sample> {
    conn.ready().await?;
    let t0 = Instant::now();
    let resp = conn.send(call).await?;
    if resp.status() != 200 {
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        return Err(anyhow!(
            "stream answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let mut body = resp.into_body();
    let mut split = EventSplitter::default();
    let mut done = DoneSeen::default();
    let (mut events, mut first, mut last, mut gaps) = (0u32, None, Duration::ZERO, Duration::ZERO);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let now = t0.elapsed();
        done.feed(&data);
        let ends = split.feed(&data);
        if ends == 0 {
            continue;
        }
        if first.is_none() {
            first = Some(now);
        } else {
            gaps += now.saturating_sub(last);
        }
        // Events that arrived together have zero gaps between them.
        events += ends;
        last = now;
    }
    Ok(Sample {
        ttfb: first.unwrap_or(last),
        total: last,
        events,
        gaps,
        done: done.seen,
    })
}

/// Streams of one segment, summed.
pub struct StreamSet {
    /// TTFB of every stream, ns.
    pub ttfb: Histogram<u64>,
    /// Streams that ended with `[DONE]`.
    pub complete: u64,
    /// Streams that failed or ended without `[DONE]`.
    pub failed: u64,
    /// Of those, streams that ended cleanly but without `[DONE]`.
    pub no_done: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Sum of totals, ns (complete streams).
    pub total_ns: u128,
    /// Sum of inter-event gaps, ns, and how many gaps.
    pub gaps_ns: u128,
    pub gap_count: u64,
    /// Events seen in complete streams.
    pub events: u64,
}

impl StreamSet {
    fn new() -> Result<StreamSet> {
        Ok(StreamSet {
            ttfb: histogram()?,
            complete: 0,
            failed: 0,
            no_done: 0,
            first_error: None,
            total_ns: 0,
            gaps_ns: 0,
            gap_count: 0,
            events: 0,
        })
    }

    /// Adds another set.
    pub fn add(&mut self, other: &StreamSet) -> Result<()> {
        self.ttfb.add(&other.ttfb)?;
        self.complete += other.complete;
        self.failed += other.failed;
        self.no_done += other.no_done;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.total_ns += other.total_ns;
        self.gaps_ns += other.gaps_ns;
        self.gap_count += other.gap_count;
        self.events += other.events;
        Ok(())
    }

    fn record(&mut self, s: Sample) {
        if !s.done {
            self.failed += 1;
            self.no_done += 1;
            return;
        }
        let ns = u64::try_from(s.ttfb.as_nanos()).unwrap_or(u64::MAX);
        self.ttfb.saturating_record(ns.max(1));
        self.complete += 1;
        self.total_ns += s.total.as_nanos();
        self.gaps_ns += s.gaps.as_nanos();
        self.gap_count += u64::from(s.events.saturating_sub(1));
        self.events += u64::from(s.events);
    }
}

/// Runs `conc` workers streaming `call` from `addr` until `budget` (its
/// `requests` counts streams) is spent.
pub async fn streams(
    addr: SocketAddr,
    call: &Call,
    conc: usize,
    budget: Budget,
) -> Result<StreamSet> {
    let call = Arc::new(call.clone());
    let barrier = Arc::new(Barrier::new(conc + 1));
    let tickets = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for _ in 0..conc {
        let (call, barrier, tickets) = (call.clone(), barrier.clone(), tickets.clone());
        set.spawn(async move {
            let conn = Conn::open(addr).await;
            barrier.wait().await;
            let mut conn = conn?;
            let deadline = budget.duration.map(|d| Instant::now() + d);
            let mut mine = StreamSet::new()?;
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if budget.requests > 0 && tickets.fetch_add(1, Ordering::Relaxed) >= budget.requests
                {
                    break;
                }
                match one(&mut conn, &call).await {
                    Ok(sample) => mine.record(sample),
                    Err(e) => {
                        mine.failed += 1;
                        mine.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            Ok::<_, anyhow::Error>(mine)
        });
    }
    barrier.wait().await;
    let mut all = StreamSet::new()?;
    while let Some(joined) = set.join_next().await {
        all.add(&joined??)?;
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ends_across_splits() {
        let text = b"data: {\"a\":1}\n\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\n\n";
        for cut in 0..text.len() {
            let mut s = EventSplitter::default();
            let n = s.feed(&text[..cut]) + s.feed(&text[cut..]);
            assert_eq!(n, 3, "cut at {cut}");
        }
        let mut s = EventSplitter::default();
        assert_eq!(s.feed(b"a\n\n\nb\n\n"), 2);
    }

    #[test]
    fn done_across_splits() {
        let text = b"data: {\"a\":1}\n\ndata: [DONE]\n\n";
        for cut in 0..text.len() {
            for cut2 in cut..text.len() {
                let mut d = DoneSeen::default();
                d.feed(&text[..cut]);
                d.feed(&text[cut..cut2]);
                d.feed(&text[cut2..]);
                assert!(d.seen, "cuts at {cut}, {cut2}");
            }
        }
        let mut d = DoneSeen::default();
        d.feed(b"data: [DON");
        d.feed(b"E\n\n");
        assert!(!d.seen);
    }
}
