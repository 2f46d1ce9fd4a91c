//! OpenTelemetry traces end to end (issue "Fits the places it runs", item
//! 2): a gateway with `[otel]` on exports to an OTLP/HTTP receiver started
//! here (POST /v1/traces, decoded with the official protobuf definitions);
//! the spans, their parentage, their attributes and the `traceparent` each
//! upstream attempt received are asserted exactly. With traces off, the
//! client's trace context passes upstream untouched and nothing is sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use backstop::server::Running;
use backstop_mock::{MockConfig, MockServer};
use common::scripted::{Answer, Scripted};
use common::{client, gateway};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{json, Value};

/// The client's trace: its id and the client's own span.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn client_traceparent() -> String {
    format!("00-{TRACE_ID}-{CLIENT_SPAN}-01")
}

/// An OTLP/HTTP receiver: every span of every export, as received.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    /// Each export's `service.name`.
    services: Arc<Mutex<Vec<String>>>,
    posts: Arc<Mutex<usize>>,
    /// Each export's `x-collector-key` header.
    keys: Arc<Mutex<Vec<String>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let services: Arc<Mutex<Vec<String>>> = Arc::default();
        let posts: Arc<Mutex<usize>> = Arc::default();
        let keys: Arc<Mutex<Vec<String>>> = Arc::default();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post({
                let (spans, services, posts) = (spans.clone(), services.clone(), posts.clone());
                let keys = keys.clone();
                move |headers: http::HeaderMap, body: Bytes| async move {
                    assert_eq!(headers["content-type"], "application/x-protobuf");
                    if let Some(key) = headers.get("x-collector-key") {
                        keys.lock().unwrap().push(key.to_str().unwrap().to_string());
                    }
                    let request = ExportTraceServiceRequest::decode(body).unwrap();
                    *posts.lock().unwrap() += 1;
                    for resource in request.resource_spans {
                        let service = resource
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|kv| kv.key == "service.name")
                            .map(|kv| render(kv.value.as_ref()))
                            .unwrap_or_default();
                        for scope in resource.scope_spans {
                            services
                                .lock()
                                .unwrap()
                                .extend(scope.spans.iter().map(|_| service.clone()));
                            spans.lock().unwrap().extend(scope.spans);
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            spans,
            services,
            posts,
            keys,
            _task: task,
        }
    }

    /// The spans of trace `trace_id` once there are `n` of them: the
    /// gateway's exporter is flushed, then the receiver polled (bounded).
    async fn trace(&self, gw: &Running, trace_id: &str, n: usize) -> Vec<Span> {
        let otel = gw.app.otel.as_ref().expect("traces are on");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            otel.flush().await.unwrap();
            let spans: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| hex(&s.trace_id) == trace_id)
                .cloned()
                .collect();
            if spans.len() >= n || tokio::time::Instant::now() >= deadline {
                assert_eq!(spans.len(), n, "spans of {trace_id}: {spans:#?}");
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An attribute value as text: strings as they are, numbers and booleans
/// printed, arrays as `[a, b]`.
fn render(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        Some(Any::ArrayValue(a)) => format!(
            "[{}]",
            a.values
                .iter()
                .map(|v| render(Some(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("{other:?}"),
    }
}

fn attributes(span: &Span) -> BTreeMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| (kv.key.clone(), render(kv.value.as_ref())))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The request span (SERVER) and the attempt spans (CLIENT) in attempt
/// order.
fn split(spans: Vec<Span>) -> (Span, Vec<Span>) {
    let (servers, mut clients): (Vec<Span>, Vec<Span>) = spans
        .into_iter()
        .partition(|s| s.kind == SpanKind::Server as i32);
    assert_eq!(servers.len(), 1, "one request span");
    assert!(clients.iter().all(|s| s.kind == SpanKind::Client as i32));
    clients.sort_by_key(|s| attributes(s)["backstop.attempt"].parse::<u32>().unwrap());
    (servers.into_iter().next().unwrap(), clients)
}

fn status(span: &Span) -> (i32, String) {
    span.status
        .as_ref()
        .map(|s| (s.code, s.message.clone()))
        .unwrap_or_default()
}

/// `00-<trace>-<span>-01`: the attempt's own span as the upstream got it.
fn traceparent_of(span: &Span) -> String {
    format!("00-{}-{}-01", hex(&span.trace_id), hex(&span.span_id))
}

async fn traced_gateway(upstream: &str, receiver: &Receiver) -> Running {
    let endpoint = receiver.url.clone();
    gateway(upstream, move |c| {
        c.otel.enabled = true;
        c.otel.endpoint = endpoint;
        c.otel.service_name = "backstop-test".into();
    })
    .await
}

#[tokio::test]
async fn a_retried_request_is_one_server_span_with_one_client_span_per_attempt() {
    let receiver = Receiver::start().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = traced_gateway(&mock.base_url(), &receiver).await;
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("traceparent", client_traceparent())
        .header("x-request-id", "req-otel-1")
        .header("x-mock-scenario", "status:503,ok")
        .header("x-mock-key", "otel-1")
        .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-backstop-attempts"], "2");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(mock.hits("otel-1"), 2);

    let (request, attempts) = split(receiver.trace(&gw, TRACE_ID, 3).await);
    // The request span continues the client's trace; the attempts are its children.
    assert_eq!(hex(&request.parent_span_id), CLIENT_SPAN);
    assert_eq!(request.name, "chat gpt-test");
    assert_eq!(status(&request), (StatusCode::Unset as i32, String::new()));
    assert_eq!(
        attributes(&request),
        map(&[
            ("http.request.method", "POST"),
            ("http.route", "/v1/chat/completions"),
            ("http.response.status_code", "200"),
            ("backstop.request_id", "req-otel-1"),
            ("backstop.class", "none"),
            ("backstop.kind", "ok"),
            ("backstop.attempts", "2"),
            ("backstop.target", "default"),
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.request.model", "gpt-test"),
            ("gen_ai.response.model", "gpt-test"),
            ("gen_ai.response.finish_reasons", "[stop]"),
            ("gen_ai.usage.input_tokens", "5"),
            ("gen_ai.usage.output_tokens", "3"),
        ])
    );
    assert!(request.end_time_unix_nano >= attempts[1].end_time_unix_nano);

    let port = mock.addr().port().to_string();
    let common = |number: &str| {
        map(&[
            ("http.request.method", "POST"),
            ("server.address", "127.0.0.1"),
            ("server.port", &port),
            ("backstop.attempt", number),
            ("backstop.target", "default"),
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.request.model", "gpt-test"),
        ])
    };
    assert_eq!(attempts.len(), 2);
    for attempt in &attempts {
        assert_eq!(attempt.parent_span_id, request.span_id);
        assert_eq!(attempt.name, "chat gpt-test");
    }
    let mut first = common("1");
    first.extend(map(&[
        ("http.response.status_code", "503"),
        ("backstop.class", "hard"),
        ("backstop.kind", "server_error"),
        ("error.type", "server_error"),
    ]));
    assert_eq!(attributes(&attempts[0]), first);
    let (code, message) = status(&attempts[0]);
    assert_eq!(code, StatusCode::Error as i32);
    assert!(message.contains("503"), "{message}");
    let mut second = common("2");
    second.extend(map(&[
        ("http.response.status_code", "200"),
        ("backstop.class", "none"),
        ("backstop.kind", "ok"),
        ("gen_ai.response.model", "gpt-test"),
        ("gen_ai.response.finish_reasons", "[stop]"),
        ("gen_ai.usage.input_tokens", "5"),
        ("gen_ai.usage.output_tokens", "3"),
    ]));
    assert_eq!(attributes(&attempts[1]), second);
    assert_eq!(
        status(&attempts[1]),
        (StatusCode::Unset as i32, String::new())
    );

    // The upstream got the last attempt's own span as its parent, not the client's.
    let seen = mock.last_request("otel-1").unwrap();
    assert_eq!(
        seen.headers["traceparent"],
        traceparent_of(&attempts[1]).as_str()
    );
    assert_eq!(
        receiver
            .services
            .lock()
            .unwrap()
            .first()
            .map(String::as_str),
        Some("backstop-test")
    );
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn each_attempt_sends_its_own_traceparent_and_the_clients_tracestate() {
    let receiver = Receiver::start().await;
    let upstream = Scripted::start(|_, n| match n {
        0 => Answer::json(503, r#"{"error":{"message":"busy","type":"server_error"}}"#),
        _ => Answer::json(
            200,
            r#"{"id":"c1","object":"chat.completion","model":"gpt-test-0613","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}"#,
        ),
    })
    .await;
    let gw = traced_gateway(&upstream.base_url(), &receiver).await;
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("traceparent", client_traceparent())
        .header("tracestate", "vendor=abc")
        .json(&common::chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (request, attempts) = split(receiver.trace(&gw, TRACE_ID, 3).await);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    for (attempt, got) in attempts.iter().zip(&seen) {
        assert_eq!(got.headers["traceparent"], traceparent_of(attempt).as_str());
        assert_eq!(got.headers["tracestate"], "vendor=abc");
        assert_eq!(attempt.trace_state, "vendor=abc");
    }
    assert_ne!(attempts[0].span_id, attempts[1].span_id);
    // The answering model and its tokens, on the attempt and the request.
    for span in [&attempts[1], &request] {
        let a = attributes(span);
        assert_eq!(a["gen_ai.response.model"], "gpt-test-0613");
        assert_eq!(a["gen_ai.usage.input_tokens"], "7");
        assert_eq!(a["gen_ai.usage.output_tokens"], "2");
    }
    assert_eq!(
        status(&attempts[0]),
        (StatusCode::Error as i32, "busy".into())
    );
    gw.shutdown().await.unwrap();
}

/// A streamed request: the span of the streamed attempt and the request's
/// end with the stream, with its finish reasons and tokens.
#[tokio::test]
async fn a_streamed_request_ends_its_spans_when_the_stream_ends() {
    let receiver = Receiver::start().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = traced_gateway(&mock.base_url(), &receiver).await;
    let send = |scenario: &'static str, key: &'static str, trace: &'static str| {
        client()
            .post(format!("{}/chat/completions", gw.base_url()))
            .header("traceparent", format!("00-{trace}-{CLIENT_SPAN}-01"))
            .header("x-mock-scenario", scenario)
            .header("x-mock-key", key)
            .json(&json!({
                "model": "gpt-test",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": true,
                "stream_options": {"include_usage": true},
            }))
            .send()
    };
    let resp = send("status:503,ok", "otel-s1", TRACE_ID).await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");

    let (request, attempts) = split(receiver.trace(&gw, TRACE_ID, 3).await);
    assert_eq!(attempts.len(), 2);
    let streamed = attributes(&attempts[1]);
    assert_eq!(streamed["backstop.kind"], "ok");
    assert_eq!(streamed["gen_ai.response.finish_reasons"], "[stop]");
    assert_eq!(streamed["gen_ai.usage.input_tokens"], "5");
    assert_eq!(streamed["gen_ai.usage.output_tokens"], "3");
    assert_eq!(attributes(&attempts[0])["backstop.kind"], "server_error");
    let r = attributes(&request);
    assert_eq!(
        (r["backstop.kind"].as_str(), r["backstop.attempts"].as_str()),
        ("ok", "2")
    );
    assert_eq!(r["gen_ai.response.finish_reasons"], "[stop]");
    assert_eq!(r["gen_ai.usage.output_tokens"], "3");
    assert!(request.end_time_unix_nano >= attempts[1].end_time_unix_nano);
    let seen = mock.last_request("otel-s1").unwrap();
    assert_eq!(
        seen.headers["traceparent"],
        traceparent_of(&attempts[1]).as_str()
    );

    // A stream cut after content went out: the headers said 200 and ok,
    // the spans say what the stream came to.
    const CUT_TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
    let resp = send("cut:2", "otel-s2", CUT_TRACE).await.unwrap();
    assert_eq!(resp.headers()["x-backstop-kind"], "ok");
    let _ = resp.text().await;
    let (request, attempts) = split(receiver.trace(&gw, CUT_TRACE, 2).await);
    for span in [&request, &attempts[0]] {
        let a = attributes(span);
        assert_eq!(a["backstop.kind"], "stream_truncated", "{}", span.name);
        assert_eq!(a["error.type"], "stream_truncated");
        assert_eq!(status(span).0, StatusCode::Error as i32);
    }
    assert_eq!(attributes(&request)["http.response.status_code"], "200");
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn with_traces_off_the_clients_trace_context_passes_and_nothing_is_exported() {
    let receiver = Receiver::start().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock.base_url(), |_| {}).await;
    assert!(gw.app.otel.is_none());
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("traceparent", client_traceparent())
        .header("tracestate", "vendor=abc")
        .header("x-mock-scenario", "status:503,ok")
        .header("x-mock-key", "otel-off")
        .json(&common::chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = mock.last_request("otel-off").unwrap();
    assert_eq!(seen.headers["traceparent"], client_traceparent().as_str());
    assert_eq!(seen.headers["tracestate"], "vendor=abc");
    gw.shutdown().await.unwrap();
    assert_eq!(*receiver.posts.lock().unwrap(), 0);
}

/// Shutdown flushes: spans ended just before the signal are exported
/// without any flush from the test.
#[tokio::test]
async fn shutdown_exports_the_last_spans() {
    let receiver = Receiver::start().await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = traced_gateway(&mock.base_url(), &receiver).await;
    let resp = client()
        .post(format!("{}/chat/completions", gw.base_url()))
        .header("traceparent", client_traceparent())
        .json(&common::chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await;
    gw.shutdown().await.unwrap();
    let spans = receiver.spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 2, "{spans:#?}");
}

/// The binary as deployed: the standard variables turn export on (with a
/// collector header that never reaches a log), and SIGTERM exports the
/// last spans before the process exits 0 — no flush from outside.
#[tokio::test]
async fn the_binary_exports_on_the_standard_variables_and_flushes_at_sigterm() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    const COLLECTOR_KEY: &str = "sk-otel-SECRET-77";
    let receiver = Receiver::start().await;
    let upstream = Scripted::start(|_, _| {
        Answer::json(
            200,
            r#"{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
        )
    })
    .await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_backstop"))
        .env_clear()
        .env("BACKSTOP_LISTEN", "127.0.0.1:0")
        .env("BACKSTOP_UPSTREAM", upstream.base_url())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url)
        .env("OTEL_SERVICE_NAME", "backstop-bin")
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("x-collector-key={COLLECTOR_KEY}"),
        )
        .env("RUST_LOG", "trace")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = common::listening_on(&mut child);
    let resp = client()
        .post(format!("{base}/v1/chat/completions"))
        .header("traceparent", client_traceparent())
        .json(&common::chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut logs = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        (status, logs)
    })
    .await
    .unwrap();
    let (status, logs) = status;
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(!logs.contains("SECRET"), "the collector key in the logs");
    let spans = receiver.spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert!(spans.iter().all(|s| hex(&s.trace_id) == TRACE_ID));
    assert_eq!(
        *receiver.services.lock().unwrap(),
        ["backstop-bin", "backstop-bin"]
    );
    let keys = receiver.keys.lock().unwrap().clone();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k == COLLECTOR_KEY),
        "{keys:?}"
    );
}

#[test]
fn an_unsupported_protocol_variable_stops_the_binary_naming_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backstop"))
        .env_clear()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(
            "backstop: invalid config (environment variable OTEL_EXPORTER_OTLP_PROTOCOL): otel.protocol: \"grpc\" is not supported"
        ),
        "{stderr}"
    );
}

/// A collector that is down costs no request, and shutdown still ends
/// within the export timeout.
#[tokio::test]
async fn a_collector_that_is_down_costs_no_request() {
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock.base_url(), move |c| {
        c.otel.enabled = true;
        c.otel.endpoint = format!("http://{closed}");
        c.otel.timeout_ms = 300;
    })
    .await;
    for _ in 0..3 {
        let resp = client()
            .post(format!("{}/chat/completions", gw.base_url()))
            .json(&common::chat(false))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let flushed = gw.app.otel.as_ref().unwrap().flush().await;
    assert!(flushed.is_err(), "nothing could take the spans");
    let started = std::time::Instant::now();
    gw.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
