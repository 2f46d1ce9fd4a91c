//! Test support for the layer tests: a [`Call`] as admission would build it,
//! and a scripted inner service that records what each attempt was sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Method};
use tokio::time::Instant;

use crate::actions::Actions;
use crate::attempt::{Attempt, AttemptRequest, Call, Purpose};
use crate::config::Config;
use crate::facts::RequestFacts;
use crate::inspect::Expectation;
use crate::metrics::Metrics;
use crate::proxy::targets::Targets;
use crate::record::Record;

pub const ROUTE: &str = "/v1/chat/completions";

/// A two-target route (`default/m`, then `backup/m`) for model `m`, whose
/// circuits open after one failure and cool down for a second.
pub fn two_targets() -> Config {
    let mut config: Config = toml::from_str(
        r#"
[upstreams.backup]
url = "http://127.0.0.1:9/v1"
prefill = true

[[routes]]
name = "r"
models = ["m"]
targets = [{ upstream = "default", model = "m" }, { upstream = "backup", model = "m" }]
repair_streams = true

[circuit]
consecutive_failures = 1
cooldown_ms = 1000
"#,
    )
    .unwrap();
    config.retry.base_delay_ms = 100;
    config.retry.max_delay_ms = 1_000;
    config
}

/// The metrics and targets of a configuration.
pub fn targets(config: &Config) -> (Arc<Metrics>, Arc<Targets>) {
    let metrics = Arc::new(Metrics::new(10).unwrap());
    let targets = Arc::new(Targets::new(config, metrics.clone()).unwrap());
    (metrics, targets)
}

/// Options for [`call`].
pub struct CallSpec {
    pub model: &'static str,
    pub stream: bool,
    pub deadline_in: Duration,
    pub client_retrying: bool,
}

impl Default for CallSpec {
    fn default() -> Self {
        CallSpec {
            model: "m",
            stream: false,
            deadline_in: Duration::from_secs(600),
            client_retrying: false,
        }
    }
}

/// A chat request for `spec.model`, admitted.
pub fn call(config: &Config, targets: &Targets, spec: CallSpec) -> Arc<Call> {
    let json = serde_json::json!({
        "model": spec.model,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": spec.stream,
    });
    let record = Record::new(HeaderValue::from_static("req-1"), Method::POST, ROUTE);
    let facts = RequestFacts {
        request_id: HeaderValue::from_static("req-1"),
        route: ROUTE,
        model: Some(spec.model.into()),
        stream: spec.stream,
        deadline: Instant::now() + spec.deadline_in,
        client_retrying: spec.client_retrying,
        creates: false,
        plan: targets.plan(Some(spec.model)),
        actions: Actions::of(&config.inspect),
        expect: Expectation::from_request(ROUTE, &json),
        secrets: Default::default(),
    };
    Arc::new(Call {
        method: Method::POST,
        uri: http::Uri::from_static(ROUTE),
        path: crate::path::check(&http::Uri::from_static(ROUTE)).unwrap(),
        headers: HeaderMap::new(),
        body: Bytes::from(serde_json::to_vec(&json).unwrap()),
        facts: Arc::new(facts),
        record,
        trace: None,
    })
}

/// What one attempt was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub number: u32,
    pub position: usize,
    pub label: String,
    pub purpose: Purpose,
    pub body: Bytes,
}

type Script = dyn Fn(&AttemptRequest, usize) -> BoxFuture<'static, Attempt> + Send + Sync;

/// An inner service answering the n-th attempt (0-based) with `script`,
/// recording what every attempt was sent.
#[derive(Clone)]
pub struct Scripted {
    pub sent: Arc<Mutex<Vec<Sent>>>,
    script: Arc<Script>,
}

impl Scripted {
    pub fn new(
        script: impl Fn(&AttemptRequest, usize) -> BoxFuture<'static, Attempt> + Send + Sync + 'static,
    ) -> Scripted {
        Scripted {
            sent: Arc::default(),
            script: Arc::new(script),
        }
    }

    /// Answers each attempt with the outcome `outcome(n)`, at once.
    pub fn outcomes(
        outcome: impl Fn(usize) -> crate::outcome::Outcome + Send + Sync + 'static,
    ) -> Scripted {
        Scripted::new(move |_, n| {
            let o = outcome(n);
            Box::pin(async move { Attempt::failed(o) })
        })
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    pub fn positions(&self) -> Vec<usize> {
        self.sent().iter().map(|s| s.position).collect()
    }
}

impl tower::Service<AttemptRequest> for Scripted {
    type Response = Attempt;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Attempt, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: AttemptRequest) -> Self::Future {
        let n = {
            let mut sent = self.sent.lock().unwrap();
            sent.push(Sent {
                number: req.number,
                position: req.position,
                label: req.label.to_string(),
                purpose: req.purpose,
                body: req.body.clone(),
            });
            sent.len() - 1
        };
        let fut = (self.script)(&req, n);
        Box::pin(async move { Ok(fut.await) })
    }
}

/// A chain for tests of what happens after the answer went out: a fixed
/// tally, and continuations handed out from a list.
pub struct FakeChain {
    pub tally: crate::attempt::Tally,
    pub continuations: Vec<axum::body::Body>,
    pub asked: Arc<Mutex<Vec<crate::attempt::Continuation>>>,
}

impl FakeChain {
    /// A chain that made `attempts` attempts on `default` and continues
    /// nothing.
    pub fn after(attempts: u32) -> FakeChain {
        FakeChain {
            tally: crate::attempt::Tally {
                attempts,
                kinds: vec![crate::taxonomy::Kind::Ok; attempts as usize],
                target: Some(Arc::from("default")),
            },
            continuations: Vec::new(),
            asked: Arc::default(),
        }
    }
}

impl crate::attempt::Chain for FakeChain {
    fn tally(&self) -> &crate::attempt::Tally {
        &self.tally
    }

    fn max_attempts(&self) -> u32 {
        3
    }

    fn resume(
        &mut self,
        cut: crate::attempt::Continuation,
    ) -> BoxFuture<'_, Option<crate::attempt::Resumed>> {
        self.asked.lock().unwrap().push(cut);
        let next = (!self.continuations.is_empty()).then(|| self.continuations.remove(0));
        if next.is_some() {
            self.tally.attempts += 1;
            self.tally.kinds.push(crate::taxonomy::Kind::Ok);
            self.tally.target = Some(Arc::from("backup/m"));
        }
        Box::pin(async move {
            next.map(|body| crate::attempt::Resumed {
                body,
                target: Arc::from("backup/m"),
            })
        })
    }
}

/// A body that sends each chunk after its delay (virtual time under a
/// paused clock), then ends — or stays open when `hang`.
pub fn timed_body(chunks: Vec<(Duration, String)>, hang: bool) -> axum::body::Body {
    let stream =
        futures_util::stream::unfold((chunks.into_iter(), hang), |(mut it, hang)| async move {
            match it.next() {
                Some((delay, chunk)) => {
                    tokio::time::sleep(delay).await;
                    Some((Ok::<_, Infallible>(Bytes::from(chunk)), (it, hang)))
                }
                None if hang => {
                    std::future::pending::<()>().await;
                    None
                }
                None => None,
            }
        });
    axum::body::Body::from_stream(stream)
}

/// A 200 streamed answer as the exchange hands it up.
pub fn streamed(body: axum::body::Body) -> Attempt {
    let mut resp = http::Response::new(crate::attempt::AnswerBody::Plain(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    Attempt {
        outcome: crate::outcome::Outcome::ok(200),
        response: Some(resp),
        ..Attempt::default()
    }
}

/// One chat chunk event with a content delta (or a role-only delta, or a
/// finish reason).
pub fn chunk(delta: &str, finish: Option<&str>) -> String {
    let finish = finish.map_or("null".to_string(), |f| format!("\"{f}\""));
    format!(
        "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
    )
}

/// Collects a body to text (its end included).
pub async fn text(body: axum::body::Body) -> String {
    use http_body_util::BodyExt;
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}
