//! Chat completions: what a content step makes the model "say"
//! ([`Completion`]: content pieces, `finish_reason`, a tool call) and the
//! `chat.completion` body / `chat.completion.chunk` stream carrying it. The
//! other text routes (`completions`, `responses`) reuse [`Completion`].

use std::borrow::Cow;

use serde::Serialize;

use super::request::Ctx;
use super::scenario::Step;
use super::stream::{event, Events, DONE};

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
/// Prompt tokens reported in usage.
pub const PROMPT_TOKENS: u64 = 5;

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
}

impl Completion<'_> {
    /// The whole content (`None` for null).
    pub fn text(&self) -> Option<String> {
        self.pieces.as_ref().map(|p| p.concat())
    }

    /// Completion tokens for one choice: one per piece, one per call.
    pub fn tokens(&self) -> u64 {
        self.pieces.as_ref().map_or(0, |p| p.len() as u64) + u64::from(self.call.is_some())
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
    let said = |text: &'static str| Completion {
        pieces: Some(split_text(text, chunks)),
        finish: "stop",
        call: None,
    };
    let null = |finish, call| Completion {
        pieces: None,
        finish,
        call,
    };
    let default = |n, finish| Completion {
        pieces: Some(default_pieces(n, from_header)),
        finish,
        call: None,
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
        _ => default(chunks, "stop"),
    }
}

/// Token counts.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Usage {
    /// Always [`PROMPT_TOKENS`].
    pub prompt_tokens: u64,
    /// One per content piece (and call), for every choice.
    pub completion_tokens: u64,
    /// The sum.
    pub total_tokens: u64,
}

impl Usage {
    /// Usage of `choices` choices of `comp`.
    pub fn of(comp: &Completion<'_>, choices: u32) -> Usage {
        let completion_tokens = comp.tokens() * u64::from(choices);
        Usage {
            prompt_tokens: PROMPT_TOKENS,
            completion_tokens,
            total_tokens: PROMPT_TOKENS + completion_tokens,
        }
    }
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'static str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    id: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

fn tool_call(index: Option<u32>, arguments: &str) -> [ToolCall<'_>; 1] {
    [ToolCall {
        index,
        id: CALL_ID,
        kind: "function",
        function: Function {
            name: FUNCTION,
            arguments,
        },
    }]
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<Function<'a>>,
    refusal: Option<()>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct ChatBody<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    usage: Usage,
    system_fingerprint: &'static str,
}

fn calls(call: Option<Call>) -> (Option<&'static str>, Option<&'static str>) {
    match call {
        Some(Call::Tool(args)) => (Some(args), None),
        Some(Call::Function(args)) => (None, Some(args)),
        None => (None, None),
    }
}

/// The `chat.completion` body.
pub fn body(ctx: &Ctx<'_>, comp: &Completion<'_>) -> Vec<u8> {
    let id = format!("chatcmpl-mock-{}", ctx.n);
    let text = comp.text();
    let (tool, function) = calls(comp.call);
    let choices = (0..ctx.choices)
        .map(|index| Choice {
            index,
            message: Message {
                role: "assistant",
                content: text.as_deref(),
                tool_calls: tool.map(|args| tool_call(None, args)),
                function_call: function.map(|arguments| Function {
                    name: FUNCTION,
                    arguments,
                }),
                refusal: None,
            },
            logprobs: None,
            finish_reason: comp.finish,
        })
        .collect();
    let body = ChatBody {
        id: &id,
        object: "chat.completion",
        created: ctx.created,
        model: ctx.model,
        choices,
        usage: Usage::of(comp, ctx.choices),
        system_fingerprint: "fp_mock",
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<Function<'a>>,
}

#[derive(Serialize)]
struct DeltaChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [DeltaChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

/// The `chat.completion.chunk` events: a role chunk per choice, the content
/// pieces, the call, a finish chunk per choice, the usage chunk when asked
/// for, `[DONE]`.
pub fn events(ctx: &Ctx<'_>, comp: &Completion<'_>) -> Events {
    let id = format!("chatcmpl-mock-{}", ctx.n);
    let pieces = comp.pieces.as_deref().unwrap_or_default();
    let mut frames = Vec::with_capacity((pieces.len() + 3) * ctx.choices as usize + 2);
    let chunk = |choices: &[DeltaChoice<'_>], usage| {
        let chunk = Chunk {
            id: &id,
            object: "chat.completion.chunk",
            created: ctx.created,
            model: ctx.model,
            system_fingerprint: "fp_mock",
            choices,
            usage,
        };
        event(None, &chunk)
    };
    let one = |index, delta, finish_reason| {
        chunk(
            &[DeltaChoice {
                index,
                delta,
                logprobs: None,
                finish_reason,
            }],
            None,
        )
    };
    let role_content = comp.pieces.as_ref().map(|_| "");
    for index in 0..ctx.choices {
        frames.push(one(
            index,
            Delta {
                role: Some("assistant"),
                content: Some(role_content),
                ..Delta::default()
            },
            None,
        ));
    }
    let lead = frames.len();
    for piece in pieces {
        for index in 0..ctx.choices {
            frames.push(one(
                index,
                Delta {
                    content: Some(Some(piece)),
                    ..Delta::default()
                },
                None,
            ));
        }
    }
    let content = frames.len() - lead;
    let (tool, function) = calls(comp.call);
    for index in 0..ctx.choices {
        if tool.is_some() || function.is_some() {
            let delta = Delta {
                tool_calls: tool.map(|args| tool_call(Some(0), args)),
                function_call: function.map(|arguments| Function {
                    name: FUNCTION,
                    arguments,
                }),
                ..Delta::default()
            };
            frames.push(one(index, delta, None));
        }
    }
    for index in 0..ctx.choices {
        frames.push(one(index, Delta::default(), Some(comp.finish)));
    }
    if ctx.include_usage {
        frames.push(chunk(&[], Some(Usage::of(comp, ctx.choices))));
    }
    frames.push(bytes::Bytes::from_static(DONE));
    Events {
        frames,
        lead,
        content,
        done: true,
    }
}

#[cfg(test)]
#[path = "chat_tests.rs"]
pub(crate) mod tests;
