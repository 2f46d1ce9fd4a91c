//! [`Secret`]: a configured credential (an API key, a token). It reads from
//! TOML and the environment like a string, and never prints: its `Debug`
//! and `Serialize` forms are `[REDACTED]`, so a logged or dumped
//! configuration carries no key.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A credential from the configuration.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("[REDACTED]")
        }
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            s.serialize_str("")
        } else {
            s.serialize_str("[REDACTED]")
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[REDACTED]\"");
        assert_eq!(s.expose(), "sk-live-123");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
        let parsed: Secret = serde_json::from_str("\"sk-2\"").unwrap();
        assert_eq!(parsed.expose(), "sk-2");
    }
}
