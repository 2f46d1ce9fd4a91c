//! A real Prometheus for the tests: `prometheus` from Debian's package,
//! started as a child process on a free loopback port with its own storage
//! and a 1 s scrape of the given targets (config/prometheus.yml adapted,
//! config/alerts.yml loaded), killed and cleaned up on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::common::client;
use super::root;

/// Generous bound on waiting for Prometheus (start + a 1 s scrape).
const PROMETHEUS_WAIT: Duration = Duration::from_secs(15);

/// Whether `tool` runs; when it does not, fail with how to install it
/// (or skip, only when BACKSTOP_SKIP_PROMETHEUS=1).
pub fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found && std::env::var("BACKSTOP_SKIP_PROMETHEUS").as_deref() == Ok("1") {
        eprintln!("skipping: {tool} not on PATH and BACKSTOP_SKIP_PROMETHEUS=1");
        return false;
    }
    assert!(
        found,
        "`{tool}` is not on PATH: install Debian's prometheus package \
         (apt-get install prometheus), or set BACKSTOP_SKIP_PROMETHEUS=1 to skip locally"
    );
    true
}

/// A Prometheus child process with its own storage, killed and cleaned up
/// on drop.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` every second, with
    /// config/alerts.yml loaded, and waits until it is ready.
    pub async fn start(targets: &[String]) -> Prometheus {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "backstop-prometheus-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();

        let base: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            &std::fs::read_to_string(root().join("config/prometheus.yml")).unwrap(),
        )
        .unwrap();
        let mut config: Value = serde_json::to_value(base).unwrap();
        config["global"]["scrape_interval"] = json!("1s");
        config["global"]["evaluation_interval"] = json!("1s");
        config["scrape_configs"][0]["static_configs"][0]["targets"] = json!(targets);
        config["rule_files"] = json!([root().join("config/alerts.yml")]);
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let prom = Prometheus {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + PROMETHEUS_WAIT;
        loop {
            let ready = client().get(format!("{}/-/ready", prom.base)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return prom;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus not ready:\n{}",
                prom.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>` with `query`; the whole JSON answer.
    pub async fn api(&self, path: &str, query: &str) -> Value {
        client()
            .get(format!("{}/api/v1/{path}", self.base))
            .query(&[("query", query)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// An instant query's value as a number, `None` when it has no result.
    pub async fn value(&self, query: &str) -> Option<f64> {
        let answer = self.api("query", query).await;
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        let result = answer["data"]["result"].as_array()?.first()?.clone();
        result["value"][1].as_str()?.parse().ok()
    }

    /// Polls (every 250 ms, within [`PROMETHEUS_WAIT`]) until `query` equals `want`.
    pub async fn wait_for(&self, query: &str, want: f64) {
        let deadline = Instant::now() + PROMETHEUS_WAIT;
        loop {
            let got = self.value(query).await;
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query}: got {got:?}, want {want}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
