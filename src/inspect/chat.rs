//! Inspection of a non-streamed chat completion or completion body: reads
//! each choice into the shared per-choice rules of [`super`] and keeps the
//! most severe finding. Called by the proxy on a 2xx answer whose body it
//! has read whole (non-streamed requests only).

use std::borrow::Cow;

use serde_json::Value;

use super::choice::{judge_all, ChoiceView, ToolCallView};
use super::expect::{Expectation, JsonMode};
use super::findings::{bad_upstream, Findings, Usage};

/// Inspects a whole chat-completions (`choices[].message`) or completions
/// (`choices[].text`) body. A body that is not a JSON object is
/// `bad_upstream_response`; one without `choices` is `ok`.
pub fn inspect_body(expect: &Expectation, body: &[u8]) -> Findings {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => return bad_upstream("the body is JSON but not an object".to_string()),
        Err(err) => return bad_upstream(format!("the body is not JSON: {err}")),
    };
    let model = value
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let usage = value.get("usage").and_then(Usage::from_json);
    let index_of =
        |pos: usize, c: &Value| c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
    let mut indexed: Vec<(u64, &Value)> = match value.get("choices").and_then(Value::as_array) {
        Some(choices) => choices
            .iter()
            .enumerate()
            .map(|(pos, c)| (index_of(pos, c), c))
            .collect(),
        None => Vec::new(),
    };
    indexed.sort_by_key(|(index, _)| *index);

    let finish_reasons = indexed
        .iter()
        .map(|(_, c)| {
            c.get("finish_reason")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let views = indexed
        .iter()
        .map(|(index, c)| choice_view(expect, *index, c));
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

/// One choice of a body as the rules see it: `message` for chat, `text`
/// for completions (read by shape, not by endpoint, so a provider that
/// answers one endpoint in the other's shape is read too).
fn choice_view<'a>(expect: &Expectation, index: u64, choice: &'a Value) -> ChoiceView<'a> {
    let finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = choice.get("message");
    let text = match message {
        Some(message) => message.get("content").and_then(content_text),
        None => choice
            .get("text")
            .and_then(Value::as_str)
            .map(Cow::Borrowed),
    };
    let has_text = text.as_deref().is_some_and(|t| !t.trim().is_empty());
    let json_text = match expect.json {
        JsonMode::None => None,
        JsonMode::Object | JsonMode::Schema(_) => text,
    };
    let refusal = message
        .and_then(|m| m.get("refusal"))
        .and_then(Value::as_str)
        .map(Cow::Borrowed);
    let mut tool_calls = Vec::new();
    if let Some(calls) = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
    {
        for (pos, call) in calls.iter().enumerate() {
            let function = call.get("function");
            let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
            tool_calls.push(ToolCallView {
                label: tool_label(pos as u64, name),
                arguments: arguments(function.and_then(|f| f.get("arguments"))),
            });
        }
    }
    if let Some(call) = message
        .and_then(|m| m.get("function_call"))
        .filter(|c| c.is_object())
    {
        tool_calls.push(ToolCallView {
            label: "function_call".to_string(),
            arguments: arguments(call.get("arguments")),
        });
    }
    ChoiceView {
        index,
        finish_reason,
        has_text,
        json_text,
        refusal,
        tool_calls,
    }
}

/// `tool call 0 (get_weather)`, for the detail.
pub(super) fn tool_label(pos: u64, name: Option<&str>) -> String {
    match name {
        Some(name) if !name.is_empty() => format!("tool call {pos} ({name})"),
        _ => format!("tool call {pos}"),
    }
}

/// Arguments as text to check; structured (non-string) arguments are JSON
/// already, so there is nothing to check.
fn arguments(value: Option<&Value>) -> Option<Cow<'_, str>> {
    value.and_then(Value::as_str).map(Cow::Borrowed)
}

/// A message's content as text: a string, or the `text` of its content
/// parts joined; `None` for null or anything else.
pub(super) fn content_text(content: &Value) -> Option<Cow<'_, str>> {
    match content {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Array(parts) => {
            let text: String = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            Some(Cow::Owned(text))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
