//! The inspection mechanism (a tower layer between `retry` and `attempt`):
//! every successful attempt is read by the pure rules of this module before
//! the retry layer decides on it, so a soft or silent failure under a
//! `retry` policy is retried like a hard one.
//! - Non-streamed chat/completions/images answers are read whole (up to
//!   `inspect.max_body_bytes`; a larger one passes uninspected, counted) and
//!   given their kind.
//! - Streams are wrapped in a [`StreamWatch`]. While the answer's fate is
//!   not yet visible (no content, not finished) the first events are held
//!   back, so that a stream that opens with a content filter or finishes
//!   empty is still answered like a whole body — retried, or the envelope
//!   with its status; once content flows every event is forwarded as it
//!   arrives.
//! - Video tasks: Kling's `succeed` becomes `succeeded`, a failure without
//!   detail gets an `x-backstop-hint`, and a `task_not_exist` on a poll of a
//!   task this gateway saw created moments ago is marked transient, so the
//!   retry layer waits and polls again instead of surfacing it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http::{header, Method, Request, Response};
use http_body_util::BodyExt;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

use crate::classify::{self, TransportFailure};
use crate::config::{ms, Action, Config, InspectConfig};
use crate::context::{Ledger, RequestFacts};
use crate::metrics::Metrics;
use crate::proxy::attempt::Attempt;
use crate::taxonomy::Kind;

use crate::proxy::attempt::prefixed;
use crate::proxy::targets::Targets;

use super::repair::Repair;
use super::tasks::{mark_task_not_ready, video};
use super::watch::{into_body, StreamWatch};
use super::{inspect_body, inspect_images, Endpoint, Expectation, Findings};

/// Tasks remembered as "just created", at most this many.
const TASKS_REMEMBERED: usize = 4096;

/// State shared by every request through the layer.
pub struct Shared {
    pub inspect: InspectConfig,
    pub metrics: Arc<Metrics>,
    pub max_attempts: u32,
    pub stream_idle_timeout: Duration,
    /// For stream repair: the targets a continuation may go to.
    pub targets: Arc<Targets>,
    /// Video task ids this gateway saw created, and when.
    tasks: Mutex<HashMap<String, Instant>>,
}

impl Shared {
    /// Counts an answer's finish reasons and tokens (every attempt's: they
    /// are what the upstream did and billed).
    pub fn record_findings(&self, ledger: &Ledger, findings: &Findings) {
        let model = self.metrics.model_label(ledger.entry().model.as_deref());
        for reason in &findings.finish_reasons {
            self.metrics
                .record_finish_reason(ledger.route, &model, reason);
        }
        if let Some(usage) = findings.usage {
            self.metrics
                .tokens
                .with_label_values(&[model.as_str(), "prompt"])
                .inc_by(usage.prompt_tokens);
            self.metrics
                .tokens
                .with_label_values(&[model.as_str(), "completion"])
                .inc_by(usage.completion_tokens);
        }
    }

    pub(super) fn task_created(&self, id: &str) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.len() >= TASKS_REMEMBERED {
            let window = ms(self.inspect.task_not_ready_window_ms);
            tasks.retain(|_, at| at.elapsed() < window);
            if tasks.len() >= TASKS_REMEMBERED {
                tasks.clear();
            }
        }
        tasks.insert(id.to_string(), Instant::now());
    }

    pub(super) fn task_is_new(&self, id: &str) -> bool {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks
            .get(id)
            .is_some_and(|at| at.elapsed() < ms(self.inspect.task_not_ready_window_ms))
    }
}

/// The inspection layer.
#[derive(Clone)]
pub struct InspectLayer {
    shared: Arc<Shared>,
}

impl InspectLayer {
    pub fn new(config: &Config, metrics: Arc<Metrics>, targets: Arc<Targets>) -> Self {
        InspectLayer {
            shared: Arc::new(Shared {
                inspect: config.inspect.clone(),
                metrics,
                targets,
                max_attempts: config.retry.max_attempts,
                stream_idle_timeout: ms(config.upstream.stream_idle_timeout_ms),
                tasks: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl<S> Layer<S> for InspectLayer {
    type Service = Inspect<S>;

    fn layer(&self, inner: S) -> Inspect<S> {
        Inspect {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The inspecting service.
#[derive(Clone)]
pub struct Inspect<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request<Bytes>> for Inspect<S>
where
    S: Service<Request<Bytes>, Response = Attempt, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Attempt;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Attempt, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let facts = req.extensions().get::<Arc<RequestFacts>>().cloned();
            let ledger = req.extensions().get::<Arc<Ledger>>().cloned();
            // A repairable stream keeps what a continuation needs to resend.
            let resend = facts
                .as_ref()
                .filter(|f| f.stream && f.plan.repair_streams)
                .map(|_| (req.uri().clone(), req.headers().clone()));
            let Ok(attempt) = inner.oneshot(req).await;
            let (Some(facts), Some(ledger)) = (facts, ledger) else {
                return Ok(attempt);
            };
            let repair = resend.and_then(|(uri, headers)| {
                Some(Repair {
                    targets: shared.targets.clone(),
                    plan: facts.plan.clone(),
                    position: ledger.entry().target,
                    json: facts.json.clone()?,
                    uri,
                    headers,
                    request_id: ledger.request_id.clone(),
                })
            });
            Ok(inspect(&shared, &method, &path, &facts, ledger, attempt, repair).await)
        })
    }
}

async fn inspect(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    facts: &RequestFacts,
    ledger: Arc<Ledger>,
    mut attempt: Attempt,
    repair: Option<Repair>,
) -> Attempt {
    let expect = &facts.expect;
    if expect.endpoint == Endpoint::Videos && method == Method::GET {
        mark_task_not_ready(shared, path, &mut attempt.outcome);
    }
    if !attempt.outcome.is_ok() {
        return attempt;
    }
    let Some(resp) = attempt.response.take() else {
        return attempt;
    };
    match (expect.endpoint, expect.stream) {
        (Endpoint::ChatCompletions | Endpoint::Completions, true) => {
            watch_stream(shared, facts, ledger, attempt.outcome, resp, repair).await
        }
        (
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::ImagesGenerations,
            false,
        ) => {
            let (parts, body) = resp.into_parts();
            match read_capped(body, shared.inspect.max_body_bytes).await {
                Read::Whole(bytes) => {
                    let findings = if expect.endpoint == Endpoint::ImagesGenerations {
                        inspect_images(&bytes)
                    } else {
                        inspect_body(expect, &bytes)
                    };
                    shared.record_findings(&ledger, &findings);
                    apply(&mut attempt.outcome, &findings);
                    attempt.response = Some(Response::from_parts(parts, Body::from(bytes)));
                    attempt
                }
                Read::TooLarge(prefix, rest) => {
                    uninspected(shared, &ledger);
                    attempt.response = Some(Response::from_parts(parts, prefixed(prefix, rest)));
                    attempt
                }
                Read::Broken(detail) => {
                    Attempt::failed(classify::transport(TransportFailure::Reset, &detail))
                }
            }
        }
        (Endpoint::Videos, _) => video(shared, method, ledger, attempt.outcome, resp).await,
        (Endpoint::ImagesGenerations, true) | (Endpoint::Other, _) => {
            attempt.response = Some(resp);
            attempt
        }
    }
}

/// Gives the outcome the kind the body shows, with its details.
fn apply(outcome: &mut crate::outcome::Outcome, findings: &Findings) {
    outcome.kind = findings.kind;
    outcome.model = findings.model.clone();
    outcome.finish_reason = findings.notable_finish_reason();
    if findings.kind != Kind::Ok {
        outcome.message = Some(describe(outcome, findings.detail.as_deref()));
    }
}

/// The envelope message for a soft or silent failure: what it is, then the
/// inspector's detail (which choice, the JSON or schema error).
pub(super) fn describe(outcome: &crate::outcome::Outcome, detail: Option<&str>) -> String {
    let what = crate::envelope::default_message(outcome);
    match detail {
        Some(d) if !d.is_empty() => format!("{what}: {d}"),
        Some(_) | None => what,
    }
}

pub(super) fn uninspected(shared: &Shared, ledger: &Ledger) {
    shared
        .metrics
        .uninspected
        .with_label_values(&[ledger.route])
        .inc();
}

/// Streams: look ahead until the answer's fate shows when a `retry` policy
/// could still act on it, then hand the stream to the client under watch.
async fn watch_stream(
    shared: &Arc<Shared>,
    facts: &RequestFacts,
    ledger: Arc<Ledger>,
    outcome: crate::outcome::Outcome,
    resp: Response<Body>,
    repair: Option<Repair>,
) -> Attempt {
    let (mut parts, body) = resp.into_parts();
    let mut watch = StreamWatch::new(body, facts, shared.clone(), ledger, &outcome, repair);
    // Hold the first events back only when an early verdict could change
    // the answer (a policy other than `pass` for the kinds visible before
    // any content); otherwise every event goes out as it arrives.
    let lookahead = shared.inspect.stream_lookahead
        && [Kind::ContentFilter, Kind::EmptyContent]
            .into_iter()
            .any(|k| facts.actions.get(k) != Action::Pass);
    let mut held = Vec::new();
    if lookahead {
        while !watch.decided() {
            match watch.next().await {
                Some(bytes) => held.push(bytes),
                None => break,
            }
        }
        if !watch.content_seen() {
            let findings = watch
                .findings
                .clone()
                .unwrap_or_else(|| watch.findings_so_far());
            // Nothing has reached the client yet: a failure seen now is
            // answered like a whole body's (retried, or the envelope with
            // its status), not as an error event inside a 200.
            let early = matches!(findings.kind, Kind::ContentFilter | Kind::EmptyContent)
                && facts.actions.get(findings.kind) != Action::Pass;
            if early {
                let mut failed = outcome;
                apply(&mut failed, &findings);
                return Attempt::failed(failed);
            }
        }
    }
    // The body is re-framed (a [DONE] or an error event may be added).
    parts.headers.remove(header::CONTENT_LENGTH);
    Attempt {
        outcome,
        response: Some(Response::from_parts(parts, into_body(held, watch))),
    }
}

pub(super) enum Read {
    Whole(Bytes),
    /// Over the cap: what was read, and the rest still streaming.
    TooLarge(Bytes, Body),
    /// The upstream broke off the body.
    Broken(String),
}

pub(super) async fn read_capped(mut body: Body, cap: u64) -> Read {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Read::Whole(buf.freeze()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() > cap {
                        return Read::TooLarge(buf.freeze(), body);
                    }
                }
            }
            Some(Err(e)) => {
                return Read::Broken(format!(
                    "the upstream broke off its answer after {} bytes: {e}",
                    buf.len()
                ))
            }
        }
    }
}

/// The expectation for a request, read once at admission.
pub fn expectation(path: &str, json: Option<&serde_json::Value>) -> Expectation {
    match json {
        Some(j) => Expectation::from_request(path, j),
        None => Expectation::from_request(path, &serde_json::Value::Null),
    }
}
