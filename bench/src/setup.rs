//! Starting what is measured, each on a 127.0.0.1 port: two chaos upstreams
//! (`backstop-mock`, one always `ok` and one with 5 % 429/503), three
//! gateways (`backstop` as users run it, the same with inspection off, the
//! same against the faulty mock with 10 ms retry backoff), nginx with one
//! server per mock and the framework floor (`backstop-floor`, a bare hyper
//! proxy) in front of the `ok` mock; then waiting until each answers and
//! checking that a chat completion and a stream go through every path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::Command;

use crate::client::{fetch_once, Call, Conn};
use crate::nginx;
use crate::procs::{Proc, START_TIMEOUT};
use crate::stream;

/// The mix of the faulty mock.
pub const FAULT_MIX: &str = "ok=95,status:429=2,status:503=3";

/// A started process and where it listens.
pub struct Service {
    /// The process.
    pub proc: Proc,
    /// Its address.
    pub addr: SocketAddr,
}

/// Everything started for one bench run.
pub struct Fleet {
    pub mock: Service,
    pub faulty_mock: Service,
    pub backstop: Service,
    pub backstop_no_inspect: Service,
    pub backstop_faults: Service,
    pub floor: Service,
    pub nginx: Proc,
    pub nginx_addr: SocketAddr,
    pub nginx_faults_addr: SocketAddr,
}

/// Where the binaries and files are.
pub struct Paths {
    /// The repository root (its `target/release` holds the binaries).
    pub repo: PathBuf,
    /// The nginx binary (empty for the soak, which does not use it).
    pub nginx: PathBuf,
    /// The redis-server binary (empty for the soak, which does not use it).
    pub redis: PathBuf,
    /// Scratch directory: logs, nginx config and temp files.
    pub work: PathBuf,
}

fn base_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    // Nothing from the caller's environment (BACKSTOP_*, RUST_LOG...) leaks in.
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

/// Starts `backstop-mock` with `args` (`--mix ...`) besides its address.
pub async fn start_mock(paths: &Paths, name: &str, args: &[&str]) -> Result<Service> {
    let mut cmd = base_command(&paths.repo.join("target/release/backstop-mock"));
    cmd.args(["--listen", "127.0.0.1:0"]).args(args);
    let log = paths.work.join(format!("{name}.log"));
    let (proc, addr) = Proc::spawn_listening(name, cmd, "backstop-mock", &log).await?;
    Ok(Service { proc, addr })
}

/// Starts `backstop` (release, `config/backstop.toml`, logs at `warn`) in
/// front of `upstream`, with `extra` environment variables.
pub async fn start_backstop(
    paths: &Paths,
    name: &str,
    upstream: SocketAddr,
    extra: &[(&str, &str)],
) -> Result<Service> {
    let gateway = Gateway {
        bin: "backstop",
        config: paths.repo.join("config/backstop.toml"),
    };
    start_gateway(paths, name, &gateway, upstream, extra).await
}

/// Which gateway build runs with which config file.
pub struct Gateway {
    /// A binary in `target/release` (`backstop`, `backstop-alloc-count`).
    pub bin: &'static str,
    /// Its `--config`.
    pub config: PathBuf,
}

/// Starts `gateway` (logs at `warn`) with `upstream` as `[upstream]` and
/// `extra` environment variables.
pub async fn start_gateway(
    paths: &Paths,
    name: &str,
    gateway: &Gateway,
    upstream: SocketAddr,
    extra: &[(&str, &str)],
) -> Result<Service> {
    let mut cmd = base_command(&paths.repo.join("target/release").join(gateway.bin));
    cmd.current_dir(&paths.repo)
        .arg("--config")
        .arg(&gateway.config)
        .env("BACKSTOP_LISTEN", "127.0.0.1:0")
        .env("BACKSTOP_UPSTREAM", format!("http://{upstream}/v1"))
        .env("BACKSTOP_LOG__LEVEL", "warn");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let log = paths.work.join(format!("{name}.log"));
    let (proc, addr) = Proc::spawn_listening(name, cmd, "backstop", &log).await?;
    Ok(Service { proc, addr })
}

/// Starts the framework floor (`backstop-floor`) in front of `upstream`.
async fn start_floor(paths: &Paths, upstream: SocketAddr) -> Result<Service> {
    let mut cmd = base_command(&paths.repo.join("target/release/backstop-floor"));
    cmd.args(["--listen", "127.0.0.1:0", "--upstream"])
        .arg(upstream.to_string());
    let log = paths.work.join("floor.log");
    let (proc, addr) = Proc::spawn_listening("floor", cmd, "backstop-floor", &log).await?;
    Ok(Service { proc, addr })
}

/// Polls `GET path` at `addr` until it answers 200.
pub async fn wait_ready(proc: &mut Proc, addr: SocketAddr, path: &str) -> Result<()> {
    let start = Instant::now();
    let call = Call::get(path);
    loop {
        proc.check_alive()?;
        match fetch_once(addr, &call).await {
            Ok((200, _)) => return Ok(()),
            Ok(_) | Err(_) if start.elapsed() < START_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok((status, body)) => bail!(
                "{} at {addr}{path}: {status} {}",
                proc.name,
                String::from_utf8_lossy(&body)
            ),
            Err(e) => return Err(e.context(format!("{} never answered {path}", proc.name))),
        }
    }
}

impl Fleet {
    /// Starts everything and waits until each answers.
    pub async fn start(paths: &Paths) -> Result<Fleet> {
        let mut mock = start_mock(paths, "mock", &[]).await?;
        let mut faulty_mock = start_mock(paths, "mock-faults", &["--mix", FAULT_MIX]).await?;
        let mut backstop = start_backstop(paths, "backstop", mock.addr, &[]).await?;
        let mut backstop_no_inspect = start_backstop(
            paths,
            "backstop-no-inspect",
            mock.addr,
            &[("BACKSTOP_INSPECT__MAX_BODY_BYTES", "1")],
        )
        .await?;
        let mut backstop_faults = start_backstop(
            paths,
            "backstop-faults",
            faulty_mock.addr,
            &[("BACKSTOP_RETRY__BASE_DELAY_MS", "10")],
        )
        .await?;
        let mut floor = start_floor(paths, mock.addr).await?;
        let nginx_addr = nginx::free_port()?;
        let nginx_faults_addr = nginx::free_port()?;
        let mut nginx_proc = nginx::start(
            &paths.nginx,
            &paths.work,
            &[
                (nginx_addr, mock.addr),
                (nginx_faults_addr, faulty_mock.addr),
            ],
        )?;
        for s in [&mut mock, &mut faulty_mock] {
            wait_ready(&mut s.proc, s.addr, "/mock/stats").await?;
        }
        for s in [
            &mut backstop,
            &mut backstop_no_inspect,
            &mut backstop_faults,
        ] {
            wait_ready(&mut s.proc, s.addr, "/readyz").await?;
        }
        wait_ready(&mut floor.proc, floor.addr, "/v1/models").await?;
        wait_ready(&mut nginx_proc, nginx_addr, "/v1/models")
            .await
            .with_context(|| format!("see {}", paths.work.join("nginx-error.log").display()))?;
        wait_ready(&mut nginx_proc, nginx_faults_addr, "/v1/models").await?;
        Ok(Fleet {
            mock,
            faulty_mock,
            backstop,
            backstop_no_inspect,
            backstop_faults,
            floor,
            nginx: nginx_proc,
            nginx_addr,
            nginx_faults_addr,
        })
    }

    /// Checks that a chat completion and a stream go through each path.
    pub async fn check(&self) -> Result<()> {
        let chat = Call::chat();
        let streamed = Call::chat_stream(3, 0);
        for (name, addr) in [
            ("direct", self.mock.addr),
            ("nginx", self.nginx_addr),
            ("floor", self.floor.addr),
            ("backstop", self.backstop.addr),
            ("backstop-no-inspect", self.backstop_no_inspect.addr),
        ] {
            let (status, body) = fetch_once(addr, &chat).await?;
            let text = String::from_utf8_lossy(&body);
            if status != 200 || !text.contains("\"choices\"") {
                bail!("{name}: chat completion answered {status}: {text}");
            }
            let mut conn = Conn::open(addr).await?;
            let sample = stream::one(&mut conn, &streamed)
                .await
                .with_context(|| format!("{name}: stream"))?;
            if !sample.done || sample.events < 5 {
                bail!("{name}: stream ended after {} events", sample.events);
            }
        }
        Ok(())
    }

    /// Stops everything (nginx by SIGTERM to its master, which stops its worker).
    pub async fn stop(self) {
        let grace = Duration::from_secs(5);
        self.nginx.stop(grace).await;
        for s in [
            self.backstop,
            self.backstop_no_inspect,
            self.backstop_faults,
            self.floor,
            self.mock,
            self.faulty_mock,
        ] {
            s.proc.stop(grace).await;
        }
    }
}
