//! The retry layer under tokio's paused clock: waits are measured in
//! virtual time, attempts counted at a scripted inner service, and what
//! reaches the tally, the record and the metrics compared.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, ServiceExt};

use super::*;
use crate::attempt::{AnswerBody, Continuation, Purpose};
use crate::config::{Config, RetryConfig};
use crate::inspect::StreamEnd;
use crate::outcome::Outcome;
use crate::stack::testing::{self, call, CallSpec, Scripted, ROUTE};
use crate::taxonomy::Kind;

/// One route, one upstream (the plain `[upstream]`), fast waits.
fn single() -> Config {
    let mut config = Config::default();
    config.retry.base_delay_ms = 100;
    config.retry.max_delay_ms = 1_000;
    config
}

/// What one request through a retry layer came to.
struct Ran {
    exchange: Exchange,
    call: Arc<Call>,
    metrics: Arc<Metrics>,
    took: Duration,
}

impl Ran {
    fn kind(&self) -> Kind {
        self.exchange.attempt.outcome.kind
    }
}

async fn run(config: &Config, spec: CallSpec, inner: &Scripted) -> Ran {
    let (metrics, targets) = testing::targets(config);
    let svc = RetryLayer::new(config.retry.clone(), metrics.clone(), targets.clone())
        .layer(inner.clone());
    let call = call(config, &targets, spec);
    let start = Instant::now();
    let exchange = svc.oneshot(call.clone()).await.unwrap();
    Ran {
        exchange,
        call,
        metrics,
        took: start.elapsed(),
    }
}

fn failing(kind: Kind) -> Scripted {
    Scripted::outcomes(move |_| Outcome::of(kind))
}

fn rate_limited_for(secs: u64) -> Outcome {
    Outcome {
        retry_after: Some(Duration::from_secs(secs)),
        ..Outcome::of(Kind::RateLimited)
    }
}

fn with_retry(f: impl FnOnce(&mut RetryConfig)) -> Config {
    let mut c = single();
    f(&mut c.retry);
    c
}

#[tokio::test(start_paused = true)]
async fn a_server_error_is_tried_max_attempts_times_with_jittered_backoff() {
    let inner = failing(Kind::ServerError);
    let ran = run(&single(), CallSpec::default(), &inner).await;
    assert_eq!(inner.sent().len(), 3);
    assert_eq!(
        inner.sent().iter().map(|s| s.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(ran.kind(), Kind::ServerError);
    // Two waits: rand(0, 100 ms) + rand(0, 200 ms).
    assert!(ran.took <= Duration::from_millis(300), "{:?}", ran.took);
    let m = &ran.metrics;
    assert_eq!(
        m.retries.with_label_values(&[ROUTE, "server_error"]).get(),
        2
    );
    assert_eq!(
        m.upstream_attempts
            .with_label_values(&[ROUTE, "hard", "server_error"])
            .get(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn every_attempt_is_counted_once_and_the_same_everywhere() {
    let inner = Scripted::outcomes(|n| match n {
        0 => Outcome::of(Kind::Timeout),
        _ => Outcome::ok(200),
    });
    let ran = run(&single(), CallSpec::default(), &inner).await;
    let tally = ran.exchange.chain.tally().clone();
    assert_eq!(tally.attempts, 2);
    assert_eq!(tally.kinds, [Kind::Timeout, Kind::Ok]);
    assert_eq!(tally.target.as_deref(), Some("default"));
    let notes = ran.call.record.snapshot().attempts;
    assert_eq!(
        notes.iter().map(|n| n.kind).collect::<Vec<_>>(),
        [Kind::Timeout, Kind::Ok]
    );
    let counted: u64 = [("hard", "timeout"), ("none", "ok")]
        .iter()
        .map(|(c, k)| {
            ran.metrics
                .upstream_attempts
                .with_label_values(&[ROUTE, c, k])
                .get()
        })
        .sum();
    assert_eq!(counted, 2);
    assert_eq!(
        ran.call.record.snapshot().last,
        None,
        "the chain never finishes the answer"
    );
}

#[tokio::test(start_paused = true)]
async fn non_retryable_kinds_get_one_attempt() {
    for kind in [
        Kind::BadRequest,
        Kind::Unauthorized,
        Kind::Forbidden,
        Kind::QuotaExceeded,
        Kind::NotFound,
        Kind::ContextLengthExceeded,
        Kind::PayloadTooLarge,
        Kind::BadUpstreamResponse,
        // soft/silent under their default actions (fail / pass)
        Kind::ContentFilter,
        Kind::Length,
        Kind::StreamTruncated,
    ] {
        let inner = failing(kind);
        let ran = run(&single(), CallSpec::default(), &inner).await;
        assert_eq!(
            (inner.sent().len(), ran.kind(), ran.took),
            (1, kind, Duration::ZERO),
            "{kind}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn silent_kinds_under_a_retry_action_are_retried() {
    let inner = Scripted::outcomes(|n| {
        if n < 2 {
            Outcome::of(Kind::EmptyContent)
        } else {
            Outcome::ok(200)
        }
    });
    let ran = run(&single(), CallSpec::default(), &inner).await;
    assert_eq!((inner.sent().len(), ran.kind()), (3, Kind::Ok));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_the_lower_bound_of_the_wait() {
    let inner = Scripted::outcomes(|n| {
        if n == 0 {
            rate_limited_for(2)
        } else {
            Outcome::ok(200)
        }
    });
    let ran = run(&single(), CallSpec::default(), &inner).await;
    assert_eq!((inner.sent().len(), ran.kind()), (2, Kind::Ok));
    assert!(
        ran.took >= Duration::from_secs(2) && ran.took < Duration::from_millis(2_101),
        "{:?}",
        ran.took
    );
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_max_retry_after_or_past_the_deadline_is_not_taken() {
    let inner = Scripted::outcomes(|_| rate_limited_for(31));
    let ran = run(&single(), CallSpec::default(), &inner).await;
    assert_eq!(
        (inner.sent().len(), ran.kind(), ran.took),
        (1, Kind::RateLimited, Duration::ZERO)
    );
    let inner = Scripted::outcomes(|_| rate_limited_for(2));
    let spec = CallSpec {
        deadline_in: Duration::from_secs(1),
        ..CallSpec::default()
    };
    let ran = run(&single(), spec, &inner).await;
    assert_eq!(
        (inner.sent().len(), ran.kind(), ran.took),
        (1, Kind::RateLimited, Duration::ZERO)
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_retries_itself_gets_no_gateway_retries_unless_configured() {
    let retrying = || CallSpec {
        client_retrying: true,
        ..CallSpec::default()
    };
    let inner = failing(Kind::ServerError);
    run(&single(), retrying(), &inner).await;
    assert_eq!(inner.sent().len(), 1);
    let stacked = with_retry(|r| r.retry_when_client_retries = true);
    let inner = failing(Kind::ServerError);
    run(&stacked, retrying(), &inner).await;
    assert_eq!(inner.sent().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn max_attempts_one_never_retries() {
    let inner = failing(Kind::ServerError);
    run(
        &with_retry(|r| r.max_attempts = 1),
        CallSpec::default(),
        &inner,
    )
    .await;
    assert_eq!(inner.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_budget_bounds_upstream_load_under_an_always_failing_upstream() {
    let config = with_retry(|r| {
        r.budget_ratio = 0.2;
        r.budget_min_retries_per_sec = 1;
        r.base_delay_ms = 1;
        r.max_delay_ms = 1;
    });
    let (metrics, targets) = testing::targets(&config);
    let inner = failing(Kind::ServerError);
    // One layer, so one budget, for every request.
    let svc = RetryLayer::new(config.retry.clone(), metrics.clone(), targets.clone())
        .layer(inner.clone());
    let requests = 100u32;
    for _ in 0..requests {
        let call = call(&config, &targets, CallSpec::default());
        svc.clone().oneshot(call).await.unwrap();
    }
    let attempts = inner.sent().len() as u32;
    let retries = metrics
        .retries
        .with_label_values(&[ROUTE, "server_error"])
        .get() as u32;
    let exhausted = metrics
        .retry_budget_exhausted
        .with_label_values(&[ROUTE])
        .get() as u32;
    assert_eq!(attempts, requests + retries);
    // (1 + ratio) × requests + the per-second minimum over the 10 s window.
    assert!(
        attempts <= 120 + 10,
        "{attempts} attempts for {requests} requests"
    );
    // Without a budget it would be 300. A request that was never stopped
    // by the budget made two retries, so at least `requests - retries / 2`
    // requests were stopped by it, each counted once.
    assert!(
        exhausted >= requests - retries / 2,
        "{exhausted} exhausted, {retries} retries"
    );
    assert!(exhausted <= requests);
}

#[tokio::test(start_paused = true)]
async fn an_outage_falls_over_at_once_and_the_fallback_is_counted() {
    let config = testing::two_targets();
    let inner = Scripted::outcomes(|n| match n {
        0 => Outcome::of(Kind::ServerError),
        _ => Outcome::ok(200),
    });
    let ran = run(&config, CallSpec::default(), &inner).await;
    assert_eq!(ran.kind(), Kind::Ok);
    assert_eq!(ran.took, Duration::ZERO, "no backoff before another target");
    assert_eq!(
        inner
            .sent()
            .iter()
            .map(|s| s.label.as_str())
            .collect::<Vec<_>>(),
        ["default/m", "backup/m"]
    );
    assert_eq!(
        ran.exchange.chain.tally().target.as_deref(),
        Some("backup/m")
    );
    assert_eq!(
        ran.metrics
            .fallbacks
            .with_label_values(&["default/m", "backup/m", "server_error"])
            .get(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_half_open_probe_dropped_mid_flight_is_released_and_the_target_probed_again() {
    let mut config = testing::two_targets();
    config.retry.max_attempts = 1;
    let (metrics, targets) = testing::targets(&config);
    let inner = Scripted::new(|_, n| {
        Box::pin(async move {
            match n {
                // The primary fails: its circuit opens.
                0 => Attempt::failed(Outcome::of(Kind::ServerError)),
                // The half-open probe hangs until the client leaves.
                1 => std::future::pending().await,
                _ => Attempt::failed(Outcome::of(Kind::ServerError)),
            }
        })
    });
    let svc = RetryLayer::new(config.retry.clone(), metrics, targets.clone()).layer(inner.clone());
    let request = || call(&config, &targets, CallSpec::default());
    svc.clone().oneshot(request()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The probe: dropped after 100 ms, as by a client that goes away.
    let dropped =
        tokio::time::timeout(Duration::from_millis(100), svc.clone().oneshot(request())).await;
    assert!(dropped.is_err(), "the probe was to hang");
    svc.clone().oneshot(request()).await.unwrap();
    assert_eq!(
        inner.positions(),
        [0, 0, 0],
        "after the dropped probe the primary is probed again, not skipped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_continuation_is_an_attempt_of_the_chain() {
    let config = testing::two_targets();
    let inner = Scripted::new(|req, _| {
        let purpose = req.purpose;
        Box::pin(async move {
            let body = match purpose {
                Purpose::Answer => "data: first\n\n",
                Purpose::Continuation => "data: rest\n\n",
            };
            Attempt {
                outcome: Outcome::ok(200),
                response: Some(http::Response::new(AnswerBody::Plain(
                    axum::body::Body::from(body),
                ))),
                ..Attempt::default()
            }
        })
    });
    let spec = CallSpec {
        stream: true,
        ..CallSpec::default()
    };
    let mut ran = run(&config, spec, &inner).await;
    assert_eq!(ran.exchange.chain.tally().attempts, 1);
    let cut = Continuation {
        partial: "Hello fr".into(),
        cause: StreamEnd::Cut,
    };
    let resumed = ran.exchange.chain.resume(cut).await.expect("continued");
    // The primary takes no prefill: the backup continues.
    assert_eq!(&*resumed.target, "backup/m");
    let sent = inner.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[1].number, sent[1].purpose),
        (2, Purpose::Continuation)
    );
    let body: serde_json::Value = serde_json::from_slice(&sent[1].body).unwrap();
    assert_eq!(
        body["messages"][1],
        serde_json::json!({"role": "assistant", "content": "Hello fr"})
    );
    // Counted once everywhere, like any attempt.
    let tally = ran.exchange.chain.tally().clone();
    assert_eq!((tally.attempts, tally.kinds.len()), (2, 2));
    assert_eq!(ran.call.record.snapshot().attempts.len(), 2);
    assert_eq!(
        ran.metrics
            .upstream_attempts
            .with_label_values(&[ROUTE, "none", "ok"])
            .get(),
        2
    );
    assert_eq!(
        ran.metrics.stream_repairs.with_label_values(&[ROUTE]).get(),
        1
    );
    assert_eq!(
        ran.metrics
            .retries
            .with_label_values(&[ROUTE, "stream_truncated"])
            .get(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn no_continuation_once_the_attempts_are_spent() {
    let mut config = testing::two_targets();
    config.retry.max_attempts = 1;
    let inner = Scripted::outcomes(|_| Outcome::ok(200));
    let spec = CallSpec {
        stream: true,
        ..CallSpec::default()
    };
    let mut ran = run(&config, spec, &inner).await;
    let cut = Continuation {
        partial: "Hello".into(),
        cause: StreamEnd::Idle,
    };
    assert!(ran.exchange.chain.resume(cut).await.is_none());
    assert_eq!(inner.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hedge_is_an_attempt_with_its_own_number() {
    let mut config = testing::two_targets();
    config.routes[0].hedge_after_ms = Some(300);
    // The primary answers after 5 s; the hedge at once.
    let inner = Scripted::new(|req, _| {
        let slow = req.position == 0;
        Box::pin(async move {
            if slow {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Attempt::failed(Outcome::ok(200))
        })
    });
    let ran = run(&config, CallSpec::default(), &inner).await;
    assert_eq!(ran.kind(), Kind::Ok);
    let sent: Vec<_> = inner
        .sent()
        .iter()
        .map(|s| (s.number, s.position))
        .collect();
    assert_eq!(sent, [(1, 0), (2, 1)]);
    assert_eq!(ran.took, Duration::from_millis(300));
}
