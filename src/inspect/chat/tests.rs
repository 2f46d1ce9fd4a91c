//! Table tests of `inspect_body`: one row per rule of the table in
//! `inspect/mod.rs`, with the exact kind, finish reasons and detail.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::inspect::Endpoint;
use crate::taxonomy::Kind;

fn schema_mode() -> JsonMode {
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    JsonMode::Schema(Arc::new(jsonschema::validator_for(&schema).unwrap()))
}

fn expect(json: JsonMode) -> Expectation {
    Expectation {
        endpoint: Endpoint::ChatCompletions,
        json,
        ..Expectation::default()
    }
}

fn msg(content: Value, finish: Value) -> Value {
    json!({"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish})
}

fn tool_msg(args: &str) -> Value {
    json!({"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": args}}]}})
}

fn body(choices: Vec<Value>) -> Vec<u8> {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-2024-08-06", "choices": choices,
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})
    .to_string()
    .into_bytes()
}

fn check(mode: JsonMode, body: &[u8], kind: Kind, finish: &[&str], detail: Option<&str>) {
    let found = inspect_body(&expect(mode), body);
    let text = String::from_utf8_lossy(body);
    assert_eq!(found.kind, kind, "{text}");
    assert_eq!(found.finish_reasons, finish, "{text}");
    assert_eq!(found.detail.as_deref(), detail, "{text}");
}

#[test]
fn a_plain_answer_is_ok_with_model_and_usage() {
    let found = inspect_body(
        &expect(JsonMode::None),
        &body(vec![msg(json!("Hello!"), json!("stop"))]),
    );
    assert_eq!(
        found,
        Findings {
            kind: Kind::Ok,
            finish_reasons: vec!["stop".into()],
            model: Some("gpt-4o-2024-08-06".into()),
            usage: Some(Usage {
                prompt_tokens: 11,
                completion_tokens: 7
            }),
            detail: None,
            ..Findings::default()
        }
    );
}

#[test]
fn single_choice_rules() {
    let empty = "choice 0: finish_reason stop with no content and no tool calls";
    let rows: Vec<(Value, Kind, &str, Option<&str>)> = vec![
        (msg(json!(null), json!("stop")), Kind::EmptyContent, "stop", Some(empty)),
        (msg(json!(" \n\t"), json!("stop")), Kind::EmptyContent, "stop", Some(empty)),
        (msg(json!(null), json!(null)), Kind::EmptyContent, "", Some("choice 0: finish_reason null with no content and no tool calls")),
        (msg(json!(""), json!("eos")), Kind::EmptyContent, "eos", Some("choice 0: finish_reason eos with no content and no tool calls")),
        (msg(json!([]), json!("stop")), Kind::EmptyContent, "stop", Some(empty)),
        (msg(json!([{"type": "text", "text": "hi"}]), json!("stop")), Kind::Ok, "stop", None),
        (msg(json!("Hi"), json!("eos")), Kind::Ok, "eos", None),
        (msg(json!("Hi"), json!(null)), Kind::Ok, "", None),
        (tool_msg(r#"{"city":"Paris"}"#), Kind::Ok, "tool_calls", None),
        (tool_msg(""), Kind::Ok, "tool_calls", None),
        (
            tool_msg(r#"{"city":"#),
            Kind::InvalidJson,
            "tool_calls",
            Some("choice 0: tool call 0 (get_weather) arguments are not valid JSON: EOF while parsing a value at line 1 column 8"),
        ),
        (
            json!({"index": 0, "finish_reason": "function_call", "message": {"content": null, "function_call": {"name": "f", "arguments": "{'a': 1}"}}}),
            Kind::InvalidJson,
            "function_call",
            Some("choice 0: function_call arguments are not valid JSON: key must be a string at line 1 column 2"),
        ),
        (
            json!({"index": 0, "finish_reason": "tool_calls", "message": {"content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}}),
            Kind::Ok,
            "tool_calls",
            None,
        ),
        (msg(json!("Once upon a"), json!("length")), Kind::Length, "length", Some("choice 0: finish_reason length")),
        (msg(json!(null), json!("content_filter")), Kind::ContentFilter, "content_filter", Some("choice 0: finish_reason content_filter")),
        (
            json!({"index": 0, "finish_reason": "stop", "message": {"content": null, "refusal": "I can't help with that."}}),
            Kind::ContentFilter,
            "stop",
            Some("choice 0: refusal: I can't help with that."),
        ),
    ];
    for (choice, kind, finish, detail) in rows {
        check(JsonMode::None, &body(vec![choice]), kind, &[finish], detail);
    }
}

#[test]
fn json_mode_rules() {
    let not_json = |col: u32| {
        format!("choice 0: content is not valid JSON: expected value at line 1 column {col}")
    };
    let fenced = not_json(1);
    let chatty = not_json(1);
    let rows: Vec<(JsonMode, Value, Kind, Option<&str>)> = vec![
        (JsonMode::Object, msg(json!(" {\"a\": 1}\n"), json!("stop")), Kind::Ok, None),
        (JsonMode::Object, msg(json!("```json\n{\"a\": 1}\n```"), json!("stop")), Kind::InvalidJson, Some(&fenced)),
        (JsonMode::Object, msg(json!("Sure! {\"a\": 1}"), json!("stop")), Kind::InvalidJson, Some(&chatty)),
        (JsonMode::Object, msg(json!(""), json!("stop")), Kind::EmptyContent, Some("choice 0: finish_reason stop with no content and no tool calls")),
        (JsonMode::Object, msg(json!("{\"a\": "), json!("length")), Kind::Length, Some("choice 0: finish_reason length")),
        (JsonMode::Object, tool_msg("{}"), Kind::Ok, None),
        (schema_mode(), msg(json!("{\"city\": \"Paris\"}"), json!("stop")), Kind::Ok, None),
        (
            schema_mode(),
            msg(json!("{\"city\": 3}"), json!("stop")),
            Kind::SchemaMismatch,
            Some("choice 0: content does not match the schema: /city: value is not of type \"string\""),
        ),
        (
            schema_mode(),
            msg(json!("{}"), json!("stop")),
            Kind::SchemaMismatch,
            Some("choice 0: content does not match the schema: /: \"city\" is a required property"),
        ),
        (schema_mode(), msg(json!("{city}"), json!("stop")), Kind::InvalidJson, Some("choice 0: content is not valid JSON: key must be a string at line 1 column 2")),
    ];
    for (mode, choice, kind, detail) in rows {
        let finish = choice["finish_reason"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        check(mode, &body(vec![choice]), kind, &[finish.as_str()], detail);
    }
}

#[test]
fn completions_read_text() {
    let text =
        |t: &str, f: &str| json!({"text": t, "index": 0, "logprobs": null, "finish_reason": f});
    let e = Expectation {
        endpoint: Endpoint::Completions,
        ..Expectation::default()
    };
    let rows = [
        (text("Hello", "stop"), Kind::Ok),
        (text("", "stop"), Kind::EmptyContent),
        (text("Hel", "length"), Kind::Length),
    ];
    for (choice, kind) in rows {
        assert_eq!(
            inspect_body(&e, &body(vec![choice.clone()])).kind,
            kind,
            "{choice}"
        );
    }
}

#[test]
fn several_choices_take_the_most_severe_earliest_first() {
    let length = msg(json!("abc"), json!("length"));
    let empty = msg(json!(null), json!("stop"));
    let filter = msg(json!(null), json!("content_filter"));
    let ok = msg(json!("fine"), json!("stop"));
    let bad_args = tool_msg("{");
    let with = |mut c: Value, i: u64| {
        c["index"] = json!(i);
        c
    };
    let rows: Vec<(Vec<Value>, Kind, Vec<&str>, &str)> = vec![
        (vec![with(length.clone(), 0), with(empty.clone(), 1), with(filter.clone(), 2)], Kind::ContentFilter, vec!["length", "stop", "content_filter"], "choice 2: finish_reason content_filter"),
        (vec![with(empty.clone(), 0), with(bad_args.clone(), 1)], Kind::InvalidJson, vec!["stop", "tool_calls"], "choice 1: tool call 0 (get_weather) arguments are not valid JSON: EOF while parsing an object at line 1 column 1"),
        (vec![with(length.clone(), 0), with(empty.clone(), 1)], Kind::EmptyContent, vec!["length", "stop"], "choice 1: finish_reason stop with no content and no tool calls"),
        (vec![with(ok.clone(), 0), with(length.clone(), 1)], Kind::Length, vec!["stop", "length"], "choice 1: finish_reason length"),
        (vec![with(empty.clone(), 1), with(length.clone(), 0)], Kind::EmptyContent, vec!["length", "stop"], "choice 1: finish_reason stop with no content and no tool calls"),
        (vec![with(empty.clone(), 0), with(empty.clone(), 1)], Kind::EmptyContent, vec!["stop", "stop"], "choice 0: finish_reason stop with no content and no tool calls"),
    ];
    for (choices, kind, finish, detail) in rows {
        check(JsonMode::None, &body(choices), kind, &finish, Some(detail));
    }
    // invalid_json and schema_mismatch tie: the earlier choice wins.
    let mismatch = with(msg(json!("{\"city\": 1}"), json!("stop")), 0);
    let broken = with(msg(json!("{"), json!("stop")), 1);
    let found = inspect_body(&expect(schema_mode()), &body(vec![mismatch, broken]));
    assert_eq!(found.kind, Kind::SchemaMismatch);
}

#[test]
fn bodies_that_are_not_what_was_due() {
    type Row = (
        &'static [u8],
        Kind,
        &'static [&'static str],
        Option<&'static str>,
    );
    let rows: [Row; 4] = [
        (
            b"<html><body>Bad gateway</body></html>",
            Kind::BadUpstreamResponse,
            &[],
            Some("the body is not JSON: expected value at line 1 column 1"),
        ),
        (
            b"[1, 2]",
            Kind::BadUpstreamResponse,
            &[],
            Some("the body is JSON but not an object"),
        ),
        (
            b"",
            Kind::BadUpstreamResponse,
            &[],
            Some("the body is not JSON: EOF while parsing a value at line 1 column 0"),
        ),
        (
            br#"{"id": "x", "object": "chat.completion"}"#,
            Kind::Ok,
            &[],
            None,
        ),
    ];
    for (body, kind, finish, detail) in rows {
        check(JsonMode::None, body, kind, finish, detail);
    }
}
