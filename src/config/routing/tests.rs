use super::*;
use crate::config::validate_routing;
use crate::pattern::is_glob;

/// The issue's example, parsed as the lead's `Config` will see it.
const EXAMPLE: &str = r#"
[upstreams.comet]
url = "https://api.cometapi.com/v1"
context_window = 0
first_byte_timeout_ms = 60000

[[routes]]
name = "gpt-4o"
models = ["gpt-4o", "gpt-4o-*"]
targets = [
  { upstream = "default", model = "gpt-4o" },
  { upstream = "comet", model = "gpt-4o", context_window = 128000, first_token_timeout_ms = 5000 },
]

[circuit]
cooldown_ms = 1000

[pacing]
max_queue = 8
"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sections {
    #[serde(default)]
    upstreams: BTreeMap<String, UpstreamEntry>,
    #[serde(default)]
    routes: Vec<RouteRule>,
    #[serde(default)]
    circuit: CircuitConfig,
    #[serde(default)]
    pacing: PacingConfig,
}

fn parse(text: &str) -> Result<RoutingSections, String> {
    let s: Sections = toml::from_str(text).map_err(|e| e.message().to_string())?;
    Ok(RoutingSections {
        upstreams: s.upstreams,
        routes: s.routes,
        circuit: s.circuit,
        pacing: s.pacing,
    })
}

fn example() -> RoutingSections {
    parse(EXAMPLE).unwrap()
}

#[test]
fn the_example_parses_with_its_defaults() {
    let s = example();
    assert_eq!(validate_routing(&s), Ok(()));
    let comet = &s.upstreams["comet"];
    assert_eq!(comet.url, "https://api.cometapi.com/v1");
    assert!(comet.api_key.is_empty());
    assert_eq!(comet.connect_timeout_ms, None);
    assert_eq!(comet.first_byte_timeout_ms, Some(60_000));
    assert_eq!(comet.stream_idle_timeout_ms, None);
    assert!(!comet.prefill);
    let rule = &s.routes[0];
    assert_eq!(
        rule.fallback_on,
        [
            "rate_limited",
            "server_error",
            "timeout",
            "connect_error",
            "bad_upstream_response"
        ]
    );
    assert!(!rule.repair_streams);
    assert_eq!(
        rule.targets[1],
        TargetEntry {
            upstream: "comet".into(),
            model: Some("gpt-4o".into()),
            context_window: Some(128_000),
            first_token_timeout_ms: Some(5_000),
        }
    );
    assert_eq!(
        s.circuit,
        CircuitConfig {
            cooldown_ms: 1000,
            ..CircuitConfig::default()
        }
    );
    assert_eq!(
        s.pacing,
        PacingConfig {
            enabled: true,
            reserve: 0,
            max_wait_ms: 10_000,
            max_queue: 8
        }
    );
}

#[test]
fn defaults_are_the_documented_values() {
    assert_eq!(
        CircuitConfig::default(),
        CircuitConfig {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            window: 20,
            min_requests: 10,
            cooldown_ms: 5_000,
            max_cooldown_ms: 10_000,
        }
    );
    assert_eq!(validate_routing(&RoutingSections::default()), Ok(()));
}

#[test]
fn serde_refuses_unknown_and_missing_fields() {
    let cases: &[(&str, &str)] = &[
        ("[upstreams.x]\nurl = \"http://a\"\nurll = 1", "unknown field `urll`"),
        ("[upstreams.x]\napi_key = \"k\"", "missing field `url`"),
        ("[[routes]]\nname = \"a\"\nmodels = [\"m\"]", "missing field `targets`"),
        (
            "[[routes]]\nname = \"a\"\nmodels = [\"m\"]\ntargets = [{ upstream = \"default\", modle = \"x\" }]",
            "unknown field `modle`",
        ),
        ("[circuit]\nwindows = 3", "unknown field `windows`"),
        ("[pacing]\nqueue = 3", "unknown field `queue`"),
    ];
    for (text, expected) in cases {
        let err = parse(text).err().unwrap_or_default();
        assert!(err.starts_with(expected), "{text}: {err}");
    }
}

/// One edit of the example per row, and the exact (key, message) it gives.
#[test]
fn each_bad_value_names_its_key() {
    type Edit = fn(&mut RoutingSections);
    let cases: &[(Edit, &str, &str)] = &[
        (
            |s| s.routes[0].targets[1].upstream = "azur".into(),
            "routes[0].targets[1].upstream",
            "no upstream named \"azur\" (known: default, comet)",
        ),
        (
            |s| s.routes[0].models.push("gpt-[4o".into()),
            "routes[0].models[2]",
            "\"gpt-[4o\" is not a valid glob: unclosed character class; missing ']'",
        ),
        (
            |s| s.routes[0].models.push(" ".into()),
            "routes[0].models[2]",
            "must not be empty",
        ),
        (
            |s| s.routes[0].models.clear(),
            "routes[0].models",
            "must list at least one model name or glob",
        ),
        (
            |s| s.routes[0].targets.clear(),
            "routes[0].targets",
            "must list at least one target",
        ),
        (
            |s| s.routes[0].targets[0].model = Some(String::new()),
            "routes[0].targets[0].model",
            "must not be empty (leave it out to send the client's model)",
        ),
        (
            |s| s.routes[0].attempts_per_target = 0,
            "routes[0].attempts_per_target",
            "must be between 1 and 10, got 0",
        ),
        (
            |s| s.routes[0].hedge_after_ms = Some(0),
            "routes[0].hedge_after_ms",
            "must be between 1 and 3600000, got 0",
        ),
        (
            |s| {
                let t = s.routes[0].targets[0].clone();
                s.routes[0].targets.push(t);
            },
            "routes[0].targets[2]",
            "same upstream and model as routes[0].targets[0]",
        ),
        (
            |s| {
                let r = s.routes[0].clone();
                s.routes.push(r);
            },
            "routes[1].name",
            "duplicate route name \"gpt-4o\" (also routes[0])",
        ),
        (
            |s| s.routes[0].name = String::new(),
            "routes[0].name",
            "must not be empty",
        ),
        (
            |s| {
                let c = s.upstreams["comet"].clone();
                s.upstreams.insert("default".into(), c);
            },
            "upstreams.default",
            "the name \"default\" is reserved for [upstream]; pick another name",
        ),
        (
            |s| {
                let c = s.upstreams["comet"].clone();
                s.upstreams.insert("a/b".into(), c);
            },
            "upstreams.a/b",
            "\"a/b\" is not a name: use letters, digits, '-', '_' or '.'",
        ),
        (
            |s| s.upstreams.get_mut("comet").unwrap().url = "ftp://x/v1".into(),
            "upstreams.comet.url",
            "\"ftp://x/v1\" must start with http:// or https://",
        ),
        (
            |s| s.upstreams.get_mut("comet").unwrap().url = "https://x/v1?k=1".into(),
            "upstreams.comet.url",
            "\"https://x/v1\" must not have a query string (the part after '?', not shown: it may hold a key)",
        ),
        (
            |s| s.upstreams.get_mut("comet").unwrap().stream_idle_timeout_ms = Some(0),
            "upstreams.comet.stream_idle_timeout_ms",
            "must be greater than 0",
        ),
        (
            |s| s.circuit.consecutive_failures = 0,
            "circuit.consecutive_failures",
            "must be at least 1",
        ),
        (
            |s| s.circuit.failure_ratio = 0.0,
            "circuit.failure_ratio",
            "must be in (0, 1], got 0",
        ),
        (
            |s| s.circuit.failure_ratio = 1.5,
            "circuit.failure_ratio",
            "must be in (0, 1], got 1.5",
        ),
        (
            |s| s.circuit.failure_ratio = f64::NAN,
            "circuit.failure_ratio",
            "must be in (0, 1], got NaN",
        ),
        (
            |s| s.circuit.window = 0,
            "circuit.window",
            "must be between 1 and 10000, got 0",
        ),
        (
            |s| s.circuit.min_requests = 21,
            "circuit.min_requests",
            "must be at most circuit.window (20), got 21",
        ),
        (
            |s| s.circuit.cooldown_ms = 0,
            "circuit.cooldown_ms",
            "must be between 1 and 86400000 (a day), got 0",
        ),
        (
            |s| s.pacing.max_queue = 0,
            "pacing.max_queue",
            "must be at least 1 when pacing is enabled",
        ),
    ];
    for (edit, key, message) in cases {
        let mut s = example();
        edit(&mut s);
        assert_eq!(
            validate_routing(&s),
            Err((key.to_string(), message.to_string()))
        );
    }
}

#[test]
fn fallback_on_refuses_kinds_that_never_fall_over() {
    let cases: &[(&str, &str)] = &[
        (
            "bad_request",
            "bad_request never falls over: the request itself is wrong, every target would refuse it",
        ),
        (
            "unauthorized",
            "unauthorized never falls over: a wrong key is a configuration error to fix, not to hide",
        ),
        (
            "forbidden",
            "forbidden never falls over: the caller lacks permission, another target would only hide it",
        ),
        (
            "not_found",
            "not_found never falls over: the path or model does not exist, fix the route instead",
        ),
        ("ok", "ok is a success, there is nothing to fall over from"),
        (
            "teapot",
            "unknown kind \"teapot\" (known: context_length_exceeded, quota_exceeded, \
             payload_too_large, rate_limited, server_error, timeout, connect_error, \
             bad_upstream_response, content_filter, length, empty_data, empty_content, \
             invalid_json, schema_mismatch, stream_truncated, malformed_event)",
        ),
    ];
    for (label, message) in cases {
        let mut s = example();
        s.routes[0].fallback_on = vec!["timeout".into(), label.to_string()];
        assert_eq!(
            validate_routing(&s),
            Err(("routes[0].fallback_on[1]".into(), message.to_string())),
            "{label}"
        );
    }
    // Every other kind may be named, content_filter included.
    for kind in Kind::ALL {
        if never_falls_over(kind).is_none() {
            let mut s = example();
            s.routes[0].fallback_on = vec![kind.as_str().into()];
            assert_eq!(validate_routing(&s), Ok(()), "{kind}");
        }
    }
}

#[test]
fn disabled_pacing_needs_no_queue_and_globs_are_told_apart() {
    let mut s = example();
    s.pacing.enabled = false;
    s.pacing.max_queue = 0;
    assert_eq!(validate_routing(&s), Ok(()));
    let globs: Vec<bool> = ["gpt-4o", "gpt-4o-*", "o?", "gpt-[45]o", "{a,b}", "a.b/c"]
        .iter()
        .map(|p| is_glob(p))
        .collect();
    assert_eq!(globs, [false, true, true, true, true, false]);
}
