//! Exact counters: a known mix of answers through the gateway, and every
//! series' value asserted from `/metrics` (issue: observability).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use backstop_mock::{MockConfig, MockServer};
use common::{client, gateway};
use serde_json::json;

/// `name{labels}` → value, labels sorted as Prometheus renders them.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels = labels.to_vec();
    labels.sort();
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Every series of one metric family with a non-zero value.
fn family(m: &BTreeMap<String, f64>, name: &str) -> BTreeMap<String, f64> {
    m.iter()
        .filter(|(k, v)| k.starts_with(&format!("{name}{{")) && **v != 0.0)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

const CHAT: &str = "/v1/chat/completions";

#[tokio::test]
async fn a_known_mix_gives_exact_counters() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock.base_url(), |c| c.metrics.max_model_labels = 2).await;
    let c = client();
    let mut n = 0;
    let mut send = |model: Option<&str>, stream: bool, scenario: &str| {
        n += 1;
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}], "stream": stream});
        if let Some(m) = model {
            body["model"] = json!(m);
        }
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        let req = c
            .post(format!("{}/chat/completions", gw.base_url()))
            .header("x-mock-scenario", scenario)
            .header("x-mock-key", format!("mix-{n}"))
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            resp.bytes().await.unwrap();
            status
        }
    };
    for _ in 0..3 {
        assert_eq!(send(Some("m1"), false, "ok").await, 200);
    }
    assert_eq!(send(Some("m1"), false, "status:503").await, 503);
    assert_eq!(send(Some("m2"), false, "status:503,ok").await, 200);
    assert_eq!(send(Some("m3"), false, "finish:content_filter").await, 400);
    assert_eq!(send(Some("m1"), false, "finish:length").await, 200);
    assert_eq!(send(Some("m2"), true, "ok").await, 200);
    assert_eq!(send(Some("m2"), true, "cut:2").await, 200);
    assert_eq!(send(Some("m1"), false, "error:invalid_api_key").await, 401);
    assert_eq!(send(None, false, "ok").await, 400, "pre-flight: no model");
    let models = c
        .get(format!("{}/models", gw.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    models.bytes().await.unwrap();

    let text = c
        .get(format!("http://{}/metrics", gw.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m = parse(&text);

    let requests = |route: &str, model: &str, class: &str, kind: &str| {
        (
            series(
                "backstop_requests_total",
                &[
                    ("route", route),
                    ("model", model),
                    ("class", class),
                    ("kind", kind),
                ],
            ),
            1.0,
        )
    };
    let mut want: BTreeMap<String, f64> = [
        requests(CHAT, "m1", "hard", "server_error"),
        requests(CHAT, "m2", "none", "ok"),
        requests(CHAT, "other", "soft", "content_filter"),
        requests(CHAT, "m1", "soft", "length"),
        requests(CHAT, "m2", "silent", "stream_truncated"),
        requests(CHAT, "m1", "hard", "unauthorized"),
        requests(CHAT, "unknown", "hard", "bad_request"),
        requests("/v1/models", "unknown", "none", "ok"),
    ]
    .into_iter()
    .collect();
    want.insert(
        series(
            "backstop_requests_total",
            &[
                ("route", CHAT),
                ("model", "m1"),
                ("class", "none"),
                ("kind", "ok"),
            ],
        ),
        3.0,
    );
    want.insert(
        series(
            "backstop_requests_total",
            &[
                ("route", CHAT),
                ("model", "m2"),
                ("class", "none"),
                ("kind", "ok"),
            ],
        ),
        2.0,
    );
    assert_eq!(family(&m, "backstop_requests_total"), want);

    let attempts = |route: &str, class: &str, kind: &str, v: f64| {
        (
            series(
                "backstop_upstream_attempts_total",
                &[("route", route), ("class", class), ("kind", kind)],
            ),
            v,
        )
    };
    // ok: 3 + 1 (after the 503) + 2 streams (the cut one was ok when answered)
    assert_eq!(
        family(&m, "backstop_upstream_attempts_total"),
        [
            attempts(CHAT, "none", "ok", 6.0),
            attempts(CHAT, "hard", "server_error", 4.0),
            attempts(CHAT, "soft", "content_filter", 1.0),
            attempts(CHAT, "soft", "length", 1.0),
            attempts(CHAT, "hard", "unauthorized", 1.0),
            attempts("/v1/models", "none", "ok", 1.0),
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        family(&m, "backstop_retries_total"),
        [(
            series(
                "backstop_retries_total",
                &[("route", CHAT), ("kind", "server_error")]
            ),
            3.0
        )]
        .into_iter()
        .collect()
    );
    assert_eq!(
        family(&m, "backstop_retry_budget_exhausted_total"),
        BTreeMap::new()
    );

    let finish = |model: &str, reason: &str, v: f64| {
        (
            series(
                "backstop_finish_reason_total",
                &[("route", CHAT), ("model", model), ("finish_reason", reason)],
            ),
            v,
        )
    };
    assert_eq!(
        family(&m, "backstop_finish_reason_total"),
        [
            finish("m1", "stop", 3.0),
            finish("m2", "stop", 2.0),
            finish("other", "content_filter", 1.0),
            finish("m1", "length", 1.0),
            // The cut stream's choice never got a finish_reason.
            finish("m2", "null", 1.0),
        ]
        .into_iter()
        .collect()
    );

    let tokens = |model: &str, kind: &str, v: f64| {
        (
            series("backstop_tokens_total", &[("model", model), ("type", kind)]),
            v,
        )
    };
    // m1: 3 ok + 1 length answers, 5 prompt tokens and 3 pieces each;
    // m2: the ok after the 503 and the streamed ok (usage chunk);
    // the content-filtered answer reports 5 prompt and 0 completion tokens.
    assert_eq!(
        family(&m, "backstop_tokens_total"),
        [
            tokens("m1", "prompt", 20.0),
            tokens("m1", "completion", 12.0),
            tokens("m2", "prompt", 10.0),
            tokens("m2", "completion", 6.0),
            tokens("other", "prompt", 5.0),
        ]
        .into_iter()
        .collect()
    );

    let count =
        |name: &str, labels: &[(&str, &str)]| m.get(&series(name, labels)).copied().unwrap_or(-1.0);
    assert_eq!(
        count(
            "backstop_request_duration_seconds_count",
            &[("route", CHAT), ("class", "none")]
        ),
        5.0
    );
    assert_eq!(
        count(
            "backstop_request_duration_seconds_count",
            &[("route", CHAT), ("class", "hard")]
        ),
        3.0
    );
    assert_eq!(
        count(
            "backstop_request_duration_seconds_count",
            &[("route", CHAT), ("class", "soft")]
        ),
        2.0
    );
    assert_eq!(
        count(
            "backstop_request_duration_seconds_count",
            &[("route", CHAT), ("class", "silent")]
        ),
        1.0
    );
    // Every attempt that got an answer: all 13 on the chat route.
    assert_eq!(
        count(
            "backstop_upstream_first_byte_seconds_count",
            &[("route", CHAT)]
        ),
        13.0
    );
    assert_eq!(count("backstop_inflight_requests", &[("route", CHAT)]), 0.0);
    assert_eq!(
        count("backstop_inflight_requests", &[("route", "/v1/models")]),
        0.0
    );
    assert_eq!(
        family(&m, "backstop_malformed_events_total"),
        BTreeMap::new()
    );
    // The upstream saw exactly the attempts counted.
    assert_eq!(mock.total(), 14);
}
