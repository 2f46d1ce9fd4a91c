//! The Responses API (`/v1/responses`) object, served like the real one:
//! the [`Status`] a step gives (`completed`, `incomplete` with its reason,
//! `failed` with its error, `in_progress`, `queued`, `cancelled`), the
//! output items (a `message` with one `output_text` part, or a
//! `function_call`) and usage. The stream is in `responses_stream`,
//! background polling in `background`.

use serde_json::{json, Value};

use super::completion::{Call, Completion, CALL_ID, FUNCTION, PROMPT_TOKENS};
use super::scenario::Step;

/// What state a response is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// `completed`.
    Completed,
    /// `incomplete`, with `incomplete_details.reason`.
    Incomplete(&'static str),
    /// `failed`, with `error.code`.
    Failed(String),
    /// `in_progress` (`pending`).
    InProgress,
    /// `queued` (a background create).
    Queued,
    /// `cancelled`.
    Cancelled,
}

impl Status {
    /// The status a step gives a finished response: `failed:CODE` fails,
    /// `pending` is in progress, `finish:length` and
    /// `finish:content_filter` are incomplete, the rest completed.
    pub fn of(step: &Step, comp: &Completion<'_>) -> Status {
        match step {
            Step::Failed(code) => Status::Failed(code.clone()),
            Step::Pending => Status::InProgress,
            _ => match comp.finish {
                "length" => Status::Incomplete("max_output_tokens"),
                "content_filter" => Status::Incomplete("content_filter"),
                _ => Status::Completed,
            },
        }
    }

    /// The `status` field.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Incomplete(_) => "incomplete",
            Status::Failed(_) => "failed",
            Status::InProgress => "in_progress",
            Status::Queued => "queued",
            Status::Cancelled => "cancelled",
        }
    }

    /// Whether the response has its output (completed or incomplete).
    pub fn finished(&self) -> bool {
        matches!(self, Status::Completed | Status::Incomplete(_))
    }
}

/// Which response an object is: `resp_mock_{n}`, its items `msg_mock_{n}`
/// and `fc_mock_{n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta<'a> {
    /// The sequence number of the request that created it.
    pub n: u64,
    /// `created_at`.
    pub created: u64,
    /// `model`.
    pub model: &'a str,
    /// `background`.
    pub background: bool,
}

impl Meta<'_> {
    /// `resp_mock_{n}`.
    pub fn id(&self) -> String {
        response_id(self.n)
    }

    /// The id of the message item.
    pub fn message_id(&self) -> String {
        format!("msg_mock_{}", self.n)
    }

    /// The id of the function call item.
    pub fn call_id(&self) -> String {
        format!("fc_mock_{}", self.n)
    }
}

/// The id of the response created by request `n`.
pub fn response_id(n: u64) -> String {
    format!("resp_mock_{n}")
}

/// The request number in a response id (`resp_mock_{n}`).
pub fn response_n(id: &str) -> Option<u64> {
    id.strip_prefix("resp_mock_")?.parse().ok()
}

/// The object with `status`, no output and no usage: how a response looks
/// while it is created, queued, in progress or cancelled.
pub fn envelope(meta: &Meta<'_>, status: &str) -> Value {
    json!({
        "id": meta.id(),
        "object": "response",
        "created_at": meta.created,
        "status": status,
        "background": meta.background,
        "completed_at": null,
        "error": null,
        "incomplete_details": null,
        "instructions": null,
        "max_output_tokens": null,
        "metadata": {},
        "model": meta.model,
        "output": [],
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": true,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": null,
    })
}

/// The output items of a finished response, each with `item_status`.
pub fn output(meta: &Meta<'_>, comp: &Completion<'_>, item_status: &str) -> Vec<Value> {
    match (comp.call, comp.text()) {
        (Some(Call::Tool(args) | Call::Function(args)), _) => vec![json!({
            "id": meta.call_id(), "type": "function_call", "status": item_status,
            "call_id": CALL_ID, "name": FUNCTION, "arguments": args,
        })],
        (None, Some(text)) => vec![json!({
            "id": meta.message_id(), "type": "message", "status": item_status, "role": "assistant",
            "content": [output_text(&text)],
        })],
        (None, None) => Vec::new(),
    }
}

/// An `output_text` content part.
pub fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The usage of a finished response.
pub fn usage(comp: &Completion<'_>) -> Value {
    let input = PROMPT_TOKENS + comp.prefill_tokens;
    let output = comp.tokens();
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": comp.reasoning.0},
        "total_tokens": input + output,
    })
}

/// The whole object in `status`.
pub fn object(meta: &Meta<'_>, comp: &Completion<'_>, status: &Status) -> Value {
    let mut v = envelope(meta, status.name());
    match status {
        Status::Completed => {
            v["output"] = json!(output(meta, comp, "completed"));
            v["usage"] = usage(comp);
            v["completed_at"] = json!(meta.created);
        }
        Status::Incomplete(reason) => {
            v["output"] = json!(output(meta, comp, "incomplete"));
            v["usage"] = usage(comp);
            v["incomplete_details"] = json!({ "reason": reason });
        }
        Status::Failed(code) => {
            v["error"] = json!({"code": code, "message": format!("mock failure {code}")});
        }
        Status::InProgress | Status::Queued | Status::Cancelled => {}
    }
    v
}

/// The object as a body.
pub fn body(meta: &Meta<'_>, comp: &Completion<'_>, status: &Status) -> Vec<u8> {
    serde_json::to_vec(&object(meta, comp, status)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
