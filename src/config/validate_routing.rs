//! The checks on the routing sections that serde cannot express. Each
//! failure is (key path, message) and names the bad rule, e.g.
//! `routes[1].targets[0].upstream`.

use std::collections::HashMap;

use super::routing::{
    never_falls_over, CircuitConfig, RouteRule, RoutingSections, TargetEntry, UpstreamEntry,
    DEFAULT_UPSTREAM, MAX_CIRCUIT_WINDOW, MAX_COOLDOWN_MS,
};
use super::validate::{check_ca_file, check_proxy, check_url};
use crate::pattern::{compile_glob, is_glob};
use crate::taxonomy::Kind;

type Invalid = (String, String);

fn invalid(key: impl Into<String>, message: impl Into<String>) -> Invalid {
    (key.into(), message.into())
}

/// Checks the routing sections; the error is (key path, message) and names
/// the bad rule, e.g. `routes[1].targets[0].upstream`.
pub fn validate_routing(s: &RoutingSections) -> Result<(), Invalid> {
    for (name, u) in &s.upstreams {
        validate_upstream(name, u)?;
    }
    let known: Vec<&str> = std::iter::once(DEFAULT_UPSTREAM)
        .chain(s.upstreams.keys().map(String::as_str))
        .collect();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, rule) in s.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        if rule.name.trim().is_empty() {
            return Err(invalid(format!("{at}.name"), "must not be empty"));
        }
        if let Some(first) = names.insert(rule.name.as_str(), i) {
            return Err(invalid(
                format!("{at}.name"),
                format!(
                    "duplicate route name {:?} (also routes[{first}])",
                    rule.name
                ),
            ));
        }
        validate_models(&at, rule)?;
        validate_targets(&at, rule, &known)?;
        validate_attempts(&at, rule)?;
        validate_fallback_on(&at, rule)?;
    }
    validate_circuit(&s.circuit)?;
    let p = &s.pacing;
    if p.enabled && p.max_queue == 0 {
        return Err(invalid(
            "pacing.max_queue",
            "must be at least 1 when pacing is enabled",
        ));
    }
    Ok(())
}

fn validate_upstream(name: &str, u: &UpstreamEntry) -> Result<(), Invalid> {
    let at = format!("upstreams.{name}");
    if name == DEFAULT_UPSTREAM {
        return Err(invalid(
            at,
            "the name \"default\" is reserved for [upstream]; pick another name",
        ));
    }
    let label_safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || !name.chars().all(label_safe) {
        return Err(invalid(
            at,
            format!("{name:?} is not a name: use letters, digits, '-', '_' or '.'"),
        ));
    }
    check_url(&u.url).map_err(|m| invalid(format!("{at}.url"), m))?;
    if let Some(proxy) = &u.proxy {
        check_proxy(proxy).map_err(|m| invalid(format!("{at}.proxy"), m))?;
    }
    if let Some(ca_file) = &u.ca_file {
        check_ca_file(ca_file).map_err(|m| invalid(format!("{at}.ca_file"), m))?;
    }
    for (key, v) in [
        ("connect_timeout_ms", u.connect_timeout_ms),
        ("first_byte_timeout_ms", u.first_byte_timeout_ms),
        ("stream_idle_timeout_ms", u.stream_idle_timeout_ms),
    ] {
        if v == Some(0) {
            return Err(invalid(format!("{at}.{key}"), "must be greater than 0"));
        }
    }
    Ok(())
}

fn validate_models(at: &str, rule: &RouteRule) -> Result<(), Invalid> {
    if rule.models.is_empty() {
        return Err(invalid(
            format!("{at}.models"),
            "must list at least one model name or glob",
        ));
    }
    for (j, model) in rule.models.iter().enumerate() {
        let key = format!("{at}.models[{j}]");
        if model.trim().is_empty() {
            return Err(invalid(key, "must not be empty"));
        }
        if is_glob(model) {
            compile_glob(model).map_err(|m| invalid(key, m))?;
        }
    }
    Ok(())
}

/// The longest `hedge_after_ms` accepted: an hour (a hedge is for a first
/// token that is late, not for a job).
const MAX_HEDGE_AFTER_MS: u64 = 3_600_000;

fn validate_attempts(at: &str, rule: &RouteRule) -> Result<(), Invalid> {
    if !(1..=10).contains(&rule.attempts_per_target) {
        return Err(invalid(
            format!("{at}.attempts_per_target"),
            format!("must be between 1 and 10, got {}", rule.attempts_per_target),
        ));
    }
    if let Some(after) = rule.hedge_after_ms {
        if !(1..=MAX_HEDGE_AFTER_MS).contains(&after) {
            return Err(invalid(
                format!("{at}.hedge_after_ms"),
                format!("must be between 1 and {MAX_HEDGE_AFTER_MS}, got {after}"),
            ));
        }
        if rule.targets.len() < 2 {
            return Err(invalid(
                format!("{at}.hedge_after_ms"),
                "needs at least two targets: a hedge goes to the next one",
            ));
        }
    }
    Ok(())
}

fn validate_targets(at: &str, rule: &RouteRule, known: &[&str]) -> Result<(), Invalid> {
    if rule.targets.is_empty() {
        return Err(invalid(
            format!("{at}.targets"),
            "must list at least one target",
        ));
    }
    for (k, t) in rule.targets.iter().enumerate() {
        let tat = format!("{at}.targets[{k}]");
        if !known.contains(&t.upstream.as_str()) {
            return Err(invalid(
                format!("{tat}.upstream"),
                format!(
                    "no upstream named {:?} (known: {})",
                    t.upstream,
                    known.join(", ")
                ),
            ));
        }
        if t.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            return Err(invalid(
                format!("{tat}.model"),
                "must not be empty (leave it out to send the client's model)",
            ));
        }
        let same = |o: &TargetEntry| o.upstream == t.upstream && o.model == t.model;
        if let Some(first) = rule.targets[..k].iter().position(same) {
            return Err(invalid(
                tat,
                format!("same upstream and model as {at}.targets[{first}]"),
            ));
        }
    }
    Ok(())
}

fn validate_fallback_on(at: &str, rule: &RouteRule) -> Result<(), Invalid> {
    for (j, label) in rule.fallback_on.iter().enumerate() {
        let key = format!("{at}.fallback_on[{j}]");
        let Some(kind) = Kind::parse(label) else {
            let allowed: Vec<&str> = Kind::ALL
                .into_iter()
                .filter(|k| never_falls_over(*k).is_none())
                .map(Kind::as_str)
                .collect();
            return Err(invalid(
                key,
                format!("unknown kind {label:?} (known: {})", allowed.join(", ")),
            ));
        };
        if let Some(why) = never_falls_over(kind) {
            return Err(invalid(key, why));
        }
    }
    Ok(())
}

fn validate_circuit(c: &CircuitConfig) -> Result<(), Invalid> {
    if c.consecutive_failures == 0 {
        return Err(invalid(
            "circuit.consecutive_failures",
            "must be at least 1",
        ));
    }
    if !(c.failure_ratio > 0.0 && c.failure_ratio <= 1.0) {
        return Err(invalid(
            "circuit.failure_ratio",
            format!("must be in (0, 1], got {}", c.failure_ratio),
        ));
    }
    if !(1..=MAX_CIRCUIT_WINDOW).contains(&c.window) {
        return Err(invalid(
            "circuit.window",
            format!(
                "must be between 1 and {MAX_CIRCUIT_WINDOW}, got {}",
                c.window
            ),
        ));
    }
    if c.min_requests > c.window {
        return Err(invalid(
            "circuit.min_requests",
            format!(
                "must be at most circuit.window ({}), got {}",
                c.window, c.min_requests
            ),
        ));
    }
    if !(1..=MAX_COOLDOWN_MS).contains(&c.cooldown_ms) {
        return Err(invalid(
            "circuit.cooldown_ms",
            format!(
                "must be between 1 and {MAX_COOLDOWN_MS} (a day), got {}",
                c.cooldown_ms
            ),
        ));
    }
    // Below cooldown_ms it means no growth (a configuration from before
    // the cool-down grew keeps its meaning).
    if !(1..=MAX_COOLDOWN_MS).contains(&c.max_cooldown_ms) {
        return Err(invalid(
            "circuit.max_cooldown_ms",
            format!(
                "must be between 1 and {MAX_COOLDOWN_MS} (a day), got {}",
                c.max_cooldown_ms
            ),
        ));
    }
    Ok(())
}
