//! Video tasks (part of the inspection layer): task creations are noted so
//! that a poll of a task this gateway saw created moments ago, answered
//! `task_not_exist`, is retried instead of surfacing; Kling's `succeed` is
//! reported as `succeeded`; a failure without detail gets a hint header.

use std::sync::Arc;

use axum::body::Body;
use http::{header, HeaderValue, Method, Response};

use crate::attempt::{AnswerBody, Attempt};
use crate::config::ms;
use crate::facts::RequestFacts;
use crate::inspect::{is_task_not_ready, normalize_video, VideoBody};
use crate::outcome::Outcome;

use super::state::InspectState;
use super::whole::{read_answer, Answer};

/// Video tasks: note creations, normalize Kling's status, hint at silent
/// failures.
pub async fn video(
    state: &Arc<InspectState>,
    method: &Method,
    facts: &RequestFacts,
    attempt: Attempt,
    resp: Response<Body>,
) -> Attempt {
    let (mut parts, bytes, mut attempt) = match read_answer(state, facts, attempt, resp).await {
        Answer::Read(parts, bytes, attempt) => (parts, bytes, attempt),
        Answer::Done(attempt) => return attempt,
    };
    if method == Method::POST {
        if let Some(id) = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .as_ref()
            .and_then(|v| {
                v.get("id")
                    .or_else(|| v.get("task_id"))
                    .or_else(|| v.pointer("/data/task_id"))
            })
            .and_then(|id| id.as_str())
        {
            state.task_created(id);
        }
    }
    let verdict = normalize_video(&bytes);
    if verdict.failed_without_detail {
        parts.headers.insert(
            "x-backstop-hint",
            HeaderValue::from_static(
                "the task failed without detail: the prompt was most likely filtered; rephrase it",
            ),
        );
    }
    let body = match verdict.body {
        VideoBody::Unchanged => bytes,
        VideoBody::Normalized(normalized) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            normalized
        }
    };
    attempt.response = Some(Response::from_parts(
        parts,
        AnswerBody::Plain(Body::from(body)),
    ));
    attempt
}

/// A poll of a task this gateway saw created moments ago that the upstream
/// does not know yet (Runway's `task_not_exist`): transient, worth a wait.
pub fn mark_task_not_ready(state: &InspectState, path: &str, outcome: &mut Outcome) {
    if !is_task_not_ready(outcome) {
        return;
    }
    let id = path.rsplit('/').next().unwrap_or_default();
    if state.task_is_new(id) {
        outcome.transient = true;
        outcome.retry_after = Some(ms(state.inspect.task_not_ready_retry_ms));
    }
}
