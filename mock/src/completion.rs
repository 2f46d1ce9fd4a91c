//! What a content step makes the model "say" ([`Completion`]: content
//! pieces, `finish_reason`, a tool call, reasoning deltas) and what it
//! costs ([`Usage`]). Every text route (chat, completions, responses) says
//! the same completion in its own wire format. A prefill (a last assistant
//! message) turns it into the continuation of that text (see `prefill`).

use std::borrow::Cow;

use serde::Serialize;

use super::scenario::{ReasoningField, Step};

/// The default content when the chunk count is the default three.
pub const HELLO: [&str; 3] = ["Hello", " from", " backstop-mock."];
/// Arguments of the well-formed tool call.
pub const WEATHER_ARGS: &str = r#"{"city": "Paris"}"#;
/// Arguments of `bad_args`.
pub const BAD_ARGS: &str = r#"{"city": "#;
/// The function the tool calls name.
pub const FUNCTION: &str = "get_weather";
/// The id of the tool call.
pub const CALL_ID: &str = "call_mock_1";
/// Prompt tokens reported in usage (before any prefill).
pub const PROMPT_TOKENS: u64 = 5;
/// Each reasoning delta of `reasoning:N`.
pub const THINKING: &str = "thinking…";

/// A call the model makes instead of (or besides) content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `tool_calls` with these arguments.
    Tool(&'static str),
    /// Legacy `function_call` with these arguments.
    Function(&'static str),
}

/// What one choice says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion<'s> {
    /// The content, in stream pieces; `None` is `content: null`.
    pub pieces: Option<Vec<Cow<'static, str>>>,
    /// The `finish_reason`.
    pub finish: &'s str,
    /// A tool / function call.
    pub call: Option<Call>,
    /// Reasoning deltas ([`THINKING`] each) before the content, and where.
    pub reasoning: (usize, ReasoningField),
    /// Prompt tokens of a prefill (counted in `prompt_tokens`).
    pub prefill_tokens: u64,
}

impl Completion<'_> {
    /// The whole content (`None` for null).
    pub fn text(&self) -> Option<String> {
        self.pieces.as_ref().map(|p| p.concat())
    }

    /// The whole reasoning text (`None` without reasoning).
    pub fn reasoning_text(&self) -> Option<String> {
        match self.reasoning.0 {
            0 => None,
            n => Some(THINKING.repeat(n)),
        }
    }

    /// Completion tokens for one choice: one per piece, one per reasoning
    /// delta, one per call.
    pub fn tokens(&self) -> u64 {
        self.pieces.as_ref().map_or(0, |p| p.len() as u64)
            + self.reasoning.0 as u64
            + u64::from(self.call.is_some())
    }
}

/// The default content in `n` pieces: [`HELLO`] for the default three
/// chunks, `tok0 `, `tok1 `, ... when the count was asked for otherwise.
pub fn default_pieces(n: usize, from_header: bool) -> Vec<Cow<'static, str>> {
    if n == HELLO.len() && !from_header {
        HELLO.iter().map(|p| Cow::Borrowed(*p)).collect()
    } else {
        (0..n).map(|i| Cow::Owned(format!("tok{i} "))).collect()
    }
}

/// `text` in `n` pieces of about equal length (at least one piece, at most
/// one per character).
pub fn split_text(text: &'static str, n: usize) -> Vec<Cow<'static, str>> {
    let chars: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let k = n.clamp(1, chars.len().max(1));
    (0..k)
        .map(|i| {
            let from = chars
                .get(i * chars.len() / k)
                .copied()
                .unwrap_or(text.len());
            let to = chars
                .get((i + 1) * chars.len() / k)
                .copied()
                .unwrap_or(text.len());
            Cow::Borrowed(text.get(from..to).unwrap_or_default())
        })
        .collect()
}

/// What a step makes each choice say, with `chunks` stream pieces.
pub fn completion(step: &Step, chunks: usize, from_header: bool) -> Completion<'_> {
    let base = Completion {
        pieces: None,
        finish: "stop",
        call: None,
        reasoning: (0, ReasoningField::ReasoningContent),
        prefill_tokens: 0,
    };
    let said = |text: &'static str| Completion {
        pieces: Some(split_text(text, chunks)),
        ..base.clone()
    };
    let null = |finish, call| Completion {
        finish,
        call,
        ..base.clone()
    };
    let default = |n, finish| Completion {
        pieces: Some(default_pieces(n, from_header)),
        finish,
        ..base.clone()
    };
    match step {
        Step::Finish(reason) => match reason.as_str() {
            "content_filter" => null("content_filter", None),
            "tool_calls" => null("tool_calls", Some(Call::Tool(WEATHER_ARGS))),
            "function_call" => null("function_call", Some(Call::Function(WEATHER_ARGS))),
            other => default(chunks, other),
        },
        Step::Empty => null("stop", None),
        Step::Blank => said("   "),
        Step::Json => said(r#"{"answer": 42}"#),
        Step::BadJson => said(r#"Sure! {"answer": 4"#),
        Step::SchemaBad => said(r#"{"answer": "forty-two"}"#),
        Step::BadArgs => null("tool_calls", Some(Call::Tool(BAD_ARGS))),
        Step::Cut(n) => default(chunks.max(*n), "stop"),
        Step::Reasoning { n, field } => Completion {
            reasoning: (*n, *field),
            ..default(chunks, "stop")
        },
        _ => default(chunks, "stop"),
    }
}

/// Token counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// [`PROMPT_TOKENS`], plus the prefill's.
    pub prompt_tokens: u64,
    /// One per content piece (and call, and reasoning delta), for every choice.
    pub completion_tokens: u64,
    /// The sum.
    pub total_tokens: u64,
}

impl Usage {
    /// Usage of `choices` choices of `comp`.
    pub fn of(comp: &Completion<'_>, choices: u32) -> Usage {
        let prompt_tokens = PROMPT_TOKENS + comp.prefill_tokens;
        let completion_tokens = comp.tokens() * u64::from(choices);
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}
