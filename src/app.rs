//! The one place the gateway is assembled.
//!
//! Ops endpoints (`/healthz`, `/readyz`, `/metrics`) answer directly from
//! the router; every `/v1/*` request goes through the proxy stack
//! ([`Proxy`], which the server calls directly), outermost first:
//!
//! 1. `observe` — request id, span (and, with `[otel]` on, the request's
//!    trace span, continuing the client's `traceparent`), in-flight gauge;
//!    opens the request's record and, when the answer's last byte is gone
//!    (so a stream's final kind counts), reads it into metrics, the one log
//!    line and the trace span.
//! 2. `catch` — a bug answers a 500 envelope instead of dropping the
//!    connection (belt and braces: the request path is written not to panic).
//! 3. `admit` — sheds load beyond `limits.max_inflight` (503 `overloaded`,
//!    the ops endpoints are never shed), buffers the body under the size and
//!    time limits (413 and 408 never reach the upstream), runs pre-flight
//!    checks, reads the request's facts once, and renders the chain's final
//!    attempt as the answer or the envelope.
//! 4. `retry` — the request's chain of attempts: picks each attempt's
//!    target (circuits, pacing), replays the buffered request while the
//!    decision allows, within `max_attempts`, the shared retry budget and
//!    the deadline; counts every attempt once.
//! 5. `inspect` — reads each successful attempt for soft and silent
//!    failures (whole bodies, or streams under watch) so the chain above can
//!    act on them; normalizes video task answers.
//! 6. `exchange` — one upstream exchange under its first-byte timeout,
//!    classified; lazy headers for streams.
//!
//! Down the stack travel the request and its facts (`attempt::Call`), then
//! one `attempt::AttemptRequest` per attempt; up come `attempt::Attempt`
//! and the chain's `attempt::Exchange`. `docs/architecture.md` draws it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use http::{header, Response, StatusCode};
use tower::ServiceBuilder;

use crate::actions::ActionTable;
use crate::config::Config;
use crate::drain::Drain;
use crate::envelope::{self, EnvelopeContext};
use crate::metrics::Metrics;
use crate::otel::{Otel, OtelError};
use crate::outcome::Outcome;
use crate::proxy::targets::{Targets, TargetsError};
use crate::secrets::{bearer_token, constant_time_eq};
use crate::stack::admit::{Admit, AdmitLayer};
use crate::stack::catch::{CatchPanic, CatchPanicLayer};
use crate::stack::exchange::ExchangeService;
use crate::stack::inspect::{Inspect, InspectLayer};
use crate::stack::observe::{Observe, ObserveLayer};
use crate::stack::retry::{Retry, RetryLayer};
use crate::support::FailureLog;
use crate::taxonomy::Kind;

/// The proxy stack as [`build`] composes it. A named type, so that the
/// server calls it directly: no boxed service and no router in front of
/// the API (each cost allocations on every request).
pub type Proxy = Observe<CatchPanic<Admit<Retry<Inspect<ExchangeService>>>>>;

/// The assembled gateway: what the server answers with, and the handles
/// the server and tests use.
#[derive(Clone)]
pub struct App {
    /// The ops endpoints (`/healthz`, `/readyz`, `/metrics`,
    /// `/debug/failures`), and the not-found envelope for any other path
    /// that is not the API's.
    pub router: Router,
    /// The API (see [`App::is_api`]); `None` where only the ops endpoints
    /// are served (`ops_listen`).
    pub proxy: Option<Proxy>,
    pub metrics: Arc<Metrics>,
    /// `/readyz` answers 200 while this is true (set once serving, cleared
    /// when draining).
    pub ready: Arc<AtomicBool>,
    /// Cut at the drain deadline: the answers still going end, counted.
    pub drain: Drain,
    /// The trace exporter, when `[otel]` is on (flushed at shutdown).
    pub otel: Option<Arc<Otel>>,
}

/// Why the gateway could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("targets: {0}")]
    Targets(#[from] TargetsError),
    #[error("inspect overrides: {0}: {1}")]
    Actions(String, String),
    #[error("{0}")]
    Otel(#[from] OtelError),
}

#[derive(Clone)]
struct Ops {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    /// Present when `[debug] failures` is on.
    failures: Option<Arc<FailureLog>>,
    admin_token: Arc<str>,
    /// `envelope.hint_in_message`, for the gateway's own answers.
    hint_in_message: bool,
}

/// Builds the gateway for a validated configuration. With `[otel]` on, it
/// runs inside the tokio runtime (the trace exporter's task starts there).
pub fn build(config: Arc<Config>) -> Result<App, BuildError> {
    let metrics = Arc::new(Metrics::new(config.metrics.max_model_labels)?);
    let targets = Arc::new(Targets::new(&config, metrics.clone())?);
    targets.start_fleet();
    let actions =
        Arc::new(ActionTable::new(&config.inspect).map_err(|(k, m)| BuildError::Actions(k, m))?);
    let ready = Arc::new(AtomicBool::new(false));
    let drain = Drain::default();
    let failures = config
        .debug
        .failures
        .then(|| Arc::new(FailureLog::new(config.debug.failures_capacity)));
    let otel = Otel::start(&config.otel)?;

    let proxy = ServiceBuilder::new()
        .layer(ObserveLayer::new(
            metrics.clone(),
            failures.clone(),
            otel.clone(),
        ))
        .layer(CatchPanicLayer::new(config.envelope.hint_in_message))
        .layer(AdmitLayer::new(
            config.clone(),
            targets.clone(),
            actions,
            drain.clone(),
        ))
        .layer(RetryLayer::new(
            config.retry.clone(),
            metrics.clone(),
            targets.clone(),
        ))
        .layer(InspectLayer::new(&config, metrics.clone(), drain.clone()))
        .service(ExchangeService);

    let ops = Ops {
        metrics: metrics.clone(),
        ready: ready.clone(),
        failures,
        admin_token: Arc::from(config.debug.admin_token.expose()),
        hint_in_message: config.envelope.hint_in_message,
    };
    let ops_routes = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/debug/failures", get(debug_failures));
    let router = ops_routes.fallback(not_found).with_state(ops);
    Ok(App {
        router,
        proxy: Some(proxy),
        metrics,
        ready,
        drain,
        otel,
    })
}

impl App {
    /// Whether `path` is the API's: `/v1/` and more. Those go to the proxy
    /// stack as they came (nothing is captured from them).
    pub fn is_api(path: &str) -> bool {
        path.len() > "/v1/".len() && path.starts_with("/v1/")
    }

    /// The same gateway answering only the ops endpoints (`ops_listen`).
    pub fn ops_only(&self) -> App {
        App {
            proxy: None,
            ..self.clone()
        }
    }
}

async fn readyz(State(ops): State<Ops>) -> (StatusCode, &'static str) {
    if ops.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_text(State(ops): State<Ops>) -> Response<Body> {
    Response::builder()
        .header(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(Body::from(ops.metrics.render()))
        .unwrap_or_default()
}

/// The last failed requests, for operators holding the admin token.
async fn debug_failures(State(ops): State<Ops>, headers: http::HeaderMap) -> Response<Body> {
    let Some(log) = &ops.failures else {
        return not_found(State(ops), http::Uri::from_static("/debug/failures")).await;
    };
    let presented = bearer_token(&headers);
    if !presented.is_some_and(|t| constant_time_eq(t.as_bytes(), ops.admin_token.as_bytes())) {
        let outcome = Outcome::gateway(
            Kind::Unauthorized,
            "/debug/failures needs `Authorization: Bearer <debug.admin_token>`",
        );
        return gateway_envelope(&outcome, ops.hint_in_message);
    }
    let body = serde_json::to_vec(&log.snapshot()).unwrap_or_default();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// Paths outside `/v1` and the ops endpoints: a 404 envelope that says where
/// the API lives.
async fn not_found(State(ops): State<Ops>, uri: http::Uri) -> Response<Body> {
    not_found_answer(uri.path(), ops.hint_in_message)
}

fn not_found_answer(path: &str, hint_in_message: bool) -> Response<Body> {
    let outcome = Outcome::gateway(
        Kind::NotFound,
        format!(
            "backstop serves the OpenAI API under /v1/ (got {path}): set the SDK's base_url to http://<gateway>/v1"
        ),
    );
    gateway_envelope(&outcome, hint_in_message)
}

fn gateway_envelope(outcome: &Outcome, hint_in_message: bool) -> Response<Body> {
    let request_id = uuid();
    envelope::response(
        outcome,
        &EnvelopeContext::gateway(&request_id, hint_in_message),
    )
    .map(Body::from)
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
