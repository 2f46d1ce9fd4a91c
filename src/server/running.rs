//! Binding and serving the gateway's listeners — the main one, and the
//! ops-only one when `ops_listen` is set — until one shutdown signal
//! drains them both; a gateway started in this process (tests,
//! embedding); and the signal that starts a graceful shutdown.

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
    /// The ops-only listener's address, when `ops_listen` is set.
    pub ops_addr: Option<SocketAddr>,
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

/// The gateway's listeners, bound.
pub struct Listeners {
    pub main: TcpListener,
    /// The ops-only listener (`ops_listen`), when configured.
    pub ops: Option<TcpListener>,
}

/// Binds `listen` (and `ops_listen` when set); port 0 picks a free port.
pub async fn bind(config: &Config) -> io::Result<Listeners> {
    let main = TcpListener::bind(config.listen_addr().map_err(io::Error::other)?).await?;
    let ops = match config.ops_listen.as_str() {
        "" => None,
        addr => Some(TcpListener::bind(addr).await?),
    };
    Ok(Listeners { main, ops })
}

/// Serves `app` on its listeners until `shutdown` resolves, then drains
/// them both and flushes the trace exporter (when traces are on).
pub async fn serve_all(
    listeners: Listeners,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    config: &Config,
) -> io::Result<()> {
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    });
    let drain = ms(config.shutdown.drain_timeout_ms);
    let ops = listeners.ops.map(|listener| {
        let ops_app = app.ops_only();
        serve(
            listener,
            ops_app,
            stop.clone().cancelled_owned(),
            drain,
            &config.limits,
        )
    });
    let otel = app.otel.clone();
    let main = serve(
        listeners.main,
        app,
        stop.cancelled_owned(),
        drain,
        &config.limits,
    );
    let served = match ops {
        Some(ops) => {
            let (main, ops) = tokio::join!(main, ops);
            main.and(ops)
        }
        None => main.await,
    };
    // After the drain: the last requests' spans are exported before exit.
    if let Some(otel) = otel {
        otel.shutdown().await;
    }
    served
}

/// Builds and starts a gateway on `config.listen` (port 0 picks a free one).
pub async fn start(config: Config) -> io::Result<Running> {
    let config = Arc::new(config);
    let app = app::build(config.clone()).map_err(io::Error::other)?;
    let listeners = bind(&config).await?;
    let addr = listeners.main.local_addr()?;
    let ops_addr = listeners
        .ops
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn({
        let app = app.clone();
        async move {
            let signal = async move {
                let _ = rx.await;
            };
            serve_all(listeners, app, signal, &config).await
        }
    });
    Ok(Running {
        addr,
        ops_addr,
        app,
        shutdown: Some(tx),
        task,
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    // Registered now, not when first polled: a SIGTERM that comes right
    // after the "listening" line must start a drain, not kill the process.
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let term = async move {
                match term {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async move {
                match int {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = int => tracing::info!("SIGINT received"),
                () = term => tracing::info!("SIGTERM received"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C received");
        }
    }
}
