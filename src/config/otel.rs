//! `[otel]`: OpenTelemetry trace export (OTLP over HTTP/protobuf), off
//! unless configured — its keys, their defaults and checks, and the
//! standard `OTEL_*` environment variables read into them at load time
//! ([`OtelConfig::apply_standard_env`]), so that a deployment that sets
//! `OTEL_EXPORTER_OTLP_ENDPOINT` for every service gets traces from the
//! gateway too.
//!
//! Precedence, highest first: `BACKSTOP_OTEL__*`, the standard variables
//! (a signal's own, `OTEL_EXPORTER_OTLP_TRACES_*`, before the general
//! `OTEL_EXPORTER_OTLP_*`), the file, the defaults. `OTEL_SDK_DISABLED=true`
//! and `OTEL_TRACES_EXPORTER=none` turn export off whatever else says.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::secret::Secret;

/// The only OTLP protocol the gateway speaks.
pub const HTTP_PROTOBUF: &str = "http/protobuf";

/// `[otel]`: trace export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtelConfig {
    /// Export traces. Also turned on by `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_TRACES_EXPORTER=otlp`.
    pub enabled: bool,
    /// The collector's base URL; `/v1/traces` is appended
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: String,
    /// The full traces URL, used as it is when set
    /// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    pub traces_endpoint: String,
    /// `http/protobuf` (`OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub protocol: String,
    /// The `service.name` resource attribute (`OTEL_SERVICE_NAME`).
    pub service_name: String,
    /// Headers sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`), e.g.
    /// a vendor's API key. Never logged.
    pub headers: BTreeMap<String, Secret>,
    /// One export's time limit (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub timeout_ms: u64,
    /// The share of new traces recorded (0.0 to 1.0); a request that
    /// carries a `traceparent` follows its caller's sampling decision.
    pub sample_ratio: f64,
}

impl Default for OtelConfig {
    fn default() -> Self {
        OtelConfig {
            enabled: false,
            endpoint: "http://localhost:4318".into(),
            traces_endpoint: String::new(),
            protocol: HTTP_PROTOBUF.into(),
            service_name: "backstop".into(),
            headers: BTreeMap::new(),
            timeout_ms: 10_000,
            sample_ratio: 1.0,
        }
    }
}

/// A key that failed its check and why.
type Invalid = (String, String);

/// A standard variable that cannot be used: the variable, the key it
/// feeds, why.
pub type EnvInvalid = (String, &'static str, String);

impl OtelConfig {
    /// The URL spans are posted to: `traces_endpoint`, or `endpoint` with
    /// `/v1/traces` appended to its path.
    pub fn traces_url(&self) -> String {
        if !self.traces_endpoint.trim().is_empty() {
            return self.traces_endpoint.trim().to_string();
        }
        let base = self.endpoint.trim();
        let (base, query) = base.split_once('?').unwrap_or((base, ""));
        let mut url = format!("{}/v1/traces", base.trim_end_matches('/'));
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// The checks serde cannot express; each error names the key.
    pub fn validate(&self) -> Result<(), Invalid> {
        let key = |k: &str| format!("otel.{k}");
        check_endpoint(&self.endpoint).map_err(|m| (key("endpoint"), m))?;
        if !self.traces_endpoint.trim().is_empty() {
            check_endpoint(&self.traces_endpoint).map_err(|m| (key("traces_endpoint"), m))?;
        }
        if self.protocol.trim() != HTTP_PROTOBUF {
            return Err((
                key("protocol"),
                format!(
                    "{:?} is not supported: backstop exports OTLP over HTTP as \"{HTTP_PROTOBUF}\" \
                     (a collector's OTLP/HTTP port, usually 4318; gRPC on 4317 is not spoken)",
                    self.protocol
                ),
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err((key("service_name"), "must not be empty".into()));
        }
        if self.timeout_ms == 0 {
            return Err((key("timeout_ms"), "must be greater than 0".into()));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err((
                key("sample_ratio"),
                format!("must be between 0.0 and 1.0, got {}", self.sample_ratio),
            ));
        }
        for (name, value) in &self.headers {
            let at = format!("otel.headers.{name}");
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err((at, "is not a valid HTTP header name".into()));
            }
            // The value may be a credential: never echoed.
            if http::HeaderValue::from_str(value.expose()).is_err() {
                return Err((at, "the value is not a valid HTTP header value".into()));
            }
        }
        Ok(())
    }

    /// Reads the standard OpenTelemetry variables from `vars` into this
    /// section, skipping the keys a `BACKSTOP_OTEL__*` variable set
    /// (`overridden`). Returns which key each variable set, for error
    /// messages; an error names the variable.
    pub fn apply_standard_env(
        &mut self,
        vars: &HashMap<&str, &str>,
        overridden: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<(String, String)>, EnvInvalid> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(|v| (name.to_string(), v.to_string()))
        };
        // The signal's own variable first, then the general one.
        let either = |traces: &str, general: &str| get(traces).or_else(|| get(general));
        let mut set = Vec::new();
        let mut take = |key: &str, found: Option<(String, String)>| -> Option<(String, String)> {
            let key = format!("otel.{key}");
            if overridden(&key) {
                return None;
            }
            let found = found?;
            set.push((key, found.0.clone()));
            Some(found)
        };

        if let Some((_, url)) = take("endpoint", get("OTEL_EXPORTER_OTLP_ENDPOINT")) {
            self.endpoint = url;
            self.enabled = true;
        }
        if let Some((_, url)) = take("traces_endpoint", get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
            self.traces_endpoint = url;
            self.enabled = true;
        }
        let protocol = either(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        );
        if let Some((_, protocol)) = take("protocol", protocol) {
            self.protocol = protocol;
        }
        if let Some((_, name)) = take("service_name", get("OTEL_SERVICE_NAME")) {
            self.service_name = name;
        }
        let timeout = either(
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        );
        if let Some((var, ms)) = take("timeout_ms", timeout) {
            self.timeout_ms = ms.parse().map_err(|_| {
                (
                    var,
                    "otel.timeout_ms",
                    format!("expected milliseconds, got {ms:?}"),
                )
            })?;
        }
        // Headers merge per name: the general variable's, then the signal's.
        if !overridden("otel.headers") {
            for var in [
                "OTEL_EXPORTER_OTLP_HEADERS",
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            ] {
                if let Some((var, list)) = get(var) {
                    for (name, value) in
                        parse_headers(&list).map_err(|m| (var.clone(), "otel.headers", m))?
                    {
                        self.headers.insert(name, Secret::new(value));
                    }
                    set.push(("otel.headers".into(), var));
                }
            }
        }
        // What the variables say about the exporter itself decides last.
        if let Some((var, exporter)) = get("OTEL_TRACES_EXPORTER") {
            match exporter.to_ascii_lowercase().as_str() {
                "none" => self.enabled = false,
                "otlp" if !overridden("otel.enabled") => self.enabled = true,
                "otlp" => {}
                _ => {
                    return Err((
                        var,
                        "otel.enabled",
                        format!(
                            "{exporter:?}: backstop exports traces over OTLP only; set \"otlp\" or \"none\""
                        ),
                    ))
                }
            }
        }
        if let Some((var, disabled)) = get("OTEL_SDK_DISABLED") {
            match disabled.to_ascii_lowercase().as_str() {
                "true" => self.enabled = false,
                "false" => {}
                _ => {
                    return Err((
                        var,
                        "otel.enabled",
                        format!("expected true or false, got {disabled:?}"),
                    ))
                }
            }
        }
        Ok(set)
    }
}

/// An OTLP endpoint: an http(s) URL with a host.
fn check_endpoint(url: &str) -> Result<(), String> {
    super::url::check_http_url(url.trim()).map(drop)
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `name=value` pairs separated by commas,
/// values percent-encoded (the W3C Baggage format the specification
/// names). Errors never echo a value: it is usually a credential.
pub fn parse_headers(list: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, pair) in list.split(',').enumerate() {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!("entry {} is not name=value", i + 1));
        };
        let name = name.trim();
        if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("entry {} has no valid header name", i + 1));
        }
        let value = percent_decode(value.trim())
            .ok_or_else(|| format!("the value of {name} is not valid percent-encoding"))?;
        out.push((name.to_ascii_lowercase(), value));
    }
    Ok(out)
}

/// Decodes `%XX` escapes (UTF-8); `None` when malformed.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
