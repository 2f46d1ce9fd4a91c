//! The `backstop` binary: parse the command line, load the configuration,
//! start logging, serve until SIGTERM/SIGINT.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the gateway allocates small, short-lived buffers per request
/// and per chunk; mimalloc serves those with less CPU than glibc's malloc
/// (bench/README.md has the before/after figures).
#[cfg(not(feature = "alloc-count"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bench's build (`--features alloc-count`, built apart by bench/run):
/// the same mimalloc, with every allocation and reallocation counted, so
/// that `backstop_allocations_total` on /metrics says how many a request
/// or a stream event costs. Never in a normal build: the counting costs
/// atomic increments on every allocation and free.
#[cfg(feature = "alloc-count")]
#[global_allocator]
static GLOBAL: stats_alloc::StatsAlloc<mimalloc::MiMalloc> =
    stats_alloc::StatsAlloc::new(mimalloc::MiMalloc);

/// What [`GLOBAL`] counted so far: (allocations, reallocations).
#[cfg(feature = "alloc-count")]
fn allocations_so_far() -> (u64, u64) {
    let stats = GLOBAL.stats();
    let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    (n(stats.allocations), n(stats.reallocations))
}

/// A resilience gateway for OpenAI-compatible APIs.
#[derive(Parser)]
#[command(name = "backstop", version, about)]
struct Cli {
    /// Config file (TOML). Default: config/backstop.toml when present.
    #[arg(long, env = "BACKSTOP_CONFIG")]
    config: Option<PathBuf>,
    /// Log format, overriding `log.format`: text or json.
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
}

fn main() -> ExitCode {
    #[cfg(feature = "alloc-count")]
    backstop::metrics::count_allocations(allocations_so_far);
    let cli = Cli::parse();
    let env: Vec<(String, String)> = std::env::vars().collect();
    // Before the configuration is read, JSON mode is what the command line
    // or the environment says.
    let json_early = cli.log_format.as_deref() == Some("json")
        || env
            .iter()
            .any(|(k, v)| k == "BACKSTOP_LOG__FORMAT" && v.trim().eq_ignore_ascii_case("json"));
    let mut config = match backstop::config::load(cli.config.as_deref(), &env) {
        Ok(c) => c,
        Err(e) => {
            say_error(json_early, &format!("backstop: {e}"));
            return ExitCode::from(2);
        }
    };
    if let Some(format) = cli.log_format.as_deref() {
        config.log.format = match format {
            "json" => backstop::config::LogFormat::Json,
            _ => backstop::config::LogFormat::Text,
        };
    }
    backstop::telemetry::init(&config.log);
    let json = config.log.format == backstop::config::LogFormat::Json;
    if json {
        // A panic's report is a log record too.
        std::panic::set_hook(Box::new(|info| {
            tracing::error!(panic = %info, "panic");
        }));
    }
    for warning in backstop::config::warnings(&config) {
        tracing::warn!("{warning}");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.runtime.worker_threads > 0 {
        builder.worker_threads(config.runtime.worker_threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            say_error(json, &format!("backstop: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say_error(json, &format!("backstop: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// A fatal error on stderr: one JSON record in JSON mode, else the line.
fn say_error(json: bool, message: &str) {
    if json {
        let record = serde_json::json!({"level": "ERROR", "message": message});
        eprintln!("{record}");
    } else {
        eprintln!("{message}");
    }
}

/// One machine-readable line on stdout for scripts and test harnesses:
/// `backstop listening on http://…`, or in JSON mode a JSON record with the
/// same `message` and the address as `url`.
fn say_listening(json: bool, what: &str, url: &str) {
    let mut out = std::io::stdout();
    let message = format!("{what} listening on {url}");
    let _ = if json {
        let record = serde_json::json!({"level": "INFO", "message": message, "url": url});
        writeln!(out, "{record}")
    } else {
        writeln!(out, "{message}")
    };
    let _ = out.flush();
}

async fn run(config: backstop::config::Config) -> std::io::Result<()> {
    let config = std::sync::Arc::new(config);
    let app = backstop::app::build(config.clone()).map_err(std::io::Error::other)?;
    let listeners = backstop::server::bind(&config).await?;
    let local = listeners.main.local_addr()?;
    let upstream = backstop::secrets::shown_url(config.upstream_base());
    tracing::info!(%local, %upstream, "backstop listening");
    let shutdown = backstop::server::shutdown_signal();
    let json = config.log.format == backstop::config::LogFormat::Json;
    say_listening(json, "backstop", &format!("http://{local}"));
    if let Some(ops) = &listeners.ops {
        say_listening(
            json,
            "backstop ops",
            &format!("http://{}", ops.local_addr()?),
        );
    }
    backstop::server::raise_fd_limit();
    backstop::server::serve_all(listeners, app, shutdown, &config).await
}
