//! The HTTP/1.1 client side: one keep-alive connection per worker (hyper's
//! connection-level client, `TCP_NODELAY`), reopened outside the timed
//! region when the server closed it, and the request each scenario sends.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request, sent again and again.
#[derive(Debug, Clone)]
pub struct Call {
    /// GET or POST.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Extra headers (Host, Content-Length are added).
    pub headers: Vec<(&'static str, String)>,
    /// The body (empty for GET).
    pub body: Bytes,
}

/// The chat completion body every scenario sends (`stream` as asked).
pub fn chat_body(stream: bool) -> Bytes {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Say hello in one short sentence."}
        ],
        "stream": stream,
    });
    Bytes::from(body.to_string())
}

impl Call {
    /// `POST /v1/chat/completions`, non-streaming, mock step `ok`.
    pub fn chat() -> Call {
        Call {
            method: Method::POST,
            path: "/v1/chat/completions".into(),
            headers: vec![
                ("content-type", "application/json".into()),
                ("authorization", "Bearer sk-bench-0000".into()),
            ],
            body: chat_body(false),
        }
    }

    /// A streamed chat completion of `chunks` content chunks `delay_ms` apart.
    pub fn chat_stream(chunks: u32, delay_ms: u64) -> Call {
        let mut call = Call::chat();
        call.body = chat_body(true);
        call.headers.push(("accept", "text/event-stream".into()));
        call.headers.push(("x-mock-chunks", chunks.to_string()));
        call.headers
            .push(("x-mock-chunk-delay-ms", delay_ms.to_string()));
        call
    }

    /// A GET with no body.
    pub fn get(path: &str) -> Call {
        Call {
            method: Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// The request for `addr`.
    pub fn request(&self, addr: SocketAddr) -> Result<Request<Full<Bytes>>> {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .header("host", addr.to_string());
        for (k, v) in &self.headers {
            b = b.header(*k, v.as_str());
        }
        Ok(b.body(Full::new(self.body.clone()))?)
    }
}

/// A keep-alive HTTP/1.1 connection to one address.
pub struct Conn {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
    /// How many times it had to be reopened.
    pub reopened: u64,
}

async fn handshake(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

impl Conn {
    /// Connects.
    pub async fn open(addr: SocketAddr) -> Result<Conn> {
        Ok(Conn {
            addr,
            sender: handshake(addr).await?,
            reopened: 0,
        })
    }

    /// Waits until a request can go; reconnects when the server closed.
    pub async fn ready(&mut self) -> Result<()> {
        if self.sender.is_closed() || self.sender.ready().await.is_err() {
            self.sender = handshake(self.addr).await?;
            self.reopened += 1;
            self.sender.ready().await?;
        }
        Ok(())
    }

    /// Sends `call`, answering with the response head (body unread).
    pub async fn send(&mut self, call: &Call) -> Result<Response<Incoming>> {
        let req = call.request(self.addr)?;
        Ok(self.sender.send_request(req).await?)
    }

    /// Sends `call` and reads the whole body: (status, body).
    pub async fn fetch(&mut self, call: &Call) -> Result<(u16, Bytes)> {
        let resp = self.send(call).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// One request on a fresh connection: (status, body).
pub async fn fetch_once(addr: SocketAddr, call: &Call) -> Result<(u16, Bytes)> {
    let mut conn = Conn::open(addr).await?;
    conn.ready().await?;
    conn.fetch(call).await
}
