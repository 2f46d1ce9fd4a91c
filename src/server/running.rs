//! A gateway started in this process (tests, embedding), and the signal
//! that starts a graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::app::{self, App};
use crate::config::{ms, Config};

use super::serve::serve;

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
    let limits = config.limits.clone();
    let task = tokio::spawn({
        let app = app.clone();
        async move {
            let signal = async move {
                let _ = rx.await;
            };
            serve(listener, app, signal, drain, &limits).await
        }
    });
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
