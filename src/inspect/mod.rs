//! Soft and silent failure inspection: pure functions that read a 200
//! answer (a whole body, or a stream event by event) and say which
//! [`Kind`] it is, given what the request asked for ([`Expectation`]).
//!
//! Sits after the hard-failure classifier: the proxy calls these only on a
//! success status, then applies the `[inspect]` policy (pass / retry / fail)
//! to the kind found. No I/O, no logging, no metrics here.
//!
//! | where | rule | kind |
//! | --- | --- | --- |
//! | chat / completions body | not JSON (or not an object) | `bad_upstream_response` |
//! | | no `choices` | `ok`, no finish reasons (not ours to judge) |
//! | per choice | `finish_reason: content_filter`, or a non-blank `refusal` | `content_filter` |
//! | | `finish_reason: length` | `length` (content not checked further) |
//! | | tool-call / `function_call` arguments not JSON (blank arguments count as none) | `invalid_json` |
//! | | tool calls present and well formed (content may be null) | `ok` |
//! | | no tool calls and content null / blank, whatever the finish_reason | `empty_content` |
//! | | JSON mode, content does not parse (whitespace around it is fine, a Markdown ```` ``` ```` fence is not: the client's parser would choke on it) | `invalid_json` |
//! | | `json_schema`, content parses but fails the schema | `schema_mismatch` |
//! | | any other finish_reason (`stop`, `tool_calls`, unknown, null) | `ok`, counted as sent |
//! | several choices | the most severe: `content_filter` > `invalid_json` = `schema_mismatch` > `empty_content` > `length` > `ok`; ties go to the lowest index | |
//! | stream | any end before every choice seen has a finish_reason | `stream_truncated` |
//! | | otherwise the per-choice rules above | |
//! | | an event whose data is not JSON: dropped and counted apart ([`StreamInspector::malformed_events`]); it does not change the kind | |
//! | images | 200 with `data` missing, null or empty (and no `error`) | `empty_data`, detail = `revised_prompt` if any |
//! | videos | `status` (or `data.status` / `data.task_status`) `succeed` | rewritten to `succeeded` ([`normalize_video`]) |

mod chat;
mod expect;
mod media;
mod repair;
mod stream;
mod tasks;
mod watch;

pub mod layer;

use std::borrow::Cow;

use serde_json::Value;

use crate::taxonomy::Kind;

pub use chat::inspect_body;
pub use expect::{Endpoint, Expectation, JsonMode};
pub use media::{inspect_images, is_task_not_ready, normalize_video, VideoBody, VideoVerdict};
pub use stream::{EventVerdict, StreamEnd, StreamInspector};

/// What inspecting one answer found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Findings {
    /// `Kind::Ok` or a soft/silent kind (`bad_upstream_response` for a body
    /// that is not JSON).
    pub kind: Kind,
    /// One per choice, in index order, as sent (`""` when null or absent).
    pub finish_reasons: Vec<String>,
    /// The `model` the upstream reported.
    pub model: Option<String>,
    /// Token usage, when the answer carried it.
    pub usage: Option<Usage>,
    /// A short explanation for the envelope and the logs: which choice, the
    /// JSON or schema error, the revised prompt.
    pub detail: Option<String>,
}

impl Findings {
    /// The finish_reason worth reporting: the first one that is neither
    /// `stop` nor missing.
    pub fn notable_finish_reason(&self) -> Option<String> {
        self.finish_reasons
            .iter()
            .find(|r| !r.is_empty() && *r != "stop")
            .cloned()
    }
}

/// Token usage of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    /// Reads `prompt_tokens` / `completion_tokens` (or the images and
    /// Responses API's `input_tokens` / `output_tokens`); `None` when the
    /// value has neither.
    pub fn from_json(usage: &Value) -> Option<Usage> {
        let count = |a: &str, b: &str| {
            usage
                .get(a)
                .or_else(|| usage.get(b))
                .and_then(Value::as_u64)
        };
        let prompt = count("prompt_tokens", "input_tokens");
        let completion = count("completion_tokens", "output_tokens");
        if prompt.is_none() && completion.is_none() {
            return None;
        }
        Some(Usage {
            prompt_tokens: prompt.unwrap_or(0),
            completion_tokens: completion.unwrap_or(0),
        })
    }
}

/// Longest `detail` kept, in characters.
const DETAIL_MAX_CHARS: usize = 200;

/// Caps a detail string at [`DETAIL_MAX_CHARS`] (on a char boundary).
fn cap_detail(text: String) -> String {
    match text.char_indices().nth(DETAIL_MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// A body that is not what was due (not JSON, or not an object).
fn bad_upstream(detail: String) -> Findings {
    Findings {
        kind: Kind::BadUpstreamResponse,
        detail: Some(cap_detail(detail)),
        ..Findings::default()
    }
}

/// One tool call of a choice, as far as the rules need it.
struct ToolCallView<'a> {
    /// The tool call's position label for the detail (`tool call 0 (name)`).
    label: String,
    /// The arguments text; `None` when they came as structured JSON already.
    arguments: Option<Cow<'a, str>>,
}

/// One choice, as the per-choice rules see it (built from a body or from
/// the stream inspector's state).
struct ChoiceView<'a> {
    index: u64,
    finish_reason: &'a str,
    /// Content that is not blank was produced.
    has_text: bool,
    /// The whole content, when it is to be checked as JSON.
    json_text: Option<Cow<'a, str>>,
    refusal: Option<Cow<'a, str>>,
    tool_calls: Vec<ToolCallView<'a>>,
}

/// The per-choice rules (see the table above). `None` means ok.
fn judge(json: &JsonMode, choice: &ChoiceView<'_>) -> Option<(Kind, String)> {
    let at = format!("choice {}", choice.index);
    if choice.finish_reason == "content_filter" {
        return Some((
            Kind::ContentFilter,
            format!("{at}: finish_reason content_filter"),
        ));
    }
    if let Some(refusal) = choice.refusal.as_deref().filter(|r| !r.trim().is_empty()) {
        return Some((Kind::ContentFilter, format!("{at}: refusal: {refusal}")));
    }
    if choice.finish_reason == "length" {
        return Some((Kind::Length, format!("{at}: finish_reason length")));
    }
    if !choice.tool_calls.is_empty() {
        for call in &choice.tool_calls {
            let Some(args) = call.arguments.as_deref().filter(|a| !a.trim().is_empty()) else {
                continue;
            };
            if let Err(err) = serde_json::from_str::<serde::de::IgnoredAny>(args) {
                let what = format!("{at}: {} arguments are not valid JSON: {err}", call.label);
                return Some((Kind::InvalidJson, what));
            }
        }
        return None;
    }
    if !choice.has_text {
        let reason = match choice.finish_reason {
            "" => "null",
            other => other,
        };
        let what = format!("{at}: finish_reason {reason} with no content and no tool calls");
        return Some((Kind::EmptyContent, what));
    }
    let text = choice.json_text.as_deref()?;
    let schema = match json {
        JsonMode::None => return None,
        JsonMode::Object => None,
        JsonMode::Schema(validator) => Some(validator),
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => {
            return Some((
                Kind::InvalidJson,
                format!("{at}: content is not valid JSON: {err}"),
            ))
        }
    };
    let error = schema?.iter_errors(&value).next()?;
    let path = error.instance_path().to_string();
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    let what = format!(
        "{at}: content does not match the schema: {path}: {}",
        error.masked()
    );
    Some((Kind::SchemaMismatch, what))
}

/// How bad a kind is when several choices disagree (higher wins).
fn severity(kind: Kind) -> u8 {
    match kind {
        Kind::ContentFilter => 4,
        Kind::InvalidJson | Kind::SchemaMismatch => 3,
        Kind::EmptyContent => 2,
        Kind::Length => 1,
        // Not produced per choice; listed so a new kind must be placed here.
        Kind::Ok
        | Kind::BadRequest
        | Kind::ContextLengthExceeded
        | Kind::Unauthorized
        | Kind::Forbidden
        | Kind::QuotaExceeded
        | Kind::NotFound
        | Kind::PayloadTooLarge
        | Kind::RateLimited
        | Kind::ServerError
        | Kind::Timeout
        | Kind::ConnectError
        | Kind::BadUpstreamResponse
        | Kind::EmptyData
        | Kind::StreamTruncated
        | Kind::MalformedEvent => 0,
    }
}

/// Judges every choice (given in index order) and keeps the most severe
/// finding; the earliest choice wins a tie.
fn judge_all<'a>(
    json: &JsonMode,
    choices: impl IntoIterator<Item = ChoiceView<'a>>,
) -> (Kind, Option<String>) {
    let mut worst: Option<(Kind, String)> = None;
    for choice in choices {
        if let Some((kind, detail)) = judge(json, &choice) {
            if worst
                .as_ref()
                .is_none_or(|(w, _)| severity(kind) > severity(*w))
            {
                worst = Some((kind, detail));
            }
        }
    }
    match worst {
        Some((kind, detail)) => (kind, Some(cap_detail(detail))),
        None => (Kind::Ok, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_orders_the_per_choice_kinds() {
        let order = [
            Kind::ContentFilter,
            Kind::InvalidJson,
            Kind::EmptyContent,
            Kind::Length,
            Kind::Ok,
        ];
        for pair in order.windows(2) {
            assert!(severity(pair[0]) > severity(pair[1]), "{pair:?}");
        }
        assert_eq!(severity(Kind::InvalidJson), severity(Kind::SchemaMismatch));
    }

    #[test]
    fn usage_reads_both_spellings() {
        let rows = [
            (
                r#"{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}"#,
                Some((3, 5)),
            ),
            (r#"{"input_tokens":7,"output_tokens":2}"#, Some((7, 2))),
            (r#"{"prompt_tokens":4}"#, Some((4, 0))),
            (r#"{"total_tokens":4}"#, None),
            ("null", None),
        ];
        for (json, expected) in rows {
            let value: Value = serde_json::from_str(json).unwrap();
            let got = Usage::from_json(&value).map(|u| (u.prompt_tokens, u.completion_tokens));
            assert_eq!(got, expected, "{json}");
        }
    }

    #[test]
    fn details_are_capped_on_a_char_boundary() {
        assert_eq!(cap_detail("short".into()), "short");
        let long = "é".repeat(250);
        let capped = cap_detail(long);
        assert_eq!(capped.chars().count(), DETAIL_MAX_CHARS + 1);
        assert!(capped.ends_with("é…"));
    }
}
