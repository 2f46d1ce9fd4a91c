//! The Responses API rules by table: whole responses, and streams event by
//! event.

use serde_json::{json, Value};

use super::*;
use crate::inspect::Endpoint;

fn expect(text_format: Option<Value>) -> Expectation {
    let mut body = json!({"model": "gpt-x", "input": "hi"});
    if let Some(f) = text_format {
        body["text"] = json!({"format": f});
    }
    let e = Expectation::from_request("/v1/responses", &body);
    assert_eq!(e.endpoint, Endpoint::Responses);
    e
}

fn message(text: &str) -> Value {
    json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

fn response(status: &str, output: Vec<Value>, extra: Value) -> Vec<u8> {
    let mut r = json!({
        "id": "resp_1", "object": "response", "status": status, "model": "gpt-x",
        "output": output, "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
    });
    if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
        r.extend(extra.clone());
    }
    serde_json::to_vec(&r).unwrap()
}

#[test]
fn every_response_status_has_its_kind() {
    let schema = json!({"type": "json_schema", "name": "a", "schema": {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}});
    let call = |args: &str| json!({"type": "function_call", "name": "get_weather", "call_id": "c1", "arguments": args});
    type Row<'a> = (&'a str, Option<Value>, Vec<u8>, Kind, &'a str, Subject);
    let rows: Vec<Row> = vec![
        (
            "completed",
            None,
            response("completed", vec![message("Hello")], json!({})),
            Kind::Ok,
            "stop",
            Subject::Content,
        ),
        (
            "a function call",
            None,
            response("completed", vec![call("{\"city\":\"Paris\"}")], json!({})),
            Kind::Ok,
            "tool_calls",
            Subject::Content,
        ),
        (
            "max tokens",
            None,
            response(
                "incomplete",
                vec![message("Hel")],
                json!({"incomplete_details": {"reason": "max_output_tokens"}}),
            ),
            Kind::Length,
            "length",
            Subject::Content,
        ),
        (
            "content filter",
            None,
            response(
                "incomplete",
                vec![],
                json!({"incomplete_details": {"reason": "content_filter"}}),
            ),
            Kind::ContentFilter,
            "content_filter",
            Subject::Content,
        ),
        (
            "empty",
            None,
            response("completed", vec![], json!({})),
            Kind::EmptyContent,
            "stop",
            Subject::Content,
        ),
        (
            "blank",
            None,
            response("completed", vec![message("   ")], json!({})),
            Kind::EmptyContent,
            "stop",
            Subject::Content,
        ),
        (
            "json ok",
            Some(json!({"type": "json_object"})),
            response("completed", vec![message("{\"answer\": 42}")], json!({})),
            Kind::Ok,
            "stop",
            Subject::Content,
        ),
        (
            "json bad",
            Some(json!({"type": "json_object"})),
            response(
                "completed",
                vec![message("Sure! {\"answer\": 4")],
                json!({}),
            ),
            Kind::InvalidJson,
            "stop",
            Subject::Content,
        ),
        (
            "schema ok",
            Some(schema.clone()),
            response("completed", vec![message("{\"answer\": 42}")], json!({})),
            Kind::Ok,
            "stop",
            Subject::Content,
        ),
        (
            "schema bad",
            Some(schema),
            response(
                "completed",
                vec![message("{\"answer\": \"forty-two\"}")],
                json!({}),
            ),
            Kind::SchemaMismatch,
            "stop",
            Subject::Content,
        ),
        (
            "bad args",
            None,
            response("completed", vec![call("{\"city\": ")], json!({})),
            Kind::InvalidJson,
            "tool_calls",
            Subject::ToolArguments,
        ),
        (
            "refusal",
            None,
            response(
                "completed",
                vec![
                    json!({"type": "message", "content": [{"type": "refusal", "refusal": "I can't help with that"}]}),
                ],
                json!({}),
            ),
            Kind::ContentFilter,
            "stop",
            Subject::Content,
        ),
        (
            "queued",
            None,
            response("queued", vec![], json!({})),
            Kind::Ok,
            "",
            Subject::Content,
        ),
        (
            "in progress",
            None,
            response("in_progress", vec![], json!({})),
            Kind::Ok,
            "",
            Subject::Content,
        ),
    ];
    for (name, format, body, kind, finish, subject) in rows {
        let f = inspect_response(&expect(format), &body);
        assert_eq!(f.kind, kind, "{name}: {:?}", f.detail);
        assert_eq!(
            f.finish_reasons.first().map(String::as_str).unwrap_or(""),
            finish,
            "{name}"
        );
        assert_eq!(f.subject, subject, "{name}");
        assert!(f.error.is_none(), "{name}");
    }
    let f = inspect_response(
        &expect(None),
        &response("completed", vec![message("Hi")], json!({})),
    );
    assert_eq!(
        f.usage,
        Some(Usage {
            prompt_tokens: 5,
            completion_tokens: 3
        })
    );
    assert_eq!(f.model.as_deref(), Some("gpt-x"));
}

#[test]
fn a_failed_response_is_its_errors_kind() {
    let rows = [
        ("server_error", Kind::ServerError),
        ("rate_limit_exceeded", Kind::RateLimited),
        ("invalid_prompt", Kind::BadRequest),
    ];
    for (code, kind) in rows {
        let body = response(
            "failed",
            vec![],
            json!({"error": {"code": code, "message": format!("mock failure {code}")}}),
        );
        let f = inspect_response(&expect(None), &body);
        assert_eq!(f.kind, kind, "{code}");
        assert_eq!(f.error.as_ref().unwrap()["code"], code);
    }
    assert_eq!(
        inspect_response(&expect(None), b"nope").kind,
        Kind::BadUpstreamResponse
    );
}

fn event(name: &str, data: Value) -> (String, Vec<u8>) {
    (name.to_string(), serde_json::to_vec(&data).unwrap())
}

#[test]
fn a_stream_is_judged_by_its_terminal_event() {
    let done =
        json!({"id": "r", "status": "completed", "model": "gpt-x", "output": [message("Hello")]});
    let events = [
        event(
            "response.created",
            json!({"type": "response.created", "response": {"status": "in_progress"}}),
        ),
        event(
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "delta": "Hel"}),
        ),
        event(
            "response.completed",
            json!({"type": "response.completed", "response": done}),
        ),
    ];
    let mut i = ResponsesInspector::new(&expect(None));
    for (n, (name, data)) in events.iter().enumerate() {
        // The terminal event is held for the verdict, like chat's [DONE].
        let verdict = if n == 2 {
            EventVerdict::Done
        } else {
            EventVerdict::Forward
        };
        assert_eq!(i.observe(Some(name), data), verdict, "{name}");
        assert_eq!(i.output_started(), n >= 1, "after {name}");
        assert_eq!(i.finished(), n == 2, "after {name}");
    }
    let f = i.finish(StreamEnd::Eof);
    assert_eq!(
        (f.kind, f.finish_reasons.clone()),
        (Kind::Ok, vec!["stop".to_string()])
    );

    // Cut before its terminal event.
    let mut cut = ResponsesInspector::new(&expect(None));
    let (name, data) = &events[1];
    cut.observe(Some(name), data);
    let f = cut.finish(StreamEnd::Cut);
    assert_eq!(f.kind, Kind::StreamTruncated);
    assert!(f
        .detail
        .unwrap()
        .contains("the stream was cut before its terminal event"));

    // An in-band error, a malformed event, a reasoning delta.
    let mut other = ResponsesInspector::new(&expect(None));
    let err =
        json!({"type": "error", "code": "server_error", "message": "boom", "sequence_number": 3});
    assert_eq!(
        other.observe(Some("error"), &serde_json::to_vec(&err).unwrap()),
        EventVerdict::Error(err)
    );
    assert_eq!(other.observe(None, b"{not json"), EventVerdict::Drop);
    assert_eq!(other.malformed_events(), 1);
    let (name, data) = event(
        "response.reasoning_summary_text.delta",
        json!({"type": "response.reasoning_summary_text.delta", "delta": "thinking"}),
    );
    other.observe(Some(&name), &data);
    assert!(
        other.output_started(),
        "reasoning is output the client waits for"
    );

    // A failed terminal event.
    let mut failed = ResponsesInspector::new(&expect(None));
    let (name, data) = event(
        "response.failed",
        json!({"type": "response.failed", "response": {"status": "failed", "error": {"code": "server_error", "message": "x"}}}),
    );
    failed.observe(Some(&name), &data);
    assert_eq!(failed.finish(StreamEnd::Eof).kind, Kind::ServerError);
}
