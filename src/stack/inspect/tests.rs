//! The inspection layer under tokio's paused clock, over a scripted inner
//! service: the lookahead's verdicts, the watched stream's ending (`[DONE]`
//! appended, the idle cut, the closing event with the chain's tally), the
//! continuation through the chain, and what reaches the record.

use std::sync::Arc;
use std::time::Duration;

use tower::{Layer, ServiceExt};

use super::*;
use crate::attempt::{AnswerBody, Purpose};
use crate::config::Config;
use crate::proxy::targets::Targets;
use crate::record::Finish;
use crate::stack::testing::{
    self, call, chunk, streamed, text, timed_body, CallSpec, FakeChain, Scripted,
};
use crate::taxonomy::Kind;

const ROLE: &str = "{\"role\":\"assistant\",\"content\":\"\"}";

fn hello(d: &str) -> String {
    chunk(&format!("{{\"content\":\"{d}\"}}"), None)
}

fn stop() -> String {
    chunk("{}", Some("stop"))
}

/// Runs one attempt of a streamed request through the inspection layer,
/// the inner service answering with `chunks` (each after its delay).
async fn inspect_stream(
    config: &Config,
    chunks: Vec<(Duration, String)>,
    hang: bool,
    purpose: Purpose,
) -> (Attempt, Arc<crate::attempt::Call>) {
    let (metrics, targets) = testing::targets(config);
    let idle = Duration::from_millis(config.upstream.stream_idle_timeout_ms);
    let inner = Scripted::new(move |req, _| {
        // As the exchange hands it up: bounded by the idle timeout and the deadline.
        let body = axum::body::Body::new(crate::proxy::body::Bounded::new(
            timed_body(chunks.clone(), hang),
            idle,
            req.call.facts.deadline,
        ));
        Box::pin(async move { streamed(body) })
    });
    let svc = InspectLayer::new(config, metrics, crate::drain::Drain::default()).layer(inner);
    let call = call(
        config,
        &targets,
        CallSpec {
            stream: true,
            ..CallSpec::default()
        },
    );
    let req = attempt_request(&call, &targets, purpose);
    (svc.oneshot(req).await.unwrap(), call)
}

fn attempt_request(
    call: &Arc<crate::attempt::Call>,
    targets: &Targets,
    purpose: Purpose,
) -> AttemptRequest {
    let target = &call.facts.plan.targets[0];
    AttemptRequest {
        call: call.clone(),
        number: 1,
        position: 0,
        label: targets.label(target, None),
        upstream: targets.upstream(target).unwrap(),
        body: call.body.clone(),
        purpose,
        first_byte_timeout: Duration::from_secs(60),
        first_token_timeout: None,
        await_first_token: false,
        trace: None,
    }
}

/// The client's body of a watched answer, given a chain.
async fn client_text(attempt: Attempt, call: &crate::attempt::Call, chain: FakeChain) -> String {
    let body = match attempt.response.unwrap().into_body() {
        AnswerBody::Watched(w) => w.into_body(Finish::of(call.record.clone()), Box::new(chain)),
        AnswerBody::Plain(_) => panic!("a stream is watched"),
    };
    text(body).await
}

#[tokio::test(start_paused = true)]
async fn the_lookahead_answers_an_early_content_filter_like_a_whole_body() {
    let chunks = vec![
        (Duration::ZERO, chunk(ROLE, None)),
        (
            Duration::from_millis(50),
            chunk("{}", Some("content_filter")),
        ),
    ];
    let (attempt, call) = inspect_stream(&Config::default(), chunks, false, Purpose::Answer).await;
    assert_eq!(attempt.outcome.kind, Kind::ContentFilter);
    assert!(
        attempt.response.is_none(),
        "nothing reached the client: a failed attempt"
    );
    assert_eq!(call.record.snapshot().last, None);
}

/// A stream of a role, `content` and a stop, 10 ms apart: it goes out
/// byte for byte, with its `[DONE]` appended, and ends ok.
async fn flows_whole(content: String) {
    let chunks = vec![
        (Duration::ZERO, chunk(ROLE, None)),
        (Duration::from_millis(10), content),
        (Duration::from_millis(10), stop()),
    ];
    let (attempt, call) =
        inspect_stream(&Config::default(), chunks.clone(), false, Purpose::Answer).await;
    assert_eq!(attempt.outcome.kind, Kind::Ok);
    let body = client_text(attempt, &call, FakeChain::after(1)).await;
    let upstream: String = chunks.into_iter().map(|(_, c)| c).collect();
    // (Not assert_eq: a failure would print megabytes.)
    assert!(
        body == format!("{upstream}data: [DONE]\n\n"),
        "byte for byte"
    );
    let last = call.record.snapshot().last.unwrap();
    assert_eq!((last.outcome.kind, last.status), (Kind::Ok, 200));
}

#[tokio::test(start_paused = true)]
async fn a_released_stream_flows_whole_and_gets_its_done_appended() {
    flows_whole(hello("Hi")).await;
}

#[tokio::test(start_paused = true)]
async fn a_stall_after_content_ends_with_the_chains_count_in_the_closing_event() {
    let mut config = Config::default();
    config.upstream.stream_idle_timeout_ms = 2_000;
    let chunks = vec![
        (Duration::ZERO, chunk(ROLE, None)),
        (Duration::ZERO, hello("Hi")),
    ];
    let (attempt, call) = inspect_stream(&config, chunks, true, Purpose::Answer).await;
    let started = tokio::time::Instant::now();
    let body = client_text(attempt, &call, FakeChain::after(2)).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "cut at the idle timeout"
    );
    let last = body.rsplit("data: ").next().unwrap();
    let envelope: serde_json::Value = serde_json::from_str(last.trim()).unwrap();
    assert_eq!(envelope["error"]["backstop"]["kind"], "stream_truncated");
    assert_eq!(envelope["error"]["backstop"]["attempts"], 2);
    assert!(!body.contains("[DONE]"));
    let last = call.record.snapshot().last.unwrap();
    assert_eq!(last.outcome.kind, Kind::StreamTruncated);
}

#[tokio::test(start_paused = true)]
async fn a_cut_stream_continues_through_the_chain() {
    let config = testing::two_targets();
    let chunks = vec![
        (Duration::ZERO, chunk(ROLE, None)),
        (Duration::ZERO, hello("Hello fr")),
    ];
    // The route repairs streams: the cut goes to the chain.
    let (attempt, call) = inspect_stream(&config, chunks, true, Purpose::Answer).await;
    let mut chain = FakeChain::after(1);
    chain.continuations.push(timed_body(
        vec![(Duration::ZERO, hello("om")), (Duration::ZERO, stop())],
        false,
    ));
    let asked = chain.asked.clone();
    let body = client_text(attempt, &call, chain).await;
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].partial, "Hello fr");
    assert_eq!(asked[0].cause, crate::inspect::StreamEnd::Idle);
    assert!(body.contains("\"content\":\"om\""), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert_eq!(call.record.snapshot().last.unwrap().outcome.kind, Kind::Ok);
}

/// A content event past the SSE parser's cap (4 MiB).
fn too_large_to_read() -> String {
    hello(&"x".repeat(crate::sse::DEFAULT_MAX_EVENT_BYTES + 1))
}

#[tokio::test(start_paused = true)]
async fn an_event_too_large_to_read_goes_out_and_no_content_verdict_rests_on_it() {
    // The only content is in the unread event: judged on what was read,
    // this answer would be empty_content and retried.
    flows_whole(too_large_to_read()).await;
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_after_an_unread_event_is_not_continued() {
    // The route repairs streams, but the text so far is not known whole.
    let config = testing::two_targets();
    let chunks = vec![
        (Duration::ZERO, chunk(ROLE, None)),
        (Duration::ZERO, hello("Hello")),
        (Duration::ZERO, too_large_to_read()),
    ];
    let (attempt, call) = inspect_stream(&config, chunks, true, Purpose::Answer).await;
    let chain = FakeChain::after(1);
    let asked = chain.asked.clone();
    let body = client_text(attempt, &call, chain).await;
    assert!(asked.lock().unwrap().is_empty(), "no continuation");
    let last = body.rsplit("data: ").next().unwrap();
    let envelope: serde_json::Value = serde_json::from_str(last.trim()).unwrap();
    assert_eq!(envelope["error"]["backstop"]["kind"], "stream_truncated");
    assert_eq!(
        call.record.snapshot().last.unwrap().outcome.kind,
        Kind::StreamTruncated
    );
}

#[tokio::test(start_paused = true)]
async fn a_continuation_is_handed_up_unwatched() {
    let chunks = vec![(Duration::ZERO, hello("rest"))];
    let (attempt, _) =
        inspect_stream(&Config::default(), chunks, false, Purpose::Continuation).await;
    assert!(matches!(
        attempt.response.map(http::Response::into_body),
        Some(AnswerBody::Plain(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_mid_stream_leaves_the_answer_unfinished() {
    let chunks = vec![
        (Duration::ZERO, chunk(ROLE, None)),
        (Duration::ZERO, hello("Hi")),
    ];
    let (attempt, call) = inspect_stream(&Config::default(), chunks, true, Purpose::Answer).await;
    let AnswerBody::Watched(w) = attempt.response.unwrap().into_body() else {
        panic!("watched");
    };
    let body = w.into_body(
        Finish::of(call.record.clone()),
        Box::new(FakeChain::after(1)),
    );
    let mut frames = http_body_util::BodyExt::into_data_stream(body);
    use futures_util::StreamExt;
    let first = frames.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(frames);
    assert_eq!(call.record.snapshot().last, None);
}

#[tokio::test(start_paused = true)]
async fn a_whole_answer_without_content_is_empty_content() {
    let config = Config::default();
    let (metrics, targets) = testing::targets(&config);
    let inner = Scripted::new(|_, _| {
        Box::pin(async {
            let body = r#"{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"stop"}]}"#;
            Attempt {
                outcome: crate::outcome::Outcome::ok(200),
                response: Some(http::Response::new(AnswerBody::Plain(
                    axum::body::Body::from(body),
                ))),
                ..Attempt::default()
            }
        })
    });
    let svc =
        InspectLayer::new(&config, metrics.clone(), crate::drain::Drain::default()).layer(inner);
    let call = call(&config, &targets, CallSpec::default());
    let attempt = svc
        .oneshot(attempt_request(&call, &targets, Purpose::Answer))
        .await
        .unwrap();
    assert_eq!(attempt.outcome.kind, Kind::EmptyContent);
    assert_eq!(
        attempt.outcome.message.as_deref(),
        Some("The model returned no content and no tool calls: choice 0: finish_reason stop with no content and no tool calls")
    );
    assert_eq!(
        metrics
            .finish_reasons
            .with_label_values(&[testing::ROUTE, "m", "stop"])
            .get(),
        1
    );
}
