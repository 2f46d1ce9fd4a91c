//! Chat completions: the `chat.completion` body and the
//! `chat.completion.chunk` stream saying a [`Completion`] (with its
//! reasoning deltas, if any, before the content).

use super::completion::{Call, Completion, Usage, CALL_ID, FUNCTION, THINKING};
use super::request::Ctx;
use super::scenario::ReasoningField;
use super::stream::{event, Api, Events, DONE};
use serde::Serialize;

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
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
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

/// `(reasoning_content, reasoning)`: the reasoning text in its field.
fn reasoning_fields(field: ReasoningField, text: Option<&str>) -> (Option<&str>, Option<&str>) {
    match field {
        ReasoningField::ReasoningContent => (text, None),
        ReasoningField::Reasoning => (None, text),
    }
}

/// The `chat.completion` body.
pub fn body(ctx: &Ctx<'_>, comp: &Completion<'_>) -> Vec<u8> {
    let id = format!("chatcmpl-mock-{}", ctx.n);
    let text = comp.text();
    let thought = comp.reasoning_text();
    let (reasoning_content, reasoning) = reasoning_fields(comp.reasoning.1, thought.as_deref());
    let (tool, function) = calls(comp.call);
    let choices = (0..ctx.choices)
        .map(|index| Choice {
            index,
            message: Message {
                role: "assistant",
                content: text.as_deref(),
                reasoning_content,
                reasoning,
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
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
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

/// The `chat.completion.chunk` events: a role chunk per choice, the
/// reasoning deltas, the content pieces, the call, a finish chunk per
/// choice, the usage chunk when asked for, `[DONE]`. The filler (for
/// `role_only`) is a chunk with the role alone.
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
    let (reasoning_content, reasoning) = reasoning_fields(comp.reasoning.1, Some(THINKING));
    for _ in 0..comp.reasoning.0 {
        for index in 0..ctx.choices {
            frames.push(one(
                index,
                Delta {
                    reasoning_content,
                    reasoning,
                    ..Delta::default()
                },
                None,
            ));
        }
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
    let filler = one(
        0,
        Delta {
            role: Some("assistant"),
            ..Delta::default()
        },
        None,
    );
    Events {
        frames,
        lead,
        content,
        done: true,
        api: Api::Chat,
        filler,
    }
}

#[cfg(test)]
pub(crate) mod tests;
