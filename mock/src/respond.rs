//! From one request to one [`Action`]: count it, read its directives, pick
//! its step (scenario by key, mix, or `ok`), wait what it asks, then answer
//! an error step here or hand a success step to `success`. The connection
//! layer (`server`) only carries the action out.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::body::{json, response, MockBody, TEXT};
use super::errors::{self, ErrorReply};
use super::request::{
    last_segment, multipart_field, route, Ctx, Fields, Route, DEFAULT_MODEL, MAX_CHOICES,
};
use super::scenario::{select, ErrorBodyFormat, Step, OK};
use super::state::State;
use super::success::success;
use super::{directives, RecordedRequest};

/// What to do with a request.
#[derive(Debug)]
pub enum Action {
    /// Send this response.
    Reply(Response<MockBody>),
    /// Never answer.
    Hang,
    /// Drop the connection without a response.
    Reset,
}

/// A response for an [`ErrorReply`].
pub fn error_response(reply: ErrorReply) -> Response<MockBody> {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match reply.body {
        Cow::Borrowed(s) => Bytes::from_static(s.as_bytes()),
        Cow::Owned(s) => Bytes::from(s),
    };
    let mut resp = response(status, reply.content_type, MockBody::full(body));
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::try_from(value) {
            resp.headers_mut().append(name, value);
        }
    }
    resp
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Answers one request; every reply carries `x-request-id: mock-<n>`.
pub async fn answer<B>(state: &State, req: Request<B>) -> Action
where
    B: http_body::Body<Data = Bytes>,
{
    let n = state.next_n();
    let (parts, body) = req.into_parts();
    let route = route(&parts.method, parts.uri.path());
    let action = match route {
        Route::Stats => Action::Reply(json(StatusCode::OK, state.stats_json())),
        Route::Reset => {
            state.reset();
            Action::Reply(json(
                StatusCode::OK,
                Bytes::from_static(br#"{"reset":true}"#),
            ))
        }
        Route::Health => Action::Reply(response(StatusCode::OK, Some(TEXT), MockBody::full("ok"))),
        Route::Outside => Action::Reply(error_response(errors::unknown_url(
            parts.method.as_str(),
            parts.uri.path(),
        ))),
        Route::Chat
        | Route::Completions
        | Route::Embeddings
        | Route::Models
        | Route::Model
        | Route::Responses
        | Route::ResponseGet
        | Route::ResponseCancel
        | Route::Images
        | Route::Transcriptions
        | Route::VideoCreate
        | Route::VideoGet
        | Route::UnknownV1 => {
            let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
                return Action::Reset;
            };
            v1(state, n, route, &parts, body).await
        }
    };
    match action {
        Action::Reply(mut resp) => {
            if let Ok(id) = HeaderValue::try_from(format!("mock-{n}")) {
                resp.headers_mut().insert("x-request-id", id);
            }
            Action::Reply(resp)
        }
        other => other,
    }
}

async fn v1(
    state: &State,
    n: u64,
    route: Route,
    parts: &http::request::Parts,
    body: Bytes,
) -> Action {
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let key = directives::key(&parts.headers);
    let nth = state.record(key, || RecordedRequest {
        method: parts.method.clone(),
        path: path_and_query.to_owned(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let d = match directives::parse(&parts.headers) {
        Ok(d) => d,
        Err(e) => {
            return Action::Reply(error_response(errors::bad_directive(
                e.header,
                &e.to_string(),
            )))
        }
    };
    if d.echo {
        sleep(d.first_byte_delay).await;
        return Action::Reply(json(StatusCode::OK, echo(parts, &body)));
    }
    let step = match &d.scenario {
        Some(sequence) => select(sequence, key.map(|_| nth)).unwrap_or(&OK),
        None => state.draw(),
    };
    let fields = Fields::parse(&body);
    let model = match &fields.model {
        Some(m) => m.as_str(),
        None => multipart_field(&body, "model").unwrap_or(DEFAULT_MODEL),
    };
    let ctx = Ctx {
        n,
        created: now(),
        model,
        method: parts.method.as_str(),
        stream: fields.stream == Some(true),
        choices: fields.n.unwrap_or(1).clamp(1, MAX_CHOICES),
        include_usage: fields.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true),
        chunks: d.chunks.unwrap_or(state.chunks),
        chunks_from_header: d.chunks.is_some(),
        chunk_delay: d.chunk_delay.unwrap_or(state.chunk_delay),
        path: parts.uri.path(),
        path_and_query,
        fields: &fields,
        body: &body,
    };
    let slow = match step {
        Step::Slow(pause) => *pause,
        _ => Duration::ZERO,
    };
    sleep(d.first_byte_delay + slow).await;
    respond(step, route, &ctx, state)
}

async fn sleep(pause: Duration) {
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
}

/// `x-mock-echo`: what the mock received.
fn echo(parts: &http::request::Parts, body: &[u8]) -> Vec<u8> {
    let mut headers: BTreeMap<&str, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let echo = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
        "body_len": body.len(),
        "body": String::from_utf8_lossy(body),
    });
    serde_json::to_vec(&echo).unwrap_or_default()
}

/// Whether a route belongs to the Responses API (where `failed` is a status).
fn responses_api(route: Route) -> bool {
    matches!(
        route,
        Route::Responses | Route::ResponseGet | Route::ResponseCancel
    )
}

/// The answer a step gives on a route.
pub fn respond(step: &Step, route: Route, ctx: &Ctx<'_>, state: &State) -> Action {
    let reply = |r| Action::Reply(error_response(r));
    match step {
        Step::Status { code, format } => reply(errors::status(*code, *format, ctx.n)),
        Step::Error(e) => reply(errors::named(*e, ctx.n, ctx.model, last_segment(ctx.path))),
        Step::RetryAfter { value, ms } => reply(errors::retry_after(value, *ms)),
        Step::RetryAfter5xx(value) => reply(errors::retry_after_5xx(value)),
        Step::RatelimitReset(value) => reply(errors::ratelimit_reset(value)),
        Step::Redirect => reply(errors::redirect(ctx.path_and_query)),
        Step::Html => reply(errors::html()),
        Step::ErrorBody(format) => reply(errors::error_body(format)),
        Step::Failed(code) if !responses_api(route) => {
            reply(errors::error_body(&ErrorBodyFormat::Named(code.clone())))
        }
        Step::Hang => Action::Hang,
        Step::Reset => Action::Reset,
        Step::Ok
        | Step::Finish(_)
        | Step::Empty
        | Step::Blank
        | Step::Json
        | Step::BadJson
        | Step::SchemaBad
        | Step::BadArgs
        | Step::Reasoning { .. }
        | Step::EmptyData
        | Step::ShortData
        | Step::EmptyVector
        | Step::Failed(_)
        | Step::Pending
        | Step::Cut(_)
        | Step::CutBody
        | Step::DropAfterHeaders
        | Step::NoDone
        | Step::Malformed
        | Step::ErrorEvent
        | Step::ErrorAfter(_)
        | Step::Garbage(_)
        | Step::Oversized { .. }
        | Step::RoleOnly(_)
        | Step::Keepalive(_)
        | Step::JsonForStream
        | Step::Gzip
        | Step::Hold(_)
        | Step::FirstToken(_)
        | Step::Stall(_)
        | Step::Slow(_)
        | Step::VideoFailed
        | Step::TaskNotExist(_) => Action::Reply(success(step, route, ctx, state)),
    }
}
