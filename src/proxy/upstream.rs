//! The upstream leg: one pooled HTTP client (rustls, keep-alive,
//! TCP_NODELAY, redirects never followed) and the mapping of a client path
//! onto the configured base URL.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};

use crate::config::{ms, UpstreamConfig};

use super::headers;

/// A configured upstream.
#[derive(Debug)]
pub struct Upstream {
    client: reqwest::Client,
    /// Base URL without a trailing slash, e.g. `https://api.openai.com/v1`.
    base: String,
    api_key: Option<HeaderValue>,
    /// Send `api_key` even when the client sent its own `Authorization`.
    replace_client_key: bool,
    pub first_byte_timeout: Duration,
    pub stream_idle_timeout: Duration,
}

/// Why an attempt got no answer at all.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("could not connect to the upstream: {0}")]
    Connect(String),
    #[error("the upstream connection failed before an answer: {0}")]
    Reset(String),
}

impl Upstream {
    /// Builds the client. Fails only if the TLS backend cannot start.
    pub fn new(cfg: &UpstreamConfig) -> Result<Upstream, reqwest::Error> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(ms(cfg.connect_timeout_ms))
            // A wrong base URL must show as a redirect, not be papered over.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .no_proxy()
            .build()?;
        Ok(Upstream {
            client,
            base: cfg.url.trim_end_matches('/').to_string(),
            api_key: headers::bearer(&cfg.api_key),
            replace_client_key: cfg.replace_client_key,
            first_byte_timeout: ms(cfg.first_byte_timeout_ms),
            stream_idle_timeout: ms(cfg.stream_idle_timeout_ms),
        })
    }

    /// The upstream URL for a client path and query: the client's leading
    /// `/v1` is replaced by the base URL (which includes its own `/v1`).
    pub fn url_for(&self, path_and_query: &str) -> String {
        let rest = path_and_query
            .strip_prefix("/v1")
            .filter(|r| r.is_empty() || r.starts_with('/') || r.starts_with('?'))
            .unwrap_or(path_and_query);
        format!("{}{}", self.base, rest)
    }

    /// Sends one attempt: the client's method, path and headers with `body`
    /// (the client's, or rewritten for the target); resolves when the
    /// response headers arrive.
    pub async fn send(
        &self,
        method: &Method,
        path_and_query: &str,
        client_headers: &HeaderMap,
        body: Bytes,
        request_id: &HeaderValue,
    ) -> Result<reqwest::Response, TransportError> {
        let headers = headers::upstream_request(
            client_headers,
            request_id,
            self.api_key.as_ref(),
            self.replace_client_key,
        );
        self.client
            .request(method.clone(), self.url_for(path_and_query))
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                // Print the whole chain (reqwest's top-level message is terse)
                // but never the URL's credentials: reqwest strips those.
                let detail = error_chain(&e);
                if e.is_connect() || e.is_timeout() {
                    TransportError::Connect(detail)
                } else {
                    TransportError::Reset(detail)
                }
            })
    }
}

/// `e: cause: cause…` in one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(url: &str) -> Upstream {
        Upstream::new(&UpstreamConfig {
            url: url.into(),
            ..UpstreamConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn client_v1_prefix_is_replaced_by_the_base() {
        let u = upstream("https://api.cometapi.com/v1/");
        assert_eq!(
            u.url_for("/v1/chat/completions"),
            "https://api.cometapi.com/v1/chat/completions"
        );
        assert_eq!(
            u.url_for("/v1/models?x=1"),
            "https://api.cometapi.com/v1/models?x=1"
        );
        assert_eq!(u.url_for("/v1"), "https://api.cometapi.com/v1");
        let custom = upstream("http://127.0.0.1:9/openai/v1");
        assert_eq!(
            custom.url_for("/v1/embeddings"),
            "http://127.0.0.1:9/openai/v1/embeddings"
        );
        // Not a /v1 path: appended as is (the router only sends /v1 here).
        assert_eq!(custom.url_for("/v1x"), "http://127.0.0.1:9/openai/v1/v1x");
    }
}
