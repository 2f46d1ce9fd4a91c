//! The sections of the configuration file, typed (CONTRACT.md §1), with
//! their defaults in one place: the `Default` impls below.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::otel::OtelConfig;
use super::routing::{CircuitConfig, PacingConfig, RouteRule, RoutingSections, UpstreamEntry};
use super::secret::Secret;

/// The whole configuration, as written in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the gateway listens on.
    pub listen: String,
    /// Also serve the ops endpoints (`/healthz`, `/readyz`, `/metrics`) on
    /// this address, e.g. `0.0.0.0:9464` for probes and Prometheus while
    /// `listen` stays pod-local; empty: only on `listen`.
    pub ops_listen: String,
    pub upstream: UpstreamConfig,
    pub retry: RetryConfig,
    pub inspect: InspectConfig,
    pub preflight: PreflightConfig,
    pub metrics: MetricsConfig,
    pub shutdown: ShutdownConfig,
    pub log: LogConfig,
    pub limits: LimitsConfig,
    pub debug: DebugConfig,
    pub auth: AuthConfig,
    pub envelope: EnvelopeConfig,
    pub fleet: FleetConfig,
    /// Named upstreams besides `[upstream]` (which is named `default`).
    pub upstreams: BTreeMap<String, UpstreamEntry>,
    /// Routing rules: requested model → ordered targets.
    pub routes: Vec<RouteRule>,
    pub circuit: CircuitConfig,
    pub pacing: PacingConfig,
    pub runtime: RuntimeConfig,
    pub otel: OtelConfig,
}

/// `[runtime]`: the async runtime.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Worker threads; 0 = one per CPU core. A sidecar given one core runs
    /// best with 1 (no hand-offs between threads).
    pub worker_threads: usize,
}

/// `[upstream]`: where requests go and how long each attempt may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Base URL including `/v1`; `/v1/x` from the client goes to `url + /x`.
    pub url: String,
    /// Used when the client sent no credentials. Never logged.
    pub api_key: Secret,
    /// Send `api_key` even when the client sent its own `Authorization`
    /// (a sidecar whose apps hold no real key). Applies to every upstream
    /// that has a key.
    pub replace_client_key: bool,
    pub connect_timeout_ms: u64,
    /// Per attempt: until response headers (for a stream: its first event).
    pub first_byte_timeout_ms: u64,
    /// Per attempt: longest silence between two stream events.
    pub stream_idle_timeout_ms: u64,
    /// The whole client request, all attempts and waits included.
    pub request_timeout_ms: u64,
    /// The egress proxy: `""` follows `HTTPS_PROXY` / `HTTP_PROXY` /
    /// `NO_PROXY` (and their lowercase forms); `"none"` connects directly;
    /// a URL (`http://user:pass@proxy:3128`) is that proxy. Named upstreams
    /// inherit it unless they set their own.
    pub proxy: String,
    /// A PEM file of CA certificates to trust besides the system's store
    /// and the built-in web roots (a private CA, a TLS-inspecting firewall).
    pub ca_file: String,
    /// Warn at start when the URL's path does not end in a version segment
    /// (`/v1`); `false` for providers whose base URL differs.
    pub expect_v1: bool,
}

/// `[retry]`: how many attempts, how far apart, and the budget that keeps
/// retries from multiplying load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    pub max_retry_after_ms: u64,
    pub budget_ratio: f64,
    pub budget_min_retries_per_sec: u32,
    /// Whether to retry even when the client says it is retrying itself
    /// (`x-stainless-retry-count` > 0). Off: one retrying layer at a time.
    pub retry_when_client_retries: bool,
}

/// What to do with a soft or silent failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Forward unchanged, annotate and count.
    Pass,
    /// Another attempt, within max_attempts, the budget and the deadline.
    Retry,
    /// Answer with the error envelope instead.
    Fail,
}

/// `[inspect]`: the policy per soft/silent kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InspectConfig {
    pub content_filter: Action,
    pub length: Action,
    pub empty_data: Action,
    pub empty_content: Action,
    pub invalid_json: Action,
    pub schema_mismatch: Action,
    pub stream_truncated: Action,
    /// Non-streamed bodies larger than this pass through uninspected.
    pub max_body_bytes: u64,
    /// Hold a stream's first events back until content arrives (or every
    /// choice finished), so a stream that opens with a content filter or
    /// ends empty can still be retried or answered with the envelope. Off:
    /// every event goes out at once and those failures end the stream with
    /// an error event instead.
    pub stream_lookahead: bool,
    /// The lookahead holds a stream's first events at most this long...
    pub stream_lookahead_max_ms: u64,
    /// ...and at most this many bytes; then they flow and inspection goes on.
    pub stream_lookahead_max_bytes: u64,
    /// Per-route / per-model actions, applied in order over the ones above.
    pub overrides: Vec<InspectOverride>,
    /// A video poll answered `task_not_exist` within this long after this
    /// gateway saw the task created is retried instead of surfacing.
    pub task_not_ready_window_ms: u64,
    /// The wait before such a poll is retried.
    pub task_not_ready_retry_ms: u64,
}

/// `[[inspect.overrides]]`: other actions for some routes or models.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectOverride {
    /// Route templates (`/v1/chat/completions`); empty = every route.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Model names or globs; empty = every model.
    #[serde(default)]
    pub models: Vec<String>,
    pub content_filter: Option<Action>,
    pub length: Option<Action>,
    pub empty_data: Option<Action>,
    pub empty_content: Option<Action>,
    pub invalid_json: Option<Action>,
    pub schema_mismatch: Option<Action>,
    pub stream_truncated: Option<Action>,
}

/// `[preflight]`: checks made before any upstream call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreflightConfig {
    /// Also reject out-of-range `temperature`, `top_p`, `max_tokens`, `n`.
    pub strict: bool,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Distinct `model` label values; the rest count as `other`.
    pub max_model_labels: usize,
}

/// `[shutdown]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    pub drain_timeout_ms: u64,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter directive (`info`, `backstop=debug,warn`, …).
    pub level: String,
    pub format: LogFormat,
    /// Include the request body, sanitized (key-like fields removed, long
    /// strings cut), in the one log record of each failed request.
    pub request_bodies: bool,
}

/// `[debug]`: endpoints for operators, off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// Serve `GET /debug/failures`: the last `failures_capacity` failed
    /// requests as JSON. Requires `admin_token`.
    pub failures: bool,
    pub failures_capacity: usize,
    /// The `Authorization: Bearer <token>` the debug endpoints require.
    pub admin_token: Secret,
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Larger request bodies get 413 and never reach an upstream.
    pub max_request_body_bytes: u64,
    /// A client connection that has not sent its request head by then is
    /// closed.
    pub header_read_timeout_ms: u64,
    /// An idle keep-alive client connection is closed.
    pub client_idle_timeout_ms: u64,
    /// The whole request body must arrive within this (else 408).
    pub request_body_timeout_ms: u64,
    /// Accepted client connections; beyond it new ones wait in the backlog.
    pub max_connections: usize,
    /// Proxied requests at once; beyond it: 503 `overloaded`.
    pub max_inflight: usize,
}

/// `[auth]`: inbound authentication. With tokens, every `/v1` request
/// must carry `Authorization: Bearer <one of them>`; the token is consumed
/// and each upstream receives its own configured key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub tokens: Vec<Secret>,
    /// Listen on a non-loopback address with a server-side key and no
    /// tokens anyway (an open port then spends the key for anyone).
    pub allow_unauthenticated: bool,
}

/// `[fleet]`: replicas that share what they learn about upstreams (circuit
/// states, the fleet-wide probe, tight rate-limit windows) through Redis or
/// Valkey. Empty `redis_url`: every replica learns alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// `redis://[user:password@]host:6379[/db]` or `rediss://` (TLS). Never
    /// logged: it may hold a password (`${REDIS_PASSWORD}` expands in it).
    pub redis_url: Secret,
    /// Prefix of every key and of the channel, so fleets can share a Redis.
    pub key_prefix: String,
    /// The longest any Redis call may take before the replica goes on with
    /// its local state.
    pub timeout_ms: u64,
    /// A target's rate-limit window is shared (every request takes from one
    /// fleet-wide count) once it advertises this many remaining requests or
    /// fewer; above it, replicas pace alone and Redis is not asked.
    pub shared_pacing_below: u64,
    /// How long the fleet-wide half-open probe lock lives if its holder
    /// never releases it (it crashed).
    pub probe_lock_ms: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            redis_url: Secret::default(),
            key_prefix: "backstop:".into(),
            timeout_ms: 50,
            shared_pacing_below: 100,
            probe_lock_ms: 30_000,
        }
    }
}

/// `[envelope]`: the error body's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvelopeConfig {
    /// Append `[backstop: <kind> after N attempt(s): <hint>]` to
    /// `error.message`, so the hint reaches the exception text SDKs print.
    pub hint_in_message: bool,
}

impl Default for EnvelopeConfig {
    fn default() -> Self {
        EnvelopeConfig {
            hint_in_message: true,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:8080".into(),
            ops_listen: String::new(),
            upstream: UpstreamConfig::default(),
            retry: RetryConfig::default(),
            inspect: InspectConfig::default(),
            preflight: PreflightConfig::default(),
            metrics: MetricsConfig::default(),
            shutdown: ShutdownConfig::default(),
            log: LogConfig::default(),
            limits: LimitsConfig::default(),
            debug: DebugConfig::default(),
            auth: AuthConfig::default(),
            envelope: EnvelopeConfig::default(),
            fleet: FleetConfig::default(),
            upstreams: BTreeMap::new(),
            routes: Vec::new(),
            circuit: CircuitConfig::default(),
            pacing: PacingConfig::default(),
            runtime: RuntimeConfig::default(),
            otel: OtelConfig::default(),
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            url: "https://api.openai.com/v1".into(),
            api_key: Secret::default(),
            replace_client_key: false,
            connect_timeout_ms: 5_000,
            first_byte_timeout_ms: 60_000,
            stream_idle_timeout_ms: 30_000,
            request_timeout_ms: 600_000,
            proxy: String::new(),
            ca_file: String::new(),
            expect_v1: true,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            base_delay_ms: 500,
            max_delay_ms: 8_000,
            max_retry_after_ms: 30_000,
            budget_ratio: 0.2,
            budget_min_retries_per_sec: 5,
            retry_when_client_retries: false,
        }
    }
}

impl Default for InspectConfig {
    fn default() -> Self {
        InspectConfig {
            content_filter: Action::Fail,
            length: Action::Pass,
            empty_data: Action::Pass,
            empty_content: Action::Retry,
            invalid_json: Action::Retry,
            schema_mismatch: Action::Retry,
            stream_truncated: Action::Fail,
            max_body_bytes: 4 * 1024 * 1024,
            stream_lookahead: true,
            stream_lookahead_max_ms: 2_000,
            stream_lookahead_max_bytes: 65_536,
            overrides: Vec::new(),
            task_not_ready_window_ms: 30_000,
            task_not_ready_retry_ms: 5_000,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            max_model_labels: 100,
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_timeout_ms: 25_000,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
            request_bodies: false,
        }
    }
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            failures: false,
            failures_capacity: 100,
            admin_token: Secret::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_request_body_bytes: 20 * 1024 * 1024,
            header_read_timeout_ms: 10_000,
            client_idle_timeout_ms: 60_000,
            request_body_timeout_ms: 30_000,
            max_connections: 10_000,
            max_inflight: 4_096,
        }
    }
}

/// Milliseconds from config as a `Duration`.
pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl Config {
    /// The routing sections, for the routing table.
    pub fn routing(&self) -> RoutingSections {
        RoutingSections {
            upstreams: self.upstreams.clone(),
            routes: self.routes.clone(),
            circuit: self.circuit.clone(),
            pacing: self.pacing.clone(),
        }
    }

    /// The upstream base URL without a trailing slash.
    pub fn upstream_base(&self) -> &str {
        self.upstream.url.trim_end_matches('/')
    }
}
