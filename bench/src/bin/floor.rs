//! `backstop-floor`: the framework floor. A bare reverse proxy on the same
//! stack as backstop (tokio multi-thread runtime, hyper 1 HTTP/1.1 server
//! with keep-alive, `hyper-util`'s pooled legacy client, mimalloc) with no
//! layers at all: no inspection, retries, timeouts, limits, metrics or
//! logs. Whatever backstop costs above this is its own doing; below it, a
//! Rust proxy on this stack cannot go.
//!
//! Per request: the Host is rewritten to the upstream, hop-by-hop headers
//! are dropped both ways, the request body is forwarded as it arrives and
//! the response body is streamed back frame by frame (nothing is buffered).
//! An upstream that cannot be reached is answered 502. `TCP_NODELAY` on both
//! legs.
//!
//! Usage: `backstop-floor --listen 127.0.0.1:0 --upstream 127.0.0.1:9090`;
//! prints `backstop-floor listening on http://ADDR` once bound, serves until
//! killed (SIGTERM's default action).

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Upstream = Client<HttpConnector, Incoming>;
type Body = Either<Incoming, Full<Bytes>>;

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Removes the hop-by-hop headers and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove("upgrade");
}

fn bad_gateway(why: String) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(why))));
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp
}

async fn proxy(
    client: Upstream,
    upstream: SocketAddr,
    host: HeaderValue,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match Uri::try_from(format!("http://{upstream}{path}")) {
        Ok(uri) => uri,
        Err(e) => return Ok(bad_gateway(format!("bad path: {e}"))),
    };
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(HOST, host);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, Either::Left(body)))
        }
        Err(e) => Ok(bad_gateway(format!("upstream: {e}"))),
    }
}

fn parse_args() -> Result<(SocketAddr, SocketAddr), String> {
    let usage = "usage: backstop-floor --listen ADDR --upstream ADDR";
    let (mut listen, mut upstream) = (None, None);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{arg} needs a value; {usage}"))?;
        let addr = value
            .parse::<SocketAddr>()
            .map_err(|e| format!("{arg} {value}: {e}"))?;
        match arg.as_str() {
            "--listen" => listen = Some(addr),
            "--upstream" => upstream = Some(addr),
            _ => return Err(format!("unknown argument {arg:?}; {usage}")),
        }
    }
    Ok((
        listen.ok_or_else(|| format!("--listen is required; {usage}"))?,
        upstream.ok_or_else(|| format!("--upstream is required; {usage}"))?,
    ))
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> Result<(), String> {
    let host = HeaderValue::try_from(upstream.to_string()).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Upstream = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(connector);
    let mut out = std::io::stdout().lock();
    writeln!(out, "backstop-floor listening on http://{addr}")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;
    drop(out);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of fds and the like: keep serving the connections we have.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (client, host) = (client.clone(), host.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| proxy(client.clone(), upstream, host.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let (listen, upstream) = match parse_args() {
        Ok(addrs) => addrs,
        Err(e) => {
            eprintln!("backstop-floor: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(listen, upstream).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backstop-floor: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("x-private", "1"),
            ("content-type", "application/json"),
            ("content-length", "12"),
            ("authorization", "Bearer x"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "content-length", "content-type"]);
    }
}
