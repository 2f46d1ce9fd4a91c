//! Exact chat bodies and events.

use std::time::Duration;

use super::*;
use crate::completion::{completion, default_pieces, split_text, Call, BAD_ARGS, WEATHER_ARGS};
use crate::request::Fields;
use crate::scenario::{parse_step, Step};

pub(crate) fn ctx<'a>(fields: &'a Fields, stream: bool, choices: u32, usage: bool) -> Ctx<'a> {
    Ctx {
        n: 7,
        created: 1_700_000_000,
        model: "gpt-x",
        method: "POST",
        stream,
        choices,
        include_usage: usage,
        chunks: 3,
        chunks_from_header: false,
        chunk_delay: Duration::ZERO,
        path: "/v1/chat/completions",
        path_and_query: "/v1/chat/completions",
        fields,
        body: b"",
    }
}

fn step(s: &str) -> Step {
    parse_step(s).unwrap()
}

#[test]
fn default_pieces_and_splits() {
    assert_eq!(
        default_pieces(3, false).concat(),
        "Hello from backstop-mock."
    );
    assert_eq!(default_pieces(3, true), vec!["tok0 ", "tok1 ", "tok2 "]);
    assert_eq!(default_pieces(2, false), vec!["tok0 ", "tok1 "]);
    assert!(default_pieces(0, false).is_empty());
    assert_eq!(
        split_text(r#"{"answer": 42}"#, 3),
        vec![r#"{"an"#, r#"swer""#, r#": 42}"#]
    );
    assert_eq!(split_text("   ", 5), vec![" ", " ", " "]);
    assert_eq!(split_text("abc", 0), vec!["abc"]);
    assert_eq!(split_text("héllo", 2), vec!["hé", "llo"]);
}

#[test]
fn completions_by_step() {
    let cases: [(&str, Option<&str>, &str, Option<Call>); 13] = [
        ("ok", Some("Hello from backstop-mock."), "stop", None),
        (
            "finish:length",
            Some("Hello from backstop-mock."),
            "length",
            None,
        ),
        (
            "finish:stop",
            Some("Hello from backstop-mock."),
            "stop",
            None,
        ),
        ("finish:eos", Some("Hello from backstop-mock."), "eos", None),
        ("finish:content_filter", None, "content_filter", None),
        (
            "finish:tool_calls",
            None,
            "tool_calls",
            Some(Call::Tool(WEATHER_ARGS)),
        ),
        (
            "finish:function_call",
            None,
            "function_call",
            Some(Call::Function(WEATHER_ARGS)),
        ),
        ("empty", None, "stop", None),
        ("blank", Some("   "), "stop", None),
        ("json", Some(r#"{"answer": 42}"#), "stop", None),
        ("bad_json", Some(r#"Sure! {"answer": 4"#), "stop", None),
        (
            "schema_bad",
            Some(r#"{"answer": "forty-two"}"#),
            "stop",
            None,
        ),
        ("bad_args", None, "tool_calls", Some(Call::Tool(BAD_ARGS))),
    ];
    for (s, text, finish, call) in cases {
        let st = step(s);
        let c = completion(&st, 3, false);
        assert_eq!(
            (c.text().as_deref(), c.finish, c.call),
            (text, finish, call),
            "{s}"
        );
    }
    let st = step("cut:5");
    assert_eq!(completion(&st, 3, false).pieces.map(|p| p.len()), Some(5));
}

#[test]
fn non_stream_body_is_exact() {
    let fields = Fields::default();
    let st = step("ok");
    let got = String::from_utf8(body(
        &ctx(&fields, false, 1, false),
        &completion(&st, 3, false),
    ))
    .unwrap();
    assert_eq!(
        got,
        r#"{"id":"chatcmpl-mock-7","object":"chat.completion","created":1700000000,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from backstop-mock.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8},"system_fingerprint":"fp_mock"}"#
    );
}

#[test]
fn tool_call_body_has_null_content() {
    let fields = Fields::default();
    let st = step("finish:tool_calls");
    let got = String::from_utf8(body(
        &ctx(&fields, false, 2, false),
        &completion(&st, 3, false),
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(v["choices"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["choices"][1]["index"], 1);
    assert_eq!(
        v["choices"][0]["message"]["content"],
        serde_json::Value::Null
    );
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"],
        serde_json::json!([{"id": "call_mock_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}])
    );
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

#[test]
fn stream_events_are_exact() {
    let fields = Fields::default();
    let st = step("ok");
    let ev = events(&ctx(&fields, true, 1, true), &completion(&st, 3, false));
    let head = r#"data: {"id":"chatcmpl-mock-7","object":"chat.completion.chunk","created":1700000000,"model":"gpt-x","system_fingerprint":"fp_mock","choices":"#;
    let want = [
        format!("{head}[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"),
        format!("{head}[{{\"index\":0,\"delta\":{{\"content\":\"Hello\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"),
        format!("{head}[{{\"index\":0,\"delta\":{{\"content\":\" from\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"),
        format!("{head}[{{\"index\":0,\"delta\":{{\"content\":\" backstop-mock.\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"),
        format!("{head}[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]}}\n\n"),
        format!("{head}[],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}}}\n\n"),
        "data: [DONE]\n\n".to_owned(),
    ];
    let got: Vec<String> = ev
        .frames
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    assert_eq!(got, want);
    assert_eq!((ev.lead, ev.content, ev.done), (1, 3, true));
}

#[test]
fn stream_tool_call_and_choices() {
    let fields = Fields::default();
    let st = step("bad_args");
    let ev = events(&ctx(&fields, true, 2, false), &completion(&st, 3, false));
    // 2 role chunks, no content, 2 tool-call chunks, 2 finish chunks, [DONE]
    assert_eq!((ev.frames.len(), ev.lead, ev.content), (7, 2, 0));
    let role = String::from_utf8_lossy(&ev.frames[0]).into_owned();
    assert!(
        role.contains(r#""delta":{"role":"assistant","content":null}"#),
        "{role}"
    );
    let call = String::from_utf8_lossy(&ev.frames[3]).into_owned();
    assert!(call.contains(r#""index":1,"delta":{"tool_calls":[{"index":0,"id":"call_mock_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": "}}]}"#), "{call}");
    let finish = String::from_utf8_lossy(&ev.frames[5]).into_owned();
    assert!(
        finish.contains(r#""finish_reason":"tool_calls""#),
        "{finish}"
    );
}

#[test]
fn reasoning_comes_before_the_content() {
    let fields = Fields::default();
    let st = step("reasoning:2");
    let comp = completion(&st, 3, false);
    let ev = events(&ctx(&fields, true, 1, true), &comp);
    assert_eq!((ev.frames.len(), ev.lead, ev.content), (9, 3, 3));
    let deltas: Vec<String> = ev.frames[1..4]
        .iter()
        .map(|f| {
            let v: serde_json::Value =
                serde_json::from_slice(&f[6..f.len() - 2]).unwrap_or_default();
            v["choices"][0]["delta"].to_string()
        })
        .collect();
    assert_eq!(
        deltas,
        vec![
            r#"{"reasoning_content":"thinking…"}"#,
            r#"{"reasoning_content":"thinking…"}"#,
            r#"{"content":"Hello"}"#,
        ]
    );
    let usage = String::from_utf8_lossy(&ev.frames[7]).into_owned();
    assert!(
        usage.contains(r#""usage":{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10}"#),
        "{usage}"
    );
    let got = String::from_utf8(body(&ctx(&fields, false, 1, false), &comp)).unwrap();
    assert!(
        got.contains(r#""message":{"role":"assistant","content":"Hello from backstop-mock.","reasoning_content":"thinking…thinking…","refusal":null}"#),
        "{got}"
    );
    let st = step("reasoning:1:reasoning");
    let ev = events(&ctx(&fields, true, 1, false), &completion(&st, 3, false));
    let frame = String::from_utf8_lossy(&ev.frames[1]).into_owned();
    assert!(
        frame.contains(r#""delta":{"reasoning":"thinking…"}"#),
        "{frame}"
    );
}

#[test]
fn the_filler_carries_the_role_alone() {
    let fields = Fields::default();
    let ev = events(
        &ctx(&fields, true, 1, false),
        &completion(&step("ok"), 3, false),
    );
    assert_eq!(
        String::from_utf8_lossy(&ev.filler),
        "data: {\"id\":\"chatcmpl-mock-7\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-x\",\"system_fingerprint\":\"fp_mock\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
    );
}
