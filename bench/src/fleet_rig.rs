//! What fleet mode's measurement runs on (see `fleet_mode.rs`): the
//! redis-server, the mock that answers 503 to everything, the steady-state
//! pair of gateways and the outage replicas with their config; and the
//! counters read around each segment (CPU, `backstop_fleet_operations_total`,
//! `backstop_fleet_events_total`, `INFO commandstats`, the failing mock's
//! request count).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::procs::{usage, Proc};
use crate::redis;
use crate::scenarios::{cpu_ticks, mock_total};
use crate::scrape;
use crate::setup::{
    start_backstop, start_gateway, start_mock, wait_ready, Gateway, Paths, Service,
};

/// The outage config's `[circuit]`: opens after 5 failures in a row, then
/// probes after 1 s, 2 s, 2 s... so a few seconds of load see several probes.
pub const CIRCUIT: [(&str, u64); 3] = [
    ("consecutive_failures", 5),
    ("cooldown_ms", 1000),
    ("max_cooldown_ms", 2000),
];

/// How long a fleet-on gateway gets to connect to Redis.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// The outage config (`[upstream]` is the failing mock, from
/// `BACKSTOP_UPSTREAM`; fleet mode from `BACKSTOP_FLEET__REDIS_URL`).
pub fn outage_config(backup: SocketAddr) -> String {
    let circuit: String = CIRCUIT
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    format!(
        r#"# Written by backstop-bench for the fleet outage; see bench/README.md.
[upstreams.backup]
url = "http://{backup}/v1"

[[routes]]
name = "bench"
models = ["gpt-4o-mini"]
targets = [{{ upstream = "default", model = "gpt-4o-mini" }}, {{ upstream = "backup", model = "gpt-4o-mini" }}]

[retry]
base_delay_ms = 10
max_delay_ms = 50

[circuit]
{circuit}"#
    )
}

/// Everything started for fleet mode.
pub struct Rig {
    pub redis: Proc,
    pub redis_addr: SocketAddr,
    /// The primary of the outage route: 503 to everything.
    pub down_mock: Service,
    /// Steady state: the default config, without and with fleet mode.
    pub steady_off: Service,
    pub steady_on: Service,
    /// The outage replicas, without and with fleet mode.
    pub outage_off: Vec<Service>,
    pub outage_on: Vec<Service>,
}

impl Rig {
    /// Starts everything and waits until each gateway answers (and the
    /// fleet-on ones are connected to Redis).
    pub async fn start(paths: &Paths, ok_mock: SocketAddr, replicas: usize) -> Result<Rig> {
        let (redis, redis_addr) = redis::start(&paths.redis, &paths.work).await?;
        let url = format!("redis://{redis_addr}/");
        let mut down_mock = start_mock(paths, "mock-down", &["--mix", "status:503=1"]).await?;
        wait_ready(&mut down_mock.proc, down_mock.addr, "/mock/stats").await?;
        let steady_fleet = [
            ("BACKSTOP_FLEET__REDIS_URL", url.as_str()),
            ("BACKSTOP_FLEET__KEY_PREFIX", "bench-steady:"),
        ];
        let steady_off = start_backstop(paths, "backstop-fleet-off", ok_mock, &[]).await?;
        let steady_on = start_backstop(paths, "backstop-fleet-on", ok_mock, &steady_fleet).await?;
        let config = paths.work.join("outage.toml");
        std::fs::write(&config, outage_config(ok_mock))
            .with_context(|| format!("write {}", config.display()))?;
        let gateway = Gateway {
            bin: "backstop",
            config,
        };
        let outage_fleet = [
            ("BACKSTOP_FLEET__REDIS_URL", url.as_str()),
            ("BACKSTOP_FLEET__KEY_PREFIX", "bench-outage:"),
        ];
        let (mut outage_off, mut outage_on) = (Vec::new(), Vec::new());
        for i in 0..replicas {
            let name = format!("backstop-outage-off-{i}");
            outage_off.push(start_gateway(paths, &name, &gateway, down_mock.addr, &[]).await?);
            let name = format!("backstop-outage-on-{i}");
            outage_on
                .push(start_gateway(paths, &name, &gateway, down_mock.addr, &outage_fleet).await?);
        }
        let mut rig = Rig {
            redis,
            redis_addr,
            down_mock,
            steady_off,
            steady_on,
            outage_off,
            outage_on,
        };
        rig.wait_ready().await?;
        Ok(rig)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let all = [&mut self.steady_off, &mut self.steady_on]
            .into_iter()
            .chain(self.outage_off.iter_mut())
            .chain(self.outage_on.iter_mut());
        for s in all {
            wait_ready(&mut s.proc, s.addr, "/readyz").await?;
        }
        let fleet_on = std::iter::once(&self.steady_on).chain(self.outage_on.iter());
        for s in fleet_on {
            scrape::wait_for(s.addr, "backstop_fleet_connected", 1.0, CONNECT_WITHIN)
                .await
                .with_context(|| format!("{} never connected to Redis", s.proc.name))?;
        }
        Ok(())
    }

    /// Stops everything.
    pub async fn stop(self) {
        let grace = Duration::from_secs(5);
        let gateways = [self.steady_off, self.steady_on]
            .into_iter()
            .chain(self.outage_off)
            .chain(self.outage_on);
        for s in gateways {
            s.proc.stop(grace).await;
        }
        self.down_mock.proc.stop(grace).await;
        self.redis.stop(grace).await;
    }
}

/// What the counters said at one moment.
pub struct Snapshot {
    /// The gateways' CPU ticks, summed.
    ticks: u64,
    redis_ticks: u64,
    /// `backstop_fleet_operations_total` by op, summed over the gateways.
    ops: BTreeMap<String, f64>,
    /// Of those operations, the ones whose result was not `ok` (error,
    /// timeout: the replica then went on with its own state).
    ops_not_ok: f64,
    /// `backstop_fleet_events_total`, summed.
    events: f64,
    redis: BTreeMap<String, u64>,
    /// Requests the failing mock has seen.
    primary: u64,
}

/// Reads the counters of `gateways` (and Redis, the failing mock).
pub async fn snapshot(rig: &Rig, gateways: &[&Service]) -> Result<Snapshot> {
    let pids: Vec<u32> = gateways.iter().map(|s| s.proc.pid).collect();
    let mut ops = BTreeMap::new();
    let (mut events, mut ops_not_ok) = (0.0, 0.0);
    for s in gateways {
        let text = scrape::metrics(s.addr).await?;
        for (op, v) in scrape::by_label(&text, "backstop_fleet_operations_total", "op") {
            *ops.entry(op).or_insert(0.0) += v;
        }
        let results = scrape::by_label(&text, "backstop_fleet_operations_total", "result");
        ops_not_ok += results
            .iter()
            .filter(|(r, _)| r.as_str() != "ok")
            .map(|(_, v)| v)
            .sum::<f64>();
        events += scrape::sum(&text, "backstop_fleet_events_total");
    }
    Ok(Snapshot {
        ticks: cpu_ticks(&pids)?,
        redis_ticks: usage(&[rig.redis.pid])?.cpu_ticks,
        ops,
        ops_not_ok,
        events,
        redis: redis::commandstats(rig.redis_addr).await?,
        primary: mock_total(rig.down_mock.addr).await?,
    })
}

/// What happened between two snapshots.
pub struct Delta {
    /// The gateways' CPU ticks.
    pub ticks: u64,
    pub redis_ticks: u64,
    /// Fleet operations by op.
    pub ops: BTreeMap<String, u64>,
    /// Fleet operations that did not answer `ok`.
    pub ops_not_ok: u64,
    /// Fleet events applied.
    pub events: u64,
    /// Redis commands by name.
    pub redis: BTreeMap<String, u64>,
    /// Requests to the failing primary.
    pub primary: u64,
}

impl Delta {
    /// `after − before`.
    pub fn between(before: &Snapshot, after: &Snapshot) -> Delta {
        let ops = after
            .ops
            .iter()
            .map(|(k, v)| {
                let d = v - before.ops.get(k).copied().unwrap_or(0.0);
                (k.clone(), d.max(0.0).round() as u64)
            })
            .filter(|(_, v)| *v > 0)
            .collect();
        Delta {
            ticks: after.ticks.saturating_sub(before.ticks),
            redis_ticks: after.redis_ticks.saturating_sub(before.redis_ticks),
            ops,
            ops_not_ok: (after.ops_not_ok - before.ops_not_ok).max(0.0).round() as u64,
            events: (after.events - before.events).max(0.0).round() as u64,
            redis: redis::delta(&after.redis, &before.redis),
            primary: after.primary.saturating_sub(before.primary),
        }
    }

    /// Fleet operations, all ops.
    pub fn ops_total(&self) -> u64 {
        self.ops.values().sum()
    }

    /// Redis commands, all names.
    pub fn redis_total(&self) -> u64 {
        self.redis.values().sum()
    }
}

/// Adds `from` into `into`, key by key.
pub fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outage_config_names_both_targets_and_the_circuit() {
        let text = outage_config("127.0.0.1:9".parse().unwrap());
        for want in [
            "url = \"http://127.0.0.1:9/v1\"",
            "{ upstream = \"default\", model = \"gpt-4o-mini\" }",
            "{ upstream = \"backup\", model = \"gpt-4o-mini\" }",
            "consecutive_failures = 5\n",
            "cooldown_ms = 1000\n",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }
}
