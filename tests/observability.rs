//! The observability assets against the real tools (issue: observability
//! and deployment): the gateway's `/metrics` through `promtool check
//! metrics`, a real Prometheus scraping an in-process gateway (exact counter
//! values, the alert rules loaded), the Grafana dashboard's queries (only
//! exported names, each accepted by Prometheus), and every YAML/JSON asset
//! parsed, the Kubernetes sidecar's embedded backstop.toml loaded by the
//! gateway's own config loader.
//!
//! `prometheus` and `promtool` come from Debian's `prometheus` package
//! (`.ci/run` installs it). Without them these tests fail, unless
//! `BACKSTOP_SKIP_PROMETHEUS=1` (for a laptop; CI never sets it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "observability/assets.rs"]
mod assets;
mod common;
#[path = "observability/prometheus.rs"]
mod prometheus;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backstop::server::Running;
use backstop_mock::{MockConfig, MockServer};
use common::{client, gateway};
use prometheus::{have, Prometheus};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The crate's root directory.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Sends one chat request scripted by `scenario` (its own `x-mock-key`, so
/// a sequence walks step by step) and reads the whole answer.
async fn send(gw: &Running, scenario: &str, model: &str, stream: bool) -> u16 {
    static KEYS: AtomicUsize = AtomicUsize::new(0);
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("x-mock-scenario", scenario)
        .header(
            "x-mock-key",
            format!("k{}", KEYS.fetch_add(1, Ordering::SeqCst)),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    resp.bytes().await.unwrap();
    status
}

/// The gateway's `/metrics` once `requests` requests have been counted
/// (a request is counted when its body ends, just after the client has it).
async fn scrape(gw: &Running, requests: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = client()
            .get(format!("http://{}/metrics", gw.addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let counted: u64 = samples(&text, "backstop_requests_total").sum();
        if counted == requests {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{counted} of {requests} requests counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The values of every sample of `name` in an exposition.
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = u64> + 'a {
    text.lines()
        .filter(move |l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The metric family names an exposition declares (`# TYPE name kind`).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_metrics_of_a_gateway_that_served_every_kind_of_answer() {
    if !have("promtool") {
        return;
    }
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock.base_url(), |_| {}).await;
    let mix = [
        ("ok", false, 200),
        ("status:503", false, 503),
        ("status:429", false, 429),
        ("finish:content_filter", false, 400),
        ("finish:length", false, 200),
        ("ok", true, 200),
        ("malformed", true, 200),
        ("cut:2", true, 200),
    ];
    for (scenario, stream, status) in mix {
        assert_eq!(
            send(&gw, scenario, "m1", stream).await,
            status,
            "{scenario}"
        );
    }
    let text = scrape(&gw, mix.len() as u64).await;
    for kind in [
        "ok",
        "server_error",
        "rate_limited",
        "content_filter",
        "length",
        "stream_truncated",
    ] {
        assert!(
            text.contains(&format!("kind=\"{kind}\"")),
            "no {kind} in:\n{text}"
        );
    }
    // The process and the build, for the operator.
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(family)),
            "no {family} in:\n{text}"
        );
    }
    let build = format!(
        "backstop_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.lines().any(|l| l == build), "no {build} in:\n{text}");

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_exact_counts_of_a_known_mix() {
    if !have("prometheus") {
        return;
    }
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // Defaults: max_attempts 3, inspect.content_filter = "fail".
    let gw = gateway(&mock.base_url(), |_| {}).await;
    let prom = Prometheus::start(&[gw.addr.to_string()]).await;
    for _ in 0..5 {
        assert_eq!(send(&gw, "ok", "m1", false).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(send(&gw, "status:503", "m1", false).await, 503);
    }
    assert_eq!(send(&gw, "finish:content_filter", "m1", false).await, 400);
    assert_eq!(mock.total(), 12, "5 ok + 2 x 3 attempts + 1");

    // Counters only grow: once a scrape has all 8 requests, it is final.
    prom.wait_for("sum(backstop_requests_total)", 8.0).await;
    let exact = [
        (
            r#"sum(backstop_requests_total{kind="ok",class="none"})"#,
            5.0,
        ),
        (
            r#"sum(backstop_requests_total{kind="server_error",class="hard"})"#,
            2.0,
        ),
        (
            r#"sum(backstop_requests_total{kind="content_filter",class="soft"})"#,
            1.0,
        ),
        (r#"sum(backstop_upstream_attempts_total{kind="ok"})"#, 5.0),
        (
            r#"sum(backstop_upstream_attempts_total{kind="server_error"})"#,
            6.0,
        ),
        (
            r#"sum(backstop_upstream_attempts_total{kind="content_filter"})"#,
            1.0,
        ),
        (r#"sum(backstop_upstream_attempts_total)"#, 12.0),
        (r#"sum(backstop_retries_total)"#, 4.0),
        (r#"sum(backstop_retries_total{kind="server_error"})"#, 4.0),
        (
            r#"sum(backstop_finish_reason_total{finish_reason="stop"})"#,
            5.0,
        ),
        (
            r#"sum(backstop_finish_reason_total{finish_reason="content_filter"})"#,
            1.0,
        ),
        (r#"sum(backstop_request_duration_seconds_count)"#, 8.0),
        (
            r#"sum(backstop_request_duration_seconds_count{class="hard"})"#,
            2.0,
        ),
        (r#"sum(backstop_upstream_first_byte_seconds_count)"#, 12.0),
        (r#"sum(backstop_inflight_requests)"#, 0.0),
        (
            r#"count(backstop_requests_total{route="/v1/chat/completions",model="m1"})"#,
            3.0,
        ),
    ];
    for (query, want) in exact {
        assert_eq!(prom.value(query).await, Some(want), "{query}");
    }
    // Nothing was refused for want of budget: the series does not exist yet.
    assert_eq!(
        prom.value("sum(backstop_retry_budget_exhausted_total)")
            .await,
        None
    );

    // The alert rules loaded into a real Prometheus, every one healthy.
    let rules = prom.api("rules", "").await;
    let names: BTreeSet<&str> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|r| assert_eq!(r["health"], "ok", "{r}"))
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names.len(), 9, "{names:?}");
    assert!(names.contains("BackstopRetryBudgetExhausted"), "{names:?}");
}

/// Every `expr` of every panel of the dashboard.
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let nested = panel["panels"].as_array().into_iter().flatten();
        for p in std::iter::once(panel).chain(nested) {
            for t in p["targets"].as_array().into_iter().flatten() {
                exprs.push(t["expr"].as_str().unwrap().to_string());
            }
        }
    }
    exprs
}

/// The `backstop_*` metric names an expression uses, histogram suffixes
/// stripped.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let starts = expr
        .match_indices("backstop_")
        .chain(expr.match_indices("process_"));
    for (i, _) in starts {
        let name: String = expr[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        names.insert(base.to_string());
    }
    names
}

/// config/grafana/backstop-dashboard.json, parsed.
fn load_dashboard() -> Value {
    let path = root().join("config/grafana/backstop-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_queries_exported_metrics_and_prometheus_accepts_each() {
    if !have("prometheus") {
        return;
    }
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // One gateway for the usual series, one whose retry budget is empty and
    // whose inspection cap is tiny: together they export every family.
    let busy = gateway(&mock.base_url(), |_| {}).await;
    let starved = gateway(&mock.base_url(), |c| {
        c.retry.budget_ratio = 0.0;
        c.retry.budget_min_retries_per_sec = 0;
        c.inspect.max_body_bytes = 16;
    })
    .await;
    // A gateway with a route over two targets: a rate-limited primary falls
    // over to the backup, which exports the routing families.
    let routed = gateway(&mock.base_url(), |c| {
        c.upstreams.insert(
            "backup".into(),
            serde_json::from_value(json!({ "url": mock.base_url() })).unwrap(),
        );
        c.routes = vec![serde_json::from_value(json!({
            "name": "m1",
            "models": ["m1"],
            "targets": [{"upstream": "default", "model": "m1"}, {"upstream": "backup", "model": "m1-backup"}],
            "attempts_per_target": 1,
        }))
        .unwrap()];
    })
    .await;
    let prom = Prometheus::start(&[
        busy.addr.to_string(),
        starved.addr.to_string(),
        routed.addr.to_string(),
    ])
    .await;
    for (scenario, stream) in [("status:503,ok", false), ("ok", true), ("malformed", true)] {
        assert_eq!(send(&busy, scenario, "m1", stream).await, 200, "{scenario}");
    }
    assert_eq!(send(&starved, "status:503", "m1", false).await, 503);
    assert_eq!(send(&starved, "ok", "m1", false).await, 200);
    assert_eq!(
        send(&routed, "error:rate_limit_exceeded,ok", "m1", false).await,
        200
    );
    let exported: BTreeSet<String> = families(&scrape(&busy, 3).await)
        .union(&families(&scrape(&starved, 2).await))
        .cloned()
        .chain(families(&scrape(&routed, 1).await))
        .collect();

    let dashboard = load_dashboard();
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no backstop metric in {expr}");
        for name in &names {
            assert!(
                exported.contains(name),
                "{name} (in {expr}) is not exported: {exported:?}"
            );
        }
        used.extend(names);
    }
    assert_eq!(used, exported, "every exported family has a panel");

    // Prometheus parses and evaluates each query, Grafana's variables
    // replaced by what they stand for.
    prom.wait_for("count(up == 1)", 3.0).await;
    for expr in &exprs {
        let query = expr
            .replace("$__rate_interval", "1m")
            .replace("$route", ".*");
        assert!(!query.contains('$'), "unknown variable in {expr}");
        let answer = prom.api("query", &query).await;
        assert_eq!(answer["status"], "success", "{query}: {answer}");
    }
}
