//! Admission (a tower layer between `observe` and `retry`): the request body
//! is buffered — capped by `limits.max_request_body_bytes`, so it can be
//! replayed and never reaches the upstream when too large (413) — then
//! checked ([`crate::preflight`]) and read once for the facts the inner
//! layers need ([`RequestFacts`]). On the way back it renders the chain's
//! final attempt ([`super::respond`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use futures_util::future::BoxFuture;
use http::{header, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service, ServiceExt};

use crate::actions::ActionTable;
use crate::attempt::{Call, ClientRequest, Exchange, Tally};
use crate::config::{ms, Config, Secret};
use crate::drain::Drain;
use crate::facts::{self, RequestFacts};
use crate::inspect::Expectation;
use crate::json_field::Json;
use crate::outcome::Outcome;
use crate::path;
use crate::preflight;
use crate::proxy::headers;
use crate::proxy::targets::Targets;
use crate::record::Finish;
use crate::secrets::{bearer_token, constant_time_eq, Secrets};
use crate::taxonomy::Kind;

use super::respond::{self, RenderContext};

/// What admission shares across requests.
struct Shared {
    config: Arc<Config>,
    targets: Arc<Targets>,
    actions: Arc<ActionTable>,
    drain: Drain,
    /// One permit per proxied request in flight, until its body ends.
    inflight: Arc<Semaphore>,
    /// The configured credentials, to redact wherever they show up.
    secrets: Secrets,
    /// Inbound auth: the tokens a client may present (empty: off).
    tokens: Vec<Secret>,
}

/// Admission settings.
#[derive(Clone)]
pub struct AdmitLayer {
    shared: Arc<Shared>,
}

impl AdmitLayer {
    pub fn new(
        config: Arc<Config>,
        targets: Arc<Targets>,
        actions: Arc<ActionTable>,
        drain: Drain,
    ) -> Self {
        let inflight = Arc::new(Semaphore::new(config.limits.max_inflight));
        let secrets = Secrets::configured(&config);
        let tokens = config.auth_tokens();
        AdmitLayer {
            shared: Arc::new(Shared {
                config,
                targets,
                actions,
                drain,
                inflight,
                secrets,
                tokens,
            }),
        }
    }
}

impl<S> Layer<S> for AdmitLayer {
    type Service = Admit<S>;

    fn layer(&self, inner: S) -> Admit<S> {
        Admit {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The admission service.
#[derive(Clone)]
pub struct Admit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<ClientRequest> for Admit<S>
where
    S: Service<Arc<Call>, Response = Exchange, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ClientRequest) -> Self::Future {
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            // Load shedding: beyond max_inflight, answer at once.
            let permit = shared.inflight.clone().try_acquire_owned().ok();
            Ok(admit(inner, &shared, permit, req).await)
        })
    }
}

/// Admits one request; `permit` is its in-flight permit (`None`: shed). The
/// permit goes with the request's [`Finish`], held until the answer's last
/// byte went out.
async fn admit<S>(
    inner: S,
    shared: &Shared,
    permit: Option<OwnedSemaphorePermit>,
    req: ClientRequest,
) -> Response<Body>
where
    S: Service<Arc<Call>, Response = Exchange, Error = Infallible>,
{
    let Shared {
        config,
        targets,
        actions,
        drain,
        ..
    } = shared;
    let ClientRequest {
        http: req,
        record,
        trace,
    } = req;
    let admitted = permit.is_some();
    let finish = Finish::of(record.clone()).holding(permit);
    let secrets = shared.secrets.with_client(req.headers(), req.uri());
    let endpoint = crate::inspect::Endpoint::from_path(req.uri().path());
    let render = RenderContext::of(&record, config, drain, endpoint, actions.base(), &secrets);
    let refuse = |outcome: Outcome, render: &RenderContext<'_>, finish: Finish| {
        respond::error(outcome, &Tally::default(), render, finish)
    };
    if !admitted {
        return refuse(overloaded(config.limits.max_inflight), &render, finish);
    }
    // Only the API's methods and paths reach an upstream.
    if !path::forwarded(req.method()) {
        return refuse(not_allowed(req.method()), &render, finish);
    }
    let client_path = match path::check(req.uri()) {
        Ok(p) => p,
        Err(refusal) => return refuse(refused_path(refusal), &render, finish),
    };
    // Inbound auth: the client's token is checked and consumed; every
    // upstream then gets its own configured key.
    if !shared.tokens.is_empty() {
        let presented = bearer_token(req.headers()).unwrap_or_default();
        if !shared
            .tokens
            .iter()
            .any(|t| constant_time_eq(presented.as_bytes(), t.expose().as_bytes()))
        {
            return refuse(unauthenticated(), &render, finish);
        }
    }

    let limit = config.limits.max_request_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return refuse(too_large(limit), &render, finish);
    }
    let (mut parts, body) = req.into_parts();
    if !shared.tokens.is_empty() {
        headers::strip_credentials(&mut parts.headers);
    }
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let read = Limited::new(body, limit_usize).collect();
    let body_timeout = ms(config.limits.request_body_timeout_ms);
    let Ok(read) = tokio::time::timeout(body_timeout, read).await else {
        return refuse(too_slow(body_timeout), &render, finish);
    };
    let body = match read {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return refuse(too_large(limit), &render, finish),
        Err(e) => {
            let outcome = Outcome::gateway(
                Kind::BadRequest,
                format!("the request body could not be read: {e}"),
            );
            return refuse(outcome, &render, finish);
        }
    };
    if config.log.request_bodies {
        record.set_request_body(crate::support::sanitize(&body, &secrets));
    }
    let parsed = match preflight::check_parsed(
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        &body,
        config.preflight.strict,
    ) {
        Ok(parsed) => parsed,
        Err(outcome) => return refuse(outcome, &render, finish),
    };

    let json = facts::json_body(parsed, &body);
    let (model, stream) = facts::model_and_stream(json);
    let actions = actions.resolve(record.route, model.as_deref());
    let facts = RequestFacts {
        request_id: record.request_id.clone(),
        route: record.route,
        deadline: record.started
            + facts::time_budget(ms(config.upstream.request_timeout_ms), &parts.headers),
        client_retrying: facts::client_retrying(&parts.headers),
        creates: crate::path::creates_something(
            &parts.method,
            parts.uri.path(),
            json.and_then(|j| j.get("background"))
                .and_then(Json::as_bool)
                .unwrap_or(false),
        ),
        plan: targets.plan(model.as_deref()),
        actions,
        expect: Expectation::checking(
            parts.uri.path(),
            json,
            actions.schema_mismatch != crate::config::Action::Pass,
        ),
        model,
        stream,
        secrets,
    };
    record.set_model(facts.model.clone());
    // The facts own the secrets from here; the answer is rendered with them.
    let facts = Arc::new(facts);
    let render = RenderContext::of(
        &record,
        config,
        drain,
        endpoint,
        facts.actions,
        &facts.secrets,
    );
    let call = Arc::new(Call {
        method: parts.method,
        uri: parts.uri,
        path: client_path,
        headers: parts.headers,
        body,
        facts: facts.clone(),
        record: record.clone(),
        trace,
    });
    let Ok(exchange) = inner.oneshot(call).await;
    respond::render(exchange, &render, finish)
}

/// A method the API does not take: 405, never forwarded.
fn not_allowed(method: &http::Method) -> Outcome {
    Outcome {
        status: Some(405),
        ..Outcome::gateway(
            Kind::BadRequest,
            format!(
                "the method {method} is not forwarded: the API takes GET, POST, DELETE and HEAD"
            ),
        )
    }
}

/// A path that could leave the API: 400, never forwarded.
fn refused_path(refusal: path::PathRefusal) -> Outcome {
    Outcome::gateway(
        Kind::BadRequest,
        format!(
            "the request path was refused: {}; send the API path as the SDK builds it",
            refusal.describe()
        ),
    )
}

/// No valid gateway token with inbound auth on: 401.
fn unauthenticated() -> Outcome {
    Outcome::gateway(
        Kind::Unauthorized,
        "this gateway requires `Authorization: Bearer <token>` with one of its [auth] tokens (the SDK's api_key)",
    )
}

/// The gateway's own 503 beyond `limits.max_inflight`.
fn overloaded(max_inflight: usize) -> Outcome {
    Outcome {
        retry_after: Some(Duration::from_secs(1)),
        ..Outcome::gateway(
            Kind::Overloaded,
            format!(
                "the gateway is answering its limit of {max_inflight} requests at once (limits.max_inflight); retry after retry-after"
            ),
        )
    }
}

/// A request body that did not arrive in time: 408, never forwarded.
fn too_slow(limit: Duration) -> Outcome {
    Outcome {
        status: Some(408),
        ..Outcome::gateway(
            Kind::BadRequest,
            format!(
                "the request body did not arrive within {} ms (limits.request_body_timeout_ms)",
                limit.as_millis()
            ),
        )
    }
}

fn too_large(limit: u64) -> Outcome {
    Outcome::gateway(
        Kind::PayloadTooLarge,
        format!(
            "the request body is larger than the gateway's limit of {limit} bytes (limits.max_request_body_bytes)"
        ),
    )
}

#[cfg(test)]
mod tests;
