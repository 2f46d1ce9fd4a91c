//! Exact Responses API objects and event sequences.

use super::*;
use crate::completion::completion;
use crate::responses_stream::events;
use crate::scenario::parse_step;
use serde_json::json;

const META: Meta<'static> = Meta {
    n: 7,
    created: 1_700_000_000,
    model: "gpt-x",
    background: false,
};

fn object_of(step: &str) -> Value {
    let step = parse_step(step).unwrap();
    let comp = completion(&step, 3, false);
    serde_json::from_slice(&body(&META, &comp, &Status::of(&step, &comp))).unwrap_or_default()
}

#[test]
fn ok_is_the_whole_object() {
    assert_eq!(
        object_of("ok"),
        json!({
            "id": "resp_mock_7", "object": "response", "created_at": 1_700_000_000u64,
            "status": "completed", "background": false, "completed_at": 1_700_000_000u64,
            "error": null, "incomplete_details": null, "instructions": null,
            "max_output_tokens": null, "metadata": {}, "model": "gpt-x",
            "output": [{
                "id": "msg_mock_7", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello from backstop-mock.", "annotations": [], "logprobs": []}],
            }],
            "parallel_tool_calls": true, "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null}, "store": true, "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
            "truncation": "disabled",
            "usage": {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 3,
                "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 8},
        })
    );
}

#[test]
fn statuses_by_step() {
    let text = |v: &Value| v["output"][0]["content"][0]["text"].clone();
    let cases = [
        (
            "finish:length",
            "incomplete",
            json!({"reason": "max_output_tokens"}),
            json!(null),
        ),
        (
            "finish:content_filter",
            "incomplete",
            json!({"reason": "content_filter"}),
            json!(null),
        ),
        ("finish:eos", "completed", json!(null), json!(null)),
        ("pending", "in_progress", json!(null), json!(null)),
        (
            "failed:rate_limit_exceeded",
            "failed",
            json!(null),
            json!({"code": "rate_limit_exceeded", "message": "mock failure rate_limit_exceeded"}),
        ),
    ];
    for (step, status, incomplete, error) in cases {
        let v = object_of(step);
        assert_eq!(
            (
                v["status"].clone(),
                v["incomplete_details"].clone(),
                v["error"].clone()
            ),
            (json!(status), incomplete, error),
            "{step}"
        );
    }
    assert_eq!(
        text(&object_of("finish:length")),
        "Hello from backstop-mock."
    );
    assert_eq!(
        object_of("finish:length")["output"][0]["status"],
        "incomplete"
    );
    assert_eq!(object_of("finish:content_filter")["output"], json!([]));
    assert_eq!(object_of("failed:server_error")["output"], json!([]));
    assert_eq!(object_of("failed:server_error")["usage"], json!(null));
    assert_eq!(object_of("pending")["usage"], json!(null));
    assert_eq!(object_of("empty")["output"], json!([]));
    assert_eq!(object_of("empty")["status"], "completed");
    assert_eq!(text(&object_of("blank")), "   ");
    assert_eq!(text(&object_of("json")), "{\"answer\": 42}");
    assert_eq!(text(&object_of("bad_json")), "Sure! {\"answer\": 4");
    assert_eq!(
        text(&object_of("schema_bad")),
        "{\"answer\": \"forty-two\"}"
    );
    assert_eq!(
        object_of("bad_args")["output"],
        json!([{"id": "fc_mock_7", "type": "function_call", "status": "completed",
            "call_id": "call_mock_1", "name": "get_weather", "arguments": "{\"city\": "}])
    );
    assert_eq!(response_n("resp_mock_12"), Some(12));
    assert_eq!(response_n("resp_12"), None);
}

/// `(event name, data)` of every frame.
pub(crate) fn parsed(frames: &[bytes::Bytes]) -> Vec<(String, Value)> {
    frames
        .iter()
        .map(|f| {
            let text = String::from_utf8_lossy(f);
            let (name, data) = text
                .strip_prefix("event: ")
                .and_then(|t| t.split_once("\ndata: "))
                .unwrap_or_default();
            (
                name.to_owned(),
                serde_json::from_str(data.trim_end()).unwrap_or_default(),
            )
        })
        .collect()
}

fn stream_of(step: &str) -> (Vec<(String, Value)>, usize, usize, bool) {
    let step = parse_step(step).unwrap();
    let comp = completion(&step, 3, false);
    let ev = events(&META, &comp, &Status::of(&step, &comp), 3);
    (parsed(&ev.frames), ev.lead, ev.content, ev.done)
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn message_stream_is_the_real_sequence() {
    let (ev, lead, content, done) = stream_of("ok");
    assert_eq!(
        names(&ev),
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!((lead, content, done), (4, 3, true));
    for (i, (name, data)) in ev.iter().enumerate() {
        assert_eq!(
            (data["type"].as_str(), data["sequence_number"].as_u64()),
            (Some(name.as_str()), Some(i as u64))
        );
    }
    assert_eq!(ev[0].1["response"]["status"], "in_progress");
    assert_eq!(ev[0].1["response"]["output"], json!([]));
    assert_eq!(
        ev[2].1["item"],
        json!({"id": "msg_mock_7", "type": "message", "status": "in_progress", "role": "assistant", "content": []})
    );
    assert_eq!(
        ev[3].1,
        json!({"type": "response.content_part.added", "sequence_number": 3, "item_id": "msg_mock_7", "output_index": 0,
            "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
    );
    assert_eq!(
        ev[4].1,
        json!({"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_mock_7", "output_index": 0,
            "content_index": 0, "delta": "Hello", "logprobs": []})
    );
    let deltas: Vec<&str> = ev[4..7]
        .iter()
        .filter_map(|(_, d)| d["delta"].as_str())
        .collect();
    assert_eq!(deltas, vec!["Hello", " from", " backstop-mock."]);
    assert_eq!(ev[7].1["text"], "Hello from backstop-mock.");
    assert_eq!(ev[8].1["part"]["text"], "Hello from backstop-mock.");
    assert_eq!(ev[9].1["item"]["status"], "completed");
    assert_eq!(ev[10].1["response"], object_of("ok"));
}

#[test]
fn function_call_stream() {
    let (ev, lead, content, _) = stream_of("finish:tool_calls");
    assert_eq!(
        names(&ev),
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!((lead, content), (3, 3));
    assert_eq!(
        ev[2].1["item"],
        json!({"id": "fc_mock_7", "type": "function_call", "status": "in_progress", "call_id": "call_mock_1", "name": "get_weather", "arguments": ""})
    );
    let args: String = ev[3..6]
        .iter()
        .filter_map(|(_, d)| d["delta"].as_str())
        .collect();
    assert_eq!(args, "{\"city\": \"Paris\"}");
    assert_eq!(
        ev[6].1,
        json!({"type": "response.function_call_arguments.done", "sequence_number": 6, "item_id": "fc_mock_7", "output_index": 0, "arguments": "{\"city\": \"Paris\"}"})
    );
    assert_eq!(ev[7].1["item"]["status"], "completed");
}

#[test]
fn terminal_events_by_status() {
    let cases = [
        (
            "finish:length",
            vec![
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.incomplete",
            ],
            true,
        ),
        (
            "finish:content_filter",
            vec![
                "response.created",
                "response.in_progress",
                "response.incomplete",
            ],
            true,
        ),
        (
            "empty",
            vec![
                "response.created",
                "response.in_progress",
                "response.completed",
            ],
            true,
        ),
        (
            "failed:server_error",
            vec![
                "response.created",
                "response.in_progress",
                "response.failed",
            ],
            true,
        ),
        (
            "pending",
            vec!["response.created", "response.in_progress"],
            false,
        ),
    ];
    for (step, want, done) in cases {
        let (ev, _, _, got_done) = stream_of(step);
        assert_eq!((names(&ev), got_done), (want, done), "{step}");
    }
    let (ev, _, _, _) = stream_of("failed:server_error");
    assert_eq!(
        ev[2].1["response"]["error"],
        json!({"code": "server_error", "message": "mock failure server_error"})
    );
    assert_eq!(ev[2].1["response"]["status"], "failed");
}
