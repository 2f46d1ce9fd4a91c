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
