//! The way out to one upstream: directly, or through an HTTP proxy — a
//! `CONNECT` tunnel for an `https` upstream (TLS end to end, the proxy sees
//! only the host), an absolute-form request for an `http` one — chosen once
//! per upstream from `proxy` (`""`: `HTTPS_PROXY` / `HTTP_PROXY` /
//! `ALL_PROXY` / `NO_PROXY` and their lowercase forms; `"none"`; a URL). The
//! TLS roots are the built-in web PKI roots, the system's store and an
//! optional PEM `ca_file`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Uri};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service;

use crate::secrets::shown_url;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How one upstream is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Direct,
    /// `CONNECT` through this proxy (an `https` upstream).
    Tunnel {
        proxy: Uri,
        auth: Option<HeaderValue>,
    },
    /// Requests in absolute form to this proxy (an `http` upstream); `auth`
    /// goes as `Proxy-Authorization` on each.
    Forward {
        proxy: Uri,
        auth: Option<HeaderValue>,
    },
}

impl Route {
    /// The proxy as logs may show it (no credentials), when there is one.
    pub fn shown(&self) -> Option<String> {
        match self {
            Route::Direct => None,
            Route::Tunnel { proxy, .. } | Route::Forward { proxy, .. } => {
                Some(shown_url(&proxy.to_string()))
            }
        }
    }

    /// `Proxy-Authorization` for each request (forward proxies only).
    pub fn request_auth(&self) -> Option<&HeaderValue> {
        match self {
            Route::Forward { auth, .. } => auth.as_ref(),
            Route::Direct | Route::Tunnel { .. } => None,
        }
    }
}

/// The proxy variables of an environment, by name.
pub type ProxyEnv<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment's proxy variables.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The route to `base` for the `proxy` setting.
pub fn route(base: &Uri, setting: &str, env: ProxyEnv<'_>) -> Result<Route, String> {
    let setting = setting.trim();
    let matcher = match setting {
        "none" => return Ok(Route::Direct),
        "" => {
            let var = |upper: &str| env(upper).or_else(|| env(&upper.to_ascii_lowercase()));
            Matcher::builder()
                .all(var("ALL_PROXY").unwrap_or_default())
                .http(var("HTTP_PROXY").unwrap_or_default())
                .https(var("HTTPS_PROXY").unwrap_or_default())
                .no(var("NO_PROXY").unwrap_or_default())
                .build()
        }
        url => {
            let parsed: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
            if !matches!(parsed.scheme_str(), Some("http")) || parsed.host().is_none() {
                return Err(
                    "must be an http:// proxy URL (or \"none\", or empty for the environment's)"
                        .into(),
                );
            }
            Matcher::builder().all(url.to_string()).build()
        }
    };
    let Some(intercept) = matcher.intercept(base) else {
        return Ok(Route::Direct);
    };
    let proxy = intercept.uri().clone();
    if proxy.scheme_str() != Some("http") {
        return Err(format!(
            "{}: only http:// proxies are supported",
            shown_url(&proxy.to_string())
        ));
    }
    let auth = intercept.basic_auth().cloned().map(|mut v| {
        v.set_sensitive(true);
        v
    });
    Ok(match base.scheme_str() {
        Some("https") => Route::Tunnel { proxy, auth },
        _ => Route::Forward { proxy, auth },
    })
}

/// The TLS settings of an upstream: the built-in web PKI roots, the
/// system's trust store, and the certificates of `ca_file` (PEM) if any.
pub fn tls_config(ca_file: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if !ca_file.trim().is_empty() {
        let certs = CertificateDer::pem_file_iter(ca_file)
            .map_err(|e| format!("{ca_file}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{ca_file}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("{ca_file}: no PEM certificate in it"));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("{ca_file}: {e}"))?;
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| e.to_string())
}

/// The connector of one upstream's pool, for its route.
#[derive(Clone)]
pub enum Connector {
    Direct(HttpsConnector<HttpConnector>),
    Tunnel(HttpsConnector<Tunnel<HttpConnector>>),
    Forward { http: HttpConnector, proxy: Uri },
}

impl Connector {
    pub fn new(route: &Route, connect_timeout: Duration, tls: &rustls::ClientConfig) -> Connector {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_all_versions();
        match route {
            Route::Direct => Connector::Direct(https.wrap_connector(http)),
            Route::Tunnel { proxy, auth } => {
                let tunnel = Tunnel::new(proxy.clone(), http);
                let tunnel = match auth {
                    Some(a) => tunnel.with_auth(a.clone()),
                    None => tunnel,
                };
                Connector::Tunnel(https.wrap_connector(tunnel))
            }
            Route::Forward { proxy, .. } => Connector::Forward {
                http,
                proxy: proxy.clone(),
            },
        }
    }
}

impl Service<Uri> for Connector {
    type Response = Io;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Io, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Connector::Direct(c) => c.poll_ready(cx),
            Connector::Tunnel(c) => c.poll_ready(cx),
            Connector::Forward { http, .. } => http.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self {
            Connector::Direct(c) => {
                let f = c.call(dst);
                Box::pin(async move { f.await.map(|s| Io::Stream(Box::new(s))) })
            }
            Connector::Tunnel(c) => {
                let f = c.call(dst);
                Box::pin(async move { f.await.map(|s| Io::Stream(Box::new(s))) })
            }
            // The connection is to the proxy; requests go in absolute form.
            Connector::Forward { http, proxy } => {
                let f = http.call(proxy.clone());
                Box::pin(async move { f.await.map(Io::Proxied).map_err(Into::into) })
            }
        }
    }
}

/// A connection to an upstream, or to the forward proxy in front of it.
pub enum Io {
    /// Boxed: a TLS stream is large, and a connection lives as long as the pool keeps it.
    Stream(Box<MaybeHttpsStream<TokioIo<TcpStream>>>),
    Proxied(TokioIo<TcpStream>),
}

/// What the pool learns of a new connection: whether ALPN chose HTTP/2,
/// and whether requests go in absolute form (to a forward proxy). Not the
/// peer addresses the TCP stream offers as an "extra": the client would
/// copy them into every response's extensions (three allocations per
/// request), and nothing reads them.
impl Connection for Io {
    fn connected(&self) -> Connected {
        match self {
            Io::Stream(s) => match s.connected().is_negotiated_h2() {
                true => Connected::new().negotiated_h2(),
                false => Connected::new(),
            },
            // Tells the client to send absolute-form requests.
            Io::Proxied(_) => Connected::new().proxy(true),
        }
    }
}

impl Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Stream(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Io::Proxied(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Stream(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Io::Proxied(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Stream(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Io::Proxied(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Stream(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Io::Proxied(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Stream(s) => s.is_write_vectored(),
            Io::Proxied(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Stream(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Io::Proxied(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn routes_by_setting_and_environment() {
        let https: Uri = "https://api.openai.com/v1".parse().unwrap();
        let http: Uri = "http://10.0.0.5:8000/v1".parse().unwrap();
        let proxy: Uri = "http://proxy.corp:3128".parse().unwrap();
        let corp = env(&[
            ("HTTPS_PROXY", "http://proxy.corp:3128"),
            ("http_proxy", "http://proxy.corp:3128"),
            ("NO_PROXY", "10.0.0.0/8,.internal"),
        ]);
        let tunnel = Route::Tunnel {
            proxy: proxy.clone(),
            auth: None,
        };
        assert_eq!(route(&https, "", &corp), Ok(tunnel));
        // NO_PROXY holds.
        assert_eq!(route(&http, "", &corp), Ok(Route::Direct));
        let internal: Uri = "http://llm.internal/v1".parse().unwrap();
        assert_eq!(route(&internal, "", &corp), Ok(Route::Direct));
        // No variables: direct.
        assert_eq!(route(&https, "", &env(&[])), Ok(Route::Direct));
        // "none" wins over the environment; an explicit URL too.
        assert_eq!(route(&https, "none", &corp), Ok(Route::Direct));
        let explicit = route(&http, "http://user:pass@egress:8080", &corp).unwrap();
        let Route::Forward { proxy, auth } = &explicit else {
            panic!("{explicit:?}")
        };
        assert_eq!(proxy, &"http://egress:8080/".parse::<Uri>().unwrap());
        assert_eq!(auth.as_ref().unwrap(), "Basic dXNlcjpwYXNz");
        assert_eq!(explicit.shown().unwrap(), "http://egress:8080/");
        assert!(route(&http, "socks5://x:1", &corp).is_err());
        assert!(route(&http, "not a url", &corp).is_err());
    }
}
