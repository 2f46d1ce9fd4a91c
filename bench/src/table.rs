//! The markdown table of the report: one row per metric, columns direct /
//! nginx / backstop / target / met?, numbers formatted for reading (µs with
//! one decimal, req/s whole, ratios with two decimals).

use crate::figures::{Load, Streams, CHUNKS};
use crate::report::Report;

/// The table rows: metric, direct, nginx, backstop, target, met?.
pub fn rows(r: &Report) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let checked = |metric: &str| -> (String, String) {
        r.checks
            .iter()
            .find(|c| c.metric == metric)
            .map_or((String::new(), String::new()), |c| {
                (c.target.clone(), yes_no(c.met))
            })
    };
    let mut row = |metric: String, d: String, n: String, b: String, check: Option<&str>| {
        let (t, met) = check.map_or((String::new(), String::new()), checked);
        rows.push(vec![metric, d, n, b, t, met]);
    };
    for l in &r.latency {
        let c = l.conc;
        let g = |t: &str| l.by_target.get(t).copied().unwrap_or_default();
        let (d, n, b) = (g("direct"), g("nginx"), g("backstop"));
        for (name, f) in PCTS {
            row(
                format!("latency c={c} {name} (µs)"),
                us(f(&d)),
                us(f(&n)),
                us(f(&b)),
                None,
            );
        }
        let a = |t: &str| r.added(c, t).copied().unwrap_or_default();
        let (an, ab) = (a("nginx"), a("backstop"));
        row(
            format!("added c={c} p50 (µs)"),
            dash(),
            us(an.p50_us),
            us(ab.p50_us),
            None,
        );
        let judged = (c == 1).then_some("added p99 at c=1 (µs)");
        row(
            format!("added c={c} p99 (µs)"),
            dash(),
            us(an.p99_us),
            us(ab.p99_us),
            judged,
        );
        row(
            format!("added c={c} p99.9 (µs)"),
            dash(),
            us(an.p999_us),
            us(ab.p999_us),
            None,
        );
        row(
            format!("CPU per 1000 requests c={c} (ms)"),
            dash(),
            num(n.cpu_ms_per_1k, 1),
            num(b.cpu_ms_per_1k, 1),
            None,
        );
    }
    let top = r.latency.last().map_or(0, |l| l.conc);
    let rps = |t: &str| r.throughput_rps.get(t).copied().flatten();
    row(
        format!("throughput c={top} (req/s)"),
        num(rps("direct"), 0),
        num(rps("nginx"), 0),
        num(rps("backstop"), 0),
        None,
    );
    row(
        "throughput backstop / nginx".into(),
        dash(),
        dash(),
        num(r.throughput_backstop_over_nginx, 2),
        Some("throughput backstop / nginx"),
    );
    row(
        "CPU per request backstop / nginx (c=64)".into(),
        dash(),
        dash(),
        num(r.cpu_backstop_over_nginx, 2),
        Some("CPU per request backstop / nginx (c=64)"),
    );
    let mem = |t: &str| r.memory.get(t).copied();
    let (mn, mb) = (mem("nginx"), mem("backstop"));
    row(
        "RSS idle (MiB)".into(),
        dash(),
        num(mn.map(|m| m.idle_rss_mib), 1),
        num(mb.map(|m| m.idle_rss_mib), 1),
        Some("RSS idle (MiB)"),
    );
    row(
        "RSS peak (MiB)".into(),
        dash(),
        num(mn.map(|m| m.peak_rss_mib), 1),
        num(mb.map(|m| m.peak_rss_mib), 1),
        Some("RSS peak (MiB)"),
    );
    row(
        "RSS after load (MiB)".into(),
        dash(),
        num(mn.map(|m| m.after_rss_mib), 1),
        num(mb.map(|m| m.after_rss_mib), 1),
        None,
    );
    for s in [&r.paced, &r.unpaced] {
        let name = format!("stream {}×{} ms", s.chunks, s.delay_ms);
        let g = |t: &str| s.by_target.get(t).copied().unwrap_or_default();
        let (d, n, b) = (g("direct"), g("nginx"), g("backstop"));
        let a = |t: &str| s.added.get(t).copied().unwrap_or_default();
        let (an, ab) = (a("nginx"), a("backstop"));
        row(
            format!("{name} (c={}): streams complete / failed", s.conc),
            pair(&d),
            pair(&n),
            pair(&b),
            None,
        );
        row(
            format!("{name}: TTFB p50 (µs)"),
            us(d.ttfb_p50_us),
            us(n.ttfb_p50_us),
            us(b.ttfb_p50_us),
            None,
        );
        row(
            format!("{name}: TTFB p99 (µs)"),
            us(d.ttfb_p99_us),
            us(n.ttfb_p99_us),
            us(b.ttfb_p99_us),
            None,
        );
        row(
            format!("{name}: added TTFB p50 (µs)"),
            dash(),
            us(an.ttfb_p50_us),
            us(ab.ttfb_p50_us),
            None,
        );
        let key = format!("{name}: added TTFB p99 (µs)");
        row(
            key.clone(),
            dash(),
            us(an.ttfb_p99_us),
            us(ab.ttfb_p99_us),
            Some(&key),
        );
        row(
            format!("{name}: mean gap between events (µs)"),
            us(d.mean_gap_us),
            us(n.mean_gap_us),
            us(b.mean_gap_us),
            None,
        );
        let key = format!("{name}: added per chunk, mean gap (µs)");
        row(
            key.clone(),
            dash(),
            us(an.per_chunk_gap_us),
            us(ab.per_chunk_gap_us),
            Some(&key),
        );
        row(
            format!("{name}: mean stream time (ms)"),
            num(d.mean_total_ms, 3),
            num(n.mean_total_ms, 3),
            num(b.mean_total_ms, 3),
            None,
        );
        let key = format!("{name}: added per chunk, total / {CHUNKS} (µs)");
        row(
            key.clone(),
            dash(),
            us(an.per_chunk_total_us),
            us(ab.per_chunk_total_us),
            Some(&key),
        );
        row(
            format!("{name}: events per stream"),
            num(d.events_per_stream, 1),
            num(n.events_per_stream, 1),
            num(b.events_per_stream, 1),
            None,
        );
    }
    let f = |t: &str| r.faults.get(t).copied().unwrap_or_default();
    let (fd, fnx, fb) = (f("direct"), f("nginx"), f("backstop"));
    row(
        "faults 5 %: success rate (%)".into(),
        num(fd.success_pct, 2),
        num(fnx.success_pct, 2),
        num(fb.success_pct, 2),
        None,
    );
    row(
        "faults 5 %: upstream requests per client request".into(),
        num(fd.amplification, 3),
        num(fnx.amplification, 3),
        num(fb.amplification, 3),
        None,
    );
    row(
        "faults 5 %: latency p99 (µs)".into(),
        us(fd.p99_us),
        us(fnx.p99_us),
        us(fb.p99_us),
        None,
    );
    row(
        format!("throughput c={top}, inspection off (req/s)"),
        dash(),
        dash(),
        num(rps("backstop_no_inspect"), 0),
        None,
    );
    row(
        "throughput inspection on / off".into(),
        dash(),
        dash(),
        num(r.throughput_inspect_on_over_off, 2),
        None,
    );
    rows
}

type Pick = fn(&Load) -> Option<f64>;

const PCTS: [(&str, Pick); 3] = [
    ("p50", |l| l.p50_us),
    ("p99", |l| l.p99_us),
    ("p99.9", |l| l.p999_us),
];

fn dash() -> String {
    "—".into()
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(dash, |v| format!("{v:.decimals$}"))
}

fn us(v: Option<f64>) -> String {
    num(v, 1)
}

fn pair(s: &Streams) -> String {
    format!("{} / {}", s.complete, s.failed)
}

fn yes_no(met: Option<bool>) -> String {
    match met {
        Some(true) => "yes".into(),
        Some(false) => "**no**".into(),
        None => "?".into(),
    }
}
