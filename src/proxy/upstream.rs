//! The upstream leg: one configured upstream — its base URL parsed once at
//! start, its pooled HTTP client (hyper-util, rustls, keep-alive,
//! TCP_NODELAY, redirects never followed, answers decompressed when an
//! upstream compresses although asked for `identity`), and the credentials
//! it receives ([`Credentials`]).
//!
//! The request URI is the base's scheme and authority, the base's path,
//! then the client's checked path after `/v1` and its query — put together
//! as they are, never normalized by a URL parser afterwards.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::ServiceExt;
use tower_http::decompression::{Decompression, DecompressionBody};

use crate::config::Secret;
use crate::path::ClientPath;
use crate::secrets::shown_url;

use super::headers::{self, Credentials, TraceHeaders};

use super::egress::{self, Connector, Route};

/// The HTTP client of one upstream.
type HttpClient = Decompression<Client<Connector, Full<Bytes>>>;

/// An upstream's answer, its body still streaming (decompressed if need be).
pub type UpstreamResponse = Response<DecompressionBody<hyper::body::Incoming>>;

/// Why an upstream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0}: not a URL: {1}")]
    Url(String, String),
    #[error("{0}: proxy: {1}")]
    Proxy(String, String),
    #[error("{0}: ca_file: {1}")]
    Ca(String, String),
}

/// What an upstream is configured with.
pub struct UpstreamSettings<'a> {
    pub url: &'a str,
    pub api_key: &'a Secret,
    /// The `[upstream]` (the client's credentials go there) or a named one.
    pub default: bool,
    pub replace_client_key: bool,
    pub forward_client_key: bool,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub stream_idle_timeout: Duration,
    /// `""` (the environment's proxy variables), `"none"`, or a proxy URL.
    pub proxy: &'a str,
    /// A PEM file of extra CA certificates, or `""`.
    pub ca_file: &'a str,
}

/// The base URL, parsed once.
#[derive(Debug, Clone)]
struct Base {
    scheme: Scheme,
    authority: Authority,
    /// Without a trailing slash (`/v1`, `/tenant-a/v1`, or empty).
    path: String,
}

/// A configured upstream.
pub struct Upstream {
    client: HttpClient,
    base: Base,
    credentials: Credentials,
    /// How it is reached: directly, or through a proxy.
    pub route: Route,
    /// The base URL as logs may show it (no userinfo, no query).
    pub shown: String,
    pub first_byte_timeout: Duration,
    pub stream_idle_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// Why an attempt got no answer at all.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The connection was never made: the request was not sent.
    #[error("could not connect to the upstream: {0}")]
    Connect(String),
    #[error("the upstream connection failed before an answer: {0}")]
    Reset(String),
}

impl Upstream {
    /// `env` gives the proxy variables (the process's, but for tests).
    pub fn new(
        s: &UpstreamSettings<'_>,
        tls: &Arc<rustls::ClientConfig>,
        env: egress::ProxyEnv<'_>,
    ) -> Result<Upstream, UpstreamError> {
        let uri: Uri = s.url.parse().map_err(|e: http::uri::InvalidUri| {
            UpstreamError::Url(shown_url(s.url), e.to_string())
        })?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority()) else {
            return Err(UpstreamError::Url(
                shown_url(s.url),
                "no scheme or host".into(),
            ));
        };
        // Credentials belong in api_key: userinfo is never sent.
        let host = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, h)| h);
        let authority = Authority::try_from(host)
            .map_err(|e| UpstreamError::Url(shown_url(s.url), e.to_string()))?;
        let base = Base {
            scheme,
            authority,
            path: uri.path().trim_end_matches('/').to_string(),
        };
        let key = headers::bearer(s.api_key.expose());
        let credentials = if s.default {
            Credentials::Client {
                key,
                replace: s.replace_client_key,
            }
        } else {
            Credentials::Own {
                forward_client: s.forward_client_key && key.is_none(),
                key,
            }
        };
        let route = egress::route(&uri, s.proxy, env)
            .map_err(|e| UpstreamError::Proxy(shown_url(s.url), e))?;
        Ok(Upstream {
            client: client(&route, s.connect_timeout, tls),
            base,
            credentials,
            route,
            shown: shown_url(s.url),
            first_byte_timeout: s.first_byte_timeout,
            stream_idle_timeout: s.stream_idle_timeout,
        })
    }

    /// The host and port the upstream is reached at (the base URL's; the
    /// scheme's default port when it names none).
    pub fn address(&self) -> (&str, u16) {
        let default = match self.base.scheme.as_str() {
            "https" => 443,
            _ => 80,
        };
        (
            self.base.authority.host(),
            self.base.authority.port_u16().unwrap_or(default),
        )
    }

    /// The upstream URI for a checked client path: the base's path, then
    /// the client's path after `/v1` and its query, as they are.
    pub fn uri_for(&self, path: &ClientPath) -> Result<Uri, http::Error> {
        let mut pq = String::with_capacity(self.base.path.len() + path.rest().len() + 1);
        pq.push_str(&self.base.path);
        pq.push_str(path.rest());
        if pq.is_empty() {
            pq.push('/');
        }
        let query = match self.credentials.forwards_client() {
            true => path.query().map(std::borrow::Cow::Borrowed),
            false => path
                .query_without_credentials()
                .map(std::borrow::Cow::Owned),
        };
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(&q);
        }
        Uri::builder()
            .scheme(self.base.scheme.clone())
            .authority(self.base.authority.clone())
            .path_and_query(PathAndQuery::try_from(pq)?)
            .build()
    }

    /// Sends one attempt: the client's method, path and headers (its
    /// credentials as this upstream's rule says; the attempt's trace
    /// context, when traced, in place of the client's) with `body`;
    /// resolves when the response headers arrive.
    pub async fn send(
        &self,
        method: &Method,
        path: &ClientPath,
        client_headers: &HeaderMap,
        body: Bytes,
        request_id: &HeaderValue,
        trace: Option<&TraceHeaders>,
    ) -> Result<UpstreamResponse, TransportError> {
        let uri = self.uri_for(path).map_err(|e| {
            TransportError::Connect(format!("the upstream URI could not be built: {e}"))
        })?;
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() =
            headers::upstream_request(client_headers, request_id, &self.credentials);
        if let Some(trace) = trace {
            headers::set_trace(req.headers_mut(), trace);
        }
        if let Some(auth) = self.route.request_auth() {
            req.headers_mut()
                .insert(http::header::PROXY_AUTHORIZATION, auth.clone());
        }
        self.client.clone().oneshot(req).await.map_err(|e| {
            let detail = error_chain(&e);
            if e.is_connect() {
                TransportError::Connect(detail)
            } else {
                TransportError::Reset(detail)
            }
        })
    }
}

/// The pooled client over the upstream's route (direct, tunnel or forward
/// proxy; TCP_NODELAY, the connect timeout, TLS with the shared roots and
/// HTTP/2 by ALPN), keep-alive pooling; answers are decompressed when an
/// upstream compresses although asked for `identity`.
fn client(route: &Route, connect_timeout: Duration, tls: &Arc<rustls::ClientConfig>) -> HttpClient {
    let client = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(Connector::new(route, connect_timeout, tls));
    Decompression::new(client)
}

/// The TLS settings with the built-in and the system's roots only.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    egress::tls_config("").unwrap_or_else(|_| {
        Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
    })
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
        let key = Secret::default();
        let s = UpstreamSettings {
            url,
            api_key: &key,
            default: true,
            replace_client_key: false,
            forward_client_key: false,
            connect_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(1),
            stream_idle_timeout: Duration::from_secs(1),
            proxy: "none",
            ca_file: "",
        };
        Upstream::new(&s, &tls_config(), &|_| None).unwrap()
    }

    fn path(p: &str) -> ClientPath {
        crate::path::check(&p.parse().unwrap()).unwrap()
    }

    #[test]
    fn the_client_path_after_v1_follows_the_base_path_as_it_is() {
        let rows = [
            (
                "https://api.cometapi.com/v1/",
                "/v1/chat/completions",
                "https://api.cometapi.com/v1/chat/completions",
            ),
            (
                "https://api.cometapi.com/v1",
                "/v1/models?x=1",
                "https://api.cometapi.com/v1/models?x=1",
            ),
            (
                "https://api.cometapi.com/v1",
                "/v1",
                "https://api.cometapi.com/v1",
            ),
            (
                "http://127.0.0.1:9/tenant-a/v1",
                "/v1/embeddings",
                "http://127.0.0.1:9/tenant-a/v1/embeddings",
            ),
            (
                "http://user:pw@127.0.0.1:9/v1",
                "/v1/models",
                "http://127.0.0.1:9/v1/models",
            ),
            ("http://127.0.0.1:9", "/v1", "http://127.0.0.1:9/"),
            (
                "http://127.0.0.1:9/g/openai",
                "/v1/models/a%3Ab",
                "http://127.0.0.1:9/g/openai/models/a%3Ab",
            ),
        ];
        for (base, client, want) in rows {
            assert_eq!(
                upstream(base).uri_for(&path(client)).unwrap().to_string(),
                want,
                "{base} + {client}"
            );
        }
        assert_eq!(
            upstream("http://u:secret@h:1/v1?k=s").shown,
            "http://h:1/v1"
        );
    }
}
