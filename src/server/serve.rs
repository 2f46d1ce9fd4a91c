//! Serving: the accept loop with its limits, each connection under watch,
//! and graceful shutdown — on the signal, stop accepting, let in-flight
//! requests and streams finish, and at the drain deadline cut the answers
//! still going (each is counted, a stream closes with its `shutdown`
//! event) before the process exits.
//!
//! - At most `limits.max_connections` client connections (clamped to what
//!   the process's file-descriptor limit allows): beyond it new ones wait in
//!   the listen backlog, and the watchdogs close idle connections at once
//!   so a waiting client — a liveness probe — is let in.
//! - Accept errors (EMFILE, ENFILE, ECONNABORTED) are logged and survived.
//! - HTTP/1.1 and HTTP/2 (prior knowledge) on the same port, with the head,
//!   idle and keep-alive limits of [`super::conn`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::{BoxError, Router};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::util::Oneshot;
use tower::ServiceExt;

use crate::app::{App, Proxy};
use crate::config::{ms, LimitsConfig};
use crate::stack::observe::ObservedBody;

use super::conn::{ConnState, Pressure, Timeouts, Verdict, Watched};

/// After the drain deadline cut what was left, the cut answers' last
/// bytes get this long to go out.
const CUT_GRACE: Duration = Duration::from_secs(2);

/// File descriptors kept for everything but client connections (upstream
/// connections take one per request in flight).
const FD_RESERVE: u64 = 64;

/// Serves `app` on `listener` until `shutdown` resolves, then drains for at
/// most `drain`.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
    limits: &LimitsConfig,
) -> io::Result<()> {
    let max = max_connections(limits.max_connections);
    let conns = Arc::new(Semaphore::new(max));
    let pressure = Arc::new(Pressure::default());
    let stopping = CancellationToken::new();
    let timeouts = Timeouts {
        header_read: ms(limits.header_read_timeout_ms),
        idle: ms(limits.client_idle_timeout_ms),
    };
    let builder = Arc::new(builder(timeouts));
    app.ready.store(true, Ordering::Relaxed);
    tokio::pin!(shutdown);
    loop {
        let permit = match conns.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the cap: idle connections are closed to make room.
                pressure.set(true);
                tokio::select! {
                    permit = conns.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        pressure.set(conns.available_permits() == 0);
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, _)) => {
                let conn = Connection {
                    builder: builder.clone(),
                    app: app.clone(),
                    timeouts,
                    pressure: pressure.clone(),
                    stopping: stopping.clone(),
                };
                tokio::spawn(conn.run(stream, permit));
            }
            Err(e) => {
                // Out of file descriptors, a connection reset while queued:
                // keep serving the others, and those still to come.
                tracing::warn!(error = %e, "accepting a client connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    app.ready.store(false, Ordering::Relaxed);
    tracing::info!(
        drain_timeout_ms = drain.as_millis() as u64,
        "shutting down: draining in-flight requests"
    );
    stopping.cancel();
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain, conns.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached: cutting the answers still in flight");
        app.drain.cut();
        let _ = tokio::time::timeout(CUT_GRACE, conns.acquire_many(all)).await;
    }
    Ok(())
}

/// The HTTP server settings: HTTP/1.1 keep-alive with hyper's own head
/// timer as a backstop behind the watchdog's, and HTTP/2's stream and
/// keep-alive limits.
fn builder(t: Timeouts) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(t.header_read + t.idle);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// The connection cap, within what the file-descriptor limit allows (half
/// of it for client connections, the rest for their upstream ones).
fn max_connections(configured: usize) -> usize {
    let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return configured;
    };
    let room = usize::try_from(soft.saturating_sub(FD_RESERVE) / 2).unwrap_or(usize::MAX);
    if room < configured.min(1024) {
        tracing::warn!(
            configured,
            allowed = room,
            fd_limit = soft,
            "limits.max_connections is more than the file-descriptor limit allows: capped"
        );
    }
    configured.min(room).max(1)
}

/// Raises the soft file-descriptor limit to the hard one (the default soft
/// limit, often 1024, is too low for a proxy: each request holds two).
pub fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "file-descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the file-descriptor limit"),
    }
}

/// What one connection task needs.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: App,
    timeouts: Timeouts,
    pressure: Arc<Pressure>,
    stopping: CancellationToken,
}

impl Connection {
    async fn run(self, stream: TcpStream, permit: OwnedSemaphorePermit) {
        // Latency over throughput: SSE events go out as soon as written.
        let _ = stream.set_nodelay(true);
        let state = ConnState::new(Instant::now());
        let io = TokioIo::new(Watched::new(stream, state.clone()));
        let service = Tracked {
            router: self.app.router,
            proxy: self.app.proxy,
            state: state.clone(),
        };
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let t = self.timeouts;
        let tick = (t.header_read.min(t.idle) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut watchdog = tokio::time::interval(tick);
        let mut draining = false;
        loop {
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "client connection ended with an error");
                    }
                    break;
                }
                () = self.stopping.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = watchdog.tick() => match state.verdict(Instant::now(), t, self.pressure.on()) {
                    Verdict::Keep => {}
                    Verdict::HeadTimeout => {
                        tracing::debug!("closing a client connection: request head too slow (limits.header_read_timeout_ms)");
                        break;
                    }
                    Verdict::Idle if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Verdict::Idle => break,
                }
            }
        }
        drop(permit);
    }
}

/// A connection's service: each request goes to the proxy stack (an API
/// path, where the API is served) or the router, and the connection is
/// told when a request starts and when its answer is done (its body sent
/// or dropped). A hyper service of its own, so that nothing is boxed on
/// the way: not the service, not its future, not the answer's body.
#[derive(Clone)]
struct Tracked {
    router: Router,
    proxy: Option<Proxy>,
    state: Arc<ConnState>,
}

/// Marks a request's answer done when dropped.
struct Done(Arc<ConnState>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.request_done(Instant::now());
    }
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = TrackedAnswer;

    fn call(&self, req: Request<Incoming>) -> TrackedAnswer {
        self.state.request_started(Instant::now());
        let done = Done(self.state.clone());
        let answer = match &self.proxy {
            Some(proxy) if App::is_api(req.uri().path()) => Answer::Api {
                fut: proxy.clone().oneshot(req.map(Body::new)),
            },
            _ => Answer::Ops {
                fut: self.router.clone().oneshot(req),
            },
        };
        TrackedAnswer {
            answer,
            done: Some(done),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer on its way, and its [`Done`] for the body.
    struct TrackedAnswer {
        #[pin]
        answer: Answer,
        done: Option<Done>,
    }
}

pin_project_lite::pin_project! {
    /// The proxy stack's answer or the router's.
    #[project = AnswerProj]
    enum Answer {
        Api { #[pin] fut: Oneshot<Proxy, Request<Body>> },
        Ops { #[pin] fut: Oneshot<Router, Request<Incoming>> },
    }
}

impl Future for TrackedAnswer {
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = match this.answer.project() {
            AnswerProj::Api { fut } => {
                let Ok(resp) = ready!(fut.poll(cx));
                resp.map(Either::Left)
            }
            AnswerProj::Ops { fut } => {
                let Ok(resp) = ready!(fut.poll(cx));
                resp.map(Either::Right)
            }
        };
        let done = this.done.take();
        Poll::Ready(Ok(resp.map(|inner| TrackedBody { inner, _done: done })))
    }
}

pin_project_lite::pin_project! {
    /// An answer's body; the request is done when it is dropped.
    struct TrackedBody {
        #[pin]
        inner: Either<ObservedBody, Body>,
        _done: Option<Done>,
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
