//! Table tests for the step grammar.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn parses_every_step() {
    let cases: Vec<(&str, Step)> = vec![
        ("ok", Step::Ok),
        (" ok ", Step::Ok),
        (
            "status:429",
            Step::Status {
                code: 429,
                format: ErrorFormat::OpenAi,
            },
        ),
        (
            "status:500:openai",
            Step::Status {
                code: 500,
                format: ErrorFormat::OpenAi,
            },
        ),
        (
            "status:500:comet",
            Step::Status {
                code: 500,
                format: ErrorFormat::Comet,
            },
        ),
        (
            "status:403:code",
            Step::Status {
                code: 403,
                format: ErrorFormat::Code,
            },
        ),
        (
            "status:502:html",
            Step::Status {
                code: 502,
                format: ErrorFormat::Html,
            },
        ),
        (
            "status:503:empty",
            Step::Status {
                code: 503,
                format: ErrorFormat::Empty,
            },
        ),
        (
            "status:504:text",
            Step::Status {
                code: 504,
                format: ErrorFormat::Text,
            },
        ),
        (
            "status:524",
            Step::Status {
                code: 524,
                format: ErrorFormat::OpenAi,
            },
        ),
        ("error:invalid_token", Step::Error(NamedError::InvalidToken)),
        (
            "error:cloudflare_524",
            Step::Error(NamedError::Cloudflare524),
        ),
        (
            "retry_after:2",
            Step::RetryAfter {
                value: "2".into(),
                ms: false,
            },
        ),
        (
            "retry_after:1.5",
            Step::RetryAfter {
                value: "1.5".into(),
                ms: false,
            },
        ),
        (
            "retry_after:250:ms",
            Step::RetryAfter {
                value: "250".into(),
                ms: true,
            },
        ),
        ("ratelimit_reset:6m0s", Step::RatelimitReset("6m0s".into())),
        ("redirect", Step::Redirect),
        ("html", Step::Html),
        ("finish:length", Step::Finish("length".into())),
        ("finish:weird_reason", Step::Finish("weird_reason".into())),
        ("empty", Step::Empty),
        ("blank", Step::Blank),
        ("json", Step::Json),
        ("bad_json", Step::BadJson),
        ("schema_bad", Step::SchemaBad),
        ("bad_args", Step::BadArgs),
        ("empty_data", Step::EmptyData),
        ("cut:2", Step::Cut(2)),
        ("cut:0", Step::Cut(0)),
        ("nodone", Step::NoDone),
        ("malformed", Step::Malformed),
        ("error_event", Step::ErrorEvent),
        ("stall:150", Step::Stall(ms(150))),
        ("slow:20", Step::Slow(ms(20))),
        ("hang", Step::Hang),
        ("reset", Step::Reset),
        ("video_failed", Step::VideoFailed),
        ("task_not_exist:3", Step::TaskNotExist(3)),
        ("task_not_exist", Step::TaskNotExist(1)),
        ("no_done", Step::NoDone),
        ("retry_after_5xx:7", Step::RetryAfter5xx("7".into())),
        ("error_body", Step::ErrorBody(ErrorBodyFormat::OpenAi)),
        (
            "error_body:openai",
            Step::ErrorBody(ErrorBodyFormat::OpenAi),
        ),
        ("error_body:code", Step::ErrorBody(ErrorBodyFormat::Code)),
        (
            "error_body:rate_limit_exceeded",
            Step::ErrorBody(ErrorBodyFormat::Named("rate_limit_exceeded".into())),
        ),
        (
            "reasoning:4",
            Step::Reasoning {
                n: 4,
                field: ReasoningField::ReasoningContent,
            },
        ),
        (
            "reasoning:2:reasoning",
            Step::Reasoning {
                n: 2,
                field: ReasoningField::Reasoning,
            },
        ),
        (
            "reasoning:0:reasoning_content",
            Step::Reasoning {
                n: 0,
                field: ReasoningField::ReasoningContent,
            },
        ),
        ("short_data", Step::ShortData),
        ("empty_vector", Step::EmptyVector),
        ("failed:server_error", Step::Failed("server_error".into())),
        (
            "failed:invalid_prompt",
            Step::Failed("invalid_prompt".into()),
        ),
        ("pending", Step::Pending),
        ("cut_body", Step::CutBody),
        ("drop_after_headers", Step::DropAfterHeaders),
        ("error_after:2", Step::ErrorAfter(2)),
        ("garbage", Step::Garbage(0)),
        ("garbage:3", Step::Garbage(3)),
        (
            "oversized:70000",
            Step::Oversized {
                bytes: 70_000,
                after: 0,
            },
        ),
        (
            "oversized:1048576:2",
            Step::Oversized {
                bytes: 1_048_576,
                after: 2,
            },
        ),
        ("role_only:100000", Step::RoleOnly(100_000)),
        ("role_only:100000000", Step::RoleOnly(100_000_000)),
        ("keepalive:5", Step::Keepalive(5)),
        ("json_for_stream", Step::JsonForStream),
        ("gzip", Step::Gzip),
        ("hold:250", Step::Hold(ms(250))),
        ("first_token:0", Step::FirstToken(ms(0))),
        ("first_token:900", Step::FirstToken(ms(900))),
    ];
    for (text, want) in cases {
        assert_eq!(parse_step(text), Ok(want), "{text}");
    }
}

#[test]
fn every_named_error_round_trips() {
    for e in NamedError::ALL {
        assert_eq!(
            parse_step(&format!("error:{}", e.name())),
            Ok(Step::Error(e))
        );
    }
}

#[test]
fn refuses_bad_steps_with_a_reason() {
    let cases = [
        ("", "empty step"),
        ("nope", "unknown step 'nope'"),
        ("ok:1", "'ok' takes no argument"),
        ("status", "status needs a code from 200 to 999"),
        ("status:abc", "status needs a code from 200 to 999"),
        ("status:99", "status needs a code from 200 to 999"),
        ("status:1000", "status needs a code from 200 to 999"),
        (
            "status:500:xml",
            "format must be openai, comet, code, html, empty or text",
        ),
        ("error", "'error' needs one argument"),
        ("error:", "'error' needs one argument"),
        ("error:nope", "unknown error name 'nope'"),
        ("retry_after", "retry_after needs a number of seconds"),
        ("retry_after:soon", "retry_after needs a number of seconds"),
        (
            "retry_after:1:s",
            "the second argument of retry_after can only be 'ms'",
        ),
        ("finish", "'finish' needs one argument"),
        ("finish:a:b", "'finish' takes one argument"),
        ("cut:x", "'x' is not a count from 0 to 100000"),
        ("cut:100001", "'100001' is not a count from 0 to 100000"),
        (
            "stall:-1",
            "'-1' is not a number of milliseconds up to 86400000",
        ),
        (
            "slow:86400001",
            "'86400001' is not a number of milliseconds up to 86400000",
        ),
        (
            "task_not_exist:x",
            "'x' is not a count from 0 to 4294967295",
        ),
        (
            "retry_after_5xx",
            "retry_after_5xx needs a number of seconds",
        ),
        (
            "retry_after_5xx:1:ms",
            "retry_after_5xx needs a number of seconds",
        ),
        (
            "error_body:Bad-Code",
            "the format of error_body is openai, code, or a code name of [a-z0-9_]",
        ),
        (
            "error_body:code:x",
            "the format of error_body is openai, code, or a code name of [a-z0-9_]",
        ),
        ("failed", "'failed' needs one argument"),
        ("failed:x y", "the code of failed is a name of [a-z0-9_]"),
        ("reasoning", "'reasoning' needs a count"),
        (
            "reasoning:2:thoughts",
            "the field of reasoning is reasoning_content or reasoning",
        ),
        (
            "reasoning:100001",
            "'100001' is not a count from 0 to 100000",
        ),
        ("oversized", "'oversized' needs a count"),
        (
            "oversized:67108865",
            "'67108865' is not a count from 0 to 67108864",
        ),
        ("oversized:10:x", "'x' is not a count from 0 to 100000"),
        ("garbage:1:2", "'garbage' takes at most one argument"),
        ("garbage:x", "'x' is not a count from 0 to 100000"),
        ("error_after", "'error_after' needs one argument"),
        (
            "role_only:100000001",
            "'100000001' is not a count from 0 to 100000000",
        ),
        ("keepalive:-1", "'-1' is not a count from 0 to 100000000"),
        (
            "hold:x",
            "'x' is not a number of milliseconds up to 86400000",
        ),
        ("first_token", "'first_token' needs one argument"),
        ("gzip:1", "'gzip' takes no argument"),
        ("cut_body:2", "'cut_body' takes no argument"),
        ("pending:1", "'pending' takes no argument"),
    ];
    for (text, reason) in cases {
        let err = parse_step(text).err();
        assert_eq!(err.map(|e| e.reason), Some(reason.to_owned()), "{text}");
    }
}

#[test]
fn error_message_names_the_step() {
    let err = parse_sequence("ok,status:xx").err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("bad step 'status:xx': status needs a code from 200 to 999")
    );
}

#[test]
fn parses_sequences() {
    assert_eq!(
        parse_sequence("status:503, status:503 ,ok"),
        Ok(vec![
            Step::Status {
                code: 503,
                format: ErrorFormat::OpenAi
            },
            Step::Status {
                code: 503,
                format: ErrorFormat::OpenAi
            },
            Step::Ok,
        ])
    );
    assert!(parse_sequence("ok,,ok").is_err());
}

#[test]
fn selects_the_kth_step_then_sticks_to_the_last() {
    let seq = parse_sequence("status:500,status:502,ok").unwrap_or_default();
    let cases = [
        (None, "500"),
        (Some(1), "500"),
        (Some(2), "502"),
        (Some(3), "ok"),
        (Some(9), "ok"),
    ];
    for (nth, want) in cases {
        let got = match select(&seq, nth) {
            Some(Step::Status { code, .. }) => code.to_string(),
            Some(Step::Ok) => "ok".to_owned(),
            other => format!("{other:?}"),
        };
        assert_eq!(got, want, "{nth:?}");
    }
    assert_eq!(select(&[], Some(1)), None);
}
