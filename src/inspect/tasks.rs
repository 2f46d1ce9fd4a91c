//! Video tasks (part of the inspection layer): task creations are noted so
//! that a poll of a task this gateway saw created moments ago, answered
//! `task_not_exist`, is retried instead of surfacing; Kling's `succeed` is
//! reported as `succeeded`; a failure without detail gets a hint header.

use std::sync::Arc;

use axum::body::Body;
use http::{header, HeaderValue, Method, Response};

use crate::classify::{self, TransportFailure};
use crate::config::ms;
use crate::context::Ledger;
use crate::proxy::attempt::{prefixed, Attempt};

use super::layer::{read_capped, uninspected, Read, Shared};
use super::{is_task_not_ready, normalize_video, VideoBody};

/// Video tasks: note creations, normalize Kling's status, hint at silent
/// failures.
pub(super) async fn video(
    shared: &Arc<Shared>,
    method: &Method,
    ledger: Arc<Ledger>,
    outcome: crate::outcome::Outcome,
    resp: Response<Body>,
) -> Attempt {
    let (mut parts, body) = resp.into_parts();
    let bytes = match read_capped(body, shared.inspect.max_body_bytes).await {
        Read::Whole(bytes) => bytes,
        Read::TooLarge(prefix, rest) => {
            uninspected(shared, &ledger);
            return Attempt {
                outcome,
                response: Some(Response::from_parts(parts, prefixed(prefix, rest))),
            };
        }
        Read::Broken(detail) => {
            return Attempt::failed(classify::transport(TransportFailure::Reset, &detail))
        }
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
            shared.task_created(id);
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
    Attempt {
        outcome,
        response: Some(Response::from_parts(parts, Body::from(body))),
    }
}

/// A poll of a task this gateway saw created moments ago that the upstream
/// does not know yet (Runway's `task_not_exist`): transient, worth a wait.
pub(super) fn mark_task_not_ready(
    shared: &Shared,
    path: &str,
    outcome: &mut crate::outcome::Outcome,
) {
    if !is_task_not_ready(outcome) {
        return;
    }
    let id = path.rsplit('/').next().unwrap_or_default();
    if shared.task_is_new(id) {
        outcome.transient = true;
        outcome.retry_after = Some(ms(shared.inspect.task_not_ready_retry_ms));
    }
}
