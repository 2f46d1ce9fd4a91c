//! Fleet mode against a real `redis-server` (Debian's package; `scripts/test`
//! installs it) and real gateway processes: a circuit one replica opens is
//! the fleet's, one probe reaches a recovering target, a tight rate-limit
//! window is counted fleet-wide, and losing Redis fails no request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::scripted::{completion, Answer, Scripted};
use common::{client, header_text};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_backstop");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` on a loopback port, without persistence; killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs Debian's redis-server)");
        let redis = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn start() -> Redis {
        Redis::start_on(free_port())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A gateway process started from a TOML config; killed on drop.
struct Gateway {
    child: Child,
    base: String,
    _config: PathGuard,
}

struct PathGuard(std::path::PathBuf);

impl Drop for PathGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Gateway {
    fn start(toml: &str) -> Gateway {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "backstop-fleet-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, toml).unwrap();
        let mut child = Command::new(BIN)
            .args(["--config", path.to_str().unwrap()])
            .env_clear()
            .env("RUST_LOG", "warn")
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = common::listening_on(&mut child);
        Gateway {
            child,
            base,
            _config: PathGuard(path),
        }
    }

    async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one series, 0 when absent.
    async fn series(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// Polls a series until it has `value` (bounded).
    async fn wait_for(&self, name: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.series(name).await == value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never became {value} on {}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn ask(&self, model: &str) -> (u16, String, String) {
        let resp = client()
            .post(format!("{}/v1/chat/completions", self.base))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let header = |n: &str| header_text(resp.headers(), n);
        let (status, kind, target) = (
            resp.status().as_u16(),
            header("x-backstop-kind"),
            header("x-backstop-target"),
        );
        resp.bytes().await.unwrap();
        (status, kind, target)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn routed_config(primary: &str, backup: &str, redis: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
[upstream]
url = "{primary}"
[upstreams.backup]
url = "{backup}"
[[routes]]
name = "gpt-x"
models = ["gpt-x"]
attempts_per_target = 1
targets = [{{ upstream = "default", model = "primary-model" }}, {{ upstream = "backup", model = "fallback-model" }}]
[circuit]
consecutive_failures = 2
cooldown_ms = 1500
max_cooldown_ms = 1500
[retry]
base_delay_ms = 1
max_delay_ms = 5
[fleet]
redis_url = "{redis}"
key_prefix = "t{port}:"
"#,
        port = free_port()
    )
}

const PRIMARY: &str = "backstop_target_state{target=\"default/primary-model\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_one_replica_opens_is_the_fleets_and_one_probe_reaches_the_recovering_target() {
    let redis = Redis::start();
    let down = Arc::new(AtomicBool::new(true));
    let primary = {
        let down = down.clone();
        Scripted::start(move |_, _| {
            if down.load(Ordering::SeqCst) {
                Answer::json(503, r#"{"error":{"message":"down"}}"#)
            } else {
                // A slow recovery answer: the probe is in flight for a while.
                let mut a = Answer::json(200, &completion("primary-model"));
                a.chunks[0].0 = Duration::from_millis(600);
                a
            }
        })
        .await
    };
    let backup = Scripted::start(|_, _| Answer::json(200, &completion("fallback-model"))).await;
    let toml = routed_config(&primary.base_url(), &backup.base_url(), &redis.url());
    let a = Gateway::start(&toml);
    let b = Gateway::start(&toml);
    a.wait_for("backstop_fleet_connected", 1.0).await;
    b.wait_for("backstop_fleet_connected", 1.0).await;
    // Two failures on A open its circuit; B hears of it.
    for _ in 0..2 {
        assert_eq!(a.ask("gpt-x").await.2, "backup/fallback-model");
    }
    assert_eq!(primary.count(), 2);
    a.wait_for(PRIMARY, 2.0).await;
    b.wait_for(PRIMARY, 2.0).await;
    assert_eq!(
        b.series("backstop_fleet_events_total{event=\"open\"}")
            .await,
        1.0
    );
    // B never sends to the primary while the fleet's circuit is open.
    for _ in 0..5 {
        let (status, _, target) = b.ask("gpt-x").await;
        assert_eq!((status, target.as_str()), (200, "backup/fallback-model"));
    }
    assert_eq!(
        primary.count(),
        2,
        "B's requests to the open target stayed flat"
    );
    // The primary recovers; after the cool-down both replicas want to probe
    // at once: one probe reaches it, the rest are served by the backup.
    down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_600)).await; // the cool-down itself
    let burst: Vec<_> = (0..6)
        .map(|i| {
            let base = if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            };
            tokio::spawn(async move {
                let resp = client()
                    .post(format!("{base}/v1/chat/completions"))
                    .json(
                        &json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}),
                    )
                    .send()
                    .await
                    .unwrap();
                resp.headers()["x-backstop-target"]
                    .to_str()
                    .unwrap()
                    .to_string()
            })
        })
        .collect();
    let mut targets = Vec::new();
    for t in burst {
        targets.push(t.await.unwrap());
    }
    assert_eq!(
        primary.count(),
        3,
        "one probe across the fleet: {targets:?}"
    );
    assert_eq!(
        targets
            .iter()
            .filter(|t| *t == "default/primary-model")
            .count(),
        1,
        "{targets:?}"
    );
    // The probe closed the circuit everywhere.
    a.wait_for(PRIMARY, 0.0).await;
    b.wait_for(PRIMARY, 0.0).await;
    assert_eq!(b.ask("gpt-x").await.2, "default/primary-model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_window_is_counted_across_the_fleet() {
    let redis = Redis::start();
    let sent = Arc::new(AtomicUsize::new(0));
    let upstream = {
        let sent = sent.clone();
        Scripted::start(move |_, _| {
            let n = sent.fetch_add(1, Ordering::SeqCst) + 1;
            if n > 10 {
                return Answer::json(
                    429,
                    r#"{"error":{"message":"over the limit","code":"rate_limit_exceeded"}}"#,
                );
            }
            let mut a = Answer::json(200, &completion("m"));
            a.headers.push(("x-ratelimit-limit-requests", "10".into()));
            a.headers
                .push(("x-ratelimit-remaining-requests", (10 - n).to_string()));
            a.headers.push(("x-ratelimit-reset-requests", "30s".into()));
            // Slow enough that concurrent requests overlap.
            a.chunks[0].0 = Duration::from_millis(100);
            a
        })
        .await
    };
    let toml = format!(
        r#"
listen = "127.0.0.1:0"
[upstream]
url = "{}"
[retry]
max_attempts = 1
[fleet]
redis_url = "{}"
key_prefix = "t{}:"
"#,
        upstream.base_url(),
        redis.url(),
        free_port()
    );
    let replicas = [
        Gateway::start(&toml),
        Gateway::start(&toml),
        Gateway::start(&toml),
    ];
    for g in &replicas {
        g.wait_for("backstop_fleet_connected", 1.0).await;
    }
    // The first answer says 9 are left; every replica hears the window is tight.
    assert_eq!(replicas[0].ask("m").await.0, 200);
    for g in &replicas[1..] {
        g.wait_for("backstop_fleet_events_total{event=\"tight\"}", 1.0)
            .await;
    }
    // 30 concurrent requests over the three replicas: 9 go, the rest are
    // held back as rate_limited by the gateway, never sent.
    let mut all = Vec::new();
    for i in 0..30 {
        let base = replicas[i % 3].base.clone();
        all.push(tokio::spawn(async move {
            let resp = client()
                .post(format!("{base}/v1/chat/completions"))
                .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap();
            let kind = resp.headers()["x-backstop-kind"]
                .to_str()
                .unwrap()
                .to_string();
            (resp.status().as_u16(), kind)
        }));
    }
    let mut answered = 0;
    let mut held = 0;
    for t in all {
        match t.await.unwrap() {
            (200, _) => answered += 1,
            (429, kind) if kind == "rate_limited" => held += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((answered, held), (9, 21));
    assert_eq!(
        sent.load(Ordering::SeqCst),
        10,
        "the provider got exactly what it said it would accept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_fails_no_request_and_the_fleet_reforms_when_it_returns() {
    let mut redis = Redis::start();
    let port = redis.port;
    let primary =
        Scripted::start(|_, _| Answer::json(503, r#"{"error":{"message":"down"}}"#)).await;
    let backup = Scripted::start(|_, _| Answer::json(200, &completion("fallback-model"))).await;
    let toml = routed_config(&primary.base_url(), &backup.base_url(), &redis.url());
    let a = Gateway::start(&toml);
    let b = Gateway::start(&toml);
    a.wait_for("backstop_fleet_connected", 1.0).await;
    b.wait_for("backstop_fleet_connected", 1.0).await;
    redis.stop();
    a.wait_for("backstop_fleet_connected", 0.0).await;
    b.wait_for("backstop_fleet_connected", 0.0).await;
    // Every request still gets its normal answer, in its usual time.
    for _ in 0..4 {
        let started = Instant::now();
        let (status, _, target) = a.ask("gpt-x").await;
        assert_eq!((status, target.as_str()), (200, "backup/fallback-model"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    // A's circuit opened on its own; B, cut off, did not hear of it.
    a.wait_for(PRIMARY, 2.0).await;
    assert_eq!(b.series(PRIMARY).await, 0.0);
    // Redis is back: both reconnect, and A's next news reaches B. The
    // cool-down ends, A's probe fails, the circuit reopens for the fleet.
    let _redis = Redis::start_on(port);
    a.wait_for("backstop_fleet_connected", 1.0).await;
    b.wait_for("backstop_fleet_connected", 1.0).await;
    tokio::time::sleep(Duration::from_millis(1_600)).await; // the cool-down itself
    assert_eq!(a.ask("gpt-x").await.2, "backup/fallback-model");
    b.wait_for(PRIMARY, 2.0).await;
    let _ = Value::Null;
}
