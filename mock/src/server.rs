//! The mock's connection layer: an accept loop over hyper (HTTP/1.1 and
//! h2c, `TCP_NODELAY` on every connection), graceful shutdown, and
//! [`MockServer`] for in-process tests.
//!
//! It sits on hyper-util rather than `axum::serve` because two steps need
//! the connection itself: `reset` makes the service fail, so hyper drops the
//! connection without writing a response, and [`Conn`] turns that drop into
//! a TCP RST (`SO_LINGER` 0); `cut` ends a body with an error, so hyper
//! closes the connection mid-body.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use super::respond::{answer, Action};
use super::state::State;
use super::{MockConfig, RecordedRequest};

/// How long a graceful shutdown waits for in-flight requests (a `hang`
/// never finishes) before dropping them.
pub const DRAIN: Duration = Duration::from_secs(2);

/// The service's error: the request gets no response and its connection is
/// dropped (`reset`, or a `hang` ended by shutdown).
#[derive(Debug, thiserror::Error)]
#[error("backstop-mock: connection dropped on purpose")]
pub struct Dropped;

/// A TCP stream that, once marked, closes with a RST instead of a FIN.
struct Conn {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            // Zero linger: the close sends a RST, with no lingering (so no blocking).
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.reset.load(Ordering::Relaxed) {
            // No FIN before the RST.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// Serves the mock on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish for up to [`DRAIN`], and
/// returns. A bad `config.mix` is an `InvalidInput` error.
pub async fn serve(
    listener: TcpListener,
    config: MockConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let state = Arc::new(State::new(&config).map_err(invalid)?);
    run(listener, state, shutdown).await
}

async fn run(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors and the like: wait, don't spin.
                        tracing::debug!(error = %e, "backstop-mock: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let reset = Arc::new(AtomicBool::new(false));
                let io = TokioIo::new(Conn { stream, reset: Arc::clone(&reset) });
                let state = Arc::clone(&state);
                let service = hyper::service::service_fn(move |req| {
                    let state = Arc::clone(&state);
                    let reset = Arc::clone(&reset);
                    async move {
                        match answer(&state, req).await {
                            Action::Reply(resp) => Ok(resp),
                            Action::Hang => std::future::pending().await,
                            Action::Reset => {
                                reset.store(true, Ordering::Relaxed);
                                Err(Dropped)
                            }
                        }
                    }
                });
                let conn = graceful.watch(builder.serve_connection(io, service).into_owned());
                connections.spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "backstop-mock: connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    connections.shutdown().await;
    Ok(())
}

/// An in-process mock on `127.0.0.1:<random port>`. Dropping it stops the
/// server at once; [`MockServer::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl MockServer {
    /// Binds `127.0.0.1:0` and serves in a tokio task.
    pub async fn start(config: MockConfig) -> io::Result<MockServer> {
        let state = Arc::new(State::new(&config).map_err(invalid)?);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, Arc::clone(&state), async move {
            let _ = stopped.await;
        }));
        Ok(MockServer {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests seen with `x-mock-key: key`.
    pub fn hits(&self, key: &str) -> u64 {
        self.state.hits(key)
    }

    /// All requests seen under `/v1`.
    pub fn total(&self) -> u64 {
        self.state.total()
    }

    /// The last request seen with `x-mock-key: key`.
    pub fn last_request(&self, key: &str) -> Option<RecordedRequest> {
        self.state.last_request(key)
    }

    /// Forgets every count, key and video task (as `POST /mock/reset`).
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Stops accepting, drains in-flight requests (up to [`DRAIN`]), and
    /// waits for the server to end.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
