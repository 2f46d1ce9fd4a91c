//! `backstop-bench`: the load generator and orchestrator behind `bench/run`.
//!
//! It starts `backstop-mock`, `backstop`, nginx and the framework floor
//! (`backstop-floor`, a bare hyper proxy; see [`setup`]), measures them
//! interleaved (see [`scenarios`]) with a single-threaded client (one
//! keep-alive HTTP/1.1 connection per worker, see [`client`], [`load`],
//! [`stream`]), then counts allocations with the `alloc-count` build
//! ([`allocs`]) and measures fleet mode on vs off against a `redis-server`
//! ([`fleet_mode`]), turns the aggregates into figures ([`figures`],
//! [`fleet_figures`]) and writes `latest.json` and `latest.md` ([`report`]).
//!
//! Usage: `backstop-bench --repo DIR --nginx PATH --redis PATH --work DIR --out DIR [--smoke]`
//! (`bench/run` passes all of these); `backstop-bench --soak [--minutes N]
//! --repo DIR --work DIR --out DIR` runs the soak instead ([`soak`]: mixed
//! traffic, faults and slow clients against backstop for N minutes, writes
//! `soak.json` and `soak.md`); `backstop-bench load ADDR CONC SECONDS`
//! and `backstop-bench stream ADDR CONC SECONDS DELAY_MS` put chat-completion
//! or streaming load on one address (for profiling and debugging).

mod allocs;
mod client;
mod figures;
mod fleet_figures;
mod fleet_mode;
mod fleet_rig;
mod load;
mod machine;
mod nginx;
mod plan;
mod procs;
mod redis;
mod report;
mod scenarios;
mod scrape;
mod setup;
mod slow;
mod slow_stats;
mod soak;
mod soak_check;
mod soak_clients;
mod soak_report;
mod stream;
mod table;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::client::Call;
use crate::figures::{ratio, Added, Load, Memory, StreamAdded, Streams, CHUNKS};
use crate::machine::Machine;
use crate::plan::Plan;
use crate::procs::{usage, Proc};
use crate::report::{LatencyAt, Report, StreamScenario};
use crate::scenarios::{ByTarget, Target};
use crate::setup::{Fleet, Paths, FAULT_MIX};
use crate::stream::StreamSet;

struct Args {
    smoke: bool,
    /// `--soak`: its length in minutes.
    soak: Option<f64>,
    paths: Paths,
    out: PathBuf,
}

const USAGE: &str =
    "usage: backstop-bench --repo DIR --nginx PATH --redis PATH --work DIR --out DIR [--smoke]\n       \
     backstop-bench --soak [--minutes N] --repo DIR --work DIR --out DIR";

fn parse_args() -> Result<Args> {
    let (mut smoke, mut soak, mut minutes) = (false, false, None);
    let (mut repo, mut nginx, mut redis, mut work, mut out) = (None, None, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--smoke" => smoke = true,
            "--soak" => soak = true,
            "--minutes" => minutes = Some(value()?.parse::<f64>().context("--minutes")?),
            "--repo" => repo = Some(PathBuf::from(value()?)),
            "--nginx" => nginx = Some(PathBuf::from(value()?)),
            "--redis" => redis = Some(PathBuf::from(value()?)),
            "--work" => work = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            _ => bail!("unknown argument {arg:?}; {USAGE}"),
        }
    }
    let soak = match (soak, minutes) {
        (true, m) => Some(m.unwrap_or(10.0)),
        (false, None) => None,
        (false, Some(_)) => bail!("--minutes goes with --soak; {USAGE}"),
    };
    if soak.is_some_and(|m| !(m > 0.0 && m <= 24.0 * 60.0)) {
        bail!("--minutes must be more than 0 and at most a day");
    }
    // The soak uses neither nginx nor Redis.
    let needed = |path: Option<PathBuf>, flag: &str| match (path, soak) {
        (Some(p), _) => Ok(p),
        (None, Some(_)) => Ok(PathBuf::new()),
        (None, None) => bail!("{flag} is required; {USAGE}"),
    };
    let nginx = needed(nginx, "--nginx")?;
    let redis = needed(redis, "--redis")?;
    Ok(Args {
        smoke,
        soak,
        paths: Paths {
            repo: repo.context("--repo is required")?,
            nginx,
            redis,
            work: work.context("--work is required")?,
        },
        out: out.context("--out is required")?,
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn idle_rss(p: &Proc) -> Result<f64> {
    Ok(mib(usage(&p.tree())?.rss_kib))
}

fn memory(p: &Proc, idle_rss_mib: f64) -> Result<Memory> {
    let u = usage(&p.tree())?;
    Ok(Memory {
        idle_rss_mib,
        peak_rss_mib: mib(u.hwm_kib),
        after_rss_mib: mib(u.rss_kib),
    })
}

fn stream_scenario(step: &plan::Step, delay_ms: u64, sets: &ByTarget<StreamSet>) -> StreamScenario {
    let by_target: BTreeMap<_, _> = sets.iter().map(|(k, v)| (*k, Streams::of(v))).collect();
    let direct = by_target.get("direct").copied().unwrap_or_default();
    let added = by_target
        .iter()
        .filter(|(k, _)| **k != "direct")
        .map(|(k, v)| (*k, StreamAdded::of(v, &direct)))
        .collect();
    StreamScenario {
        chunks: CHUNKS,
        delay_ms,
        conc: step.conc,
        by_target,
        added,
    }
}

async fn measure(plan: &Plan, paths: &Paths, fleet: &Fleet, machine: Machine) -> Result<Report> {
    let started = Instant::now();
    let clk_tck = machine.clk_tck;
    let nginx_pids = fleet.nginx.tree();
    if nginx_pids.len() < 2 {
        bail!("nginx has no worker process (pids {nginx_pids:?})");
    }
    let target = |name, addr, pids: &[u32]| Target {
        name,
        addr,
        pids: pids.to_vec(),
    };
    let direct = target("direct", fleet.mock.addr, &[]);
    let nginx = target("nginx", fleet.nginx_addr, &nginx_pids);
    let floor = target("floor", fleet.floor.addr, &[fleet.floor.proc.pid]);
    let backstop = target("backstop", fleet.backstop.addr, &[fleet.backstop.proc.pid]);
    let no_inspect = target(
        "backstop_no_inspect",
        fleet.backstop_no_inspect.addr,
        &[fleet.backstop_no_inspect.proc.pid],
    );
    let proxies = [direct.clone(), nginx.clone(), floor, backstop];

    let idle_nginx = idle_rss(&fleet.nginx)?;
    let idle_floor = idle_rss(&fleet.floor.proc)?;
    let idle_backstop = idle_rss(&fleet.backstop.proc)?;
    fleet.check().await?;
    allocs::check_uncounted(fleet.backstop.addr).await?;

    eprintln!("warm-up");
    let mut all = proxies.to_vec();
    all.push(no_inspect);
    scenarios::warm_up(plan, &all).await?;

    let mut latency = Vec::new();
    let last = plan.latency.len().saturating_sub(1);
    for (i, step) in plan.latency.iter().enumerate() {
        let targets = if i == last { &all[..] } else { &proxies[..] };
        let aggs = scenarios::latency(plan, step, targets).await?;
        let by_target: BTreeMap<_, _> = aggs
            .iter()
            .map(|(k, v)| (*k, Load::of(v, clk_tck, *k != "direct")))
            .collect();
        let d = by_target.get("direct").copied().unwrap_or_default();
        let added = by_target
            .iter()
            .filter(|(k, _)| **k != "direct")
            .map(|(k, v)| (*k, Added::of(v, &d)))
            .collect();
        latency.push(LatencyAt {
            conc: step.conc,
            by_target,
            added,
        });
    }

    let paced = scenarios::streaming(
        "stream 64×20ms",
        &plan.paced,
        &Call::chat_stream(CHUNKS, 20),
        &proxies,
    )
    .await?;
    let unpaced = scenarios::streaming(
        "stream 64×0ms",
        &plan.unpaced,
        &Call::chat_stream(CHUNKS, 0),
        &proxies,
    )
    .await?;

    let fault_targets = [
        target("direct", fleet.faulty_mock.addr, &[]),
        target("nginx", fleet.nginx_faults_addr, &nginx_pids),
        target(
            "backstop",
            fleet.backstop_faults.addr,
            &[fleet.backstop_faults.proc.pid],
        ),
    ];
    let faults = scenarios::faults(&plan.faults, &fault_targets, fleet.faulty_mock.addr).await?;
    let faults = faults
        .iter()
        .map(|(k, v)| (*k, Load::of(v, clk_tck, *k != "direct")))
        .collect();

    let mut mem = BTreeMap::new();
    mem.insert("nginx", memory(&fleet.nginx, idle_nginx)?);
    mem.insert("floor", memory(&fleet.floor.proc, idle_floor)?);
    mem.insert("backstop", memory(&fleet.backstop.proc, idle_backstop)?);

    eprintln!("allocation counts (backstop-alloc-count)");
    let allocations = allocs::measure(&plan.allocs, paths, fleet.mock.addr).await?;
    eprintln!("fleet mode on vs off (redis-server)");
    let fleet_figures = fleet_mode::measure(plan, paths, fleet.mock.addr, clk_tck).await?;

    let top = latency.last();
    let throughput_rps: BTreeMap<_, _> = top
        .map(|l| l.by_target.iter().map(|(k, v)| (*k, v.rps)).collect())
        .unwrap_or_default();
    let rps = |t: &str| throughput_rps.get(t).copied().flatten();
    let top_conc = top.map_or(0, |l| l.conc);
    let mut machine = machine;
    machine.loadavg_end = machine::loadavg();
    let mut report = Report {
        throughput_backstop_over_nginx: ratio(rps("backstop"), rps("nginx")),
        throughput_backstop_over_floor: ratio(rps("backstop"), rps("floor")),
        throughput_inspect_on_over_off: ratio(rps("backstop"), rps("backstop_no_inspect")),
        cpu_backstop_over_nginx: report::cpu_ratio(&latency, top_conc, "nginx"),
        cpu_backstop_over_floor: report::cpu_ratio(&latency, top_conc, "floor"),
        throughput_rps,
        machine,
        plan: plan.clone(),
        duration_s: started.elapsed().as_secs_f64(),
        latency,
        memory: mem,
        paced: stream_scenario(&plan.paced, 20, &paced),
        unpaced: stream_scenario(&plan.unpaced, 0, &unpaced),
        fault_mix: FAULT_MIX.into(),
        faults,
        allocations: Some(allocations),
        fleet: Some(fleet_figures),
        checks: Vec::new(),
    };
    report.judge();
    Ok(report)
}

/// `load ADDR CONC SECONDS`: closed-loop chat completions against one address.
async fn load_only(args: &[String]) -> Result<()> {
    let [addr, conc, secs] = args else {
        bail!("usage: backstop-bench load ADDR CONC SECONDS");
    };
    let budget = load::Budget {
        requests: 0,
        duration: Some(std::time::Duration::from_secs_f64(secs.parse()?)),
    };
    let seg = load::closed_loop(addr.parse()?, &Call::chat(), conc.parse()?, 5, budget).await?;
    eprintln!(
        "{} ok, {} failed, {:.0} req/s, p50 {:.1} µs, p99 {:.1} µs",
        seg.ok,
        seg.http_errors + seg.transport_errors,
        seg.sent() as f64 / seg.elapsed.as_secs_f64().max(1e-9),
        seg.hist.value_at_quantile(0.5) as f64 / 1000.0,
        seg.hist.value_at_quantile(0.99) as f64 / 1000.0
    );
    Ok(())
}

/// `stream ADDR CONC SECONDS DELAY_MS`: streams of 64 chunks against one address.
async fn stream_only(args: &[String]) -> Result<()> {
    let [addr, conc, secs, delay] = args else {
        bail!("usage: backstop-bench stream ADDR CONC SECONDS DELAY_MS");
    };
    let budget = load::Budget {
        requests: 0,
        duration: Some(std::time::Duration::from_secs_f64(secs.parse()?)),
    };
    let call = Call::chat_stream(CHUNKS, delay.parse()?);
    let set = stream::streams(addr.parse()?, &call, conc.parse()?, budget).await?;
    let s = Streams::of(&set);
    eprintln!(
        "{} complete, {} failed ({} without [DONE], first error {:?}), TTFB p50 {:?} µs p99 {:?} µs, mean total {:?} ms",
        s.complete, s.failed, set.no_done, set.first_error, s.ttfb_p50_us, s.ttfb_p99_us, s.mean_total_ms
    );
    Ok(())
}

async fn run() -> Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("load") => return load_only(&argv[1..]).await,
        Some("stream") => return stream_only(&argv[1..]).await,
        _ => {}
    }
    let args = parse_args()?;
    if let Some(minutes) = args.soak {
        std::fs::create_dir_all(&args.out)?;
        return soak::run(&args.paths, minutes, &args.out).await;
    }
    let plan = if args.smoke {
        Plan::smoke()
    } else {
        Plan::full()
    };
    let machine = Machine::describe(&args.paths.repo, Some(&args.paths.nginx), procs::clk_tck());
    std::fs::create_dir_all(&args.out)?;
    eprintln!(
        "backstop-bench: {} run; starting the mocks, the gateways and nginx",
        plan.mode
    );
    let fleet = Fleet::start(&args.paths).await?;
    let result = measure(&plan, &args.paths, &fleet, machine).await;
    fleet.stop().await;
    let report = result?;
    let json = args.out.join("latest.json");
    let md = args.out.join("latest.md");
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("write {}", json.display()))?;
    std::fs::write(&md, report.markdown()).with_context(|| format!("write {}", md.display()))?;
    eprintln!("wrote {} and {}", json.display(), md.display());
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backstop-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
