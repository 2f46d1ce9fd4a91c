//! One row per body shape, request-id source, wait source, success body,
//! in-band error and transport failure.

use std::time::Duration;

use serde_json::json;

use super::*;

#[test]
fn context_length_and_content_policy_are_read_from_code_and_message() {
    let openai_cle = openai(
        "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
        "invalid_request_error",
        json!("messages"),
        json!(null),
    );
    assert_eq!(
        run(400, &[JSON], &openai_cle).kind,
        Kind::ContextLengthExceeded
    );
    let by_code = openai(
        "too long",
        "invalid_request_error",
        json!(null),
        json!("context_length_exceeded"),
    );
    assert_eq!(
        run(422, &[JSON], &by_code).kind,
        Kind::ContextLengthExceeded
    );
    for code in [
        "content_filter",
        "content_policy_violation",
        "CONTENT_FILTERED",
    ] {
        let body = openai(
            "blocked",
            "invalid_request_error",
            json!("prompt"),
            json!(code),
        );
        assert_eq!(run(400, &[JSON], &body).kind, Kind::ContentFilter, "{code}");
    }
    for code in [
        "billing_hard_limit_reached",
        "insufficient_quota",
        "insufficient_user_quota",
    ] {
        let body = openai("no money", "x", json!(null), json!(code));
        assert_eq!(run(403, &[JSON], &body).kind, Kind::QuotaExceeded, "{code}");
        assert_eq!(run(429, &[JSON], &body).kind, Kind::QuotaExceeded, "{code}");
    }
    // OpenAI's quota 429 names it in the type too.
    let by_type = openai("quota", "insufficient_quota", json!(null), json!(null));
    assert_eq!(run(429, &[JSON], &by_type).kind, Kind::QuotaExceeded);
}

#[test]
fn every_body_shape_gives_code_and_message() {
    let long: String = "é".repeat(600);
    // status, headers, body, expected code, expected message
    type Row<'a> = (u16, Pairs<'a>, String, Option<&'a str>, Option<String>);
    let rows: Vec<Row> = vec![
        // numeric code
        (
            429,
            vec![],
            json!({"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}})
                .to_string(),
            Some("429"),
            Some("Resource exhausted".into()),
        ),
        // Gemini's array
        (
            400,
            vec![],
            json!([{"error": {"code": 400, "message": "Invalid JSON payload"}}]).to_string(),
            Some("400"),
            Some("Invalid JSON payload".into()),
        ),
        // {"error": "string"}
        (502, vec![], r#"{"error":"upstream connect error"}"#.into(), None, Some("upstream connect error".into())),
        // Anthropic-style
        (
            529,
            vec![],
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.into(),
            None,
            Some("Overloaded".into()),
        ),
        // FastAPI-style
        (422, vec![], r#"{"detail":"Not enough tokens"}"#.into(), None, Some("Not enough tokens".into())),
        // message kept verbatim (not trimmed)
        (400, vec![], r#"{"error":{"message":"  spaced  "}}"#.into(), None, Some("  spaced  ".into())),
        // HTML error page: its title
        (
            502,
            vec![("content-type", "text/html")],
            "<html>\n<head><title>502 Bad\n   Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>\n<hr><center>nginx</center></body></html>".into(),
            None,
            Some("502 Bad Gateway".into()),
        ),
        // HTML without a title: its text
        (
            503,
            vec![],
            "<html><body><h1>Service</h1><p>Unavailable</p></body></html>".into(),
            None,
            Some("Service Unavailable".into()),
        ),
        // text/plain, trimmed
        (500, vec![("content-type", "text/plain")], "\n  Internal Server Error \n".into(), None, Some("Internal Server Error".into())),
        // empty and blank
        (500, vec![], String::new(), None, None),
        (500, vec![], " \r\n ".into(), None, None),
        // unrecognized JSON: its text
        (500, vec![JSON], r#"{"foo":1}"#.into(), None, Some(r#"{"foo":1}"#.into())),
        // truncated JSON: its text
        (500, vec![JSON], r#"{"error":{"mess"#.into(), None, Some(r#"{"error":{"mess"#.into())),
        // capped at 512 characters, on a character boundary
        (500, vec![], long.clone(), None, Some("é".repeat(512))),
        // invalid UTF-8 does not panic
        (500, vec![], String::from_utf8_lossy(b"bad \xff bytes").into_owned(), None, Some("bad \u{fffd} bytes".into())),
    ];
    for (status, pairs, body, code, message) in rows {
        let outcome = run(status, &pairs, &body);
        assert_eq!(outcome.code.as_deref(), code, "{body}");
        assert_eq!(outcome.message, message, "{body}");
    }
    // Raw invalid UTF-8 bytes.
    let outcome = classify_at(
        StatusCode::BAD_GATEWAY,
        &HeaderMap::new(),
        b"\xff\xfe",
        now(),
    );
    assert_eq!(outcome.message.as_deref(), Some("\u{fffd}\u{fffd}"));
}

#[test]
fn upstream_request_id_sources_in_order() {
    let body = openai(
        "boom (request id: msg-id-1)",
        "server_error",
        json!(null),
        json!(null),
    );
    let rows: Vec<(Pairs, &str, Option<&str>)> = vec![
        (
            vec![
                ("x-request-id", "req_abc"),
                ("request-id", "r2"),
                ("cf-ray", "8f-LHR"),
            ],
            &body,
            Some("req_abc"),
        ),
        (
            vec![("request-id", "r2"), ("cf-ray", "8f-LHR")],
            &body,
            Some("r2"),
        ),
        (
            vec![("x-oneapi-request-id", "one-3"), ("cf-ray", "8f-LHR")],
            &body,
            Some("one-3"),
        ),
        (vec![("cf-ray", "8f-LHR")], &body, Some("msg-id-1")),
        (vec![("cf-ray", "8f-LHR")], "", Some("8f-LHR")),
        (vec![("x-request-id", " ")], "", None),
        (
            vec![],
            "failed, request id: 42abc, try later",
            Some("42abc"),
        ),
        (vec![], "Request ID: XyZ]", Some("XyZ")),
        (vec![], "request id: ...", None),
        (vec![], "", None),
    ];
    for (pairs, body, expected) in rows {
        assert_eq!(
            run(500, &pairs, body).upstream_request_id.as_deref(),
            expected,
            "{pairs:?} {body}"
        );
    }
    // On a success too (for logs).
    assert_eq!(
        run(200, &[("x-request-id", "req_ok")], "")
            .upstream_request_id
            .as_deref(),
        Some("req_ok")
    );
}

#[test]
fn retry_after_is_read_per_kind() {
    let reset = ("x-ratelimit-reset-tokens", "6m0s");
    let explicit = ("retry-after", "2");
    // Success: never a wait, even with OpenAI's reset headers.
    assert_eq!(run(200, &[reset, explicit], "").retry_after, None);
    // A rate limit reads every source.
    assert_eq!(
        run(429, &[reset], "").retry_after,
        Some(Duration::from_secs(360))
    );
    // Other errors: only an explicit request to wait.
    assert_eq!(run(503, &[reset], "").retry_after, None);
    assert_eq!(
        run(503, &[reset, explicit], "").retry_after,
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        run(503, &[("retry-after-ms", "1500")], "").retry_after,
        Some(Duration::from_millis(1500))
    );
}

#[test]
fn success_bodies() {
    let sse = ("content-type", "text/event-stream");
    let rows: Vec<(u16, Pairs, &str, Kind)> = vec![
        (
            200,
            vec![JSON],
            r#"{"id":"chatcmpl-1","choices":[]}"#,
            Kind::Ok,
        ),
        (200, vec![JSON], "", Kind::Ok),
        (204, vec![], "", Kind::Ok),
        (200, vec![sse], "data: {}\n\n", Kind::Ok),
        (
            200,
            vec![("content-type", "audio/mpeg")],
            "ID3\u{3}binary",
            Kind::Ok,
        ),
        (200, vec![], "plain", Kind::Ok),
        // a video task that failed is a successful poll
        (
            200,
            vec![JSON],
            r#"{"id":"t","status":"failed","error":{"message":"x"}}"#,
            Kind::Ok,
        ),
        (200, vec![JSON], r#"{"error":null}"#, Kind::Ok),
        (
            200,
            vec![JSON],
            r#"{"id":"chatcmpl-1","choices":"#,
            Kind::BadUpstreamResponse,
        ),
        (
            200,
            vec![("content-type", "application/json; charset=utf-8")],
            "not json",
            Kind::BadUpstreamResponse,
        ),
        // nothing but an error object: an in-band error
        (
            200,
            vec![JSON],
            r#"{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}"#,
            Kind::RateLimited,
        ),
        (
            200,
            vec![JSON],
            r#"{"error":{"message":"oops","type":"server_error"}}"#,
            Kind::ServerError,
        ),
        // aiapi's {"code","message","data"} with no success in it
        (
            200,
            vec![JSON],
            r#"{"code":"server_error","message":"mock error in a 200","data":null}"#,
            Kind::ServerError,
        ),
        (
            200,
            vec![JSON],
            r#"{"code":"rate_limit_exceeded","message":"slow down"}"#,
            Kind::RateLimited,
        ),
        (
            200,
            vec![JSON],
            r#"{"code":"invalid_request","message":"missing model","data":null}"#,
            Kind::BadRequest,
        ),
        // ... but a success envelope is success (Kling's code 0, data set)
        (
            200,
            vec![JSON],
            r#"{"code":0,"message":"SUCCEED","data":{"task_id":"t1"}}"#,
            Kind::Ok,
        ),
        (
            200,
            vec![JSON],
            r#"{"code":"200","message":"ok","data":null}"#,
            Kind::Ok,
        ),
        (
            200,
            vec![JSON],
            r#"{"code":"x","message":"y","data":null,"id":"not an envelope"}"#,
            Kind::Ok,
        ),
    ];
    for (status, pairs, body, kind) in rows {
        let outcome = run(status, &pairs, body);
        assert_eq!(
            (outcome.kind, outcome.upstream_status),
            (kind, Some(status)),
            "{body}"
        );
    }
    let bad_json = run(200, &[JSON], "{\"a\":");
    assert_eq!(
        bad_json.message.as_deref(),
        Some("The upstream answered 200 OK with a body that is not valid JSON (EOF while parsing a value at line 1 column 5)")
    );
}

#[test]
fn in_band_error_objects() {
    let rows: Vec<(serde_json::Value, Option<u16>, Kind)> = vec![
        (
            json!({"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}),
            None,
            Kind::RateLimited,
        ),
        (
            json!({"message": "x", "type": "rate_limit_error"}),
            None,
            Kind::RateLimited,
        ),
        (
            json!({"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}),
            None,
            Kind::QuotaExceeded,
        ),
        (
            json!({"message": "too long", "type": "invalid_request_error", "code": "context_length_exceeded"}),
            None,
            Kind::ContextLengthExceeded,
        ),
        (
            json!({"message": "blocked", "type": "invalid_request_error", "code": "content_filter"}),
            None,
            Kind::ContentFilter,
        ),
        (
            json!({"message": "bad", "type": "invalid_request_error", "code": null}),
            None,
            Kind::BadRequest,
        ),
        (
            json!({"message": "bad key", "type": "authentication_error"}),
            None,
            Kind::Unauthorized,
        ),
        (
            json!({"message": "nope", "type": "permission_error"}),
            None,
            Kind::Forbidden,
        ),
        (
            json!({"message": "no model", "type": "not_found_error"}),
            None,
            Kind::NotFound,
        ),
        (
            json!({"message": "slow", "type": "timeout_error"}),
            None,
            Kind::Timeout,
        ),
        (
            json!({"message": "The server had an error", "type": "server_error"}),
            None,
            Kind::ServerError,
        ),
        (
            json!({"message": "Overloaded", "type": "overloaded_error"}),
            None,
            Kind::ServerError,
        ),
        (json!({"message": "???"}), None, Kind::ServerError),
        (json!("plain string error"), None, Kind::ServerError),
        (
            json!({"code": 429, "message": "exhausted"}),
            None,
            Kind::RateLimited,
        ),
        (
            json!({"error": {"type": "rate_limit_error", "message": "wrapped"}}),
            None,
            Kind::RateLimited,
        ),
        // With an error status, the status decides as in classify.
        (
            json!({"message": "x", "type": "server_error"}),
            Some(429),
            Kind::RateLimited,
        ),
        (
            json!({"message": "x", "code": "invalid_request"}),
            Some(500),
            Kind::BadRequest,
        ),
        (
            json!({"message": "x", "type": "rate_limit_error"}),
            Some(200),
            Kind::RateLimited,
        ),
    ];
    for (error, status, kind) in rows {
        let outcome = classify_error_object(&error, status);
        assert_eq!(
            (outcome.kind, outcome.upstream_status),
            (kind, status),
            "{error}"
        );
    }
    let full = classify_error_object(
        &json!({"message": "Rate limit (request id: abc-1)", "type": "requests", "param": "", "code": "rate_limit_exceeded"}),
        None,
    );
    assert_eq!(
        full,
        Outcome {
            kind: Kind::RateLimited,
            code: Some("rate_limit_exceeded".into()),
            message: Some("Rate limit (request id: abc-1)".into()),
            upstream_request_id: Some("abc-1".into()),
            ..Outcome::default()
        }
    );
}

#[test]
fn transport_failures() {
    let rows = [
        (
            TransportFailure::Connect,
            "connection refused",
            Kind::ConnectError,
            "Could not connect to the upstream: connection refused",
        ),
        (TransportFailure::Connect, " ", Kind::ConnectError, "Could not connect to the upstream"),
        (
            TransportFailure::FirstByteTimeout,
            "60000 ms",
            Kind::Timeout,
            "The upstream did not start answering within the first-byte timeout: 60000 ms",
        ),
        (
            TransportFailure::Reset,
            "connection reset by peer",
            Kind::ConnectError,
            "The upstream closed or reset the connection before answering: connection reset by peer",
        ),
        (
            TransportFailure::Stalled,
            "no frame for 30000 ms",
            Kind::Timeout,
            "The upstream's answer stalled: no frame for 30000 ms",
        ),
    ];
    for (failure, detail, kind, message) in rows {
        // Only a connection that never opened certainly sent nothing.
        let unsent = failure == TransportFailure::Connect;
        assert_eq!(
            transport(failure, detail),
            Outcome {
                unsent,
                ..Outcome::gateway(kind, message)
            },
            "{failure:?}"
        );
    }
}
