//! The per-choice rules: one choice of an answer (built from a whole body or
//! from the stream inspector's state) judged against what the request asked
//! for, and the most severe finding over all choices.

use std::borrow::Cow;

use serde_json::Value;

use super::expect::JsonMode;
use super::findings::cap_detail;
use crate::outcome::Subject;
use crate::taxonomy::Kind;

/// One tool call of a choice, as far as the rules need it.
pub(crate) struct ToolCallView<'a> {
    /// The tool call's position label for the detail (`tool call 0 (name)`).
    pub(crate) label: String,
    /// The arguments text; `None` when they came as structured JSON already.
    pub(crate) arguments: Option<Cow<'a, str>>,
}

/// One choice, as the per-choice rules see it (built from a body or from
/// the stream inspector's state).
pub(crate) struct ChoiceView<'a> {
    pub(crate) index: u64,
    pub(crate) finish_reason: Cow<'a, str>,
    /// Content that is not blank was produced.
    pub(crate) has_text: bool,
    /// The whole content, when it is to be checked as JSON.
    pub(crate) json_text: Option<Cow<'a, str>>,
    pub(crate) refusal: Option<Cow<'a, str>>,
    pub(crate) tool_calls: Vec<ToolCallView<'a>>,
}

/// A choice's finding: its kind, what part of the answer it is about, and
/// what exactly is wrong.
pub(crate) type Verdict = (Kind, Subject, String);

/// The per-choice rules (see the table above). `None` means ok.
pub(crate) fn judge(json: &JsonMode, choice: &ChoiceView<'_>) -> Option<Verdict> {
    let at = format!("choice {}", choice.index);
    if choice.finish_reason == "content_filter" {
        return Some((
            Kind::ContentFilter,
            Subject::Content,
            format!("{at}: finish_reason content_filter"),
        ));
    }
    if let Some(refusal) = choice.refusal.as_deref().filter(|r| !r.trim().is_empty()) {
        return Some((
            Kind::ContentFilter,
            Subject::Content,
            format!("{at}: refusal: {refusal}"),
        ));
    }
    if choice.finish_reason == "length" {
        return Some((
            Kind::Length,
            Subject::Content,
            format!("{at}: finish_reason length"),
        ));
    }
    if !choice.tool_calls.is_empty() {
        for call in &choice.tool_calls {
            let Some(args) = call.arguments.as_deref().filter(|a| !a.trim().is_empty()) else {
                continue;
            };
            if let Err(err) = serde_json::from_str::<serde::de::IgnoredAny>(args) {
                let what = format!("{at}: {} arguments are not valid JSON: {err}", call.label);
                return Some((Kind::InvalidJson, Subject::ToolArguments, what));
            }
        }
        return None;
    }
    if !choice.has_text {
        let reason = match choice.finish_reason.as_ref() {
            "" => "null",
            other => other,
        };
        let what = format!("{at}: finish_reason {reason} with no content and no tool calls");
        return Some((Kind::EmptyContent, Subject::Content, what));
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
                Subject::Content,
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
    Some((Kind::SchemaMismatch, Subject::Content, what))
}

/// How bad a kind is when several choices disagree (higher wins).
pub(crate) fn severity(kind: Kind) -> u8 {
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
        | Kind::MalformedEvent
        | Kind::Overloaded
        | Kind::ClientClosed
        | Kind::Shutdown => 0,
    }
}

/// Judges every choice (given in index order) and keeps the most severe
/// finding; the earliest choice wins a tie.
pub(crate) fn judge_all<'a>(
    json: &JsonMode,
    choices: impl IntoIterator<Item = ChoiceView<'a>>,
) -> (Kind, Subject, Option<String>) {
    let mut worst: Option<Verdict> = None;
    for choice in choices {
        if let Some((kind, subject, detail)) = judge(json, &choice) {
            if worst
                .as_ref()
                .is_none_or(|(w, _, _)| severity(kind) > severity(*w))
            {
                worst = Some((kind, subject, detail));
            }
        }
    }
    match worst {
        Some((kind, subject, detail)) => (kind, subject, Some(cap_detail(detail))),
        None => (Kind::Ok, Subject::Content, None),
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
}
