//! Admission (a tower layer between `observe` and `retry`): the request body
//! is buffered — capped by `limits.max_request_body_bytes`, so it can be
//! replayed and never reaches the upstream when too large (413) — then
//! checked ([`crate::preflight`]) and read once for the facts the inner
//! layers need ([`RequestFacts`]). On the way back it renders the final
//! attempt ([`crate::respond`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, HeaderMap, Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::{Layer, Service, ServiceExt};

use crate::actions::ActionTable;
use crate::config::{ms, Config};
use crate::context::{Ledger, RequestFacts};
use crate::inspect::layer::expectation;
use crate::outcome::Outcome;
use crate::preflight;
use crate::proxy::attempt::Attempt;
use crate::proxy::targets::Targets;
use crate::respond::{self, RenderContext};
use crate::taxonomy::Kind;

/// Admission settings.
#[derive(Clone)]
pub struct AdmitLayer {
    config: Arc<Config>,
    targets: Arc<Targets>,
    actions: Arc<ActionTable>,
}

impl AdmitLayer {
    pub fn new(config: Arc<Config>, targets: Arc<Targets>, actions: Arc<ActionTable>) -> Self {
        AdmitLayer {
            config,
            targets,
            actions,
        }
    }
}

impl<S> Layer<S> for AdmitLayer {
    type Service = Admit<S>;

    fn layer(&self, inner: S) -> Admit<S> {
        Admit {
            inner,
            config: self.config.clone(),
            targets: self.targets.clone(),
            actions: self.actions.clone(),
        }
    }
}

/// The admission service.
#[derive(Clone)]
pub struct Admit<S> {
    inner: S,
    config: Arc<Config>,
    targets: Arc<Targets>,
    actions: Arc<ActionTable>,
}

impl<S> Service<Request<Body>> for Admit<S>
where
    S: Service<Request<Bytes>, Response = Attempt, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let config = self.config.clone();
        let targets = self.targets.clone();
        let actions = self.actions.clone();
        Box::pin(async move { Ok(admit(inner, &config, &targets, &actions, req).await) })
    }
}

async fn admit<S>(
    inner: S,
    config: &Config,
    targets: &Targets,
    actions: &ActionTable,
    req: Request<Body>,
) -> Response<Body>
where
    S: Service<Request<Bytes>, Response = Attempt, Error = Infallible>,
{
    let Some(ledger) = req.extensions().get::<Arc<Ledger>>().cloned() else {
        // Only reachable if the stack is mis-assembled; say so plainly.
        return Response::builder()
            .status(500)
            .body(Body::from("backstop: admission without a ledger"))
            .unwrap_or_default();
    };
    let client_token = bearer_token(req.headers()).map(str::to_string);
    let secrets_owned: Vec<String> = client_token
        .into_iter()
        .chain(Some(config.upstream.api_key.clone()).filter(|k| !k.is_empty()))
        .collect();
    let secrets: Vec<&str> = secrets_owned.iter().map(String::as_str).collect();
    let render = RenderContext {
        ledger: &ledger,
        actions: actions.base(),
        max_attempts: config.retry.max_attempts,
        secrets: &secrets,
    };

    let limit = config.limits.max_request_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return respond::error(too_large(limit), 0, &render);
    }
    let (parts, body) = req.into_parts();
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let body = match Limited::new(body, limit_usize).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return respond::error(too_large(limit), 0, &render)
        }
        Err(e) => {
            let outcome = Outcome {
                param: None,
                ..Outcome::gateway(
                    Kind::BadRequest,
                    format!("the request body could not be read: {e}"),
                )
            };
            return respond::error(outcome, 0, &render);
        }
    };
    if config.log.request_bodies {
        ledger.entry().request_body = Some(crate::support::sanitize(&body, &secrets));
    }
    let parsed = match preflight::check_parsed(
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        &body,
        config.preflight.strict,
    ) {
        Ok(parsed) => parsed,
        Err(outcome) => return respond::error(outcome, 0, &render),
    };

    let mut facts = facts(
        &parts,
        &body,
        parsed,
        config,
        targets,
        &ledger,
        secrets_owned.clone(),
    );
    facts.actions = actions.resolve(ledger.route, facts.model.as_deref());
    let render = RenderContext {
        actions: facts.actions,
        ..render
    };
    ledger.entry().model = facts.model.clone();
    let mut req = Request::from_parts(parts, body);
    req.extensions_mut().insert(Arc::new(facts));
    let Ok(mut attempt) = inner.oneshot(req).await;
    attempt.outcome.redact(&secrets);
    respond::render(attempt, &render)
}

fn too_large(limit: u64) -> Outcome {
    Outcome::gateway(
        Kind::PayloadTooLarge,
        format!(
            "the request body is larger than the gateway's limit of {limit} bytes (limits.max_request_body_bytes)"
        ),
    )
}

/// The token of a `Bearer` Authorization header, for redaction.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.split_once(' ').map_or(value, |(_, t)| t).trim();
    (!token.is_empty()).then_some(token)
}

/// Reads the facts the inner layers need from headers and body, once.
fn facts(
    parts: &http::request::Parts,
    body: &Bytes,
    parsed: Option<serde_json::Value>,
    config: &Config,
    targets: &Targets,
    ledger: &Ledger,
    secrets: Vec<String>,
) -> RequestFacts {
    let headers = &parts.headers;
    // Parsed once: by the pre-flight checks for the JSON endpoints, here for
    // any other JSON-looking body.
    let json = match parsed {
        Some(v) => Some(Arc::new(v)),
        None if body.first().is_some_and(|b| *b == b'{') => {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .map(Arc::new)
        }
        None => None,
    };
    let model = json
        .as_ref()
        .and_then(|j| j.get("model"))
        .and_then(|m| m.as_str())
        .map(str::to_string);
    let stream = json
        .as_ref()
        .and_then(|j| j.get("stream"))
        .and_then(|s| s.as_bool())
        .unwrap_or(false);
    let mut timeout = ms(config.upstream.request_timeout_ms);
    for name in ["x-stainless-timeout", "x-stainless-read-timeout"] {
        if let Some(client) = seconds_header(headers, name) {
            timeout = timeout.min(client);
        }
    }
    let client_retrying = headers
        .get("x-stainless-retry-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .is_some_and(|n| n > 0);
    let expect = Arc::new(expectation(parts.uri.path(), json.as_deref()));
    let plan = targets.plan(model.as_deref());
    RequestFacts {
        model,
        stream,
        deadline: ledger.started + timeout,
        client_retrying,
        plan,
        actions: crate::actions::Actions::of(&config.inspect),
        json,
        expect,
        secrets: Arc::new(secrets),
    }
}

/// A header holding seconds (the Stainless SDKs send e.g. `600` or `60.5`).
fn seconds_header(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let secs = headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn client_deadline_headers_shorten_the_timeout_only() {
        let mut h = HeaderMap::new();
        assert_eq!(seconds_header(&h, "x-stainless-timeout"), None);
        h.insert("x-stainless-timeout", HeaderValue::from_static("60.5"));
        assert_eq!(
            seconds_header(&h, "x-stainless-timeout"),
            Some(Duration::from_millis(60_500))
        );
        h.insert("x-stainless-timeout", HeaderValue::from_static("-1"));
        assert_eq!(seconds_header(&h, "x-stainless-timeout"), None);
        h.insert("x-stainless-timeout", HeaderValue::from_static("soon"));
        assert_eq!(seconds_header(&h, "x-stainless-timeout"), None);
    }

    #[test]
    fn bearer_token_is_found_for_redaction() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-abc"),
        );
        assert_eq!(bearer_token(&h), Some("sk-abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("sk-raw"));
        assert_eq!(bearer_token(&h), Some("sk-raw"));
    }
}
