//! Range and shape checks that serde cannot express. Each failure names the
//! key path; `load` adds where the value came from.

use super::secret::Secret;
use super::sections::{Config, InspectConfig};
use crate::pattern::ModelPatterns;

type Invalid = (&'static str, String);

impl Config {
    /// Checks every value the types let through but the gateway cannot use.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.listen.parse::<std::net::SocketAddr>().map_err(|_| {
            (
                "listen",
                format!("{:?} is not an address like 0.0.0.0:8080", self.listen),
            )
        })?;
        if !self.ops_listen.is_empty() {
            self.ops_listen
                .parse::<std::net::SocketAddr>()
                .map_err(|_| {
                    (
                        "ops_listen",
                        format!("{:?} is not an address like 0.0.0.0:9464", self.ops_listen),
                    )
                })?;
        }
        check_url(&self.upstream.url).map_err(|m| ("upstream.url", m))?;
        check_proxy(&self.upstream.proxy).map_err(|m| ("upstream.proxy", m))?;
        let f = &self.fleet;
        if !f.redis_url.is_empty() {
            let url = f.redis_url.expose();
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("valkey://")
                || url.starts_with("valkeys://"))
            {
                return Err((
                    "fleet.redis_url",
                    "must start with redis:// or rediss:// (TLS), or be empty for local state only"
                        .into(),
                ));
            }
        }
        if !(1..=5_000).contains(&f.timeout_ms) {
            return Err((
                "fleet.timeout_ms",
                format!("must be between 1 and 5000, got {}", f.timeout_ms),
            ));
        }
        positive("fleet.probe_lock_ms", f.probe_lock_ms)?;
        if f.key_prefix.chars().any(|c| c.is_whitespace()) {
            return Err(("fleet.key_prefix", "must not contain whitespace".into()));
        }
        check_ca_file(&self.upstream.ca_file).map_err(|m| ("upstream.ca_file", m))?;
        let u = &self.upstream;
        positive("upstream.connect_timeout_ms", u.connect_timeout_ms)?;
        positive("upstream.first_byte_timeout_ms", u.first_byte_timeout_ms)?;
        positive("upstream.stream_idle_timeout_ms", u.stream_idle_timeout_ms)?;
        positive("upstream.request_timeout_ms", u.request_timeout_ms)?;
        let r = &self.retry;
        if !(1..=10).contains(&r.max_attempts) {
            return Err((
                "retry.max_attempts",
                format!("must be between 1 and 10, got {}", r.max_attempts),
            ));
        }
        if r.max_delay_ms < r.base_delay_ms {
            return Err((
                "retry.max_delay_ms",
                format!(
                    "must be at least retry.base_delay_ms ({}), got {}",
                    r.base_delay_ms, r.max_delay_ms
                ),
            ));
        }
        if !(0.0..=10.0).contains(&r.budget_ratio) || r.budget_ratio.is_nan() {
            return Err((
                "retry.budget_ratio",
                format!("must be between 0 and 10, got {}", r.budget_ratio),
            ));
        }
        positive("inspect.max_body_bytes", self.inspect.max_body_bytes)?;
        if self.metrics.max_model_labels == 0 {
            return Err(("metrics.max_model_labels", "must be at least 1".into()));
        }
        let l = &self.limits;
        positive("limits.max_request_body_bytes", l.max_request_body_bytes)?;
        positive("limits.header_read_timeout_ms", l.header_read_timeout_ms)?;
        positive("limits.client_idle_timeout_ms", l.client_idle_timeout_ms)?;
        positive("limits.request_body_timeout_ms", l.request_body_timeout_ms)?;
        positive("limits.max_connections", l.max_connections as u64)?;
        positive("limits.max_inflight", l.max_inflight as u64)?;
        positive(
            "inspect.stream_lookahead_max_ms",
            self.inspect.stream_lookahead_max_ms,
        )?;
        positive(
            "inspect.stream_lookahead_max_bytes",
            self.inspect.stream_lookahead_max_bytes,
        )?;
        if self.log.level.trim().is_empty() {
            return Err(("log.level", "must not be empty (e.g. \"info\")".into()));
        }
        if self.debug.failures && self.debug.admin_token.expose().trim().is_empty() {
            return Err((
                "debug.admin_token",
                "must be set when debug.failures is on: the endpoint is admin-only".into(),
            ));
        }
        self.open_relay()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            (
                "log.level",
                format!("{:?} is not a log filter: {e}", self.log.level),
            )
        })?;
        Ok(())
    }
}

impl Config {
    /// The inbound tokens in force (empty values, such as an unset
    /// `${BACKSTOP_TOKEN:-}`, are none).
    pub fn auth_tokens(&self) -> Vec<Secret> {
        self.auth
            .tokens
            .iter()
            .filter(|t| !t.expose().trim().is_empty())
            .cloned()
            .collect()
    }

    /// An open port must never spend the operator's key for strangers:
    /// refuses a non-loopback listen address while an upstream holds an
    /// `api_key` and no inbound token is set, unless explicitly allowed.
    fn open_relay(&self) -> Result<(), Invalid> {
        let loopback = self
            .listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback());
        let holds_key = !self.upstream.api_key.is_empty()
            || self.upstreams.values().any(|u| !u.api_key.is_empty());
        if loopback
            || !holds_key
            || self.auth.allow_unauthenticated
            || !self.auth_tokens().is_empty()
        {
            return Ok(());
        }
        Err((
            "auth.tokens",
            format!(
                "listening on {} with an upstream api_key and no inbound token would let anyone who can reach the port spend the key: \
                 set auth.tokens (tokens = [\"${{BACKSTOP_TOKEN}}\"] in [auth], or BACKSTOP_AUTH__TOKENS=<token>) and give clients the token as their api_key, \
                 or listen on a loopback address (listen = \"127.0.0.1:8080\"); \
                 auth.allow_unauthenticated = true accepts the risk",
                self.listen
            ),
        ))
    }
}

/// The `[[inspect.overrides]]`: each names routes or models, routes are
/// templates, model globs compile. Errors name the override
/// (`inspect.overrides[1].models[0]`).
pub fn validate_overrides(inspect: &InspectConfig) -> Result<(), (String, String)> {
    for (i, o) in inspect.overrides.iter().enumerate() {
        let at = format!("inspect.overrides[{i}]");
        if o.routes.is_empty() && o.models.is_empty() {
            return Err((
                at,
                "names neither `routes` nor `models`: set the global action instead".into(),
            ));
        }
        for (j, r) in o.routes.iter().enumerate() {
            if !r.starts_with("/v1/") {
                return Err((
                    format!("{at}.routes[{j}]"),
                    format!("{r:?} is not a route like \"/v1/chat/completions\""),
                ));
            }
        }
        ModelPatterns::compile(&o.models).map_err(|(j, e)| (format!("{at}.models[{j}]"), e))?;
    }
    Ok(())
}

fn positive(key: &'static str, v: u64) -> Result<(), Invalid> {
    if v == 0 {
        Err((key, "must be greater than 0".into()))
    } else {
        Ok(())
    }
}

/// An egress proxy setting: empty (the environment's), `none`, or an
/// `http://` URL with a host. The value is never echoed: it may hold a
/// password.
pub fn check_proxy(setting: &str) -> Result<(), String> {
    let setting = setting.trim();
    if setting.is_empty() || setting == "none" {
        return Ok(());
    }
    match setting.parse::<http::Uri>() {
        Ok(u) if u.scheme_str() == Some("http") && u.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err("must be an http:// proxy URL (http://[user:password@]host:port), \"none\", or empty to follow HTTPS_PROXY / HTTP_PROXY / NO_PROXY".into()),
    }
}

/// A CA file: empty, or a readable file.
pub fn check_ca_file(path: &str) -> Result<(), String> {
    if path.trim().is_empty() {
        return Ok(());
    }
    std::fs::metadata(path)
        .map_err(|e| format!("{path}: {e}"))
        .and_then(|m| {
            if m.is_file() {
                Ok(())
            } else {
                Err(format!("{path}: not a file"))
            }
        })
}

/// An upstream base URL: http(s), a host, no query string.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = super::url::check_http_url(url)?;
    if parsed.query().is_some() {
        let shown = super::url::shown_url(url);
        return Err(format!(
            "{shown:?} must not have a query string (the part after '?', not shown: it may hold a key)"
        ));
    }
    Ok(())
}
