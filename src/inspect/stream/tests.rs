//! Tests of `StreamInspector` on realistic chunk sequences: role chunk,
//! content and tool-call deltas split across events, finish chunk, usage
//! chunk, `[DONE]`, and the ways a stream goes wrong.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::inspect::Endpoint;

fn expect(json: JsonMode) -> Expectation {
    Expectation {
        endpoint: Endpoint::ChatCompletions,
        stream: true,
        json,
        ..Expectation::default()
    }
}

fn chunk(choices: Value) -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini", "choices": choices}).to_string()
}

fn delta(index: u64, delta: Value) -> String {
    chunk(json!([{"index": index, "delta": delta, "finish_reason": null}]))
}

fn role() -> String {
    delta(0, json!({"role": "assistant", "content": ""}))
}

fn text(t: &str) -> String {
    delta(0, json!({"content": t}))
}

fn finish(index: u64, reason: &str) -> String {
    chunk(json!([{"index": index, "delta": {}, "finish_reason": reason}]))
}

fn usage() -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}})
    .to_string()
}

fn tool_delta(index: u64, function: Value) -> String {
    delta(
        0,
        json!({"tool_calls": [{"index": index, "function": function}]}),
    )
}

/// Feeds every event, asserting each verdict is Forward (or Done for
/// `[DONE]`), and returns the inspector.
fn run(json: JsonMode, events: &[String]) -> StreamInspector {
    let mut inspector = StreamInspector::new(&expect(json));
    for event in events {
        let expected = if event == "[DONE]" {
            EventVerdict::Done
        } else {
            EventVerdict::Forward
        };
        assert_eq!(inspector.observe(event.as_bytes()), expected, "{event}");
    }
    inspector
}

fn kind_and_detail(f: &Findings) -> (Kind, Option<&str>) {
    (f.kind, f.detail.as_deref())
}

#[test]
fn a_clean_stream_is_ok_with_usage() {
    let events = [
        role(),
        text("Hel"),
        text("lo"),
        finish(0, "stop"),
        usage(),
        "[DONE]".into(),
    ];
    let inspector = run(JsonMode::None, &events);
    assert!(inspector.content_seen());
    assert!(inspector.all_finished());
    assert_eq!(inspector.malformed_events(), 0);
    assert_eq!(
        inspector.finish(StreamEnd::Done),
        Findings {
            kind: Kind::Ok,
            finish_reasons: vec!["stop".into()],
            model: Some("gpt-4o-mini".into()),
            usage: Some(Usage {
                prompt_tokens: 9,
                completion_tokens: 12
            }),
            detail: None,
            ..Findings::default()
        }
    );
    // Finished but closed without [DONE] (or cut after the finish): still ok.
    assert_eq!(inspector.finish(StreamEnd::Eof).kind, Kind::Ok);
    assert_eq!(inspector.finish(StreamEnd::Cut).kind, Kind::Ok);
}

#[test]
fn any_end_before_every_finish_is_truncated() {
    let inspector = run(JsonMode::None, &[role(), text("Hel")]);
    assert!(inspector.content_seen());
    assert!(!inspector.all_finished());
    let rows = [
        (
            StreamEnd::Done,
            "the stream sent [DONE] before choice 0 had a finish_reason",
        ),
        (
            StreamEnd::Eof,
            "the stream closed before choice 0 had a finish_reason",
        ),
        (
            StreamEnd::Cut,
            "the stream was cut before choice 0 had a finish_reason",
        ),
        (
            StreamEnd::Idle,
            "the stream went idle before choice 0 had a finish_reason",
        ),
    ];
    for (end, detail) in rows {
        let found = inspector.finish(end);
        assert_eq!(
            kind_and_detail(&found),
            (Kind::StreamTruncated, Some(detail))
        );
        assert_eq!(found.finish_reasons, [""]);
    }
    let nothing = run(JsonMode::None, &["[DONE]".into()]);
    assert!(!nothing.content_seen());
    assert_eq!(
        kind_and_detail(&nothing.finish(StreamEnd::Done)),
        (
            Kind::StreamTruncated,
            Some("the stream sent [DONE] before any choice")
        )
    );
    // An empty-string finish_reason is not a finish.
    let blank = run(JsonMode::None, &[role(), text("x"), finish(0, "")]);
    assert!(!blank.all_finished());
    // With two choices, the one still open is named.
    let two = run(
        JsonMode::None,
        &[
            text("a"),
            delta(1, json!({"content": "b"})),
            finish(0, "stop"),
        ],
    );
    assert_eq!(
        kind_and_detail(&two.finish(StreamEnd::Eof)),
        (
            Kind::StreamTruncated,
            Some("the stream closed before choice 1 had a finish_reason")
        )
    );
    assert_eq!(two.finish(StreamEnd::Eof).finish_reasons, ["stop", ""]);
}

#[test]
fn per_choice_rules_over_a_stream() {
    let rows: Vec<(Vec<String>, Kind, Option<&str>)> = vec![
        (vec![role(), finish(0, "stop")], Kind::EmptyContent, Some("choice 0: finish_reason stop with no content and no tool calls")),
        (vec![role(), text(" \n"), finish(0, "stop")], Kind::EmptyContent, Some("choice 0: finish_reason stop with no content and no tool calls")),
        (vec![role(), text("Once"), finish(0, "length")], Kind::Length, Some("choice 0: finish_reason length")),
        (vec![role(), finish(0, "content_filter")], Kind::ContentFilter, Some("choice 0: finish_reason content_filter")),
        (
            vec![role(), delta(0, json!({"refusal": "I can't"})), delta(0, json!({"refusal": " help."})), finish(0, "stop")],
            Kind::ContentFilter,
            Some("choice 0: refusal: I can't help."),
        ),
        (vec![role(), text("Hi"), finish(0, "eos")], Kind::Ok, None),
        (
            vec![
                delta(0, json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]})),
                tool_delta(0, json!({"arguments": "{\"ci"})),
                tool_delta(0, json!({"arguments": "ty\": \"Paris\"}"})),
                tool_delta(1, json!({"name": "get_time", "arguments": "{}"})),
                finish(0, "tool_calls"),
            ],
            Kind::Ok,
            None,
        ),
        (
            vec![
                tool_delta(0, json!({"name": "get_weather", "arguments": "{\"city\": "})),
                tool_delta(1, json!({"name": "get_time", "arguments": "{}"})),
                finish(0, "tool_calls"),
            ],
            Kind::InvalidJson,
            Some("choice 0: tool call 0 (get_weather) arguments are not valid JSON: EOF while parsing a value at line 1 column 9"),
        ),
        (
            vec![delta(0, json!({"function_call": {"name": "f", "arguments": "{\"a\""}})), delta(0, json!({"function_call": {"arguments": ": 1}"}})), finish(0, "function_call")],
            Kind::Ok,
            None,
        ),
    ];
    for (events, kind, detail) in rows {
        let found = run(JsonMode::None, &events).finish(StreamEnd::Done);
        assert_eq!(kind_and_detail(&found), (kind, detail), "{events:?}");
    }
}

#[test]
fn json_mode_checks_the_joined_content() {
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let schema = JsonMode::Schema(Arc::new(jsonschema::validator_for(&schema).unwrap()));
    let rows: Vec<(JsonMode, Vec<String>, Kind, Option<&str>)> = vec![
        (schema.clone(), vec![role(), text("{\"ci"), text("ty\": \"Paris\"}"), finish(0, "stop")], Kind::Ok, None),
        (
            schema.clone(),
            vec![role(), text("{\"city\""), text(": 3}"), finish(0, "stop")],
            Kind::SchemaMismatch,
            Some("choice 0: content does not match the schema: /city: value is not of type \"string\""),
        ),
        (
            JsonMode::Object,
            vec![role(), text("Sure: "), text("{}"), finish(0, "stop")],
            Kind::InvalidJson,
            Some("choice 0: content is not valid JSON: expected value at line 1 column 1"),
        ),
        (JsonMode::Object, vec![role(), text("{\"a\": "), finish(0, "length")], Kind::Length, Some("choice 0: finish_reason length")),
        // Without JSON mode the same text is fine.
        (JsonMode::None, vec![role(), text("Sure: "), text("{}"), finish(0, "stop")], Kind::Ok, None),
    ];
    for (mode, events, kind, detail) in rows {
        let found = run(mode, &events).finish(StreamEnd::Done);
        assert_eq!(kind_and_detail(&found), (kind, detail), "{events:?}");
    }
}

#[test]
fn several_choices_take_the_most_severe() {
    let events = [
        text("a"),
        delta(1, json!({"content": "b"})),
        finish(0, "length"),
        chunk(json!([{"index": 1, "delta": {}, "finish_reason": "content_filter"}])),
    ];
    let found = run(JsonMode::None, &events).finish(StreamEnd::Eof);
    assert_eq!(
        kind_and_detail(&found),
        (
            Kind::ContentFilter,
            Some("choice 1: finish_reason content_filter")
        )
    );
    assert_eq!(found.finish_reasons, ["length", "content_filter"]);
}

#[test]
fn events_that_are_not_chunks() {
    let mut inspector = StreamInspector::new(&expect(JsonMode::None));
    assert_eq!(
        inspector.observe(br#"{"choices": [{"index": 0, "delta": {"#),
        EventVerdict::Drop
    );
    assert_eq!(inspector.observe(b""), EventVerdict::Drop);
    assert_eq!(inspector.observe(b"[DONE] "), EventVerdict::Done);
    assert_eq!(inspector.observe(b"42"), EventVerdict::Forward);
    assert_eq!(
        inspector.observe(br#"{"error": null, "choices": []}"#),
        EventVerdict::Forward
    );
    let error = json!({"message": "Upstream overloaded", "type": "server_error", "code": 529});
    let event = json!({"error": error}).to_string();
    assert_eq!(
        inspector.observe(event.as_bytes()),
        EventVerdict::Error(error)
    );
    assert_eq!(inspector.malformed_events(), 2);
    // The malformed events do not change an otherwise clean stream's kind.
    for event in [role(), text("Hi"), finish(0, "stop")] {
        assert_eq!(inspector.observe(event.as_bytes()), EventVerdict::Forward);
    }
    assert_eq!(inspector.finish(StreamEnd::Done).kind, Kind::Ok);
    assert_eq!(inspector.malformed_events(), 2);
}

#[test]
fn a_completions_stream_reads_text() {
    let piece = |t: &str, f: Value| {
        json!({"object": "text_completion", "model": "gpt-3.5-turbo-instruct", "choices": [{"text": t, "index": 0, "finish_reason": f}]}).to_string()
    };
    let inspector = run(
        JsonMode::None,
        &[piece("Hel", json!(null)), piece("lo", json!("stop"))],
    );
    assert_eq!(inspector.finish(StreamEnd::Done).kind, Kind::Ok);
    let inspector = run(
        JsonMode::None,
        &[piece("", json!(null)), piece("", json!("stop"))],
    );
    assert!(!inspector.content_seen());
    assert_eq!(inspector.finish(StreamEnd::Done).kind, Kind::EmptyContent);
}

#[test]
fn capped_text_gives_up_past_the_cap() {
    let mut text = Capped::default();
    text.push("abc", 5);
    assert_eq!(text.get(), Some("abc"));
    text.push("de", 5);
    assert_eq!(text.get(), Some("abcde"));
    text.push("f", 5);
    assert_eq!(text.get(), None);
    text.push("g", 5);
    assert_eq!(text.get(), None);
}
