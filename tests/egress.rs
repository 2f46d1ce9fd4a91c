//! The upstream leg behind corporate egress: through a recording HTTP proxy
//! started here (`CONNECT` for an https upstream, absolute-form for an http
//! one, `Proxy-Authorization` from the proxy URL's credentials), and to a
//! TLS upstream signed by a private CA trusted through `upstream.ca_file`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use backstop_mock::{MockConfig, MockServer};
use common::{chat, client, gateway};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy saw of one connection: its request line and whether it
/// carried `Proxy-Authorization`, and the value.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    line: String,
    auth: Option<String>,
}

/// A forward proxy that records every request head and relays the bytes.
struct Proxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(relay(conn, log.clone()));
            }
        });
        Proxy { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn relay(mut conn: TcpStream, log: Arc<Mutex<Vec<Seen>>>) {
    // Read the request head (bounded: 64 KiB).
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        let n = conn.read(&mut buf).await.unwrap_or(0);
        if n == 0 || head.len() > 65_536 {
            return;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).to_string();
    let line = text.lines().next().unwrap_or_default().to_string();
    let auth = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("proxy-authorization: ")
                .or_else(|| l.strip_prefix("Proxy-Authorization: "))
        })
        .map(str::to_string);
    log.lock().unwrap().push(Seen {
        line: line.clone(),
        auth,
    });
    let mut parts = line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if method == "CONNECT" {
        let Ok(mut upstream) = TcpStream::connect(target).await else {
            let _ = conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        conn.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .unwrap();
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    } else {
        // Absolute form: http://host:port/path — forward the head as it is.
        let host = target
            .strip_prefix("http://")
            .and_then(|r| r.split('/').next())
            .unwrap_or_default();
        let Ok(mut upstream) = TcpStream::connect(host).await else {
            let _ = conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        upstream.write_all(&head).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    }
}

/// A TLS front for the mock with a certificate signed by a fresh private CA;
/// returns its address and the CA's PEM file.
async fn private_tls(backend: SocketAddr) -> (SocketAddr, tempfile_path::Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "backstop test private CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
    let ca_file = tempfile_path::Path::new("ca.pem", &ca.pem());
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(conn).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, ca_file)
}

/// A file in the temp dir, removed on drop.
mod tempfile_path {
    pub struct Path(pub std::path::PathBuf);

    impl Path {
        pub fn new(name: &str, text: &str) -> Path {
            let path = std::env::temp_dir().join(format!(
                "backstop-egress-{}-{}-{name}",
                std::process::id(),
                uuid_like()
            ));
            std::fs::write(&path, text).unwrap();
            Path(path)
        }

        pub fn as_str(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    fn uuid_like() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

async fn ask(gw: &backstop::server::Running) -> (u16, String, Value) {
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let kind = resp.headers()["x-backstop-kind"]
        .to_str()
        .unwrap()
        .to_string();
    (status, kind, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_https_upstream_signed_by_a_private_ca_is_reached_through_a_connect_tunnel() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let (tls, ca_file) = private_tls(mock.addr()).await;
    let proxy = Proxy::start().await;
    let gw = gateway(&format!("https://127.0.0.1:{}/v1", tls.port()), |c| {
        c.upstream.ca_file = ca_file.as_str().to_string();
        c.upstream.proxy = format!("http://egress:s3cret@{}", proxy.addr);
    })
    .await;
    let (status, kind, body) = ask(&gw).await;
    assert_eq!((status, kind.as_str()), (200, "ok"), "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from backstop-mock."
    );
    assert_eq!(
        proxy.seen(),
        [Seen {
            line: format!("CONNECT 127.0.0.1:{} HTTP/1.1", tls.port()),
            // base64("egress:s3cret")
            auth: Some("Basic ZWdyZXNzOnMzY3JldA==".into()),
        }]
    );
    // The pooled tunnel carries the next request: no second CONNECT.
    assert_eq!(ask(&gw).await.0, 200);
    assert_eq!(proxy.seen().len(), 1);
}

#[tokio::test]
async fn without_the_ca_file_the_private_certificate_is_refused() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let (tls, _ca_file) = private_tls(mock.addr()).await;
    let gw = gateway(&format!("https://127.0.0.1:{}/v1", tls.port()), |c| {
        c.upstream.proxy = "none".into();
        c.retry.max_attempts = 1;
    })
    .await;
    let (status, kind, body) = ask(&gw).await;
    assert_eq!((status, kind.as_str()), (502, "connect_error"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("certificate"), "{message}");
}

#[tokio::test]
async fn an_http_upstream_is_reached_through_the_proxy_in_absolute_form() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let proxy = Proxy::start().await;
    let gw = gateway(&mock.base_url(), |c| {
        c.upstream.proxy = format!("http://egress:s3cret@{}", proxy.addr);
    })
    .await;
    let (status, kind, _) = ask(&gw).await;
    assert_eq!((status, kind.as_str()), (200, "ok"));
    assert_eq!(
        proxy.seen(),
        [Seen {
            line: format!("POST http://{}/v1/chat/completions HTTP/1.1", mock.addr()),
            auth: Some("Basic ZWdyZXNzOnMzY3JldA==".into()),
        }]
    );
    // "none" goes direct, whatever the environment says.
    let direct = gateway(&mock.base_url(), |c| c.upstream.proxy = "none".into()).await;
    assert_eq!(ask(&direct).await.0, 200);
    assert_eq!(proxy.seen().len(), 1);
}

#[test]
fn a_proxy_setting_that_is_not_an_http_url_is_refused_without_echoing_it() {
    let mut config = backstop::config::Config::default();
    config.upstream.proxy = "socks5://user:hunter2@proxy:1080".into();
    let (key, message) = config.validate().unwrap_err();
    assert_eq!(key, "upstream.proxy");
    assert!(!message.contains("hunter2"), "{message}");
    config.upstream.proxy = String::new();
    config.upstream.ca_file = "/nonexistent/ca.pem".into();
    let (key, message) = config.validate().unwrap_err();
    assert_eq!(key, "upstream.ca_file");
    assert!(message.starts_with("/nonexistent/ca.pem: "), "{message}");
}
