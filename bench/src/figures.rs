//! From aggregates to figures: percentiles in µs, added latency (proxy −
//! direct), throughput, CPU per 1000 requests, stream TTFB and per-chunk
//! cost, fault success and amplification. Pure arithmetic, no I/O.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::scenarios::LoadAgg;
use crate::stream::StreamSet;

/// Content chunks per stream (the `x-mock-chunks` the bench sends).
pub const CHUNKS: u32 = 64;

/// A percentile of a nanosecond histogram, in µs (`None` when empty).
pub fn pct_us(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
}

/// `a − b` when both are known.
pub fn minus(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

/// `a / b` when both are known and `b` is not 0.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b != 0.0).then(|| a / b)
}

/// Non-streaming figures of one target at one concurrency.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Load {
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub mean_us: Option<f64>,
    pub max_us: Option<f64>,
    pub ok: u64,
    pub failed: u64,
    /// Requests per second over the measured time.
    pub rps: Option<f64>,
    /// The proxy's CPU time (utime + stime) per 1000 requests, ms.
    pub cpu_ms_per_1k: Option<f64>,
    /// Success rate, % (faults scenario).
    pub success_pct: Option<f64>,
    /// Upstream requests per client request (faults scenario).
    pub amplification: Option<f64>,
}

impl Load {
    /// Figures of `agg`; CPU only when `has_cpu`.
    pub fn of(agg: &LoadAgg, clk_tck: u64, has_cpu: bool) -> Load {
        let h = &agg.hist;
        let secs = agg.elapsed.as_secs_f64();
        let sent = agg.sent();
        Load {
            p50_us: pct_us(h, 0.50),
            p99_us: pct_us(h, 0.99),
            p999_us: pct_us(h, 0.999),
            mean_us: (!h.is_empty()).then(|| h.mean() / 1000.0),
            max_us: (!h.is_empty()).then(|| h.max() as f64 / 1000.0),
            ok: agg.ok,
            failed: agg.failed,
            rps: (secs > 0.0).then(|| sent as f64 / secs),
            cpu_ms_per_1k: (has_cpu && agg.cpu_requests > 0 && clk_tck > 0).then(|| {
                agg.cpu_ticks as f64 * 1000.0 / clk_tck as f64 / agg.cpu_requests as f64 * 1000.0
            }),
            success_pct: (sent > 0).then(|| agg.ok as f64 * 100.0 / sent as f64),
            amplification: (sent > 0 && agg.upstream > 0)
                .then(|| agg.upstream as f64 / sent as f64),
        }
    }
}

/// Added latency of a proxy: its percentile − direct's.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Added {
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
}

impl Added {
    /// `proxy − direct`, percentile by percentile.
    pub fn of(proxy: &Load, direct: &Load) -> Added {
        Added {
            p50_us: minus(proxy.p50_us, direct.p50_us),
            p99_us: minus(proxy.p99_us, direct.p99_us),
            p999_us: minus(proxy.p999_us, direct.p999_us),
        }
    }
}

/// Stream figures of one target.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Streams {
    pub complete: u64,
    pub failed: u64,
    /// Of the failed, those that ended cleanly without `[DONE]`.
    pub no_done: u64,
    pub ttfb_p50_us: Option<f64>,
    pub ttfb_p99_us: Option<f64>,
    /// Mean gap between consecutive events, µs.
    pub mean_gap_us: Option<f64>,
    /// Mean send-to-last-event time, ms.
    pub mean_total_ms: Option<f64>,
    /// Mean events per complete stream.
    pub events_per_stream: Option<f64>,
}

impl Streams {
    /// Figures of `set`.
    pub fn of(set: &StreamSet) -> Streams {
        let n = set.complete as f64;
        Streams {
            complete: set.complete,
            failed: set.failed,
            no_done: set.no_done,
            ttfb_p50_us: pct_us(&set.ttfb, 0.50),
            ttfb_p99_us: pct_us(&set.ttfb, 0.99),
            mean_gap_us: (set.gap_count > 0)
                .then(|| set.gaps_ns as f64 / set.gap_count as f64 / 1000.0),
            mean_total_ms: (set.complete > 0).then(|| set.total_ns as f64 / n / 1e6),
            events_per_stream: (set.complete > 0).then(|| set.events as f64 / n),
        }
    }
}

/// What a proxy adds to a stream.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct StreamAdded {
    pub ttfb_p50_us: Option<f64>,
    pub ttfb_p99_us: Option<f64>,
    /// Mean inter-event gap, proxy − direct, µs.
    pub per_chunk_gap_us: Option<f64>,
    /// (Mean total stream time, proxy − direct) / 64, µs.
    pub per_chunk_total_us: Option<f64>,
}

impl StreamAdded {
    /// `proxy − direct`.
    pub fn of(proxy: &Streams, direct: &Streams) -> StreamAdded {
        StreamAdded {
            ttfb_p50_us: minus(proxy.ttfb_p50_us, direct.ttfb_p50_us),
            ttfb_p99_us: minus(proxy.ttfb_p99_us, direct.ttfb_p99_us),
            per_chunk_gap_us: minus(proxy.mean_gap_us, direct.mean_gap_us),
            per_chunk_total_us: minus(proxy.mean_total_ms, direct.mean_total_ms)
                .map(|ms| ms * 1000.0 / f64::from(CHUNKS)),
        }
    }
}

/// Memory of a proxy, MiB.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Memory {
    /// VmRSS once ready, before any traffic.
    pub idle_rss_mib: f64,
    /// VmHWM at the end (the peak over the whole run).
    pub peak_rss_mib: f64,
    /// VmRSS at the end, load over.
    pub after_rss_mib: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        assert_eq!(minus(Some(3.0), Some(1.0)), Some(2.0));
        assert_eq!(minus(None, Some(1.0)), None);
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        let mut h = crate::load::histogram().unwrap();
        for ns in 1..=1000u64 {
            h.record(ns * 1000).unwrap();
        }
        assert_eq!(pct_us(&h, 0.5).map(f64::round), Some(500.0));
        let p = Streams {
            mean_total_ms: Some(1000.64),
            mean_gap_us: Some(20_010.0),
            ..Streams::default()
        };
        let d = Streams {
            mean_total_ms: Some(1000.0),
            mean_gap_us: Some(20_000.0),
            ..Streams::default()
        };
        let a = StreamAdded::of(&p, &d);
        assert_eq!(a.per_chunk_gap_us.map(f64::round), Some(10.0));
        assert_eq!(a.per_chunk_total_us.map(f64::round), Some(10.0));
    }
}
