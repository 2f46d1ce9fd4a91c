//! `backstop-mock`: the chaos upstream as a process, for the SDK tests, the
//! benchmark and the docker-compose demo. Parses flags, binds, prints one
//! `backstop-mock listening on http://ADDR` line to stdout, serves until
//! SIGTERM/SIGINT. Everything else is in the `backstop_mock` library.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use backstop_mock::{parse_mix, serve, MockConfig};
use clap::Parser;

/// An OpenAI-compatible upstream that fails on demand.
#[derive(Debug, Parser)]
#[command(name = "backstop-mock", version)]
struct Args {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, env = "MOCK_LISTEN", default_value = "127.0.0.1:9090")]
    listen: String,
    /// Steps for requests without x-mock-scenario, by weight: "ok=90,status:429=5,status:503=5".
    #[arg(long, env = "MOCK_MIX", default_value = "")]
    mix: String,
    /// Stream content chunks when a request has no x-mock-chunks.
    #[arg(long, env = "MOCK_CHUNKS", default_value_t = 3)]
    chunks: usize,
    /// Pause between stream events (ms) when a request has no x-mock-chunk-delay-ms.
    #[arg(long, env = "MOCK_CHUNK_DELAY_MS", default_value_t = 0)]
    chunk_delay_ms: u64,
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let mix = match parse_mix(&args.mix) {
        Ok(mix) => mix,
        Err(e) => {
            eprintln!("backstop-mock: --mix: {e}");
            return ExitCode::from(2);
        }
    };
    let config = MockConfig {
        mix,
        chunks: args.chunks,
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("backstop-mock: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("backstop-mock: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "backstop-mock listening on http://{addr}")
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(out);
    match serve(listener, config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backstop-mock: {e}");
            ExitCode::FAILURE
        }
    }
}
