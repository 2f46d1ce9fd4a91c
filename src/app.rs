//! The one place the gateway is assembled.
//!
//! Ops endpoints (`/healthz`, `/readyz`, `/metrics`) answer directly; every
//! `/v1/*` request goes through the proxy stack, outermost first:
//!
//! 1. `observe` — request id, span (and, with `[otel]` on, the request's
//!    trace span, continuing the client's `traceparent`), in-flight gauge;
//!    opens the request's record and, when the answer's last byte is gone
//!    (so a stream's final kind counts), reads it into metrics, the one log
//!    line and the trace span.
//! 2. `catch_panic` — a bug answers a 500 envelope instead of dropping the
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

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use futures_util::future::{ready, Either, Ready};
use http::{header, Request, Response, StatusCode};
use tower::{Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;

use crate::actions::{ActionTable, Actions};
use crate::config::Config;
use crate::drain::Drain;
use crate::envelope::{self, EnvelopeContext};
use crate::metrics::Metrics;
use crate::otel::{Otel, OtelError};
use crate::outcome::Outcome;
use crate::proxy::targets::{Targets, TargetsError};
use crate::secrets::{bearer_token, constant_time_eq, Secrets};
use crate::stack::admit::AdmitLayer;
use crate::stack::exchange::ExchangeService;
use crate::stack::inspect::InspectLayer;
use crate::stack::observe::{ObserveLayer, Panicked};
use crate::stack::retry::RetryLayer;
use crate::support::FailureLog;
use crate::taxonomy::Kind;

/// The assembled gateway: its router and the handles the server and tests use.
#[derive(Clone)]
pub struct App {
    pub router: Router,
    /// Only the ops endpoints (`/healthz`, `/readyz`, `/metrics`,
    /// `/debug/failures`), for `ops_listen`.
    pub ops_router: Router,
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
        .map_response(|r: Response<_>| r.map(Body::new))
        .layer(CatchPanicLayer::custom({
            let hint_in_message = config.envelope.hint_in_message;
            move |panic| panic_answer(panic, hint_in_message)
        }))
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
    let router = ops_routes
        .clone()
        .fallback_service(ApiOnly {
            proxy,
            hint_in_message: config.envelope.hint_in_message,
        })
        .with_state(ops.clone());
    let ops_router = ops_routes.fallback(not_found).with_state(ops);
    Ok(App {
        router,
        ops_router,
        metrics,
        ready,
        drain,
        otel,
    })
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

/// Everything the ops routes do not take: a path under `/v1/` goes to the
/// proxy stack, anything else gets the not-found envelope. A fallback
/// rather than a `/v1/{*rest}` route: the path is forwarded as it came, so
/// nothing needs capturing — a captured parameter costs allocations on
/// every request.
#[derive(Clone)]
struct ApiOnly<P> {
    proxy: P,
    hint_in_message: bool,
}

impl<P> Service<Request<Body>> for ApiOnly<P>
where
    P: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<P::Future, Ready<Result<Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.proxy.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let path = req.uri().path();
        if path.len() > "/v1/".len() && path.starts_with("/v1/") {
            Either::Left(self.proxy.call(req))
        } else {
            Either::Right(ready(Ok(not_found_answer(path, self.hint_in_message))))
        }
    }
}

fn panic_answer(
    _panic: Box<dyn std::any::Any + Send + 'static>,
    hint_in_message: bool,
) -> Response<String> {
    let outcome = Outcome::gateway(
        Kind::ServerError,
        "backstop hit an internal error while handling this request; it has been logged",
    );
    tracing::error!("panic in the request path");
    let mut resp = gateway_envelope(&outcome, hint_in_message)
        .map(|_| envelope_text(&outcome, hint_in_message));
    // The gateway's own bug: an internal error, not a bad upstream.
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    // Counted as the server error it is, not as a client that left.
    resp.extensions_mut().insert(Panicked);
    resp
}

fn gateway_envelope(outcome: &Outcome, hint_in_message: bool) -> Response<Body> {
    envelope::response(outcome, &gateway_context(&uuid(), hint_in_message)).map(Body::from)
}

fn envelope_text(outcome: &Outcome, hint_in_message: bool) -> String {
    let body = envelope::body(outcome, &gateway_context(&uuid(), hint_in_message));
    String::from_utf8_lossy(&body).into_owned()
}

/// The gateway's own answers outside the stack echo nothing of a client's.
static NO_SECRETS: std::sync::LazyLock<Secrets> = std::sync::LazyLock::new(Secrets::default);

fn gateway_context(request_id: &str, hint_in_message: bool) -> EnvelopeContext<'_> {
    EnvelopeContext {
        endpoint: crate::inspect::Endpoint::Other,
        actions: Actions::of(&crate::config::InspectConfig::default()),
        hint_in_message,
        target: None,
        attempt_kinds: &[],
        attempts: 0,
        request_id,
        secrets: &NO_SECRETS,
        max_attempts: 1,
    }
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
