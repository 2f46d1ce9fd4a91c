//! The other text routes, saying the same [`Completion`] as chat: legacy
//! `/v1/completions` (`text_completion`) and a minimal Responses API object
//! (`/v1/responses`), each as a body or a stream.

use serde_json::{json, Value};

use super::chat::{Call, Completion, Usage, CALL_ID, FUNCTION, PROMPT_TOKENS};
use super::request::Ctx;
use super::stream::{event, Events, DONE};

fn to_vec(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// The `text_completion` body.
pub fn completions_body(ctx: &Ctx<'_>, comp: &Completion<'_>) -> Vec<u8> {
    let text = comp.text().unwrap_or_default();
    let choices: Vec<Value> = (0..ctx.choices)
        .map(|i| json!({"text": text, "index": i, "logprobs": null, "finish_reason": comp.finish}))
        .collect();
    to_vec(&json!({
        "id": format!("cmpl-mock-{}", ctx.n),
        "object": "text_completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": choices,
        "usage": Usage::of(comp, ctx.choices),
    }))
}

/// The `text_completion` stream: the pieces, a finish chunk per choice, the
/// usage chunk when asked for, `[DONE]`.
pub fn completions_events(ctx: &Ctx<'_>, comp: &Completion<'_>) -> Events {
    let id = format!("cmpl-mock-{}", ctx.n);
    let chunk = |choices: Value, usage: Option<Usage>| {
        let mut v = json!({"id": id, "object": "text_completion", "created": ctx.created, "model": ctx.model, "choices": choices});
        if let Some(usage) = usage {
            v["usage"] = json!(usage);
        }
        event(None, &v)
    };
    let choice = |i: u32, text: &str, finish: Option<&str>| json!([{"text": text, "index": i, "logprobs": null, "finish_reason": finish}]);
    let mut frames = Vec::new();
    for piece in comp.pieces.as_deref().unwrap_or_default() {
        for i in 0..ctx.choices {
            frames.push(chunk(choice(i, piece, None), None));
        }
    }
    let content = frames.len();
    for i in 0..ctx.choices {
        frames.push(chunk(choice(i, "", Some(comp.finish)), None));
    }
    if ctx.include_usage {
        frames.push(chunk(json!([]), Some(Usage::of(comp, ctx.choices))));
    }
    frames.push(bytes::Bytes::from_static(DONE));
    Events {
        frames,
        lead: 0,
        content,
        done: true,
    }
}

/// The Responses API object in its final state.
fn response_object(ctx: &Ctx<'_>, comp: &Completion<'_>) -> Value {
    let output: Vec<Value> = match (comp.call, comp.text()) {
        (Some(Call::Tool(args) | Call::Function(args)), _) => vec![json!({
            "type": "function_call", "id": format!("fc_mock_{}", ctx.n), "call_id": CALL_ID,
            "name": FUNCTION, "arguments": args, "status": "completed",
        })],
        (None, Some(text)) => vec![json!({
            "type": "message", "id": format!("msg_mock_{}", ctx.n), "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        })],
        (None, None) => Vec::new(),
    };
    let (status, incomplete) = match comp.finish {
        "length" => ("incomplete", json!({"reason": "max_output_tokens"})),
        "content_filter" => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    };
    let output_tokens = comp.tokens();
    json!({
        "id": format!("resp_mock_{}", ctx.n),
        "object": "response",
        "created_at": ctx.created,
        "status": status,
        "incomplete_details": incomplete,
        "error": null,
        "model": ctx.model,
        "output": output,
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": output_tokens, "total_tokens": PROMPT_TOKENS + output_tokens},
    })
}

/// The Responses API body.
pub fn responses_body(ctx: &Ctx<'_>, comp: &Completion<'_>) -> Vec<u8> {
    to_vec(&response_object(ctx, comp))
}

/// A minimal Responses API stream: `response.created`, one
/// `response.output_text.delta` per piece, then `response.completed` (or
/// `response.incomplete`) with the whole object. No `[DONE]`, as upstream.
pub fn responses_events(ctx: &Ctx<'_>, comp: &Completion<'_>) -> Events {
    let done = response_object(ctx, comp);
    let mut created = done.clone();
    created["status"] = json!("in_progress");
    created["output"] = json!([]);
    created["usage"] = Value::Null;
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq - 1
    };
    let mut frames = vec![event(
        Some("response.created"),
        &json!({"type": "response.created", "sequence_number": next(), "response": created}),
    )];
    let item_id = format!("msg_mock_{}", ctx.n);
    for piece in comp.pieces.as_deref().unwrap_or_default() {
        let delta = json!({
            "type": "response.output_text.delta", "sequence_number": next(), "item_id": item_id,
            "output_index": 0, "content_index": 0, "delta": piece,
        });
        frames.push(event(Some("response.output_text.delta"), &delta));
    }
    let content = frames.len() - 1;
    let kind = if done["status"] == "incomplete" {
        "response.incomplete"
    } else {
        "response.completed"
    };
    frames.push(event(
        Some(kind),
        &json!({"type": kind, "sequence_number": next(), "response": done}),
    ));
    Events {
        frames,
        lead: 1,
        content,
        done: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::completion;
    use crate::chat::tests::ctx;
    use crate::request::Fields;
    use crate::scenario::parse_step;

    fn json_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    #[test]
    fn completions_body_is_exact() {
        let fields = Fields::default();
        let step = parse_step("finish:length").unwrap();
        let got = json_of(&completions_body(
            &ctx(&fields, false, 1, false),
            &completion(&step, 3, false),
        ));
        assert_eq!(
            got,
            json!({"id": "cmpl-mock-7", "object": "text_completion", "created": 1_700_000_000u64, "model": "gpt-x",
                "choices": [{"text": "Hello from backstop-mock.", "index": 0, "logprobs": null, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
        );
    }

    #[test]
    fn completions_stream_frames() {
        let fields = Fields::default();
        let step = parse_step("ok").unwrap();
        let ev = completions_events(&ctx(&fields, true, 1, false), &completion(&step, 3, false));
        assert_eq!(
            (ev.frames.len(), ev.lead, ev.content, ev.done),
            (5, 0, 3, true)
        );
        let first = String::from_utf8_lossy(&ev.frames[0]).into_owned();
        assert_eq!(
            first,
            "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"logprobs\":null,\"text\":\"Hello\"}],\"created\":1700000000,\"id\":\"cmpl-mock-7\",\"model\":\"gpt-x\",\"object\":\"text_completion\"}\n\n"
        );
    }

    #[test]
    fn responses_body_by_step() {
        let fields = Fields::default();
        let c = ctx(&fields, false, 1, false);
        let ok = parse_step("ok").unwrap();
        let v = json_of(&responses_body(&c, &completion(&ok, 3, false)));
        assert_eq!(v["status"], "completed");
        assert_eq!(
            v["output"][0]["content"][0]["text"],
            "Hello from backstop-mock."
        );
        assert_eq!(v["usage"]["output_tokens"], 3);
        let length = parse_step("finish:length").unwrap();
        let v = json_of(&responses_body(&c, &completion(&length, 3, false)));
        assert_eq!(
            (
                v["status"].clone(),
                v["incomplete_details"]["reason"].clone()
            ),
            (json!("incomplete"), json!("max_output_tokens"))
        );
        let tool = parse_step("finish:tool_calls").unwrap();
        let v = json_of(&responses_body(&c, &completion(&tool, 3, false)));
        assert_eq!(v["output"][0]["type"], "function_call");
    }

    #[test]
    fn responses_stream_events() {
        let fields = Fields::default();
        let step = parse_step("ok").unwrap();
        let ev = responses_events(&ctx(&fields, true, 1, false), &completion(&step, 3, false));
        assert_eq!(
            (ev.frames.len(), ev.lead, ev.content, ev.done),
            (5, 1, 3, false)
        );
        assert!(ev.frames[0].starts_with(b"event: response.created\ndata: {"));
        assert!(ev.frames[4].starts_with(b"event: response.completed\ndata: {"));
    }
}
