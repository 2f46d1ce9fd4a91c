//! The routing sections of the configuration: named `[upstreams.*]`,
//! `[[routes]]` that map a requested model to an ordered list of targets,
//! `[circuit]` (per-target circuit breaking) and `[pacing]` (rate-limit
//! pacing), with their defaults and the checks serde cannot express.
//!
//! These are plain data; `crate::routing` compiles them into the routing
//! table, the circuits and the pacers the proxy consults per attempt. The
//! single `[upstream]` section stays the one-upstream shorthand: it is
//! always there, under the reserved name `"default"`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::secret::Secret;
use crate::taxonomy::Kind;

/// The reserved name of the `[upstream]` section among the upstreams.
pub const DEFAULT_UPSTREAM: &str = "default";

/// The kinds a rule falls over on when it names none (`fallback_on`).
pub const DEFAULT_FALLBACK_ON: [Kind; 5] = [
    Kind::RateLimited,
    Kind::ServerError,
    Kind::Timeout,
    Kind::ConnectError,
    Kind::BadUpstreamResponse,
];

/// The largest `circuit.window` accepted (outcomes kept per target).
pub const MAX_CIRCUIT_WINDOW: usize = 10_000;
/// The longest `circuit.cooldown_ms` accepted: a day.
pub const MAX_COOLDOWN_MS: u64 = 86_400_000;

/// `[upstreams.<name>]`: one more upstream besides `[upstream]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamEntry {
    /// Base URL including `/v1`. Required.
    pub url: String,
    /// The key this upstream receives (as `Authorization: Bearer`). Never
    /// logged; the client's credentials never reach a named upstream unless
    /// `forward_client_key` is set and this is empty.
    #[serde(default)]
    pub api_key: Secret,
    /// Forward the client's credentials here (only without `api_key`).
    #[serde(default)]
    pub forward_client_key: bool,
    /// `None`: the `[upstream]` value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// `None`: the `[upstream]` value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout_ms: Option<u64>,
    /// `None`: the `[upstream]` value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout_ms: Option<u64>,
    /// Tokens the models there accept; 0 = unknown.
    #[serde(default)]
    pub context_window: u64,
    /// Accepts a trailing assistant message as a prefill (stream repair).
    #[serde(default)]
    pub prefill: bool,
    /// `None`: `[upstream] proxy` (see there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// `None`: `[upstream] ca_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Warn at start when the URL does not end in a version segment.
    #[serde(default = "yes")]
    pub expect_v1: bool,
}

fn yes() -> bool {
    true
}

/// `[[routes]]`: which requested models go where, in fallback order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Unique; used in logs and metrics.
    pub name: String,
    /// Exact model names or globs (`*`, `?`); at least one.
    pub models: Vec<String>,
    /// At least one, in fallback order.
    pub targets: Vec<TargetEntry>,
    /// Kind labels that move on to the next target.
    #[serde(default = "default_fallback_on")]
    pub fallback_on: Vec<String>,
    #[serde(default)]
    pub repair_streams: bool,
    /// Attempts one target gets for a failure it may get over (a short
    /// rate-limit wait, a lone 5xx) before the chain moves on.
    #[serde(default = "default_attempts_per_target")]
    pub attempts_per_target: u32,
    /// Start the next target in parallel when the current one has given
    /// no first token after this long; the first to give one wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge_after_ms: Option<u64>,
}

/// `attempts_per_target` when a rule names none.
pub const DEFAULT_ATTEMPTS_PER_TARGET: u32 = 2;

/// The first-token limit of a streamed attempt on a target that has another
/// after it, when the target sets none (`first_token_timeout_ms`).
pub const DEFAULT_FIRST_TOKEN_TIMEOUT_MS: u64 = 15_000;

fn default_attempts_per_target() -> u32 {
    DEFAULT_ATTEMPTS_PER_TARGET
}

/// One entry of `routes[].targets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetEntry {
    /// `"default"` or a key of `[upstreams]`.
    pub upstream: String,
    /// The model name sent there; `None`: the client's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Overrides the upstream's `context_window` for this target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// For a stream: the longest wait for the first content or reasoning
    /// delta on this target. Unset: [`DEFAULT_FIRST_TOKEN_TIMEOUT_MS`] when
    /// another target follows, none on the last; 0: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_timeout_ms: Option<u64>,
}

/// `[circuit]`: when a target is taken out of rotation, and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitConfig {
    /// Open after this many failures in a row…
    pub consecutive_failures: u32,
    /// …or when this share of the last `window` outcomes are failures.
    pub failure_ratio: f64,
    pub window: usize,
    /// The ratio only counts once the window holds this many outcomes.
    pub min_requests: usize,
    /// Open this long, then half-open: one probe at a time. Each failed
    /// probe doubles it, up to `max_cooldown_ms` (never below `cooldown_ms`:
    /// a smaller value means no growth); a successful one resets it.
    pub cooldown_ms: u64,
    pub max_cooldown_ms: u64,
}

/// `[pacing]`: holding requests back from a target about to run out of its
/// advertised rate limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacingConfig {
    pub enabled: bool,
    /// Requests kept in hand (0: the last one is used too).
    pub reserve: u64,
    /// The longest a request waits for a reset (never past its deadline).
    pub max_wait_ms: u64,
    /// Requests waiting per target; beyond that, refused at once.
    pub max_queue: usize,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            window: 20,
            min_requests: 10,
            cooldown_ms: 5_000,
            max_cooldown_ms: 10_000,
        }
    }
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            enabled: true,
            reserve: 0,
            max_wait_ms: 10_000,
            max_queue: 256,
        }
    }
}

fn default_fallback_on() -> Vec<String> {
    DEFAULT_FALLBACK_ON
        .iter()
        .map(|k| k.as_str().to_string())
        .collect()
}

/// The routing sections together, as `validate_routing` and
/// `crate::routing::RoutingTable` take them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoutingSections {
    pub upstreams: BTreeMap<String, UpstreamEntry>,
    pub routes: Vec<RouteRule>,
    pub circuit: CircuitConfig,
    pub pacing: PacingConfig,
}

/// Why a kind may never be named in `fallback_on`; `None` for the kinds a
/// rule may name.
pub fn never_falls_over(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Ok => Some("ok is a success, there is nothing to fall over from"),
        Kind::BadRequest => {
            Some("bad_request never falls over: the request itself is wrong, every target would refuse it")
        }
        Kind::Unauthorized => {
            Some("unauthorized never falls over: a wrong key is a configuration error to fix, not to hide")
        }
        Kind::Forbidden => {
            Some("forbidden never falls over: the caller lacks permission, another target would only hide it")
        }
        Kind::NotFound => {
            Some("not_found never falls over: the path or model does not exist, fix the route instead")
        }
        Kind::Overloaded | Kind::ClientClosed | Kind::Shutdown => {
            Some("the gateway's own kinds (overloaded, client_closed, shutdown) are never an upstream's answer")
        }
        Kind::ContextLengthExceeded
        | Kind::QuotaExceeded
        | Kind::PayloadTooLarge
        | Kind::RateLimited
        | Kind::ServerError
        | Kind::Timeout
        | Kind::ConnectError
        | Kind::BadUpstreamResponse
        | Kind::ContentFilter
        | Kind::Length
        | Kind::EmptyData
        | Kind::EmptyContent
        | Kind::InvalidJson
        | Kind::SchemaMismatch
        | Kind::StreamTruncated
        | Kind::MalformedEvent => None,
    }
}

#[cfg(test)]
mod tests;
