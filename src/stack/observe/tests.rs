//! Observation under tokio's paused clock, over an inner service that
//! stands for admission (it appends to the record and finishes the
//! answer): metrics and the failure record are made when the body ends,
//! not at the headers, and once — also when the client leaves.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use http::HeaderValue;
use http_body_util::BodyExt;
use tower::{service_fn, Layer, ServiceExt};

use super::*;
use crate::outcome::Outcome;
use crate::record::{AttemptNote, Finish};
use crate::stack::testing::timed_body;
use crate::taxonomy::Kind;

const ROUTE: &str = "/v1/chat/completions";

/// An observed service whose inner answers with a body of two chunks
/// 1 s apart, after recording `attempts` attempts of `kind` and finishing
/// with it (at the end of the body when `at_end`).
fn observed(
    kind: Kind,
    attempts: usize,
) -> (
    impl Service<Request<Body>, Response = Response<ObservedBody>, Error = Infallible> + Clone,
    Arc<Metrics>,
    Arc<FailureLog>,
) {
    let metrics = Arc::new(Metrics::new(10).unwrap());
    let failures = Arc::new(FailureLog::new(10));
    let inner = service_fn(move |req: crate::attempt::ClientRequest| {
        let record = req.record;
        async move {
            record.set_model(Some("m".into()));
            for _ in 0..attempts {
                record.push_attempt(AttemptNote {
                    kind,
                    target: Arc::from("default"),
                });
            }
            let status = crate::envelope::client_status(&Outcome::of(kind)).as_u16();
            Finish::of(record).done(Outcome::of(kind), status);
            let body = timed_body(
                vec![
                    (Duration::ZERO, "one".to_string()),
                    (Duration::from_secs(1), "two".to_string()),
                ],
                false,
            );
            Ok::<_, Infallible>(Response::builder().status(status).body(body).unwrap())
        }
    });
    let layer = ObserveLayer::new(metrics.clone(), Some(failures.clone()), None);
    (layer.layer(inner), metrics, failures)
}

fn request(id: Option<&'static str>) -> Request<Body> {
    let mut req = Request::post(ROUTE).body(Body::empty()).unwrap();
    if let Some(id) = id {
        req.headers_mut()
            .insert(REQUEST_ID, HeaderValue::from_static(id));
    }
    req
}

fn counted(metrics: &Metrics, kind: Kind) -> u64 {
    metrics
        .requests
        .with_label_values(&[ROUTE, "m", kind.class().as_str(), kind.as_str()])
        .get()
}

#[tokio::test(start_paused = true)]
async fn a_request_counts_when_its_body_ends_not_at_its_headers() {
    let (svc, metrics, _) = observed(Kind::Ok, 1);
    let resp = svc.oneshot(request(Some("req-7"))).await.unwrap();
    assert_eq!(
        resp.headers()[REQUEST_ID],
        "req-7",
        "the client's id is kept"
    );
    assert_eq!(
        counted(&metrics, Kind::Ok),
        0,
        "the headers are not the end"
    );
    assert_eq!(metrics.inflight.with_label_values(&[ROUTE]).get(), 1);
    let started = tokio::time::Instant::now();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        (&body[..], started.elapsed()),
        (&b"onetwo"[..], Duration::from_secs(1))
    );
    assert_eq!(counted(&metrics, Kind::Ok), 1);
    assert_eq!(metrics.inflight.with_label_values(&[ROUTE]).get(), 0);
    let duration = metrics.request_duration.with_label_values(&[ROUTE, "none"]);
    assert_eq!(duration.get_sample_count(), 1);
    assert!((duration.get_sample_sum() - 1.0).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_recorded_once_with_the_attempts_the_record_holds() {
    let (svc, metrics, failures) = observed(Kind::ServerError, 3);
    let resp = svc
        .oneshot(request(Some("bad id with spaces")))
        .await
        .unwrap();
    let id = resp.headers()[REQUEST_ID].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a new UUID replaces an unusable id: {id}");
    resp.into_body().collect().await.unwrap();
    assert_eq!(counted(&metrics, Kind::ServerError), 1);
    let records = failures.snapshot();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        (
            r.request_id.as_str(),
            r.kind,
            r.status,
            r.attempts,
            r.completed
        ),
        (id.as_str(), "server_error", 502, 3, true)
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_mid_body_is_counted_once_and_leaves_nothing_in_flight() {
    let (svc, metrics, failures) = observed(Kind::StreamTruncated, 1);
    let resp = svc.oneshot(request(None)).await.unwrap();
    let mut frames = resp.into_body().into_data_stream();
    assert_eq!(&frames.next().await.unwrap().unwrap()[..], b"one");
    drop(frames);
    assert_eq!(counted(&metrics, Kind::StreamTruncated), 1);
    assert_eq!(metrics.inflight.with_label_values(&[ROUTE]).get(), 0);
    assert!(!failures.snapshot()[0].completed);
}
