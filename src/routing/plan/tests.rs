use std::collections::BTreeMap;

use super::*;
use crate::config::{RouteRule, TargetEntry, UpstreamEntry};
use crate::taxonomy::Kind;

fn upstream(context_window: u64, prefill: bool) -> UpstreamEntry {
    UpstreamEntry {
        url: "https://example.test/v1".into(),
        api_key: Default::default(),
        forward_client_key: false,
        connect_timeout_ms: None,
        first_byte_timeout_ms: None,
        stream_idle_timeout_ms: None,
        context_window,
        prefill,
        proxy: None,
        ca_file: None,
        expect_v1: true,
    }
}

fn target(upstream: &str, model: Option<&str>) -> TargetEntry {
    TargetEntry {
        upstream: upstream.into(),
        model: model.map(str::to_string),
        context_window: None,
        first_token_timeout_ms: None,
    }
}

fn rule(name: &str, models: &[&str], targets: Vec<TargetEntry>) -> RouteRule {
    RouteRule {
        name: name.into(),
        models: models.iter().map(|m| m.to_string()).collect(),
        targets,
        fallback_on: DEFAULT_FALLBACK_ON
            .iter()
            .map(|k| k.as_str().to_string())
            .collect(),
        repair_streams: false,
        attempts_per_target: 2,
        hedge_after_ms: None,
    }
}

fn sections() -> RoutingSections {
    let mut upstreams = BTreeMap::new();
    upstreams.insert("comet".to_string(), upstream(200_000, true));
    upstreams.insert("azure".to_string(), upstream(0, false));
    let mut gpt = rule(
        "gpt-4o",
        &["gpt-4o", "gpt-4o-*"],
        vec![
            target("default", Some("gpt-4o")),
            TargetEntry {
                context_window: Some(128_000),
                first_token_timeout_ms: Some(5_000),
                ..target("comet", Some("gpt-4o"))
            },
        ],
    );
    gpt.fallback_on.push("content_filter".into());
    gpt.repair_streams = true;
    RoutingSections {
        upstreams,
        routes: vec![
            gpt,
            // An exact name listed later wins over an earlier rule's glob.
            rule(
                "mini",
                &["gpt-4o-mini", "o?-*"],
                vec![target("azure", None), target("comet", Some("gpt-4o"))],
            ),
            rule("catch-all", &["*"], vec![target("comet", None)]),
        ],
        ..RoutingSections::default()
    }
}

#[test]
fn targets_get_stable_ids_and_labels() {
    let table = RoutingTable::new(&sections()).unwrap();
    let listed: Vec<(TargetId, &str)> = table
        .targets()
        .iter()
        .map(|t| (t.id, t.label.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (0, "default"),
            (1, "default/gpt-4o"),
            (2, "comet/gpt-4o"),
            (3, "azure"),
            (4, "comet"),
        ]
    );
    assert_eq!(table.targets()[3].model, None);
    assert_eq!(table.targets()[2].model.as_deref(), Some("gpt-4o"));
    // Building again gives the same ids.
    assert_eq!(
        RoutingTable::new(&sections()).unwrap().targets(),
        table.targets()
    );
}

#[test]
fn a_rule_plan_carries_its_targets_with_resolved_windows() {
    let table = RoutingTable::new(&sections()).unwrap();
    let plan = table.plan(Some("gpt-4o"));
    assert_eq!(
        *plan,
        Plan {
            route: Some("gpt-4o".into()),
            targets: vec![
                Target {
                    index: 1,
                    upstream: "default".into(),
                    model: Some("gpt-4o".into()),
                    context_window: 0,
                    prefill: false,
                    // Another target follows: the default first-token limit.
                    first_token_timeout: Some(Duration::from_millis(15_000)),
                },
                Target {
                    index: 2,
                    upstream: "comet".into(),
                    model: Some("gpt-4o".into()),
                    context_window: 128_000,
                    prefill: true,
                    first_token_timeout: Some(Duration::from_millis(5_000)),
                },
            ],
            fallback_on: KindSet::of(&[
                Kind::RateLimited,
                Kind::ServerError,
                Kind::Timeout,
                Kind::ConnectError,
                Kind::BadUpstreamResponse,
                Kind::ContentFilter,
            ]),
            repair_streams: true,
            attempts_per_target: 2,
            hedge_after: None,
        }
    );
    // The catch-all's target inherits comet's window.
    let other = table.plan(Some("claude-3"));
    assert_eq!(other.targets[0].context_window, 200_000);
    assert_eq!(other.targets[0].index, 4);
    // Plans are shared, not rebuilt.
    assert!(Arc::ptr_eq(&plan, &table.plan(Some("gpt-4o-2024-08-06"))));
}

#[test]
fn the_first_exact_match_then_the_first_glob_picks_the_rule() {
    let table = RoutingTable::new(&sections()).unwrap();
    let cases: &[(Option<&str>, Option<&str>)] = &[
        (Some("gpt-4o"), Some("gpt-4o")),
        (Some("gpt-4o-2024-08-06"), Some("gpt-4o")),
        // exact in rule 2 beats the glob `gpt-4o-*` of rule 1
        (Some("gpt-4o-mini"), Some("mini")),
        (Some("o1-preview"), Some("mini")),
        (Some("o1"), Some("catch-all")),
        (Some("org/model"), Some("catch-all")),
        (Some(""), Some("catch-all")),
        (None, None),
    ];
    for (model, route) in cases {
        assert_eq!(table.plan(*model).route.as_deref(), *route, "{model:?}");
    }
}

#[test]
fn no_rule_means_the_implicit_default_plan() {
    let mut s = sections();
    s.routes.pop();
    let table = RoutingTable::new(&s).unwrap();
    let implicit = Plan {
        route: None,
        targets: vec![Target {
            index: 0,
            upstream: "default".into(),
            model: None,
            context_window: 0,
            prefill: false,
            first_token_timeout: None,
        }],
        fallback_on: KindSet::of(&DEFAULT_FALLBACK_ON),
        repair_streams: false,
        attempts_per_target: 2,
        hedge_after: None,
    };
    assert_eq!(*table.plan(Some("claude-3")), implicit);
    assert_eq!(*table.plan(None), implicit);
    assert!(Arc::ptr_eq(&table.plan(None), &table.plan(Some("x"))));
    let empty = RoutingTable::new(&RoutingSections::default()).unwrap();
    assert_eq!(*empty.plan(Some("gpt-4o")), implicit);
    assert_eq!(empty.targets().len(), 1);
    assert!(empty.plans().is_empty());
}

#[test]
fn an_invalid_table_is_refused_with_the_validation_error() {
    let mut s = sections();
    s.routes[1].targets[0].upstream = "azur".into();
    assert_eq!(
        RoutingTable::new(&s).err(),
        Some((
            "routes[1].targets[0].upstream".to_string(),
            "no upstream named \"azur\" (known: default, azure, comet)".to_string()
        ))
    );
}
