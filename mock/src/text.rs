//! Legacy `/v1/completions` (`text_completion`), saying the same
//! [`Completion`] as chat, as a body or a stream. (The Responses API is in
//! `responses`.)

use serde_json::{json, Value};

use super::completion::{Completion, Usage};
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
        ..Events::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::tests::ctx;
    use crate::completion::completion;
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
}
