//! [`Findings`]: what inspecting one answer found (its kind, finish reasons,
//! model, usage and a short detail), the one result every inspector of this
//! module returns.

use serde_json::Value;

use crate::outcome::Subject;
use crate::taxonomy::Kind;

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
    /// What part of the answer the kind is about.
    pub subject: Subject,
    /// The error object of an answer that reported a failure in a success
    /// status (a Responses `failed` status): the kind is that error's.
    pub error: Option<Value>,
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
    /// [`Usage::from_json`] of a value read in place.
    pub fn from_view(usage: crate::json_field::Json<'_>) -> Option<Usage> {
        let [p, i, c, o] = usage.fields([
            "prompt_tokens",
            "input_tokens",
            "completion_tokens",
            "output_tokens",
        ]);
        let count = |a: Option<crate::json_field::Json<'_>>,
                     b: Option<crate::json_field::Json<'_>>| {
            a.and_then(|v| v.as_u64())
                .or_else(|| b.and_then(|v| v.as_u64()))
        };
        let prompt = count(p, i);
        let completion = count(c, o);
        if prompt.is_none() && completion.is_none() {
            return None;
        }
        Some(Usage {
            prompt_tokens: prompt.unwrap_or(0),
            completion_tokens: completion.unwrap_or(0),
        })
    }

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
pub(crate) fn cap_detail(text: String) -> String {
    match text.char_indices().nth(DETAIL_MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// A body that is not what was due (not JSON, or not an object).
pub(crate) fn bad_upstream(detail: String) -> Findings {
    Findings {
        kind: Kind::BadUpstreamResponse,
        detail: Some(cap_detail(detail)),
        ..Findings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
