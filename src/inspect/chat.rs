//! Inspection of a non-streamed chat completion or completion body: reads
//! each choice into the shared per-choice rules of [`super`] and keeps the
//! most severe finding. Called by the proxy on a 2xx answer whose body it
//! has read whole (non-streamed requests only).

use std::borrow::Cow;

use super::choice::{judge_all, ChoiceView, ToolCallView};
use super::expect::{Expectation, JsonMode};
use super::findings::{bad_upstream, Findings, Usage};
use crate::json_field::Json;

/// Inspects a whole chat-completions (`choices[].message`) or completions
/// (`choices[].text`) body. A body that is not a JSON object is
/// `bad_upstream_response`; one without `choices` is `ok`. Read in place
/// ([`Json`]): no tree is built.
pub fn inspect_body(expect: &Expectation, body: &[u8]) -> Findings {
    let value = match Json::parse(body) {
        Ok(value) if value.is_object() => value,
        Ok(_) => return bad_upstream("the body is JSON but not an object".to_string()),
        Err(err) => return bad_upstream(format!("the body is not JSON: {err}")),
    };
    let [model, usage, choices] = value.fields(["model", "usage", "choices"]);
    let model = model.and_then(Json::as_str).map(Cow::into_owned);
    let usage = usage.and_then(Usage::from_view);
    let mut indexed: Vec<(u64, ChoiceFields<'_>)> = choices
        .map(|c| {
            c.items()
                .enumerate()
                .map(|(pos, c)| {
                    let fields = ChoiceFields::of(c);
                    (fields.index.unwrap_or(pos as u64), fields)
                })
                .collect()
        })
        .unwrap_or_default();
    indexed.sort_by_key(|(index, _)| *index);

    let finish_reasons = indexed
        .iter()
        .map(|(_, c)| c.finish_reason.as_deref().unwrap_or_default().to_string())
        .collect();
    let views = indexed
        .into_iter()
        .map(|(index, c)| choice_view(expect, index, c));
    let (kind, subject, detail) = judge_all(&expect.json, views);
    Findings {
        kind,
        finish_reasons,
        model,
        usage,
        detail,
        subject,
        error: None,
    }
}

/// The members of one choice the rules read.
struct ChoiceFields<'a> {
    index: Option<u64>,
    finish_reason: Option<Cow<'a, str>>,
    message: Option<Json<'a>>,
    text: Option<Json<'a>>,
}

impl<'a> ChoiceFields<'a> {
    fn of(choice: Json<'a>) -> Self {
        let [index, finish_reason, message, text] =
            choice.fields(["index", "finish_reason", "message", "text"]);
        ChoiceFields {
            index: index.and_then(Json::as_u64),
            finish_reason: finish_reason.and_then(Json::as_str),
            message,
            text,
        }
    }
}

/// One choice of a body as the rules see it: `message` for chat, `text`
/// for completions (read by shape, not by endpoint, so a provider that
/// answers one endpoint in the other's shape is read too).
fn choice_view<'a>(expect: &Expectation, index: u64, choice: ChoiceFields<'a>) -> ChoiceView<'a> {
    let [content, refusal, tool_calls, function_call] = match choice.message {
        Some(m) => m.fields(["content", "refusal", "tool_calls", "function_call"]),
        None => [None; 4],
    };
    let text = match choice.message {
        Some(_) => content.and_then(content_text),
        None => choice.text.and_then(Json::as_str),
    };
    let has_text = text.as_deref().is_some_and(|t| !t.trim().is_empty());
    let json_text = match expect.json {
        JsonMode::None => None,
        JsonMode::Object | JsonMode::Schema(_) => text,
    };
    let mut calls = Vec::new();
    for (pos, call) in tool_calls.into_iter().flat_map(Json::items).enumerate() {
        let [name, arguments] = match call.get("function") {
            Some(f) => f.fields(["name", "arguments"]),
            None => [None; 2],
        };
        let name = name.and_then(Json::as_str);
        calls.push(ToolCallView {
            label: tool_label(pos as u64, name.as_deref()),
            arguments: arguments.and_then(Json::as_str),
        });
    }
    if let Some(call) = function_call.filter(|c| c.is_object()) {
        calls.push(ToolCallView {
            label: "function_call".to_string(),
            arguments: call.get("arguments").and_then(Json::as_str),
        });
    }
    ChoiceView {
        index,
        finish_reason: choice.finish_reason.unwrap_or_default(),
        has_text,
        json_text,
        refusal: refusal.and_then(Json::as_str),
        tool_calls: calls,
    }
}

/// `tool call 0 (get_weather)`, for the detail.
pub(super) fn tool_label(pos: u64, name: Option<&str>) -> String {
    match name {
        Some(name) if !name.is_empty() => format!("tool call {pos} ({name})"),
        _ => format!("tool call {pos}"),
    }
}

/// A message's content as text: a string, or the `text` of its content
/// parts joined; `None` for null or anything else.
pub(super) fn content_text(content: Json<'_>) -> Option<Cow<'_, str>> {
    if let Some(text) = content.as_str() {
        return Some(text);
    }
    let mut parts = content.items().peekable();
    if parts.peek().is_none() && !content.text().starts_with('[') {
        return None;
    }
    let text: String = parts
        .filter_map(|p| p.get("text").and_then(Json::as_str))
        .collect();
    Some(Cow::Owned(text))
}

#[cfg(test)]
mod tests;
