//! Exact bodies of the mock's error answers.

use super::*;

fn body(reply: &ErrorReply) -> &str {
    &reply.body
}

#[test]
fn status_bodies_by_format() {
    let cases: [(u16, ErrorFormat, Option<&str>, &str); 9] = [
        (
            429,
            ErrorFormat::OpenAi,
            Some(JSON),
            r#"{"error":{"message":"mock error 429","type":"rate_limit_error","param":null,"code":"too_many_requests"}}"#,
        ),
        (
            500,
            ErrorFormat::OpenAi,
            Some(JSON),
            r#"{"error":{"message":"mock error 500","type":"server_error","param":null,"code":"internal_server_error"}}"#,
        ),
        (
            400,
            ErrorFormat::OpenAi,
            Some(JSON),
            r#"{"error":{"message":"mock error 400","type":"invalid_request_error","param":null,"code":"bad_request"}}"#,
        ),
        (
            524,
            ErrorFormat::OpenAi,
            Some(JSON),
            r#"{"error":{"message":"mock error 524","type":"server_error","param":null,"code":"a_timeout_occurred"}}"#,
        ),
        (
            500,
            ErrorFormat::Comet,
            Some(JSON),
            r#"{"error":{"message":"mock error 500 (request id: mock-7)","type":"comet_api_error","param":"","code":""}}"#,
        ),
        (
            403,
            ErrorFormat::Code,
            Some(JSON),
            r#"{"code":"forbidden","message":"mock error 403","data":null}"#,
        ),
        (
            502,
            ErrorFormat::Html,
            Some(HTML),
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        ),
        (503, ErrorFormat::Empty, None, ""),
        (504, ErrorFormat::Text, Some(TEXT), "mock error 504"),
    ];
    for (code, format, content_type, want) in cases {
        let reply = status(code, format, 7);
        assert_eq!(reply.status, code);
        assert_eq!(reply.content_type, content_type, "{code} {format:?}");
        assert_eq!(body(&reply), want, "{code} {format:?}");
        assert!(reply.headers.is_empty());
    }
}

#[test]
fn json_bodies_parse() {
    for e in NamedError::ALL {
        let reply = named(e, 3, "gpt-x", "task-1");
        if reply.content_type == Some(JSON) {
            assert!(
                serde_json::from_str::<serde_json::Value>(&reply.body).is_ok(),
                "{e:?}"
            );
        }
    }
}

#[test]
fn named_rows_status_and_body() {
    let cases: Vec<(NamedError, u16, &str)> = vec![
        (
            NamedError::InvalidApiKey,
            401,
            r#"{"code":"invalid_api_key","message":"Invalid API key provided","data":null}"#,
        ),
        (
            NamedError::ExpiredApiKey,
            401,
            r#"{"error":{"message":"API Key expired","type":"authentication_error","param":null,"code":"expired_api_key"}}"#,
        ),
        (
            NamedError::InvalidToken,
            401,
            r#"{"error":{"code":"","message":"invalid token (request id: mock-3)","type":"comet_api_error"}}"#,
        ),
        (
            NamedError::Forbidden,
            403,
            r#"{"error":{"message":"request blocked by WAF (request id: mock-3)","type":"comet_api_error","param":"","code":""}}"#,
        ),
        (
            NamedError::QuotaNotEnough,
            403,
            r#"{"code":"quota_not_enough","message":"user quota is not enough","data":null}"#,
        ),
        (
            NamedError::ModelNotFound,
            404,
            r#"{"code":"model_not_found","message":"model 'gpt-x' not found","data":null}"#,
        ),
        (
            NamedError::TaskNotFound,
            404,
            r#"{"code":"task_not_found","message":"Task with id 'task-1' not found","data":null}"#,
        ),
        (
            NamedError::TaskNotExist,
            404,
            r#"{"code":"task_not_exist","message":"task not exist","data":null}"#,
        ),
        (
            NamedError::MissingModel,
            400,
            r#"{"error":{"message":"model is required","type":"invalid_request_error","param":"model","code":"missing_required_field"}}"#,
        ),
        (
            NamedError::ContextLengthExceeded,
            400,
            r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        ),
        (
            NamedError::InvalidRequest500,
            500,
            r#"{"error":{"message":"field messages is required (request id: mock-3)","type":"comet_api_error","param":"","code":"invalid_request"}}"#,
        ),
        (
            NamedError::RateLimitExceeded,
            429,
            r#"{"code":"rate_limit_exceeded","message":"Rate limit exceeded. Please try again later.","data":{"retry_after":1}}"#,
        ),
        (
            NamedError::InsufficientQuota,
            429,
            r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        ),
        (
            NamedError::ContentFiltered,
            400,
            r#"{"code":"content_filtered","message":"Your request was rejected due to content policy","data":{"reason":"inappropriate_content"}}"#,
        ),
        (
            NamedError::ServiceUnavailable,
            503,
            r#"{"error":{"message":"Service unavailable","type":"server_error","param":null,"code":"service_unavailable"}}"#,
        ),
    ];
    for (e, status, want) in cases {
        let reply = named(e, 3, "gpt-x", "task-1");
        assert_eq!((reply.status, body(&reply)), (status, want), "{e:?}");
    }
}

#[test]
fn named_statuses() {
    let want: [(NamedError, u16); 9] = [
        (NamedError::RevokedApiKey, 401),
        (NamedError::InvalidValue, 400),
        (NamedError::ModelNotSupported, 400),
        (NamedError::ConcurrentLimitExceeded, 429),
        (NamedError::InternalError, 500),
        (NamedError::BadGateway, 502),
        (NamedError::GatewayTimeout, 504),
        (NamedError::Cloudflare524, 524),
        (NamedError::PayloadTooLarge, 413),
    ];
    for (e, status) in want {
        assert_eq!(named(e, 1, "m", "t").status, status, "{e:?}");
    }
    assert_eq!(
        named(NamedError::Cloudflare524, 1, "m", "t").content_type,
        Some(HTML)
    );
}

#[test]
fn rate_limit_headers() {
    let h = |r: ErrorReply| r.headers;
    assert_eq!(
        h(named(NamedError::RateLimitExceeded, 1, "m", "t")),
        vec![
            ("retry-after", "1".to_owned()),
            ("x-ratelimit-limit-requests", "60".to_owned()),
            ("x-ratelimit-remaining-requests", "0".to_owned()),
            ("x-ratelimit-reset-requests", "1s".to_owned()),
        ]
    );
    assert_eq!(
        h(retry_after("2", false)),
        vec![("retry-after", "2".to_owned())]
    );
    assert_eq!(
        h(retry_after("250", true)),
        vec![("retry-after-ms", "250".to_owned())]
    );
    assert_eq!(retry_after("2", false).status, 429);
    assert_eq!(
        body(&retry_after("2", false)),
        r#"{"error":{"message":"Rate limit reached. Please try again in 2s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#
    );
    assert_eq!(
        h(ratelimit_reset("6m0s")).last().cloned(),
        Some(("x-ratelimit-reset-requests", "6m0s".to_owned()))
    );
}

#[test]
fn redirect_and_pages() {
    let r = redirect("/v1/chat/completions?x=1");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.headers,
        vec![(
            "location",
            "https://example.invalid/v1/chat/completions?x=1".to_owned()
        )]
    );
    assert!(r.body.contains("301 Moved Permanently"));
    assert_eq!((html().status, html().content_type), (200, Some(HTML)));
    assert_eq!(
        body(&unknown_url("POST", "/v1/nope")),
        r#"{"error":{"message":"Invalid URL (POST /v1/nope)","type":"invalid_request_error","param":null,"code":"unknown_url"}}"#
    );
    assert_eq!(
        body(&bad_directive("x-mock-chunks", "x-mock-chunks: 'a' is bad")),
        r#"{"error":{"message":"backstop-mock: x-mock-chunks: 'a' is bad","type":"invalid_request_error","param":"x-mock-chunks","code":"mock_bad_directive"}}"#
    );
}

#[test]
fn error_bodies_in_a_200() {
    let cases = [
        (
            ErrorBodyFormat::OpenAi,
            r#"{"error":{"message":"mock error in a 200","type":"server_error","code":"server_error"}}"#,
        ),
        (
            ErrorBodyFormat::Code,
            r#"{"code":"server_error","message":"mock error in a 200","data":null}"#,
        ),
        (
            ErrorBodyFormat::Named("rate_limit_exceeded".into()),
            r#"{"error":{"message":"mock error in a 200","type":"rate_limit_exceeded","code":"rate_limit_exceeded"}}"#,
        ),
    ];
    for (format, want) in cases {
        let reply = error_body(&format);
        assert_eq!(
            (reply.status, reply.content_type, body(&reply)),
            (200, Some(JSON), want),
            "{format:?}"
        );
    }
}

#[test]
fn retry_after_5xx_is_a_503_with_the_header() {
    let reply = retry_after_5xx("7");
    assert_eq!(reply.status, 503);
    assert_eq!(reply.headers, vec![("retry-after", "7".to_owned())]);
    assert_eq!(
        body(&reply),
        r#"{"error":{"message":"Service unavailable. Please try again in 7s.","type":"server_error","param":null,"code":"service_unavailable"}}"#
    );
    assert_eq!(
        body(&response_not_found("resp_x")),
        r#"{"error":{"message":"Response with id 'resp_x' not found.","type":"invalid_request_error","param":null,"code":null}}"#
    );
}
