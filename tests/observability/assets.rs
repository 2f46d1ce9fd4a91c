//! The assets that need no running tool: the Grafana dashboard's shape,
//! every YAML file under config/ and deploy/ (and docker-compose.yml)
//! parsed, and the Kubernetes sidecar checked against the gateway's own
//! config loader.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::{load_dashboard, root};

#[test]
fn the_dashboard_is_a_provisionable_grafana_dashboard() {
    let d = load_dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(d["uid"], "backstop");
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(|v| v["name"] == "datasource"
        && v["type"] == "datasource"
        && v["query"] == "prometheus"));
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id {}",
            p["id"]
        );
        assert!(p["gridPos"]["w"].as_u64().unwrap() <= 24);
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            }
        }
    }
}

/// Every YAML document of every `.yml`/`.yaml` file under `dir`.
fn yaml_documents(dir: &Path, out: &mut Vec<(PathBuf, Value)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_documents(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let value = serde_yaml_ng::Value::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.push((path.clone(), serde_json::to_value(value).unwrap()));
            }
        }
    }
}

#[test]
fn every_yaml_asset_parses_and_the_sidecar_is_consistent() {
    let mut docs = Vec::new();
    for dir in ["config", "deploy"] {
        yaml_documents(&root().join(dir), &mut docs);
    }
    let compose = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let compose: Value =
        serde_json::to_value(serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&compose).unwrap())
            .unwrap();
    let files: BTreeSet<String> = docs
        .iter()
        .map(|(p, _)| p.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    for f in [
        "config/alerts.yml",
        "config/alerts_test.yml",
        "config/prometheus.yml",
        "config/grafana/provisioning/datasources/prometheus.yml",
        "config/grafana/provisioning/dashboards/backstop.yml",
        "deploy/kubernetes/sidecar.yaml",
    ] {
        assert!(files.contains(f), "{f} not found in {files:?}");
    }
    let grafana = &compose["services"]["grafana"];
    let mounts = grafana["volumes"].to_string();
    assert!(
        mounts.contains("./config/grafana/provisioning:/etc/grafana/provisioning"),
        "{mounts}"
    );
    assert!(
        mounts.contains("./config/grafana/backstop-dashboard.json:"),
        "{mounts}"
    );

    let of_kind = |kind: &str| -> &Value {
        let (_, d) = docs
            .iter()
            .find(|(_, d)| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"));
        d
    };
    let deployment = of_kind("Deployment");
    let pod = &deployment["spec"]["template"];
    let spec = &pod["spec"];
    let containers = spec["initContainers"]
        .as_array()
        .into_iter()
        .chain(spec["containers"].as_array())
        .flatten();
    let sidecar = containers
        .clone()
        .find(|c| c["image"] == "backstop:latest")
        .expect("backstop container");
    assert!(
        containers.count() >= 2,
        "an app container beside the sidecar"
    );

    let env = sidecar["env"].as_array().unwrap();
    let var = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert!(var("BACKSTOP_UPSTREAM")["value"]
        .as_str()
        .unwrap()
        .ends_with("/v1"));
    let key = &var("BACKSTOP_UPSTREAM__API_KEY")["valueFrom"]["secretKeyRef"];
    assert!(key["name"].is_string() && key["key"].is_string(), "{key}");
    assert!(
        !sidecar.to_string().contains("${"),
        "no ${{...}} in the sidecar's env"
    );

    let port = sidecar["ports"][0]["containerPort"].as_u64().unwrap();
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(sidecar["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(sidecar["readinessProbe"]["httpGet"]["path"], "/readyz");
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(sidecar["resources"][k][r].is_string(), "resources.{k}.{r}");
        }
    }

    // The ConfigMap's backstop.toml is a configuration the gateway accepts,
    // with the Deployment's environment on top.
    let toml = of_kind("ConfigMap")["data"]["backstop.toml"]
        .as_str()
        .unwrap();
    let path = std::env::temp_dir().join(format!("backstop-sidecar-{}.toml", std::process::id()));
    std::fs::write(&path, toml).unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|e| {
            let value = e["value"].as_str().unwrap_or("sk-from-secret");
            (e["name"].as_str().unwrap().to_string(), value.to_string())
        })
        .collect();
    let config = backstop::config::load(Some(&path), &env);
    let _ = std::fs::remove_file(&path);
    let config = config.unwrap_or_else(|e| panic!("sidecar backstop.toml: {e}"));
    assert_eq!(config.upstream.api_key.expose(), "sk-from-secret");
    // The proxy is pod-local; the probed, scraped port is the ops listener.
    assert!(config.listen_addr().unwrap().ip().is_loopback());
    assert!(
        config.upstream.replace_client_key,
        "the app holds a placeholder"
    );
    let ops: std::net::SocketAddr = config.ops_listen.parse().unwrap();
    assert_eq!(ops.port() as u64, port);
    assert!(
        !ops.ip().is_loopback(),
        "the kubelet and Prometheus reach it"
    );
    let app = spec["containers"][0]["env"].as_array().unwrap();
    let app_key = app.iter().find(|e| e["name"] == "OPENAI_API_KEY").unwrap();
    assert!(
        app_key.get("valueFrom").is_none(),
        "the app holds no Secret: {app_key}"
    );
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        config.shutdown.drain_timeout_ms < grace * 1000,
        "drain within the grace period"
    );
}
