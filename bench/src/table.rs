//! The markdown table of the report: one row per metric, columns direct /
//! nginx / floor / backstop / target / met?, numbers formatted for reading
//! (µs with one decimal, req/s whole, ratios with two decimals).

use crate::figures::{Load, Streams};
use crate::report::{self, Report};

/// The value columns, in order.
pub const COLUMNS: [&str; 4] = ["direct", "nginx", "floor", "backstop"];

/// The proxies (every column but direct).
const PROXIES: [&str; 3] = ["nginx", "floor", "backstop"];

/// One value per column.
type Cells = [String; 4];

/// `f` of each proxy, direct's cell a dash.
fn proxies(f: impl Fn(&str) -> String) -> Cells {
    let [n, fl, b] = PROXIES.map(f);
    [dash(), n, fl, b]
}

/// Only backstop's cell.
fn backstop_only(v: String) -> Cells {
    [dash(), dash(), dash(), v]
}

/// The table rows: metric, direct, nginx, floor, backstop, target, met?.
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
    let mut row = |metric: String, cells: Cells, check: Option<&str>| {
        let (t, met) = check.map_or((String::new(), String::new()), checked);
        let mut line = vec![metric];
        line.extend(cells);
        line.extend([t, met]);
        rows.push(line);
    };
    for l in &r.latency {
        let c = l.conc;
        let g = |t: &str| l.by_target.get(t).copied().unwrap_or_default();
        for (name, f) in PCTS {
            row(
                format!("latency c={c} {name} (µs)"),
                COLUMNS.map(|t| us(f(&g(t)))),
                None,
            );
        }
        let a = |t: &str| r.added(c, t).copied().unwrap_or_default();
        row(
            format!("added c={c} p50 (µs)"),
            proxies(|t| us(a(t).p50_us)),
            None,
        );
        let judged = (c == 1).then_some(report::ADDED_P99_C1);
        row(
            format!("added c={c} p99 (µs)"),
            proxies(|t| us(a(t).p99_us)),
            judged,
        );
        row(
            format!("added c={c} p99.9 (µs)"),
            proxies(|t| us(a(t).p999_us)),
            None,
        );
        row(
            format!("CPU per 1000 requests c={c} (ms)"),
            proxies(|t| num(g(t).cpu_ms_per_1k, 1)),
            None,
        );
    }
    let top = r.latency.last().map_or(0, |l| l.conc);
    let rps = |t: &str| r.throughput_rps.get(t).copied().flatten();
    row(
        format!("throughput c={top} (req/s)"),
        COLUMNS.map(|t| num(rps(t), 0)),
        None,
    );
    let metric = report::THROUGHPUT_RATIO;
    let cells = backstop_only(num(r.throughput_backstop_over_nginx, 2));
    row(metric.into(), cells, Some(metric));
    let cells = backstop_only(num(r.throughput_backstop_over_floor, 2));
    row("throughput backstop / floor".into(), cells, None);
    let metric = report::CPU_RATIO;
    let cells = backstop_only(num(r.cpu_backstop_over_nginx, 2));
    row(metric.into(), cells, Some(metric));
    let cells = backstop_only(num(r.cpu_backstop_over_floor, 2));
    row(
        "CPU per request backstop / floor (c=64)".into(),
        cells,
        None,
    );
    let mem = |t: &str| r.memory.get(t).copied();
    for (metric, pick, judged) in [
        (report::RSS_IDLE, MEM[0], true),
        (report::RSS_PEAK, MEM[1], true),
        ("RSS after load (MiB)", MEM[2], false),
    ] {
        let cells = proxies(|t| num(mem(t).map(pick), 1));
        row(metric.into(), cells, judged.then_some(metric));
    }
    for s in [&r.paced, &r.unpaced] {
        stream_rows(s, &mut row);
    }
    let f = |t: &str| r.faults.get(t).copied().unwrap_or_default();
    let faults = |pick: Pick, decimals: usize| -> Cells {
        [
            num(pick(&f("direct")), decimals),
            num(pick(&f("nginx")), decimals),
            dash(),
            num(pick(&f("backstop")), decimals),
        ]
    };
    row(
        "faults 5 %: success rate (%)".into(),
        faults(|l| l.success_pct, 2),
        None,
    );
    row(
        "faults 5 %: upstream requests per client request".into(),
        faults(|l| l.amplification, 3),
        None,
    );
    row(
        "faults 5 %: latency p99 (µs)".into(),
        faults(|l| l.p99_us, 1),
        None,
    );
    row(
        format!("throughput c={top}, inspection off (req/s)"),
        backstop_only(num(rps("backstop_no_inspect"), 0)),
        None,
    );
    row(
        report::INSPECT_RATIO.into(),
        backstop_only(num(r.throughput_inspect_on_over_off, 2)),
        Some(report::INSPECT_RATIO),
    );
    let a = r.allocations.clone().unwrap_or_default();
    row(
        report::ALLOC_REQUEST.into(),
        backstop_only(num(a.per_request, 1)),
        Some(report::ALLOC_REQUEST),
    );
    row(
        "… of which reallocations".into(),
        backstop_only(num(a.per_request_realloc, 1)),
        None,
    );
    row(
        report::ALLOC_EVENT.into(),
        backstop_only(num(a.per_event_paced, 2)),
        Some(report::ALLOC_EVENT),
    );
    row(
        "allocations per SSE event (unpaced)".into(),
        backstop_only(num(a.per_event_unpaced, 2)),
        None,
    );
    row(
        format!(
            "allocations per streamed request of {} chunks (1 ms apart)",
            a.few_chunks
        ),
        backstop_only(num(a.per_short_stream, 1)),
        None,
    );
    rows
}

/// The rows of one streaming scenario.
fn stream_rows(
    s: &crate::report::StreamScenario,
    row: &mut impl FnMut(String, Cells, Option<&str>),
) {
    let name = report::stream_name(s);
    let g = |t: &str| s.by_target.get(t).copied().unwrap_or_default();
    let all = |f: &dyn Fn(&Streams) -> String| COLUMNS.map(|t| f(&g(t)));
    let a = |t: &str| s.added.get(t).copied().unwrap_or_default();
    row(
        format!("{name} (c={}): streams complete / failed", s.conc),
        all(&pair),
        None,
    );
    row(
        format!("{name}: TTFB p50 (µs)"),
        all(&|x| us(x.ttfb_p50_us)),
        None,
    );
    row(
        format!("{name}: TTFB p99 (µs)"),
        all(&|x| us(x.ttfb_p99_us)),
        None,
    );
    row(
        format!("{name}: added TTFB p50 (µs)"),
        proxies(|t| us(a(t).ttfb_p50_us)),
        None,
    );
    let key = report::stream_ttfb_key(s);
    row(key.clone(), proxies(|t| us(a(t).ttfb_p99_us)), Some(&key));
    row(
        format!("{name}: mean gap between events (µs)"),
        all(&|x| us(x.mean_gap_us)),
        None,
    );
    let cells = proxies(|t| us(a(t).per_chunk_gap_us));
    row(
        format!("{name}: added per chunk, mean gap (µs)"),
        cells,
        None,
    );
    row(
        format!("{name}: mean stream time (ms)"),
        all(&|x| num(x.mean_total_ms, 3)),
        None,
    );
    let key = report::stream_per_chunk_key(s);
    let cells = proxies(|t| us(a(t).per_chunk_total_us));
    row(key.clone(), cells, Some(&key));
    row(
        format!("{name}: events per stream"),
        all(&|x| num(x.events_per_stream, 1)),
        None,
    );
}

type Pick = fn(&Load) -> Option<f64>;

const PCTS: [(&str, Pick); 3] = [
    ("p50", |l| l.p50_us),
    ("p99", |l| l.p99_us),
    ("p99.9", |l| l.p999_us),
];

type MemPick = fn(crate::figures::Memory) -> f64;

const MEM: [MemPick; 3] = [|m| m.idle_rss_mib, |m| m.peak_rss_mib, |m| m.after_rss_mib];

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
