//! Admission under tokio's paused clock, over an inner service that stands
//! for the retry chain: what reaches it (the facts, read once), what is
//! refused before it (413, pre-flight), how the exchange is rendered, and
//! what reaches the record — including when the client leaves mid-flight.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::{HeaderValue, Request};
use tower::{service_fn, Layer, ServiceExt};

use super::*;
use crate::attempt::{AnswerBody, Attempt};
use crate::record::{Final, Record};
use crate::stack::testing::{self, text, FakeChain};

type Seen = Arc<Mutex<Vec<Arc<Call>>>>;

/// An admission layer whose inner service records each call and answers
/// with `answer` after `delay`.
fn admit(
    config: Config,
    delay: Duration,
    answer: fn() -> Attempt,
) -> (
    impl Service<ClientRequest, Response = Response<Body>, Error = Infallible> + Clone,
    Seen,
) {
    let (_, targets) = testing::targets(&config);
    let actions = Arc::new(ActionTable::new(&config.inspect).unwrap());
    let seen: Seen = Arc::default();
    let inner = {
        let seen = seen.clone();
        service_fn(move |call: Arc<Call>| {
            seen.lock().unwrap().push(call);
            async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(Exchange {
                    attempt: answer(),
                    chain: Box::new(FakeChain::after(2)),
                })
            }
        })
    };
    let layer = AdmitLayer::new(
        Arc::new(config),
        targets,
        actions,
        crate::drain::Drain::default(),
    );
    (layer.layer(inner), seen)
}

fn ok_answer() -> Attempt {
    Attempt {
        outcome: Outcome::ok(200),
        response: Some(Response::new(AnswerBody::Plain(Body::from(
            "{\"ok\":true}",
        )))),
        ..Attempt::default()
    }
}

fn request(body: &'static str, record: &Arc<Record>) -> ClientRequest {
    let http = Request::post("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-stainless-timeout", "30")
        .body(Body::from(body))
        .unwrap();
    ClientRequest {
        http,
        record: record.clone(),
        trace: None,
    }
}

fn record() -> Arc<Record> {
    Record::new(
        HeaderValue::from_static("req-1"),
        http::Method::POST,
        "/v1/chat/completions",
    )
}

const CHAT: &str =
    r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

#[tokio::test(start_paused = true)]
async fn the_facts_are_read_once_and_travel_down_with_the_call() {
    let mut config = Config::default();
    config.inspect.overrides = serde_json::from_value(serde_json::json!([
        {"models": ["gpt-4o*"], "length": "fail"}
    ]))
    .unwrap();
    let (svc, seen) = admit(config, Duration::ZERO, ok_answer);
    let record = record();
    let resp = svc.oneshot(request(CHAT, &record)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-backstop-attempts"], "2");
    assert_eq!(resp.headers()["x-backstop-kind"], "ok");
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let facts = &calls[0].facts;
    assert_eq!(facts.model.as_deref(), Some("gpt-4o-mini"));
    assert!(facts.stream);
    assert_eq!(
        facts.deadline - record.started,
        Duration::from_secs(30),
        "the client's shorter timeout"
    );
    assert_eq!(
        facts.actions.length,
        crate::config::Action::Fail,
        "the override for the model"
    );
    assert_eq!(
        &calls[0].body[..],
        CHAT.as_bytes(),
        "the body, buffered for replay"
    );
    assert_eq!(
        record.snapshot().last,
        None,
        "the answer ends with its body"
    );
    assert_eq!(text(resp.into_body()).await, "{\"ok\":true}");
    let snap = record.snapshot();
    assert_eq!(snap.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(
        snap.last,
        Some(Final {
            outcome: Outcome::ok(200),
            status: 200
        })
    );
}

#[tokio::test(start_paused = true)]
async fn too_large_and_malformed_requests_never_reach_the_chain() {
    let mut config = Config::default();
    config.limits.max_request_body_bytes = 16;
    let (svc, seen) = admit(config, Duration::ZERO, ok_answer);
    let record1 = record();
    let resp = svc.clone().oneshot(request(CHAT, &record1)).await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers()["x-backstop-attempts"], "0");
    assert_eq!(record1.snapshot().last.unwrap().status, 413);
    let record2 = record();
    let resp = svc.oneshot(request("{not json", &record2)).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        record2.snapshot().last.unwrap().outcome.kind,
        Kind::BadRequest
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_exchange_is_rendered_as_the_envelope_with_the_chains_tally() {
    let (svc, _) = admit(Config::default(), Duration::ZERO, || {
        Attempt::failed(Outcome::of(Kind::ServerError))
    });
    let record = record();
    let resp = svc.oneshot(request(CHAT, &record)).await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-backstop-attempts"], "2");
    let body: serde_json::Value = serde_json::from_str(&text(resp.into_body()).await).unwrap();
    assert_eq!(body["error"]["backstop"]["attempts"], 2);
    assert_eq!(body["error"]["backstop"]["target"], "default");
    assert_eq!(record.snapshot().last.unwrap().status, 502);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_mid_flight_leaves_the_answer_unfinished() {
    let (svc, seen) = admit(Config::default(), Duration::from_secs(10), ok_answer);
    let record = record();
    let left =
        tokio::time::timeout(Duration::from_secs(1), svc.oneshot(request(CHAT, &record))).await;
    assert!(left.is_err());
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(record.snapshot().last, None);
}

/// An answer whose body takes 10 s to arrive.
fn slow_body_answer() -> Attempt {
    let body = Body::from_stream(futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<_, Infallible>(bytes::Bytes::from_static(b"{\"ok\":true}"))
    }));
    Attempt {
        outcome: Outcome::ok(200),
        response: Some(Response::new(AnswerBody::Plain(body))),
        ..Attempt::default()
    }
}

#[tokio::test(start_paused = true)]
async fn an_answer_holds_its_inflight_permit_until_its_last_byte() {
    let mut config = Config::default();
    config.limits.max_inflight = 1;
    let (svc, _) = admit(config, Duration::ZERO, slow_body_answer);
    let first = svc.clone().oneshot(request(CHAT, &record())).await.unwrap();
    assert_eq!(first.status(), 200);
    // Its headers are out, its body is not: the limit is still taken.
    let shed = svc.clone().oneshot(request(CHAT, &record())).await.unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(text(first.into_body()).await, "{\"ok\":true}");
    let next = svc.clone().oneshot(request(CHAT, &record())).await.unwrap();
    assert_eq!(next.status(), 200, "the last byte gave the permit back");
    // A client that leaves mid-body gives it back too.
    drop(next);
    let after = svc.oneshot(request(CHAT, &record())).await.unwrap();
    assert_eq!(after.status(), 200);
}
