//! Loading: the TOML file (or none), `${VAR}` expansion in its strings, then
//! `BACKSTOP_*` environment overrides (the environment wins), then typed
//! deserialization and validation. Every error names the key and where the
//! bad value came from.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::sections::Config;
use super::validate::validate_overrides;
use super::validate_routing::validate_routing;

/// The default config file, read when present in the working directory.
pub const DEFAULT_PATH: &str = "config/backstop.toml";

/// Where a bad value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Env(String),
    /// Defaults merged with file and environment (no single origin).
    Merged,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Merged => f.write_str("configuration"),
        }
    }
}

/// A configuration the gateway refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config ({origin}): {key}: {message}")]
pub struct ConfigError {
    pub origin: Source,
    /// The key path, e.g. `retry.max_attempts` (empty for a file that does
    /// not parse at all: the message then has the line).
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn invalid(source: Source, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: source,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Loads the configuration. `path` is `--config` / `BACKSTOP_CONFIG` when
/// given; otherwise [`DEFAULT_PATH`] is read if it exists, else defaults
/// only. `env` is the process environment (passed in so tests need not
/// mutate the real one).
pub fn load(path: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let path = match path {
        Some(p) => Some(p.to_path_buf()),
        None => vars
            .get("BACKSTOP_CONFIG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists())),
    };
    let file_source = path.clone().map_or(Source::Merged, Source::File);

    let mut table = match &path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                ConfigError::invalid(file_source.clone(), "", format!("cannot read: {e}"))
            })?;
            text.parse::<Table>().map_err(|e| {
                ConfigError::invalid(file_source.clone(), "", e.to_string().trim().to_string())
            })?
        }
        None => Table::new(),
    };
    expand_table(&mut table, "", &vars)
        .map_err(|(key, msg)| ConfigError::invalid(file_source.clone(), key, msg))?;
    let from_env = apply_env(&mut table, env)?;

    let mut from_env = from_env;
    let mut config: Config =
        serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            let source = from_env
                .get(&key)
                .map_or(file_source.clone(), |var| Source::Env(var.clone()));
            ConfigError::invalid(source, key, e.into_inner().to_string().trim().to_string())
        })?;
    // The standard OTEL_* variables, under what BACKSTOP_OTEL__* set.
    let standard = config
        .otel
        .apply_standard_env(&vars, &|key| from_env.contains_key(key))
        .map_err(|(var, key, message)| ConfigError::invalid(Source::Env(var), key, message))?;
    from_env.extend(standard);
    let origin = |key: &str| {
        from_env
            .get(key)
            .map_or(file_source.clone(), |var| Source::Env(var.clone()))
    };
    config
        .validate()
        .map_err(|(key, message)| ConfigError::invalid(origin(key), key, message))?;
    validate_routing(&config.routing())
        .map_err(|(key, message)| ConfigError::invalid(origin(&key), key, message))?;
    validate_overrides(&config.inspect)
        .map_err(|(key, message)| ConfigError::invalid(origin(&key), key, message))?;
    config
        .otel
        .validate()
        .map_err(|(key, message)| ConfigError::invalid(origin(&key), key, message))?;
    Ok(config)
}

/// Expands `${VAR}` (and `${VAR:-default}`) in every string of the table.
/// Only the braced form is recognised, so a literal `$` in a key or URL is
/// never mangled; `$${` stands for a literal `${`.
fn expand_table(
    table: &mut Table,
    prefix: &str,
    vars: &HashMap<&str, &str>,
) -> Result<(), (String, String)> {
    for (k, v) in table.iter_mut() {
        let key = join(prefix, k);
        expand_value(v, &key, vars)?;
    }
    Ok(())
}

fn expand_value(
    v: &mut Value,
    key: &str,
    vars: &HashMap<&str, &str>,
) -> Result<(), (String, String)> {
    match v {
        Value::String(s) => {
            unbraced_var(key, s).map_err(|m| (key.to_string(), m))?;
            *s = expand(s, vars).map_err(|m| (key.to_string(), m))?;
        }
        Value::Table(t) => expand_table(t, key, vars)?,
        Value::Array(items) => {
            for item in items.iter_mut() {
                expand_value(item, key, vars)?;
            }
        }
        Value::Integer(_) | Value::Float(_) | Value::Boolean(_) | Value::Datetime(_) => {}
    }
    Ok(())
}

/// Whether a key holds a credential (`api_key`, `tokens`, `admin_token`).
fn key_like(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    last.contains("key") || last.contains("token")
}

/// A credential written `$VAR` (no braces) is not expanded: it would be
/// sent as the literal text. Refused, saying how to write it.
fn unbraced_var(key: &str, value: &str) -> Result<(), String> {
    if !key_like(key) {
        return Ok(());
    }
    let bytes = value.as_bytes();
    for (i, window) in bytes.windows(2).enumerate() {
        let escaped = i > 0 && bytes[i - 1] == b'$';
        if window[0] == b'$' && (window[1].is_ascii_alphabetic() || window[1] == b'_') && !escaped {
            let name: String = value[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return Err(format!(
                "`${name}` is not expanded (only `${{{name}}}` is): write `${{{name}}}`"
            ));
        }
    }
    Ok(())
}

/// Expands `${VAR}` / `${VAR:-default}` in one string.
pub(crate) fn expand(s: &str, vars: &HashMap<&str, &str>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in {s:?}"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("`${{{expr}}}` is not a variable name"));
        }
        match (vars.get(name), default) {
            (Some(v), _) if !v.is_empty() => out.push_str(v),
            (_, Some(d)) => out.push_str(d),
            (Some(_), None) => {}
            (None, None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Applies `BACKSTOP_*` variables to the table, typed after the default
/// config. Returns which key path each variable set, for error messages.
fn apply_env(
    table: &mut Table,
    env: &[(String, String)],
) -> Result<HashMap<String, String>, ConfigError> {
    let defaults = Value::try_from(Config::default())
        .map_err(|e| ConfigError::invalid(Source::Merged, "", e.to_string()))?;
    let mut set = HashMap::new();
    let mut sorted: Vec<&(String, String)> = env.iter().collect();
    // `BACKSTOP_UPSTREAM__URL` must win over the `BACKSTOP_UPSTREAM` shorthand
    // whatever the order of the environment: apply the shorthand first.
    sorted.sort_by_key(|(k, _)| (k != "BACKSTOP_UPSTREAM", k.clone()));
    for (var, raw) in sorted {
        let Some(rest) = var.strip_prefix("BACKSTOP_") else {
            continue;
        };
        if rest == "CONFIG" {
            continue;
        }
        let path: Vec<String> = if rest == "UPSTREAM" {
            vec!["upstream".into(), "url".into()]
        } else {
            rest.split("__").map(str::to_ascii_lowercase).collect()
        };
        let key = path.join(".");
        let source = || Source::Env(var.clone());
        // A plain name outside the config's top-level keys (a test
        // harness's BACKSTOP_BIN_DIR) is not ours; a `TABLE__KEY` name is,
        // so a misspelt table (BACKSTOP_RETRI__MAX_ATTEMPTS) or key is an
        // error and typos never pass silently.
        let known_top = path
            .first()
            .is_some_and(|top| lookup(&defaults, std::slice::from_ref(top)).is_some());
        if !known_top && path.len() == 1 {
            continue;
        }
        if !known_top {
            let tables: Vec<&str> = defaults
                .as_table()
                .map(|t| {
                    t.iter()
                        .filter(|(_, v)| v.is_table())
                        .map(|(k, _)| k.as_str())
                        .collect()
                })
                .unwrap_or_default();
            return Err(ConfigError::invalid(
                source(),
                key,
                format!("no such config table (known: {})", tables.join(", ")),
            ));
        }
        if raw.starts_with('$') {
            unbraced_var(&key, raw).map_err(|m| {
                ConfigError::invalid(
                    source(),
                    key.clone(),
                    format!("{m} (the shell did not expand it)"),
                )
            })?;
        }
        let Some(default) = lookup(&defaults, &path) else {
            return Err(ConfigError::invalid(source(), key, "no such config key"));
        };
        let value =
            typed(default, raw).map_err(|m| ConfigError::invalid(source(), key.clone(), m))?;
        insert(table, &path, value).map_err(|m| ConfigError::invalid(source(), key.clone(), m))?;
        set.insert(key, var.clone());
    }
    Ok(set)
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.as_table()?.get(k))
}

/// Converts an environment string to the TOML type the key has by default.
fn typed(default: &Value, raw: &str) -> Result<Value, String> {
    let raw_t = raw.trim();
    match default {
        Value::String(_) => Ok(Value::String(raw.to_string())),
        Value::Integer(_) => raw_t
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("expected an integer, got {raw:?}")),
        Value::Float(_) => raw_t
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("expected a number, got {raw:?}")),
        Value::Boolean(_) => match raw_t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        Value::Table(_) => Err("is a table: set one of its keys (with `__`)".into()),
        // A list: TOML (`["a", "b"]`), or comma-separated strings (`a,b`).
        Value::Array(_) if raw_t.starts_with('[') => {
            toml::from_str::<Table>(&format!("v = {raw_t}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .ok_or_else(|| format!("expected a TOML list like [\"a\", \"b\"], got {raw:?}"))
        }
        Value::Array(_) => Ok(Value::Array(
            raw_t
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        )),
        Value::Datetime(_) => Err("cannot be set from the environment".into()),
    }
}

fn insert(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".into());
    };
    let mut t = table;
    for p in parents {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{p}` is not a table in the file"))?;
    }
    t.insert(last.clone(), value);
    Ok(())
}

fn join(prefix: &str, k: &str) -> String {
    if prefix.is_empty() {
        k.to_string()
    } else {
        format!("{prefix}.{k}")
    }
}

impl Config {
    /// The listen address, parsed (validation guarantees it parses).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen
            .parse()
            .map_err(|e| ConfigError::invalid(Source::Merged, "listen", format!("{e}")))
    }
}
