//! The spans of one request, as the layers hold them:
//! - [`RequestSpan`] (kind SERVER): `observe` opens it ([`Otel::request`])
//!   and closes it when the answer's last byte went out ([`RequestEnd`]);
//! - [`RequestTrace`]: what goes down with the request (in the `Call`): the
//!   request span's context, to open attempt spans under;
//! - [`AttemptSpan`] (kind CLIENT): the retry chain opens one per attempt
//!   ([`RequestTrace::attempt`]) and sends its [`TraceHeaders`] upstream;
//!   it ends when the chain counts the attempt — or, for the stream that
//!   goes out, when the stream's watcher sees it end. An attempt span
//!   dropped unended (a hedge cancelled, a client gone mid-stream) ends
//!   marked `backstop.cancelled`.
//!
//! Attributes (GenAI semantic conventions, HTTP, and backstop's own) never
//! hold a header value; error messages are the envelope's, whose secrets
//! are already redacted.

use http::{HeaderMap, HeaderValue, Method};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::trace::{SdkTracer, Span};

use crate::inspect::{Endpoint, Findings};
use crate::outcome::Outcome;
use crate::proxy::headers::TraceHeaders;
use crate::secrets::Secrets;
use crate::taxonomy::Class;

use super::export::Otel;
use super::genai;

/// The request's span, held by `observe` until the answer is over.
pub struct RequestSpan {
    cx: Context,
    /// `gen_ai.operation.name`, when the request is an inference call.
    operation: Option<&'static str>,
    method: Method,
    route: &'static str,
}

/// The request's trace, as it goes down to the retry chain.
#[derive(Clone)]
pub struct RequestTrace {
    cx: Context,
    tracer: SdkTracer,
    operation: Option<&'static str>,
}

impl std::fmt::Debug for RequestTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTrace")
            .field("span", self.cx.span().span_context())
            .finish_non_exhaustive()
    }
}

impl Otel {
    /// Opens the span of a client request: the child of the client's
    /// `traceparent` (and `tracestate`) when it sent a valid one, else the
    /// root of a new trace.
    pub fn request(
        &self,
        headers: &HeaderMap,
        method: &Method,
        route: &'static str,
        path: &str,
        request_id: &str,
    ) -> (RequestSpan, RequestTrace) {
        let parent = self.propagator.extract(&HeaderExtractor(headers));
        let operation = genai::operation(method, Endpoint::from_path(path));
        let mut attributes = vec![
            KeyValue::new("http.request.method", method.to_string()),
            KeyValue::new("http.route", route),
            KeyValue::new("backstop.request_id", request_id.to_string()),
        ];
        if let Some(op) = operation {
            attributes.push(KeyValue::new("gen_ai.operation.name", op));
        }
        let span = self
            .tracer
            .span_builder(genai::span_name(None, None, method, route))
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span);
        let trace = RequestTrace {
            cx: cx.clone(),
            tracer: self.tracer.clone(),
            operation,
        };
        let span = RequestSpan {
            cx,
            operation,
            method: method.clone(),
            route,
        };
        (span, trace)
    }
}

/// How a request ended, for its span.
pub struct RequestEnd<'a> {
    /// The status the client got.
    pub status: u16,
    pub outcome: &'a Outcome,
    pub attempts: u32,
    /// The last attempt's target.
    pub target: Option<&'a str>,
    /// The model the client asked for.
    pub model: Option<&'a str>,
}

impl RequestSpan {
    /// Sets the final outcome on the span and ends it.
    pub fn close(self, end: &RequestEnd<'_>) {
        let span = self.cx.span();
        let kind = end.outcome.kind;
        span.update_name(genai::span_name(
            self.operation,
            end.model,
            &self.method,
            self.route,
        ));
        let mut attributes = vec![
            KeyValue::new("http.response.status_code", i64::from(end.status)),
            KeyValue::new("backstop.class", kind.class().as_str()),
            KeyValue::new("backstop.kind", kind.as_str()),
            KeyValue::new("backstop.attempts", i64::from(end.attempts)),
        ];
        if let Some(target) = end.target {
            attributes.push(KeyValue::new("backstop.target", target.to_string()));
        }
        if let (Some(model), Some(_)) = (end.model, self.operation) {
            attributes.push(KeyValue::new("gen_ai.request.model", model.to_string()));
        }
        span.set_attributes(attributes);
        // The final outcome is redacted already (admission's `Finish`).
        if let Some(status) = failed(end.outcome, &Secrets::default()) {
            span.set_attribute(KeyValue::new("error.type", kind.as_str()));
            span.set_status(status);
        }
        span.end();
    }
}

/// What an attempt span starts with.
pub struct AttemptStart<'a> {
    /// The attempt's number (1 for the first).
    pub number: u32,
    /// The target's label (`upstream/model`).
    pub target: &'a str,
    pub method: &'a Method,
    /// The model sent to the target.
    pub model: Option<&'a str>,
    /// The upstream's host and port.
    pub address: (&'a str, u16),
}

impl RequestTrace {
    /// Opens the span of one upstream attempt under the request's.
    pub fn attempt(&self, start: &AttemptStart<'_>) -> AttemptSpan {
        let (host, port) = start.address;
        let mut attributes = vec![
            KeyValue::new("http.request.method", start.method.to_string()),
            KeyValue::new("server.address", host.to_string()),
            KeyValue::new("server.port", i64::from(port)),
            KeyValue::new("backstop.attempt", i64::from(start.number)),
            KeyValue::new("backstop.target", start.target.to_string()),
        ];
        if let Some(op) = self.operation {
            attributes.push(KeyValue::new("gen_ai.operation.name", op));
            if let Some(model) = start.model {
                attributes.push(KeyValue::new("gen_ai.request.model", model.to_string()));
            }
            if let Some(provider) = genai::provider(host) {
                attributes.push(KeyValue::new("gen_ai.provider.name", provider));
                attributes.push(KeyValue::new("gen_ai.system", provider));
            }
        }
        let name = match self.operation {
            Some(_) => genai::span_name(self.operation, start.model, start.method, ""),
            None => start.method.to_string(),
        };
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &self.cx);
        let headers = trace_headers(&span);
        AttemptSpan {
            span: Some(span),
            request: self.cx.clone(),
            headers,
        }
    }
}

/// The span of one upstream attempt.
pub struct AttemptSpan {
    /// `None` once ended.
    span: Option<Span>,
    /// The request's span, which takes the answer's GenAI attributes too.
    request: Context,
    headers: TraceHeaders,
}

impl std::fmt::Debug for AttemptSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptSpan")
            .field("traceparent", &self.headers.traceparent)
            .finish_non_exhaustive()
    }
}

impl AttemptSpan {
    /// The trace context this attempt sends upstream.
    pub fn headers(&self) -> &TraceHeaders {
        &self.headers
    }

    /// What inspecting the answer found — the model that answered, the
    /// finish reasons, the tokens — on this span and on the request's (the
    /// last answer's wins there).
    pub fn answered(&mut self, findings: &Findings) {
        let attributes = answer_attributes(findings);
        if attributes.is_empty() {
            return;
        }
        if let Some(span) = self.span.as_mut() {
            span.set_attributes(attributes.clone());
        }
        self.request.span().set_attributes(attributes);
    }

    /// Sets the attempt's outcome and ends the span; `secrets` are
    /// redacted from the message (an upstream may echo a key).
    pub fn end(mut self, outcome: &Outcome, secrets: &Secrets) {
        self.end_here(outcome, secrets);
    }

    /// Ends the attempt's span but keeps the link to the request's, which
    /// later answers still update: a stream continued by another attempt
    /// (stream repair) ends its first attempt's span at the cut, while the
    /// request's answer is only known at the end.
    pub fn end_here(&mut self, outcome: &Outcome, secrets: &Secrets) {
        let Some(mut span) = self.span.take() else {
            return;
        };
        let kind = outcome.kind;
        let mut attributes = vec![
            KeyValue::new("backstop.class", kind.class().as_str()),
            KeyValue::new("backstop.kind", kind.as_str()),
        ];
        if let Some(status) = outcome.upstream_status {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        span.set_attributes(attributes);
        if let Some(status) = failed(outcome, secrets) {
            span.set_attribute(KeyValue::new("error.type", kind.as_str()));
            span.set_status(status);
        }
        span.end();
    }
}

impl Drop for AttemptSpan {
    fn drop(&mut self) {
        if let Some(mut span) = self.span.take() {
            span.set_attribute(KeyValue::new("backstop.cancelled", true));
            span.end();
        }
    }
}

/// `traceparent` (version 00) and `tracestate` for a span.
fn trace_headers(span: &Span) -> TraceHeaders {
    let sc = span.span_context();
    let traceparent = format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    );
    let state = sc.trace_state().header();
    TraceHeaders {
        traceparent: HeaderValue::from_str(&traceparent).unwrap_or(HeaderValue::from_static("")),
        tracestate: (!state.is_empty())
            .then(|| HeaderValue::from_str(&state).ok())
            .flatten(),
    }
}

/// The GenAI response attributes of an answer.
fn answer_attributes(findings: &Findings) -> Vec<KeyValue> {
    let mut out = Vec::new();
    if let Some(model) = &findings.model {
        out.push(KeyValue::new("gen_ai.response.model", model.clone()));
    }
    let reasons: Vec<StringValue> = findings
        .finish_reasons
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| StringValue::from(r.clone()))
        .collect();
    if !reasons.is_empty() {
        out.push(KeyValue::new(
            "gen_ai.response.finish_reasons",
            Value::Array(Array::String(reasons)),
        ));
    }
    if let Some(usage) = findings.usage {
        let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        out.push(KeyValue::new(
            "gen_ai.usage.input_tokens",
            tokens(usage.prompt_tokens),
        ));
        out.push(KeyValue::new(
            "gen_ai.usage.output_tokens",
            tokens(usage.completion_tokens),
        ));
    }
    out
}

/// The span status of an outcome: an error for every kind but `ok`, with
/// the envelope's message as the upstream (or the gateway) wrote it —
/// without the bracketed hint — or the kind when there is none.
fn failed(outcome: &Outcome, secrets: &Secrets) -> Option<Status> {
    let message = || match &outcome.message {
        Some(m) => secrets.redact(m).into_owned(),
        None => outcome.kind.as_str().to_string(),
    };
    match outcome.kind.class() {
        Class::None => None,
        Class::Hard | Class::Soft | Class::Silent | Class::Aborted => {
            Some(Status::error(message()))
        }
    }
}
