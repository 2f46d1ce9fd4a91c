//! The Responses API (`/v1/responses`), inspected like chat: a response
//! object — a whole body, a poll of `/v1/responses/{id}`, or the one a
//! stream's terminal event carries — is read into the per-choice rules of
//! [`super::choice`]:
//!
//! | response | kind |
//! | --- | --- |
//! | `status: "failed"` | the hard kind of its `error.code` |
//! | `incomplete`, `incomplete_details.reason: "max_output_tokens"` | `length` |
//! | `incomplete`, reason `content_filter` (or a refusal) | `content_filter` |
//! | `completed`, no output text and no function call | `empty_content` |
//! | `text.format` `json_object` / `json_schema`, output text that does not parse / validate | `invalid_json` / `schema_mismatch` |
//! | a function call whose `arguments` do not parse | `invalid_json` (about tool arguments) |
//! | `queued`, `in_progress`, `cancelled` (not final) | `ok` |
//! | a stream that ends without `response.completed`, `response.incomplete` or `response.failed` | `stream_truncated` |
//!
//! Finish reasons are counted in the chat vocabulary: `stop` (completed),
//! `tool_calls` (completed with a function call), `length`,
//! `content_filter`.

use std::borrow::Cow;

use serde_json::Value;

use super::choice::{judge_all, ChoiceView, ToolCallView};
use super::expect::{Expectation, JsonMode};
use super::findings::{bad_upstream, Findings, Usage};
use super::stream::{EventVerdict, StreamEnd};
use crate::classify::classify_error_object;
use crate::outcome::Subject;
use crate::taxonomy::Kind;

/// The terminal events of a Responses stream.
const TERMINAL: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// Inspects a whole Responses API body.
pub fn inspect_response(expect: &Expectation, body: &[u8]) -> Findings {
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => judge_response(&expect.json, &value),
        Ok(_) => bad_upstream("the body is JSON but not an object".to_string()),
        Err(err) => bad_upstream(format!("the body is not JSON: {err}")),
    }
}

/// Judges a response object (see the module doc).
pub fn judge_response(json: &JsonMode, response: &Value) -> Findings {
    let model = response
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let usage = response.get("usage").and_then(Usage::from_json);
    let status = response
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let reason = response
        .get("incomplete_details")
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let finish = match (status, reason) {
        ("failed", _) => {
            let error = response
                .get("error")
                .filter(|e| e.is_object())
                .cloned()
                .unwrap_or_else(
                    || serde_json::json!({"message": "the response failed without an error"}),
                );
            return Findings {
                kind: classify_error_object(&error, None).kind,
                model,
                usage,
                error: Some(error),
                ..Findings::default()
            };
        }
        ("completed", _) => "stop",
        ("incomplete", "content_filter") => "content_filter",
        ("incomplete", _) => "length",
        // Not final (queued, in progress, cancelled), or not a response.
        _ => {
            return Findings {
                model,
                usage,
                ..Findings::default()
            }
        }
    };
    let items = response.get("output").and_then(Value::as_array);
    let items = items.map_or(&[][..], Vec::as_slice);
    let mut text = String::new();
    let mut refusal = String::new();
    let mut tool_calls = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match part.get("type").and_then(Value::as_str) {
                        Some("output_text") => {
                            text.push_str(
                                part.get("text").and_then(Value::as_str).unwrap_or_default(),
                            );
                        }
                        Some("refusal") => {
                            refusal.push_str(
                                part.get("refusal")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default(),
                            );
                        }
                        _ => {}
                    }
                }
            }
            Some("function_call" | "custom_tool_call") => {
                let name = item.get("name").and_then(Value::as_str).unwrap_or("?");
                tool_calls.push(ToolCallView {
                    label: format!("function call {i} ({name})"),
                    arguments: item
                        .get("arguments")
                        .and_then(Value::as_str)
                        .map(Cow::Borrowed),
                });
            }
            // Other tools (web search, file search, …) are output too.
            Some(t) if t.ends_with("_call") => tool_calls.push(ToolCallView {
                label: format!("{t} {i}"),
                arguments: None,
            }),
            _ => {}
        }
    }
    let finish = if finish == "stop" && !tool_calls.is_empty() {
        "tool_calls"
    } else {
        finish
    };
    let has_text = !text.trim().is_empty();
    let view = ChoiceView {
        index: 0,
        finish_reason: Cow::Borrowed(finish),
        has_text,
        json_text: (!matches!(json, JsonMode::None)).then_some(Cow::Borrowed(text.as_str())),
        refusal: (!refusal.is_empty()).then_some(Cow::Borrowed(refusal.as_str())),
        tool_calls,
    };
    let (kind, subject, detail) = judge_all(json, [view]);
    // "choice 0" means nothing on this API: say "the response".
    let detail = detail.map(|d| d.replacen("choice 0", "the response", 1));
    Findings {
        kind,
        finish_reasons: vec![finish.to_string()],
        model,
        usage,
        detail,
        subject,
        error: None,
    }
}

/// Watches a Responses API stream event by event: whether its output
/// started, and the response its terminal event carries, judged when the
/// stream ends. Nothing is buffered but that one object.
#[derive(Debug)]
pub struct ResponsesInspector {
    json: JsonMode,
    output_started: bool,
    terminal: Option<Value>,
    malformed: u32,
    /// The highest `sequence_number` seen.
    sequence: Option<u64>,
}

impl ResponsesInspector {
    pub fn new(expect: &Expectation) -> Self {
        ResponsesInspector {
            json: expect.json.clone(),
            output_started: false,
            terminal: None,
            malformed: 0,
            sequence: None,
        }
    }

    /// Reads one event (its name and data) and says what to do with it.
    pub fn observe(&mut self, event: Option<&str>, data: &[u8]) -> EventVerdict {
        if data.trim_ascii() == b"[DONE]" {
            return EventVerdict::Done;
        }
        let Ok(value) = serde_json::from_slice::<Value>(data) else {
            self.malformed = self.malformed.saturating_add(1);
            return EventVerdict::Drop;
        };
        if let Some(n) = value.get("sequence_number").and_then(Value::as_u64) {
            self.sequence = Some(self.sequence.map_or(n, |s| s.max(n)));
        }
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .or(event)
            .unwrap_or_default();
        if kind == "error" || event == Some("error") {
            let error = value
                .get("error")
                .filter(|e| e.is_object())
                .unwrap_or(&value);
            return EventVerdict::Error(error.clone());
        }
        if TERMINAL.contains(&kind) {
            // Held like chat's `[DONE]`: a failure found in it must not
            // reach the client after an event that says the answer is whole.
            self.terminal = Some(value.get("response").cloned().unwrap_or(Value::Null));
            return EventVerdict::Done;
        }
        let delta = value
            .get("delta")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let output = matches!(
            kind,
            "response.output_text.delta"
                | "response.refusal.delta"
                | "response.function_call_arguments.delta"
                | "response.reasoning_text.delta"
                | "response.reasoning_summary_text.delta"
        );
        self.output_started |= output && !delta.is_empty();
        EventVerdict::Forward
    }

    /// The `sequence_number` an event added now gets.
    pub fn next_sequence_number(&self) -> u64 {
        self.sequence.map_or(0, |n| n + 1)
    }

    /// Output (text, a refusal, a function call, reasoning) started.
    pub fn output_started(&self) -> bool {
        self.output_started
    }

    /// The terminal event came.
    pub fn finished(&self) -> bool {
        self.terminal.is_some()
    }

    /// Events dropped because their data was not JSON.
    pub fn malformed_events(&self) -> u32 {
        self.malformed
    }

    /// The findings, given how the stream ended.
    pub fn finish(&self, end: StreamEnd) -> Findings {
        match &self.terminal {
            Some(response) => judge_response(&self.json, response),
            None => Findings {
                kind: Kind::StreamTruncated,
                subject: Subject::Content,
                detail: Some(format!(
                    "the stream {} before its terminal event (response.completed, response.incomplete or response.failed)",
                    end.describe()
                )),
                ..Findings::default()
            },
        }
    }
}

#[cfg(test)]
mod tests;
