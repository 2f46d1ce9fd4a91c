//! [`Secrets`]: every credential one request could leak, in one set — the
//! configured ones (each upstream's key, the admin token, the inbound
//! tokens, userinfo in an upstream URL), found once at start, and the
//! client's own (its `Authorization` value whatever the scheme's case,
//! `x-api-key`, `api-key`, `x-goog-api-key`, and the `key` / `api_key` /
//! `api-key` query values), found at admission. Whatever the gateway passes
//! on from an upstream — an envelope's texts, a transport error, a
//! forwarded header, a failure record — goes through [`Secrets::redact`]
//! first, so no credential leaves, whoever echoed it.

use std::borrow::Cow;

use http::{HeaderMap, Uri};

use crate::config::Config;

/// What stands in for a secret in any text the gateway passes on.
pub const REDACTED: &str = "[REDACTED]";

/// Values shorter than this are not treated as secrets: redacting them
/// would mangle ordinary text, and no real key is that short.
const MIN_SECRET_LEN: usize = 4;

/// Request headers that carry a client credential.
pub const CREDENTIAL_HEADERS: [&str; 4] =
    ["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// Query parameters that carry a client credential (Gemini-style `?key=`).
const CREDENTIAL_PARAMS: [&str; 3] = ["key", "api_key", "api-key"];

/// Whether a query parameter carries a client credential.
pub fn is_credential_param(name: &str) -> bool {
    CREDENTIAL_PARAMS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name))
}

/// The secrets of one request (or of the configuration alone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// Longest first, so a key containing another is replaced whole.
    values: Vec<String>,
}

impl Secrets {
    /// The configured credentials.
    pub fn configured(config: &Config) -> Secrets {
        let mut s = Secrets::default();
        s.add(config.upstream.api_key.expose());
        s.add_url(&config.upstream.url);
        for u in config.upstreams.values() {
            s.add(u.api_key.expose());
            s.add_url(&u.url);
        }
        s.add(config.debug.admin_token.expose());
        for t in &config.auth.tokens {
            s.add(t.expose());
        }
        for v in config.otel.headers.values() {
            s.add(v.expose());
        }
        s.add_url(&config.otel.endpoint);
        s.add_url(&config.otel.traces_endpoint);
        s.sort();
        s
    }

    /// These secrets and the client's own, from its request.
    pub fn with_client(&self, headers: &HeaderMap, uri: &Uri) -> Secrets {
        let mut s = self.clone();
        for name in CREDENTIAL_HEADERS {
            for value in headers.get_all(name) {
                let Ok(text) = value.to_str() else { continue };
                let text = text.trim();
                s.add(text);
                // `Bearer sk-…` (any case), `Basic …`: the credential too.
                if let Some((_, token)) = text.split_once(char::is_whitespace) {
                    s.add(token.trim());
                }
            }
        }
        if let Some(query) = uri.query() {
            for pair in query.split('&') {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                if is_credential_param(name) {
                    s.add(value);
                    if let Ok(decoded) = percent_decode(value) {
                        s.add(&decoded);
                    }
                }
            }
        }
        s.sort();
        s
    }

    fn add(&mut self, value: &str) {
        if value.len() >= MIN_SECRET_LEN && !self.values.iter().any(|v| v == value) {
            self.values.push(value.to_string());
        }
    }

    /// The userinfo of a URL (`https://user:pass@host/…`): whole, and its
    /// password (a user name alone is no secret, and redacting a word like
    /// `user` everywhere would mangle ordinary text).
    fn add_url(&mut self, url: &str) {
        let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
            return;
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            self.add(userinfo);
            if let Some((_, pass)) = userinfo.split_once(':') {
                self.add(pass);
            }
        }
    }

    fn sort(&mut self) {
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values, longest first.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(String::as_str)
    }

    /// `text` with every secret replaced by `[REDACTED]`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.values.iter().any(|v| text.contains(v.as_str())) {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        Cow::Owned(out)
    }

    /// Whether `text` holds a secret.
    pub fn found_in(&self, text: &str) -> bool {
        self.values.iter().any(|v| text.contains(v.as_str()))
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in
/// any case).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares without an early exit, so a token cannot be guessed byte by
/// byte from response times.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `%XX` sequences decoded (for a query value); `Err` when malformed.
fn percent_decode(value: &str) -> Result<String, ()> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = value.get(i + 1..i + 3).ok_or(())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

pub use crate::config::shown_url;

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn every_form_of_a_client_credential_is_found() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("bearer sk-client-1"),
        );
        h.insert("x-api-key", HeaderValue::from_static("anthropic-key-2"));
        h.insert("api-key", HeaderValue::from_static("azure-key-3"));
        h.insert("x-goog-api-key", HeaderValue::from_static("goog-key-4"));
        let uri: Uri = "/v1/models?key=gem%2Dkey-5&x=1&API_KEY=other-6"
            .parse()
            .unwrap();
        let s = Secrets::default().with_client(&h, &uri);
        let text = "sk-client-1 anthropic-key-2 azure-key-3 goog-key-4 gem-key-5 gem%2Dkey-5 other-6 bearer";
        assert_eq!(
            s.redact(text),
            "[REDACTED] [REDACTED] [REDACTED] [REDACTED] [REDACTED] [REDACTED] [REDACTED] bearer"
        );
    }

    #[test]
    fn the_configured_credentials_and_url_userinfo_are_found() {
        let mut config = Config::default();
        config.upstream.api_key = "sk-default".into();
        config.upstream.url = "https://user:p4ssw0rd@api.example.com/v1".into();
        config.debug.admin_token = "admin-token".into();
        config.auth.tokens = vec!["gw-token-1".into()];
        let s = Secrets::configured(&config);
        assert_eq!(
            s.redact("sk-default p4ssw0rd admin-token gw-token-1 user:p4ssw0rd"),
            "[REDACTED] [REDACTED] [REDACTED] [REDACTED] [REDACTED]"
        );
        assert!(matches!(s.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_longer_secret_is_replaced_whole_and_tiny_values_are_not_secrets() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer abc"));
        h.insert("x-api-key", HeaderValue::from_static("sk-abcdef"));
        let s = Secrets::default().with_client(&h, &Uri::from_static("/v1/x"));
        assert_eq!(s.redact("k=sk-abcdef, abc"), "k=[REDACTED], abc");
    }

    #[test]
    fn a_bearer_token_is_read_whatever_the_schemes_case() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        for (value, want) in [
            ("Bearer sk-abc", Some("sk-abc")),
            ("bearer sk-abc", Some("sk-abc")),
            ("BEARER  sk-abc ", Some("sk-abc")),
            ("sk-raw", None),
            ("Basic dXNlcg==", None),
            ("Bearer ", None),
        ] {
            h.insert("authorization", HeaderValue::from_str(value).unwrap());
            assert_eq!(bearer_token(&h), want, "{value:?}");
        }
        assert!(constant_time_eq(b"tok", b"tok") && !constant_time_eq(b"tok", b"toc"));
        assert!(!constant_time_eq(b"tok", b"tokk"));
    }
}
