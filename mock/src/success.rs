//! The 200 answers of a success step, route by route: text routes (chat,
//! completions, responses) say the step's [`Completion`] as a body or a
//! stream (continuing a chat prefill, padding an `oversized` event); the
//! other routes build their body; `whole` and `stream` send it the way the
//! step bends it.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::CONTENT_ENCODING;
use http::{HeaderValue, Response};

use super::body::{sse, MockBody};
use super::catalog::{self, Vectors};
use super::completion::{completion, Completion};
use super::errors;
use super::request::{last_segment, Ctx, Route};
use super::respond::error_response;
use super::responses::{self, Meta, Status};
use super::scenario::Step;
use super::state::State;
use super::stream::{self, responses_error_event, Events, Shape, ERROR_EVENT};
use super::tasks::{self, VideoStatus};
use super::{background, chat, prefill, responses_stream, text, whole};

/// The 200 answer of a success step on a route.
pub fn success(step: &Step, route: Route, ctx: &Ctx<'_>, state: &State) -> Response<MockBody> {
    let comp = || completion(step, ctx.chunks, ctx.chunks_from_header);
    let shaped = |body: String| whole::reply(body, step);
    match route {
        Route::Chat | Route::Completions | Route::Responses => generated(step, route, ctx, state),
        Route::ResponseGet => match background::poll(state, ctx, &comp(), step) {
            Ok(body) => whole::reply(body, step),
            Err(e) => error_response(e),
        },
        Route::ResponseCancel => match background::cancel(state, ctx, &comp()) {
            Ok(body) => whole::reply(body, step),
            Err(e) => error_response(e),
        },
        Route::Embeddings => {
            let vectors = match step {
                Step::EmptyData => Vectors::None,
                Step::ShortData => Vectors::Short,
                Step::EmptyVector => Vectors::Empty,
                _ => Vectors::All,
            };
            let format = ctx.fields.encoding_format.as_deref();
            shaped(catalog::embeddings(
                ctx.model,
                ctx.fields.input.as_ref(),
                format,
                vectors,
            ))
        }
        Route::Models => shaped(catalog::MODELS.to_owned()),
        Route::Model => shaped(catalog::model(last_segment(ctx.path))),
        Route::Images => shaped(tasks::images(ctx, *step == Step::EmptyData)),
        Route::Transcriptions => {
            let text = match step {
                Step::Empty => Some(""),
                Step::Blank => Some("   "),
                _ => None,
            };
            shaped(tasks::transcription(ctx.body.len(), text))
        }
        Route::VideoCreate => {
            let id = tasks::video_id(ctx.n);
            state.create_video(id.clone(), ctx.model);
            shaped(tasks::video(
                &id,
                ctx.model,
                ctx.created,
                VideoStatus::Queued,
            ))
        }
        Route::VideoGet => {
            let id = last_segment(ctx.path);
            let missing_first = match step {
                Step::TaskNotExist(k) => *k,
                _ => 0,
            };
            let (model, status) = match step {
                Step::VideoFailed => (ctx.model.to_owned(), Some(VideoStatus::Failed)),
                _ => {
                    let (model, phase) = state.poll_video(id, missing_first);
                    (model, VideoStatus::of(phase))
                }
            };
            match status {
                Some(status) => shaped(tasks::video(id, &model, ctx.created, status)),
                None => error_response(errors::task_not_exist()),
            }
        }
        Route::UnknownV1 | Route::Stats | Route::Reset | Route::Health | Route::Outside => {
            error_response(errors::unknown_url(ctx.method, ctx.path))
        }
    }
}

/// Chat, completions and responses: the step's completion as a body or as
/// a stream (`json_for_stream` answers a stream request with the body).
fn generated(step: &Step, route: Route, ctx: &Ctx<'_>, state: &State) -> Response<MockBody> {
    let stream = ctx.stream && *step != Step::JsonForStream;
    if *step == Step::ErrorEvent && stream {
        let event = match route {
            Route::Responses => responses_error_event(0),
            _ => Bytes::from_static(ERROR_EVENT),
        };
        return sse(MockBody::full(event));
    }
    let mut comp = completion(step, ctx.chunks, ctx.chunks_from_header);
    if route == Route::Chat {
        if let Some(text) = ctx.fields.prefill() {
            prefill::continue_after(&mut comp, &text);
        }
    }
    let meta = Meta {
        n: ctx.n,
        created: ctx.created,
        model: ctx.model,
        background: route == Route::Responses && ctx.fields.background == Some(true),
    };
    if stream {
        if meta.background {
            background::keep(state, ctx);
        }
        let build = |comp: &Completion<'_>| match route {
            Route::Completions => text::completions_events(ctx, comp),
            Route::Responses => {
                responses_stream::events(&meta, comp, &Status::of(step, comp), ctx.chunks)
            }
            _ => chat::events(ctx, comp),
        };
        let events = match step {
            Step::Oversized { bytes, after } => {
                let per_piece = match route {
                    Route::Responses => 1,
                    _ => ctx.choices as usize,
                };
                oversized(&mut comp, *bytes, *after, per_piece, build)
            }
            _ => build(&comp),
        };
        let gzip = *step == Step::Gzip;
        let mut resp = sse(stream::body(events, Shape::of(step), ctx.chunk_delay, gzip));
        if gzip {
            resp.headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        return resp;
    }
    let body = match route {
        Route::Completions => text::completions_body(ctx, &comp),
        Route::Responses if meta.background => background::create(state, ctx, &comp, step),
        Route::Responses => responses::body(&meta, &comp, &Status::of(step, &comp)),
        _ => chat::body(ctx, &comp),
    };
    whole::reply(body, step)
}

/// The length of the `data:` line of an event frame (without its newline).
fn data_line_len(frame: &[u8]) -> usize {
    let start = frame
        .windows(6)
        .position(|w| w == b"data: ")
        .unwrap_or_default();
    frame.len().saturating_sub(start + 2)
}

/// The events with one more content piece after `after` ones, made of `x`
/// so that its event's `data:` line is `bytes` long (or as short as it can
/// be). Without content there is nothing to pad: the events as they are.
fn oversized<'c>(
    comp: &mut Completion<'c>,
    bytes: usize,
    after: usize,
    per_piece: usize,
    build: impl Fn(&Completion<'c>) -> Events,
) -> Events {
    let Some(at) = comp.pieces.as_ref().map(|p| after.min(p.len())) else {
        return build(comp);
    };
    if let Some(pieces) = comp.pieces.as_mut() {
        pieces.insert(at, Cow::Borrowed(""));
    }
    let probe = build(comp);
    let skeleton = probe
        .frames
        .get(probe.lead + at * per_piece)
        .map_or(0, |f| data_line_len(f));
    if let Some(slot) = comp.pieces.as_mut().and_then(|p| p.get_mut(at)) {
        *slot = Cow::Owned("x".repeat(bytes.saturating_sub(skeleton)));
    }
    build(comp)
}
