//! Serving: the listener (TCP_NODELAY on every accepted connection), the
//! readiness flag, and graceful shutdown — on the signal, stop accepting,
//! let in-flight requests and streams finish, but no longer than the drain
//! timeout.

use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::app::{self, App};
use crate::config::{ms, Config};

/// Serves `app` on `listener` until `shutdown` resolves, then drains for at
/// most `drain`.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        // Latency over throughput: SSE events go out as soon as written.
        let _ = tcp.set_nodelay(true);
    });
    let (draining_tx, draining_rx) = oneshot::channel::<()>();
    let ready = app.ready.clone();
    ready.store(true, Ordering::Relaxed);
    let server = axum::serve(listener, app.router).with_graceful_shutdown(async move {
        shutdown.await;
        ready.store(false, Ordering::Relaxed);
        tracing::info!(
            drain_timeout_ms = drain.as_millis() as u64,
            "shutting down: draining in-flight requests"
        );
        let _ = draining_tx.send(());
    });
    let server = server.into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = async {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(drain).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!("drain timeout reached: closing the remaining connections");
            Ok(())
        }
    }
}

/// A gateway running in this process (tests, embedding).
pub struct Running {
    pub addr: SocketAddr,
    pub app: App,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl Running {
    /// Base URL for SDKs: `http://ADDR/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Sends the shutdown signal and waits for the drain to end.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)))
    }
}

/// Builds and starts a gateway on `config.listen` (port 0 picks a free one).
pub async fn start(config: Config) -> io::Result<Running> {
    let config = Arc::new(config);
    let app = app::build(config.clone()).map_err(io::Error::other)?;
    let listener = TcpListener::bind(config.listen_addr().map_err(io::Error::other)?).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let drain = ms(config.shutdown.drain_timeout_ms);
    let task = tokio::spawn(serve(
        listener,
        app.clone(),
        async move {
            let _ = rx.await;
        },
        drain,
    ));
    Ok(Running {
        addr,
        app,
        shutdown: Some(tx),
        task,
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
