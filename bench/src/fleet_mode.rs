//! Fleet mode (`[fleet] redis_url`) on vs off, on this machine, against
//! one `redis-server` (Debian's, started here without persistence):
//!
//! - **steady state**: two gateways in front of the `ok` mock, the same
//!   build and config, one with `BACKSTOP_FLEET__REDIS_URL`; rounds visit
//!   direct / fleet off / fleet on in turn at each concurrency (c=1, c=64),
//!   for latency, CPU per request and the Redis traffic per request (every
//!   circuit closed, no tight window: fleet mode should ask Redis nothing);
//! - **an outage**: `replicas` gateways per side with a route whose primary
//!   is a mock answering 503 to everything (`--mix status:503=1`) and whose
//!   fallback is the `ok` mock, short circuit cool-downs so that circuits
//!   open and probe again and again; all replicas of a side loaded at once,
//!   the sides in turn. With fleet mode the replicas share one circuit, one
//!   probe and its pub/sub events, so the Redis traffic is real.
//!
//! Redis traffic is read two ways: the fleet-on gateways'
//! `backstop_fleet_operations_total{op,result}` deltas, and Redis's own
//! `INFO commandstats` deltas (which also count the commands a Lua script
//! calls: releasing the probe is `EVAL` + `GET` + `DEL`). The processes and
//! the counters are in `fleet_rig.rs`, the figures in `fleet_figures.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::task::JoinSet;

use crate::client::Call;
use crate::figures::{Added, Load};
use crate::fleet_figures::{on_minus_off, per, FleetFigures, Outage, OutageSide, SteadyAt};
use crate::fleet_rig::{add_counts, snapshot, Delta, Rig, CIRCUIT};
use crate::load::{closed_loop, Segment};
use crate::plan::{Plan, Step};
use crate::redis;
use crate::scenarios::{self, LoadAgg, Target};
use crate::setup::{Paths, Service};

async fn steady(
    plan: &Plan,
    rig: &Rig,
    ok_mock: SocketAddr,
    clk_tck: u64,
) -> Result<Vec<SteadyAt>> {
    let target = |name, s: &Service| Target {
        name,
        addr: s.addr,
        pids: vec![s.proc.pid],
    };
    let targets = [
        Target {
            name: "direct",
            addr: ok_mock,
            pids: Vec::new(),
        },
        target("fleet_off", &rig.steady_off),
        target("fleet_on", &rig.steady_on),
    ];
    let mut out = Vec::new();
    for step in &plan.fleet.latency {
        let before = snapshot(rig, &[&rig.steady_on]).await?;
        let aggs = scenarios::latency(plan, step, &targets)
            .await
            .with_context(|| format!("fleet steady state c={}", step.conc))?;
        let d = Delta::between(&before, &snapshot(rig, &[&rig.steady_on]).await?);
        let by_target: BTreeMap<_, _> = aggs
            .iter()
            .map(|(k, v)| (*k, Load::of(v, clk_tck, *k != "direct")))
            .collect();
        let g = |t: &str| by_target.get(t).copied().unwrap_or_default();
        let added = ["fleet_off", "fleet_on"]
            .into_iter()
            .map(|t| (t, Added::of(&g(t), &g("direct"))))
            .collect();
        let served = aggs.get("fleet_on").map_or(0, |a| a.cpu_requests) as f64;
        out.push(SteadyAt {
            conc: step.conc,
            on_minus_off: on_minus_off(&g("fleet_on"), &g("fleet_off")),
            cpu_on_over_off: crate::figures::ratio(
                g("fleet_on").cpu_ms_per_1k,
                g("fleet_off").cpu_ms_per_1k,
            ),
            fleet_ops_per_request: per(d.ops_total() as f64, served),
            redis_commands_per_request: per(d.redis_total() as f64, served),
            redis_commands: d.redis,
            by_target,
            added,
        });
    }
    Ok(out)
}

/// Every replica of a side under `step`'s load at once: their segments.
async fn side_segment(side: &[Service], step: &Step, warmup: u32) -> Result<Vec<Segment>> {
    let mut set = JoinSet::new();
    for s in side {
        let addr = s.addr;
        let (conc, budget) = (step.conc, step.budget());
        set.spawn(async move { closed_loop(addr, &Call::chat(), conc, warmup, budget).await });
    }
    let mut segs = Vec::new();
    while let Some(joined) = set.join_next().await {
        segs.push(joined??);
    }
    Ok(segs)
}

#[derive(Default)]
struct SideAcc {
    agg: Option<LoadAgg>,
    ops: BTreeMap<String, u64>,
    redis: BTreeMap<String, u64>,
    events: u64,
    ops_not_ok: u64,
    redis_ticks: u64,
    wall: Duration,
}

async fn outage(plan: &Plan, rig: &Rig, clk_tck: u64) -> Result<Outage> {
    let step = &plan.fleet.outage;
    // Open the circuits first: the figures are of an outage under way.
    let opening = Step {
        conc: 1,
        requests: 20,
        seconds: 0.0,
        rounds: 1,
    };
    for side in [&rig.outage_off, &rig.outage_on] {
        side_segment(side, &opening, 0).await?;
    }
    let mut acc = [SideAcc::default(), SideAcc::default()];
    for round in 0..step.rounds {
        for (i, (name, side)) in [("fleet off", &rig.outage_off), ("fleet on", &rig.outage_on)]
            .into_iter()
            .enumerate()
        {
            let gateways: Vec<&Service> = side.iter().collect();
            let before = snapshot(rig, &gateways).await?;
            let start = Instant::now();
            let segs = side_segment(side, step, plan.conn_warmup).await?;
            let wall = start.elapsed();
            let d = Delta::between(&before, &snapshot(rig, &gateways).await?);
            let a = &mut acc[i];
            let agg = match &mut a.agg {
                Some(agg) => agg,
                slot => slot.insert(LoadAgg::new()?),
            };
            let elapsed = agg.elapsed;
            for seg in &segs {
                agg.add(seg, 0)?;
            }
            agg.elapsed = elapsed + wall;
            agg.cpu_ticks += d.ticks;
            agg.upstream += d.primary;
            add_counts(&mut a.ops, &d.ops);
            add_counts(&mut a.redis, &d.redis);
            a.events += d.events;
            a.ops_not_ok += d.ops_not_ok;
            a.redis_ticks += d.redis_ticks;
            a.wall += wall;
            let sent: u64 = segs.iter().map(Segment::sent).sum();
            eprintln!(
                "  [fleet outage round {}/{}] {name:<9} {sent} requests, {} to the failing primary, {} fleet operations, {} Redis commands",
                round + 1,
                step.rounds,
                d.primary,
                d.ops_total(),
                d.redis_total()
            );
        }
    }
    let [off, on] = acc.map(|a| side_figures(a, clk_tck));
    Ok(Outage {
        replicas: plan.fleet.replicas,
        conc_per_replica: step.conc,
        circuit: CIRCUIT
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        off,
        on,
    })
}

fn side_figures(a: SideAcc, clk_tck: u64) -> OutageSide {
    let Some(agg) = a.agg else {
        return OutageSide::default();
    };
    let load = Load::of(&agg, clk_tck, true);
    let served = agg.cpu_requests as f64;
    let secs = a.wall.as_secs_f64();
    let ops: u64 = a.ops.values().sum();
    let redis: u64 = a.redis.values().sum();
    OutageSide {
        load,
        primary_per_1k: per(agg.upstream as f64 * 1000.0, agg.sent() as f64),
        fleet_ops: ops,
        fleet_ops_per_request: per(ops as f64, served),
        fleet_ops_per_s: per(ops as f64, secs),
        fleet_ops_by_op: a.ops,
        redis_commands: redis,
        redis_commands_per_request: per(redis as f64, served),
        redis_commands_per_s: per(redis as f64, secs),
        redis_commands_by_name: a.redis,
        fleet_events_applied: a.events,
        fleet_ops_not_ok: a.ops_not_ok,
        primary_per_s: per(agg.upstream as f64, secs),
        redis_cpu_ms_per_1k: (clk_tck > 0)
            .then(|| a.redis_ticks as f64 * 1000.0 / clk_tck as f64)
            .and_then(|ms| per(ms * 1000.0, served)),
        seconds: secs,
    }
}

/// Starts redis-server, the failing mock and the gateways, measures, stops them.
pub async fn measure(
    plan: &Plan,
    paths: &Paths,
    ok_mock: SocketAddr,
    clk_tck: u64,
) -> Result<FleetFigures> {
    let rig = Rig::start(paths, ok_mock, plan.fleet.replicas)
        .await
        .context("starting fleet mode's redis-server and gateways")?;
    let result = async {
        let steady = steady(plan, &rig, ok_mock, clk_tck).await?;
        let outage = outage(plan, &rig, clk_tck).await.context("fleet outage")?;
        Ok::<_, anyhow::Error>(FleetFigures {
            redis_version: redis::version(&paths.redis),
            steady,
            outage,
        })
    }
    .await;
    rig.stop().await;
    result
}
