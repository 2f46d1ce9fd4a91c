//! The retry layer under tokio's paused clock: waits are measured in
//! virtual time, attempts counted at a `service_fn` upstream.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use tokio::time::Instant;
use tower::{service_fn, Layer, ServiceExt};

use super::*;
use crate::context::{Ledger, RequestFacts};
use crate::outcome::Outcome;

fn config() -> RetryConfig {
    RetryConfig {
        base_delay_ms: 100,
        max_delay_ms: 1_000,
        ..RetryConfig::default()
    }
}

fn targets(metrics: &Arc<Metrics>) -> Arc<Targets> {
    Arc::new(Targets::new(&crate::config::Config::default(), metrics.clone()).unwrap())
}

fn request(deadline_in: Duration, client_retrying: bool) -> Request<Bytes> {
    let mut req = Request::new(Bytes::from_static(b"{}"));
    req.extensions_mut().insert(Ledger::new(
        http::HeaderValue::from_static("req-1"),
        http::Method::POST,
        "/v1/chat/completions",
    ));
    req.extensions_mut().insert(Arc::new(RequestFacts {
        model: Some("m".into()),
        stream: false,
        deadline: Instant::now() + deadline_in,
        client_retrying,
        plan: targets(&Arc::new(Metrics::new(1).unwrap())).plan(Some("m")),
        actions: crate::actions::Actions::of(&crate::config::InspectConfig::default()),
        json: None,
        expect: Arc::default(),
        secrets: Arc::default(),
    }));
    req
}

/// Runs one request through a retry layer whose upstream answers the n-th
/// attempt (0-based) with `script(n)`. Returns (attempts made, final kind,
/// virtual time taken).
async fn run_with(
    retry: RetryConfig,
    req: Request<Bytes>,
    script: impl Fn(u32) -> Outcome + Send + Sync + 'static,
) -> (u32, Kind, Duration, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new(10).unwrap());
    let calls = Arc::new(AtomicU32::new(0));
    let script = Arc::new(script);
    let inner = {
        let calls = calls.clone();
        service_fn(move |_req: Request<Bytes>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let outcome = script(n);
            async move { Ok::<_, Infallible>(Attempt::failed(outcome)) }
        })
    };
    let svc = RetryLayer::new(retry, metrics.clone(), targets(&metrics)).layer(inner);
    let start = Instant::now();
    let attempt = svc.oneshot(req).await.unwrap();
    (
        calls.load(Ordering::SeqCst),
        attempt.outcome.kind,
        start.elapsed(),
        metrics,
    )
}

fn failing(kind: Kind) -> impl Fn(u32) -> Outcome {
    move |_| Outcome::of(kind)
}

fn rate_limited_for(secs: u64) -> Outcome {
    Outcome {
        retry_after: Some(Duration::from_secs(secs)),
        ..Outcome::of(Kind::RateLimited)
    }
}

#[tokio::test(start_paused = true)]
async fn a_server_error_is_tried_max_attempts_times_with_jittered_backoff() {
    let (calls, kind, took, metrics) = run_with(
        config(),
        request(Duration::from_secs(600), false),
        failing(Kind::ServerError),
    )
    .await;
    assert_eq!(calls, 3);
    assert_eq!(kind, Kind::ServerError);
    // Two waits: rand(0, 100 ms) + rand(0, 200 ms).
    assert!(took <= Duration::from_millis(300), "{took:?}");
    let route = "/v1/chat/completions";
    assert_eq!(
        metrics
            .retries
            .with_label_values(&[route, "server_error"])
            .get(),
        2
    );
    assert_eq!(
        metrics
            .upstream_attempts
            .with_label_values(&[route, "hard", "server_error"])
            .get(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn success_after_a_failure_stops_retrying() {
    let (calls, kind, _, _) = run_with(config(), request(Duration::from_secs(600), false), |n| {
        if n == 0 {
            Outcome::of(Kind::Timeout)
        } else {
            Outcome::ok(200)
        }
    })
    .await;
    assert_eq!((calls, kind), (2, Kind::Ok));
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
        let (calls, got, took, _) = run_with(
            config(),
            request(Duration::from_secs(600), false),
            failing(kind),
        )
        .await;
        assert_eq!((calls, got, took), (1, kind, Duration::ZERO), "{kind}");
    }
}

#[tokio::test(start_paused = true)]
async fn silent_kinds_under_retry_policy_are_retried() {
    let (calls, kind, _, _) = run_with(config(), request(Duration::from_secs(600), false), |n| {
        if n < 2 {
            Outcome::of(Kind::EmptyContent)
        } else {
            Outcome::ok(200)
        }
    })
    .await;
    assert_eq!((calls, kind), (3, Kind::Ok));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_the_lower_bound_of_the_wait() {
    let (calls, kind, took, _) =
        run_with(config(), request(Duration::from_secs(600), false), |n| {
            if n == 0 {
                rate_limited_for(2)
            } else {
                Outcome::ok(200)
            }
        })
        .await;
    assert_eq!((calls, kind), (2, Kind::Ok));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(2_101),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_max_retry_after_is_not_taken() {
    let (calls, kind, took, _) =
        run_with(config(), request(Duration::from_secs(600), false), |_| {
            rate_limited_for(31)
        })
        .await;
    assert_eq!((calls, kind, took), (1, Kind::RateLimited, Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_is_not_taken() {
    let (calls, kind, took, _) = run_with(config(), request(Duration::from_secs(1), false), |_| {
        rate_limited_for(2)
    })
    .await;
    assert_eq!((calls, kind, took), (1, Kind::RateLimited, Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_retries_itself_gets_no_gateway_retries_unless_configured() {
    let (calls, ..) = run_with(
        config(),
        request(Duration::from_secs(600), true),
        failing(Kind::ServerError),
    )
    .await;
    assert_eq!(calls, 1);
    let stacked = RetryConfig {
        retry_when_client_retries: true,
        ..config()
    };
    let (calls, ..) = run_with(
        stacked,
        request(Duration::from_secs(600), true),
        failing(Kind::ServerError),
    )
    .await;
    assert_eq!(calls, 3);
}

#[tokio::test(start_paused = true)]
async fn max_attempts_one_never_retries() {
    let once = RetryConfig {
        max_attempts: 1,
        ..config()
    };
    let (calls, ..) = run_with(
        once,
        request(Duration::from_secs(600), false),
        failing(Kind::ServerError),
    )
    .await;
    assert_eq!(calls, 1);
}

#[tokio::test(start_paused = true)]
async fn the_budget_bounds_upstream_load_under_an_always_failing_upstream() {
    let retry = RetryConfig {
        budget_ratio: 0.2,
        budget_min_retries_per_sec: 1,
        base_delay_ms: 1,
        max_delay_ms: 1,
        ..RetryConfig::default()
    };
    let metrics = Arc::new(Metrics::new(10).unwrap());
    let calls = Arc::new(AtomicU32::new(0));
    let inner = {
        let calls = calls.clone();
        service_fn(move |_req: Request<Bytes>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Attempt::failed(Outcome::of(Kind::ServerError))) }
        })
    };
    let svc = RetryLayer::new(retry, metrics.clone(), targets(&metrics)).layer(inner);
    let requests = 100u32;
    for _ in 0..requests {
        svc.clone()
            .oneshot(request(Duration::from_secs(600), false))
            .await
            .unwrap();
    }
    let attempts = calls.load(Ordering::SeqCst);
    let route = "/v1/chat/completions";
    let retries = metrics
        .retries
        .with_label_values(&[route, "server_error"])
        .get() as u32;
    let exhausted = metrics
        .retry_budget_exhausted
        .with_label_values(&[route])
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
