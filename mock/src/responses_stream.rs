//! The Responses API stream, event by event as the real one sends it, each
//! `event: NAME` with a `sequence_number` from 0:
//!
//! `response.created`, `response.in_progress`, then for a message
//! `response.output_item.added`, `response.content_part.added`, one
//! `response.output_text.delta` per piece, `response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done`; for a
//! function call `response.output_item.added`, one
//! `response.function_call_arguments.delta` per piece of the arguments,
//! `response.function_call_arguments.done`, `response.output_item.done`;
//! then the terminal `response.completed` (`response.incomplete`,
//! `response.failed`) carrying the whole response. No `data: [DONE]`.
//! A failed response has no items; one in progress (`pending`) stops after
//! `response.in_progress` with no terminal event.

use serde_json::{json, Value};

use super::completion::{split_text, Call, Completion};
use super::responses::{envelope, object, output_text, Meta, Status};
use super::stream::{event, Api, Events};

struct Frames {
    frames: Vec<bytes::Bytes>,
}

impl Frames {
    /// Appends `event: kind` with `type` and the next `sequence_number`.
    fn push(&mut self, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.frames.len());
        self.frames.push(event(Some(kind), &data));
    }
}

/// The terminal event of a response in `status`.
fn terminal(status: &Status) -> &'static str {
    match status {
        Status::Incomplete(_) => "response.incomplete",
        Status::Failed(_) => "response.failed",
        _ => "response.completed",
    }
}

/// The stream of a response; `chunks` pieces for a function call's arguments.
pub fn events(meta: &Meta<'_>, comp: &Completion<'_>, status: &Status, chunks: usize) -> Events {
    let done = object(meta, comp, status);
    let start = envelope(meta, "in_progress");
    let mut f = Frames { frames: Vec::new() };
    f.push("response.created", json!({ "response": start }));
    f.push("response.in_progress", json!({ "response": start }));
    let mut lead = f.frames.len();
    let mut content = 0;
    if *status == Status::InProgress {
        return Events {
            frames: f.frames,
            lead,
            content,
            done: false,
            api: Api::Responses,
            ..Events::default()
        };
    }
    let item = done["output"][0].clone();
    match (comp.call, comp.pieces.as_deref()) {
        _ if !status.finished() => {}
        (Some(Call::Tool(args) | Call::Function(args)), _) => {
            let item_id = meta.call_id();
            let mut added = item.clone();
            added["status"] = json!("in_progress");
            added["arguments"] = json!("");
            f.push(
                "response.output_item.added",
                json!({"output_index": 0, "item": added}),
            );
            lead = f.frames.len();
            for piece in split_text(args, chunks) {
                f.push(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": 0, "delta": piece}),
                );
                content += 1;
            }
            f.push(
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": 0, "arguments": args}),
            );
            f.push(
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            );
        }
        (None, Some(pieces)) => {
            let item_id = meta.message_id();
            let part = |extra: Value| {
                let mut v = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
                if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
                    v.extend(extra);
                }
                v
            };
            let mut added = item.clone();
            added["status"] = json!("in_progress");
            added["content"] = json!([]);
            f.push(
                "response.output_item.added",
                json!({"output_index": 0, "item": added}),
            );
            f.push(
                "response.content_part.added",
                part(json!({ "part": output_text("") })),
            );
            lead = f.frames.len();
            for piece in pieces {
                f.push(
                    "response.output_text.delta",
                    part(json!({"delta": piece, "logprobs": []})),
                );
                content += 1;
            }
            let text = pieces.concat();
            f.push(
                "response.output_text.done",
                part(json!({"text": text, "logprobs": []})),
            );
            f.push(
                "response.content_part.done",
                part(json!({ "part": output_text(&text) })),
            );
            f.push(
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            );
        }
        (None, None) => {}
    }
    f.push(terminal(status), json!({ "response": done }));
    Events {
        frames: f.frames,
        lead,
        content,
        done: true,
        api: Api::Responses,
        ..Events::default()
    }
}
