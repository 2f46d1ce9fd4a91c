//! Background responses (Responses API): a create with `"background": true`
//! is kept and answers at once `queued` (`in_progress` under `pending`);
//! `GET /v1/responses/{id}` answers it as the poll's step says (`ok`:
//! `completed` with the usual output, `finish:length`: `incomplete`,
//! `failed:CODE`: `failed`, `pending`: `in_progress`), or `cancelled` once
//! `POST /v1/responses/{id}/cancel` has cancelled it. An id the mock never
//! created is a 404, as upstream.

use super::completion::Completion;
use super::errors::{self, ErrorReply};
use super::request::{response_id_in, Ctx};
use super::responses::{self, response_n, Meta, Status};
use super::scenario::Step;
use super::state::{State, StoredResponse};

/// Keeps the response a background create makes (a streamed one too).
pub fn keep(state: &State, ctx: &Ctx<'_>) {
    state.store_response(StoredResponse {
        n: ctx.n,
        created: ctx.created,
        model: ctx.model.to_owned(),
        cancelled: false,
    });
}

/// A background create: kept, answered `queued` (or `in_progress`).
pub fn create(state: &State, ctx: &Ctx<'_>, comp: &Completion<'_>, step: &Step) -> Vec<u8> {
    keep(state, ctx);
    let meta = Meta {
        n: ctx.n,
        created: ctx.created,
        model: ctx.model,
        background: true,
    };
    let status = match step {
        Step::Pending => Status::InProgress,
        _ => Status::Queued,
    };
    responses::body(&meta, comp, &status)
}

fn stored(state: &State, path: &str) -> Result<StoredResponse, ErrorReply> {
    let id = response_id_in(path);
    response_n(id)
        .and_then(|n| state.response(n))
        .ok_or_else(|| errors::response_not_found(id))
}

fn body(stored: &StoredResponse, comp: &Completion<'_>, status: &Status) -> Vec<u8> {
    let meta = Meta {
        n: stored.n,
        created: stored.created,
        model: &stored.model,
        background: true,
    };
    responses::body(&meta, comp, status)
}

/// `GET /v1/responses/{id}`.
pub fn poll(
    state: &State,
    ctx: &Ctx<'_>,
    comp: &Completion<'_>,
    step: &Step,
) -> Result<Vec<u8>, ErrorReply> {
    let stored = stored(state, ctx.path)?;
    let status = if stored.cancelled {
        Status::Cancelled
    } else {
        Status::of(step, comp)
    };
    Ok(body(&stored, comp, &status))
}

/// `POST /v1/responses/{id}/cancel`.
pub fn cancel(state: &State, ctx: &Ctx<'_>, comp: &Completion<'_>) -> Result<Vec<u8>, ErrorReply> {
    let id = response_id_in(ctx.path);
    let stored = response_n(id)
        .and_then(|n| state.cancel_response(n))
        .ok_or_else(|| errors::response_not_found(id))?;
    Ok(body(&stored, comp, &Status::Cancelled))
}
