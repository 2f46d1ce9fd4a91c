//! The routing table: which targets a requested model goes to, in fallback
//! order. Built once from the configuration (globs compiled, one shared
//! [`Plan`] per rule), then asked per request with [`RoutingTable::plan`].
//!
//! Every distinct (upstream, model) pair across the rules — plus `default`
//! with the client's model, the implicit target — gets a stable
//! [`TargetId`] and a label (`comet/gpt-4o`, `comet`, `default`); circuit
//! breakers, pacers and metric labels are keyed by it. A target without a
//! model sends the client's model, so all client models share its circuit
//! and its pacer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use globset::{GlobSet, GlobSetBuilder};

use crate::config::{
    validate_routing, RoutingSections, DEFAULT_ATTEMPTS_PER_TARGET, DEFAULT_FALLBACK_ON,
    DEFAULT_FIRST_TOKEN_TIMEOUT_MS, DEFAULT_UPSTREAM,
};

use super::kinds::KindSet;
use crate::pattern::{compile_glob, is_glob};

/// A target's global id: its index in [`RoutingTable::targets`], the same
/// for every request as long as the configuration is.
pub type TargetId = usize;

/// Where one attempt goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The global id (see [`TargetId`]), not the position in the plan.
    pub index: TargetId,
    /// `"default"` or a key of `[upstreams]`.
    pub upstream: String,
    /// The model name to send; `None`: the client's.
    pub model: Option<String>,
    /// Tokens the target accepts; 0 = unknown.
    pub context_window: u64,
    /// Accepts a trailing assistant message as a prefill.
    pub prefill: bool,
    pub first_token_timeout: Option<Duration>,
}

/// The targets a request may try, in order, and when to move on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The rule's name; `None` for the implicit plan.
    pub route: Option<String>,
    /// At least one.
    pub targets: Vec<Target>,
    pub fallback_on: KindSet,
    pub repair_streams: bool,
    /// Attempts one target gets before the chain moves on (see
    /// [`crate::retry::decide`]).
    pub attempts_per_target: u32,
    /// Start the next target in parallel when the current one has given no
    /// first token after this long.
    pub hedge_after: Option<Duration>,
}

/// One distinct target, for keying circuits, pacers and metric labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    pub id: TargetId,
    pub upstream: String,
    pub model: Option<String>,
    /// `upstream/model`, or `upstream` alone when the model is the client's.
    pub label: String,
}

/// The compiled routes.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    /// Exact model name → the first rule (config order) listing it.
    exact: HashMap<String, usize>,
    /// Every glob of every rule, in config order (rule, then position).
    globs: GlobSet,
    /// Glob index → its rule.
    glob_rule: Vec<usize>,
    /// One per rule.
    plans: Vec<Arc<Plan>>,
    /// `default` with the client's model, for a model no rule matches.
    implicit: Arc<Plan>,
    targets: Vec<TargetInfo>,
}

impl RoutingTable {
    /// Compiles the sections; the error is `validate_routing`'s.
    pub fn new(s: &RoutingSections) -> Result<RoutingTable, (String, String)> {
        validate_routing(s)?;
        let mut targets = vec![TargetInfo {
            id: 0,
            upstream: DEFAULT_UPSTREAM.to_string(),
            model: None,
            label: DEFAULT_UPSTREAM.to_string(),
        }];
        let mut exact = HashMap::new();
        let mut globs = GlobSetBuilder::new();
        let mut glob_rule = Vec::new();
        let mut plans = Vec::with_capacity(s.routes.len());
        for (i, rule) in s.routes.iter().enumerate() {
            for (j, model) in rule.models.iter().enumerate() {
                if is_glob(model) {
                    let glob =
                        compile_glob(model).map_err(|m| (format!("routes[{i}].models[{j}]"), m))?;
                    globs.add(glob);
                    glob_rule.push(i);
                } else {
                    exact.entry(model.clone()).or_insert(i);
                }
            }
            let mut plan_targets = Vec::with_capacity(rule.targets.len());
            let last = rule.targets.len().saturating_sub(1);
            for (k, t) in rule.targets.iter().enumerate() {
                let upstream = s.upstreams.get(&t.upstream);
                plan_targets.push(Target {
                    index: target_id(&mut targets, &t.upstream, t.model.as_deref()),
                    upstream: t.upstream.clone(),
                    model: t.model.clone(),
                    context_window: t
                        .context_window
                        .or(upstream.map(|u| u.context_window))
                        .unwrap_or(0),
                    prefill: upstream.is_some_and(|u| u.prefill),
                    // A target with another after it gets a first-token
                    // limit by default; 0 turns it off.
                    first_token_timeout: match t.first_token_timeout_ms {
                        Some(0) => None,
                        Some(limit) => Some(Duration::from_millis(limit)),
                        None if k < last => {
                            Some(Duration::from_millis(DEFAULT_FIRST_TOKEN_TIMEOUT_MS))
                        }
                        None => None,
                    },
                });
            }
            plans.push(Arc::new(Plan {
                route: Some(rule.name.clone()),
                targets: plan_targets,
                fallback_on: KindSet::parse(&rule.fallback_on),
                repair_streams: rule.repair_streams,
                attempts_per_target: rule.attempts_per_target,
                hedge_after: rule.hedge_after_ms.map(Duration::from_millis),
            }));
        }
        let globs = globs
            .build()
            .map_err(|e| ("routes".to_string(), e.to_string()))?;
        let implicit = Arc::new(Plan {
            route: None,
            targets: vec![Target {
                index: 0,
                upstream: DEFAULT_UPSTREAM.to_string(),
                model: None,
                context_window: 0,
                prefill: false,
                first_token_timeout: None,
            }],
            fallback_on: KindSet::of(&DEFAULT_FALLBACK_ON),
            repair_streams: false,
            attempts_per_target: DEFAULT_ATTEMPTS_PER_TARGET,
            hedge_after: None,
        });
        Ok(RoutingTable {
            exact,
            globs,
            glob_rule,
            plans,
            implicit,
            targets,
        })
    }

    /// The plan for a requested model: the first rule (config order) that
    /// names it exactly, else the first rule with a glob that matches it,
    /// else — and when there is no model — the implicit plan: one target,
    /// `default` with the client's model. The implicit plan is the same for
    /// every model (its target sends the client's model), so it is built
    /// once and shared.
    pub fn plan(&self, model: Option<&str>) -> Arc<Plan> {
        let Some(model) = model else {
            return Arc::clone(&self.implicit);
        };
        let rule = self.exact.get(model).copied().or_else(|| {
            // Globs were added rule by rule, so the lowest index that
            // matches belongs to the first matching rule.
            let first = self.globs.matches(model).into_iter().min()?;
            self.glob_rule.get(first).copied()
        });
        rule.and_then(|i| self.plans.get(i))
            .map_or_else(|| Arc::clone(&self.implicit), Arc::clone)
    }

    /// Every distinct target; `targets()[id].id == id`, and id 0 is
    /// `default` with the client's model.
    pub fn targets(&self) -> &[TargetInfo] {
        &self.targets
    }

    /// The plan of each rule, in config order.
    pub fn plans(&self) -> &[Arc<Plan>] {
        &self.plans
    }
}

/// The id of (upstream, model), added when first seen.
fn target_id(targets: &mut Vec<TargetInfo>, upstream: &str, model: Option<&str>) -> TargetId {
    if let Some(t) = targets
        .iter()
        .find(|t| t.upstream == upstream && t.model.as_deref() == model)
    {
        return t.id;
    }
    let id = targets.len();
    targets.push(TargetInfo {
        id,
        upstream: upstream.to_string(),
        model: model.map(str::to_string),
        label: match model {
            Some(m) => format!("{upstream}/{m}"),
            None => upstream.to_string(),
        },
    });
    id
}

#[cfg(test)]
mod tests;
