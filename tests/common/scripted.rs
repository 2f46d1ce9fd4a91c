//! A scripted upstream for tests that need exact control of bytes and
//! timing: each request is answered by a closure that returns a status,
//! headers and a list of chunks with delays, and every request is recorded.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use tokio::sync::mpsc;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A planned answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    /// Chunks, each sent after its delay.
    pub chunks: Vec<(Duration, Bytes)>,
    /// Called (from the upstream side) when the body stream is dropped,
    /// with whether every chunk had been sent.
    pub on_drop: Option<mpsc::UnboundedSender<usize>>,
    /// Keep the body open after the last chunk (a stream that never ends).
    pub hang: bool,
}

impl Answer {
    pub fn json(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: vec![("content-type", "application/json".into())],
            chunks: vec![(Duration::ZERO, Bytes::copy_from_slice(body.as_bytes()))],
            on_drop: None,
            hang: false,
        }
    }

    pub fn sse(chunks: Vec<(Duration, &str)>) -> Answer {
        Answer {
            status: StatusCode::OK,
            headers: vec![("content-type", "text/event-stream".into())],
            chunks: chunks
                .into_iter()
                .map(|(d, c)| (d, Bytes::copy_from_slice(c.as_bytes())))
                .collect(),
            on_drop: None,
            hang: false,
        }
    }
}

type Handler = dyn Fn(&Seen, usize) -> Answer + Send + Sync;

/// A running scripted upstream.
pub struct Scripted {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: tokio::task::JoinHandle<()>,
}

/// A whole chat completion from `model`.
pub fn completion(model: &str) -> String {
    serde_json::json!({"id": "c", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("from {model}")}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
    .to_string()
}

impl Scripted {
    /// An upstream answering every request as the model it was sent.
    pub async fn answering() -> Scripted {
        Scripted::start(|seen, _| {
            let sent: serde_json::Value =
                serde_json::from_slice(&seen.body).unwrap_or(serde_json::Value::Null);
            Answer::json(200, &completion(sent["model"].as_str().unwrap_or("?")))
        })
        .await
    }

    /// Starts a server that answers the n-th request (0-based) with `f`.
    pub async fn start(f: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Scripted {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(f);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen2 = seen.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let seen = seen2.clone();
            let handler = handler.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                let s = Seen {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body,
                };
                let n = {
                    let mut v = seen.lock().unwrap();
                    v.push(s.clone());
                    v.len() - 1
                };
                respond(handler(&s, n))
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Scripted {
            addr,
            seen,
            _task: task,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

struct DropSignal {
    sent: usize,
    tx: Option<mpsc::UnboundedSender<usize>>,
}

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(self.sent);
        }
    }
}

fn respond(answer: Answer) -> Response {
    let mut builder = Response::builder().status(answer.status);
    for (k, v) in &answer.headers {
        builder = builder.header(*k, v);
    }
    let signal = DropSignal {
        sent: 0,
        tx: answer.on_drop,
    };
    let hang = answer.hang;
    let chunks = futures_util::stream::unfold(
        (answer.chunks.into_iter(), signal, hang),
        |(mut it, mut signal, hang)| async move {
            match it.next() {
                Some((delay, chunk)) => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    signal.sent += 1;
                    Some((Ok::<_, Infallible>(chunk), (it, signal, hang)))
                }
                None if hang => {
                    std::future::pending::<()>().await;
                    None
                }
                None => None,
            }
        },
    );
    builder.body(Body::from_stream(chunks.boxed())).unwrap()
}
