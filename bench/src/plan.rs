//! How much each scenario runs: the full plan (about 8 minutes of
//! measurement) and the smoke plan (tiny counts, proves the harness runs end
//! to end). Every scenario repeats in rounds, each round visiting every
//! target in turn, so machine noise falls on all of them alike.

use std::time::Duration;

use serde::Serialize;

use crate::load::Budget;

/// A scenario's shape: concurrency, the budget of one segment (one target,
/// one round), and the number of rounds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Step {
    /// Concurrent workers, one connection each.
    pub conc: usize,
    /// Requests (streams) per segment; 0 = until `seconds`.
    pub requests: u64,
    /// Seconds per segment; 0 = until `requests`.
    pub seconds: f64,
    /// Rounds.
    pub rounds: u32,
}

impl Step {
    /// The segment budget.
    pub fn budget(&self) -> Budget {
        Budget {
            requests: self.requests,
            duration: (self.seconds > 0.0).then(|| Duration::from_secs_f64(self.seconds)),
        }
    }
}

/// Everything the bench will run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// "full" or "smoke".
    pub mode: &'static str,
    /// Warm-up per target before anything is measured.
    pub warmup: Step,
    /// Warm-up requests on each new connection of a latency segment.
    pub conn_warmup: u32,
    /// Non-streaming latency, one step per concurrency (1, 16, 64); the
    /// last one also gives throughput and includes backstop with
    /// inspection off.
    pub latency: Vec<Step>,
    /// Streams of 64 chunks 20 ms apart.
    pub paced: Step,
    /// Streams of 64 chunks, no delay.
    pub unpaced: Step,
    /// 5 % injected 429/503.
    pub faults: Step,
    /// Allocation counts (the `alloc-count` build of backstop).
    pub allocs: AllocPlan,
    /// Fleet mode on vs off.
    pub fleet: FleetPlan,
}

/// How the allocation counts are taken (see `allocs.rs`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AllocPlan {
    /// Non-streamed requests: `requests` per round, `conc` at a time.
    pub requests: Step,
    /// Streams per round and kind (many chunks, few chunks), `conc` at a time.
    pub streams: Step,
    /// Content chunks of the long and the short streams.
    pub many_chunks: u32,
    pub few_chunks: u32,
    /// Back-to-back scrapes that measure a scrape's own allocations.
    pub scrapes: u32,
}

/// How fleet mode is measured (see `fleet_mode.rs`).
#[derive(Debug, Clone, Serialize)]
pub struct FleetPlan {
    /// Steady state (every answer ok): one step per concurrency, rounds
    /// over direct / fleet off / fleet on.
    pub latency: Vec<Step>,
    /// The outage: `conc` workers on each replica at once, rounds over the
    /// fleet-off replicas and the fleet-on ones.
    pub outage: Step,
    /// Gateway replicas per side in the outage.
    pub replicas: usize,
}

fn step(conc: usize, requests: u64, seconds: f64, rounds: u32) -> Step {
    Step {
        conc,
        requests,
        seconds,
        rounds,
    }
}

impl Plan {
    /// The full plan.
    pub fn full() -> Plan {
        Plan {
            mode: "full",
            warmup: step(16, 0, 2.0, 1),
            conn_warmup: 5,
            latency: vec![step(1, 0, 3.0, 5), step(16, 0, 3.0, 5), step(64, 0, 3.0, 5)],
            paced: step(16, 48, 0.0, 5),
            unpaced: step(1, 0, 2.0, 5),
            faults: step(16, 2500, 0.0, 4),
            allocs: AllocPlan {
                requests: step(16, 10_000, 0.0, 3),
                streams: step(4, 20, 0.0, 3),
                many_chunks: 256,
                few_chunks: 4,
                scrapes: 10,
            },
            fleet: FleetPlan {
                latency: vec![step(1, 0, 3.0, 3), step(64, 0, 3.0, 3)],
                outage: step(8, 0, 4.0, 3),
                replicas: 3,
            },
        }
    }

    /// The smoke plan: a few hundred requests, a few streams.
    pub fn smoke() -> Plan {
        Plan {
            mode: "smoke",
            warmup: step(4, 40, 0.0, 1),
            conn_warmup: 1,
            latency: vec![
                step(1, 60, 0.0, 2),
                step(16, 160, 0.0, 2),
                step(64, 256, 0.0, 2),
            ],
            paced: step(2, 2, 0.0, 1),
            unpaced: step(1, 6, 0.0, 2),
            faults: step(8, 200, 0.0, 2),
            allocs: AllocPlan {
                requests: step(4, 200, 0.0, 1),
                streams: step(2, 4, 0.0, 1),
                many_chunks: 64,
                few_chunks: 4,
                scrapes: 3,
            },
            fleet: FleetPlan {
                latency: vec![step(1, 60, 0.0, 1), step(64, 256, 0.0, 1)],
                outage: step(4, 0, 1.0, 1),
                replicas: 3,
            },
        }
    }
}
