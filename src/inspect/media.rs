//! Images and video tasks: the soft failure of an image answer with no
//! images (`empty_data`), the Kling `succeed` status normalized to
//! `succeeded` (CONTRACT.md §3), a failed task with no detail (the caller
//! adds a hint), and the "task not ready yet" answer some providers give on
//! the first poll. Pure functions over a 2xx (or, for the last, a 4xx) body.

use std::ops::Range;

use bytes::Bytes;
use serde_json::Value;

use super::findings::{bad_upstream, cap_detail, Findings, Usage};
use crate::outcome::Outcome;
use crate::taxonomy::Kind;

/// Inspects an images answer (`/v1/images/generations`, edits,
/// variations): `data` missing, null or empty → `empty_data` (the prompt
/// was most likely filtered), with `revised_prompt: ...` as detail when the
/// body has one anywhere. A body with a non-null `error` is left `ok` for
/// the error classifier; a body that is not a JSON object is
/// `bad_upstream_response`.
pub fn inspect_images(body: &[u8]) -> Findings {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => return bad_upstream("the body is JSON but not an object".to_string()),
        Err(err) => return bad_upstream(format!("the body is not JSON: {err}")),
    };
    let has_images = value
        .get("data")
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty());
    let has_error = value.get("error").is_some_and(|e| !e.is_null());
    let kind = if has_images || has_error {
        Kind::Ok
    } else {
        Kind::EmptyData
    };
    let detail = match kind {
        Kind::EmptyData => find_string(&value, "revised_prompt", 6)
            .map(|p| cap_detail(format!("revised_prompt: {p}"))),
        _ => None,
    };
    Findings {
        kind,
        finish_reasons: Vec::new(),
        model: value
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned),
        usage: value.get("usage").and_then(Usage::from_json),
        detail,
        ..Findings::default()
    }
}

/// A non-blank string under `key` anywhere in `value` (depth-limited).
fn find_string<'a>(value: &'a Value, key: &str, depth: u8) -> Option<&'a str> {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Object(map) => {
            if let Some(found) = map
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
            {
                return Some(found);
            }
            Box::new(map.values())
        }
        Value::Array(items) => Box::new(items.iter()),
        _ => return None,
    };
    if depth == 0 {
        return None;
    }
    children
        .into_iter()
        .find_map(|child| find_string(child, key, depth - 1))
}

/// What to send for a video task answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoBody {
    /// Pass the body on as it came.
    Unchanged,
    /// Send this instead: the same bytes with the task status `succeed`
    /// changed to `succeeded` and `"backstop_original_status":"succeed"`
    /// added beside it.
    Normalized(Bytes),
}

/// What [`normalize_video`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoVerdict {
    pub body: VideoBody,
    /// The task failed (`failed` / `failure`) and said nothing about why
    /// (no non-blank `error`, `fail_reason`, `failure_reason`,
    /// `error_message`, `reason` or `task_status_msg`): the caller adds a
    /// hint (most likely the prompt was filtered).
    pub failed_without_detail: bool,
}

/// Where a task status may sit: `(object holding it, key)`, with the
/// object given as a path of member names from the top.
const STATUS_PLACES: [(&[&str], &str); 3] = [
    (&[], "status"),
    (&["data"], "status"),
    (&["data"], "task_status"),
];

/// Keys that explain a failed task.
const DETAIL_KEYS: [&str; 6] = [
    "error",
    "fail_reason",
    "failure_reason",
    "error_message",
    "reason",
    "task_status_msg",
];

/// Reads a video task answer (create or poll): normalizes Kling's
/// `succeed` wherever the status sits (top-level `status`, or
/// `data.status` / `data.task_status` as Kling's own API has it) and spots
/// a failure without detail. The rewrite is a splice into the original
/// bytes, so everything else (key order, spacing, numbers) goes through
/// untouched; a status whose key is written with escapes is left as it is.
pub fn normalize_video(body: &[u8]) -> VideoVerdict {
    let unchanged = VideoVerdict {
        body: VideoBody::Unchanged,
        failed_without_detail: false,
    };
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return unchanged;
    };
    let mut splices: Vec<Range<usize>> = Vec::new();
    let mut failed_without_detail = false;
    for (path, key) in STATUS_PLACES {
        let holder = path.iter().try_fold(&value, |v, name| v.get(*name));
        let Some(status) = holder.and_then(|h| h.get(key)).and_then(Value::as_str) else {
            continue;
        };
        if status == "succeed" {
            if let Some(range) = crate::json_field::locate(body, path, key)
                .filter(|r| body.get(r.clone()) == Some(&b"\"succeed\""[..]))
            {
                splices.push(range);
            }
        }
        if matches!(status.to_ascii_lowercase().as_str(), "failed" | "failure") {
            let explained = |v: Option<&Value>| {
                v.is_some_and(|v| {
                    DETAIL_KEYS
                        .iter()
                        .any(|k| v.get(*k).is_some_and(has_detail))
                })
            };
            failed_without_detail = !(explained(holder) || explained(Some(&value)));
        }
    }
    if splices.is_empty() {
        return VideoVerdict {
            failed_without_detail,
            ..unchanged
        };
    }
    splices.sort_by_key(|r| std::cmp::Reverse(r.start));
    let mut out = body.to_vec();
    for range in splices {
        out.splice(
            range,
            br#""succeeded","backstop_original_status":"succeed""#
                .iter()
                .copied(),
        );
    }
    VideoVerdict {
        body: VideoBody::Normalized(Bytes::from(out)),
        failed_without_detail,
    }
}

/// Whether a value says anything: a non-blank string, a number, or a
/// container holding one.
fn has_detail(value: &Value) -> bool {
    match value {
        Value::String(s) => !s.trim().is_empty(),
        Value::Number(_) => true,
        Value::Object(map) => map.values().any(has_detail),
        Value::Array(items) => items.iter().any(has_detail),
        Value::Null | Value::Bool(_) => false,
    }
}

/// A poll answer that means "the task exists but is not visible yet"
/// (Runway via CometAPI on the first poll): a 404 or 400 whose code (as the
/// classifier read it, whatever the body's format) is `task_not_exist` /
/// `task_not_found`, or whose message says "task not exist". The caller may
/// wait and poll again instead of failing.
pub fn is_task_not_ready(answer: &Outcome) -> bool {
    if !matches!(answer.upstream_status, Some(400 | 404)) {
        return false;
    }
    let code = answer.code.as_deref().map(str::to_ascii_lowercase);
    let says = |text: &str| {
        let text = text.to_ascii_lowercase();
        text.contains("task not exist") || text.contains("task_not_exist")
    };
    matches!(code.as_deref(), Some("task_not_exist" | "task_not_found"))
        || answer.message.as_deref().is_some_and(says)
}

#[cfg(test)]
mod tests;
