//! `bench/run --soak [--minutes N]`: backstop under mixed traffic for N
//! minutes, in front of a `backstop-mock` with a 20 % fault mix of several
//! kinds, with a steady population of normal clients ([`soak_clients`]) and
//! populations of slow clients ([`slow`]), everything on 127.0.0.1 and
//! bounded. Every 5 s it samples backstop's RSS, open fds and threads and
//! the clients' counters; at the end it writes `soak.json` and `soak.md`
//! ([`soak_report`]). A benchmark, not a test: the number of lost requests
//! must be 0, and is reported, not asserted.
//!
//! [`soak_clients`]: crate::soak_clients
//! [`slow`]: crate::slow
//! [`soak_report`]: crate::soak_report

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::machine::{self, Machine};
use crate::procs;
use crate::setup::{self, Paths, Service};
use crate::soak_clients::{self, REQUEST_TIMEOUT};
use crate::soak_report::{Sample, SoakReport, SoakSetup};
use crate::{slow, slow_stats::SlowStats};

/// The mock's steps for requests without a scenario: 20 % faults of seven
/// kinds (errors the gateway retries, a stall and a hold within its
/// timeouts, a stream cut after two events, a TCP reset).
pub const SOAK_MIX: &str =
    "ok=80,status:429=4,status:503=4,stall:3000=3,cut:2=3,hold:2000=3,reset=3";
/// Stream shape of the normal clients' streams (the mock's defaults).
pub const CHUNKS: u32 = 16;
pub const CHUNK_DELAY_MS: u64 = 10;
/// Normal clients, one keep-alive connection each.
pub const NORMAL_CONNECTIONS: usize = 16;
/// How often backstop and the counters are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Counters the clients bump and the sampler reads.
#[derive(Debug, Default)]
pub struct Live {
    /// Normal requests answered.
    pub completed: AtomicU64,
    /// Normal requests lost.
    pub lost: AtomicU64,
    /// Slow-client connections open now.
    pub slow_open: AtomicU64,
}

/// Reads backstop (`pid`) and the counters, `t` after the start.
fn sample(pid: u32, t: Duration, live: &Live) -> Sample {
    Sample {
        t_s: t.as_secs_f64(),
        rss_mib: procs::status_kib(pid, "VmRSS")
            .ok()
            .map(|k| k as f64 / 1024.0),
        fds: procs::fd_count(pid).ok(),
        threads: procs::status_kib(pid, "Threads").ok(),
        completed: live.completed.load(Ordering::Relaxed),
        lost: live.lost.load(Ordering::Relaxed),
        slow_open: live.slow_open.load(Ordering::Relaxed),
    }
}

fn progress(s: &Sample) {
    eprintln!(
        "  soak t={:>4.0}s  RSS {:>6} MiB  fds {:>5}  answered {:>7}  lost {:>4}  slow open {:>3}",
        s.t_s,
        s.rss_mib.map_or("—".into(), |v| format!("{v:.1}")),
        s.fds.map_or("—".into(), |v| v.to_string()),
        s.completed,
        s.lost,
        s.slow_open
    );
}

/// The load, the sampling and the report, with backstop and the mock running.
async fn soak(backstop: &mut Service, minutes: f64, mut machine: Machine) -> Result<SoakReport> {
    let (pid, addr) = (backstop.proc.pid, backstop.addr);
    let live = Arc::new(Live::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(minutes * 60.0);
    let mut samples = vec![sample(pid, Duration::ZERO, &live)];
    let (release, released) = watch::channel(false);
    let normal = tokio::spawn(soak_clients::run(
        addr,
        NORMAL_CONNECTIONS,
        started,
        deadline,
        live.clone(),
    ));
    let slow = tokio::spawn(slow::run(addr, deadline, live.clone(), released));
    let mut next = started + SAMPLE_EVERY;
    while next < deadline {
        tokio::time::sleep_until(next.into()).await;
        let s = sample(pid, started.elapsed(), &live);
        progress(&s);
        samples.push(s);
        next += SAMPLE_EVERY;
    }
    // The slow clients open at the deadline hold their sockets until the
    // release: the last sample sees them.
    tokio::time::sleep_until((deadline + Duration::from_millis(300)).into()).await;
    let last = sample(pid, started.elapsed(), &live);
    progress(&last);
    samples.push(last);
    let _ = release.send(true);
    eprintln!("  soak over; waiting for the requests under way");
    let slow = slow.await.context("slow clients")?;
    let normal = normal.await.context("normal clients")??;
    let duration_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = sample(pid, started.elapsed(), &live);
    machine.loadavg_end = machine::loadavg();
    let mut report = SoakReport {
        machine,
        setup: SoakSetup {
            minutes,
            mock_mix: SOAK_MIX.into(),
            mock_chunks: CHUNKS,
            mock_chunk_delay_ms: CHUNK_DELAY_MS,
            backstop: "config/backstop.toml defaults, BACKSTOP_LOG__LEVEL=warn".into(),
            normal_connections: NORMAL_CONNECTIONS,
            request_timeout_s: REQUEST_TIMEOUT.as_secs(),
            sample_every_s: SAMPLE_EVERY.as_secs(),
        },
        duration_s,
        normal,
        slow: slow.into_values().collect::<Vec<SlowStats>>(),
        samples,
        rss_mib: None,
        fds: None,
        after_clients_left: Some(after),
        backstop_exit: backstop.proc.check_alive().err().map(|e| format!("{e:#}")),
    };
    report.summarize();
    Ok(report)
}

/// Starts the mock and backstop, soaks for `minutes`, writes `soak.json`
/// and `soak.md` into `out`.
pub async fn run(paths: &Paths, minutes: f64, out: &Path) -> Result<()> {
    let machine = Machine::describe(&paths.repo, None, procs::clk_tck());
    eprintln!("backstop-bench: soak for {minutes} min; starting the mock and backstop");
    let (chunks, delay) = (CHUNKS.to_string(), CHUNK_DELAY_MS.to_string());
    let mut mock = setup::start_mock(
        paths,
        "soak-mock",
        &[
            "--mix",
            SOAK_MIX,
            "--chunks",
            &chunks,
            "--chunk-delay-ms",
            &delay,
        ],
    )
    .await?;
    let mut backstop = setup::start_backstop(paths, "soak-backstop", mock.addr, &[]).await?;
    setup::wait_ready(&mut mock.proc, mock.addr, "/mock/stats").await?;
    setup::wait_ready(&mut backstop.proc, backstop.addr, "/readyz").await?;
    let result = soak(&mut backstop, minutes, machine).await;
    let grace = Duration::from_secs(5);
    backstop.proc.stop(grace).await;
    mock.proc.stop(grace).await;
    let report = result?;
    let json = out.join("soak.json");
    let md = out.join("soak.md");
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("write {}", json.display()))?;
    std::fs::write(&md, report.markdown()).with_context(|| format!("write {}", md.display()))?;
    eprintln!("wrote {} and {}", json.display(), md.display());
    Ok(())
}
