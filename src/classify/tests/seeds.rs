//! One row per case of the provider docs: seeds/002 (CometAPI quick
//! triage), seeds/003 (error code tables), seeds/004 (flat
//! `{"code","message","data"}` bodies, rate-limit headers), and the status
//! tables of seeds/000 and seeds/001.

use std::time::Duration;

use serde_json::json;

use super::*;

#[test]
fn seed_002_comet_quick_triage() {
    let invalid_request = openai(
        "field messages is required (request id: 20250101000000123ABC)",
        "comet_api_error",
        json!(""),
        json!("invalid_request"),
    );
    let invalid_token = json!({"error": {
        "code": "", "message": "invalid token (request id: 2025010112345678)", "type": "comet_api_error"
    }})
    .to_string();
    let rows: Vec<(u16, String, Outcome)> = vec![
        (
            400,
            openai(
                "model is required",
                "comet_api_error",
                json!("model"),
                json!(""),
            ),
            expect(
                Kind::BadRequest,
                400,
                None,
                Some("model is required"),
                Some("model"),
                None,
            ),
        ),
        (
            401,
            invalid_token,
            expect(
                Kind::Unauthorized,
                401,
                None,
                Some("invalid token (request id: 2025010112345678)"),
                None,
                Some("2025010112345678"),
            ),
        ),
        (
            403,
            openai(
                "request blocked",
                "comet_api_error",
                json!(null),
                json!(null),
            ),
            expect(
                Kind::Forbidden,
                403,
                None,
                Some("request blocked"),
                None,
                None,
            ),
        ),
        (
            429,
            openai("too many requests", "comet_api_error", json!(""), json!("")),
            expect(
                Kind::RateLimited,
                429,
                None,
                Some("too many requests"),
                None,
                None,
            ),
        ),
        (
            500,
            invalid_request,
            expect(
                Kind::BadRequest,
                500,
                Some("invalid_request"),
                Some("field messages is required (request id: 20250101000000123ABC)"),
                None,
                Some("20250101000000123ABC"),
            ),
        ),
        (
            500,
            openai("upstream error", "comet_api_error", json!(""), json!("")),
            expect(
                Kind::ServerError,
                500,
                None,
                Some("upstream error"),
                None,
                None,
            ),
        ),
        (
            503,
            String::new(),
            expect(Kind::ServerError, 503, None, None, None, None),
        ),
        (
            504,
            String::new(),
            expect(Kind::Timeout, 504, None, None, None, None),
        ),
        (
            524,
            String::new(),
            expect(Kind::Timeout, 524, None, None, None, None),
        ),
        (
            413,
            String::new(),
            expect(Kind::PayloadTooLarge, 413, None, None, None, None),
        ),
    ];
    for (status, body, expected) in rows {
        assert_eq!(run(status, &[JSON], &body), expected, "{status} {body}");
    }
}

#[test]
fn seed_002_path_mistakes_are_bad_upstream_responses() {
    let redirect = run(
        301,
        &[("location", "https://api.cometapi.com/v1/chat/completions")],
        "",
    );
    assert_eq!(redirect.kind, Kind::BadUpstreamResponse);
    assert_eq!(redirect.upstream_status, Some(301));
    assert_eq!(
        redirect.message.as_deref(),
        Some(
            "The upstream answered 301 Moved Permanently, a redirect to \
             https://api.cometapi.com/v1/chat/completions (not followed): \
             the upstream base URL probably lacks /v1 or is wrong"
        )
    );
    let no_location = run(308, &[], "");
    assert_eq!(
        no_location.message.as_deref(),
        Some(
            "The upstream answered 308 Permanent Redirect, a redirect without a Location \
             (not followed): the upstream base URL probably lacks /v1 or is wrong"
        )
    );
    let html = run(
        200,
        &[("content-type", "text/html; charset=utf-8")],
        "<!doctype html><html><head><title>CometAPI &amp; Console</title></head><body>app</body></html>",
    );
    assert_eq!(
        html,
        expect(
            Kind::BadUpstreamResponse,
            200,
            None,
            Some(
                "The upstream answered 200 OK with an HTML page (CometAPI & Console) instead of \
                 JSON: the upstream base URL is probably wrong or lacks /v1"
            ),
            None,
            None,
        )
    );
    // No content type, but the body is markup.
    assert_eq!(
        run(200, &[], "  <html><body>hi</body></html>").kind,
        Kind::BadUpstreamResponse
    );
}

#[test]
fn seed_003_error_code_tables() {
    let rows = [
        (401, "invalid_api_key", Kind::Unauthorized),
        (401, "expired_api_key", Kind::Unauthorized),
        (401, "revoked_api_key", Kind::Unauthorized),
        (400, "missing_required_field", Kind::BadRequest),
        (400, "invalid_value", Kind::BadRequest),
        (400, "model_not_supported", Kind::BadRequest),
        (400, "context_length_exceeded", Kind::ContextLengthExceeded),
        (429, "rate_limit_exceeded", Kind::RateLimited),
        (429, "insufficient_quota", Kind::QuotaExceeded),
        (429, "concurrent_limit_exceeded", Kind::RateLimited),
        (500, "internal_error", Kind::ServerError),
        (503, "service_unavailable", Kind::ServerError),
        (403, "permission_denied", Kind::Forbidden),
        (404, "not_found", Kind::NotFound),
    ];
    for (status, code, kind) in rows {
        let body = openai(
            "Error description",
            "Error type",
            json!("messages"),
            json!(code),
        );
        let expected = expect(
            kind,
            status,
            Some(code),
            Some("Error description"),
            Some("messages"),
            None,
        );
        assert_eq!(run(status, &[JSON], &body), expected, "{status} {code}");
    }
}

#[test]
fn seed_004_flat_code_message_data_bodies() {
    let rows = [
        (
            403,
            "quota_not_enough",
            "user quota is not enough",
            Kind::QuotaExceeded,
        ),
        (
            401,
            "invalid_api_key",
            "Invalid API key provided",
            Kind::Unauthorized,
        ),
        (
            404,
            "model_not_found",
            "model 'invalid-model-name' not found",
            Kind::NotFound,
        ),
        (
            400,
            "invalid_request_error",
            "Invalid parameter: max_tokens must be a positive integer",
            Kind::BadRequest,
        ),
        (
            404,
            "task_not_found",
            "Task with id 'abc123' not found",
            Kind::NotFound,
        ),
        (
            500,
            "internal_error",
            "Internal Server Error",
            Kind::ServerError,
        ),
        (
            502,
            "bad_gateway",
            "Upstream service temporarily unavailable",
            Kind::ServerError,
        ),
        (
            503,
            "service_unavailable",
            "Service maintenance",
            Kind::ServerError,
        ),
    ];
    for (status, code, message, kind) in rows {
        let expected = expect(kind, status, Some(code), Some(message), None, None);
        assert_eq!(
            run(status, &[JSON], &comet(code, message)),
            expected,
            "{status} {code}"
        );
    }
    let filtered = json!({"code": "content_filtered",
        "message": "Your request was rejected due to content policy",
        "data": {"reason": "inappropriate_content"}});
    assert_eq!(
        run(400, &[JSON], &filtered.to_string()),
        expect(
            Kind::ContentFilter,
            400,
            Some("content_filtered"),
            Some("Your request was rejected due to content policy"),
            None,
            None
        )
    );
}

#[test]
fn seed_004_rate_limit_with_headers_and_body_wait() {
    let body = json!({"code": "rate_limit_exceeded",
        "message": "Rate limit exceeded. Please try again later.",
        "data": {"retry_after": 60}})
    .to_string();
    let seed_headers = [
        ("X-RateLimit-Limit-Requests", "60"),
        ("X-RateLimit-Remaining-Requests", "0"),
        ("X-RateLimit-Reset-Requests", "1640995200"),
        ("Retry-After", "60"),
    ];
    let mut expected = expect(
        Kind::RateLimited,
        429,
        Some("rate_limit_exceeded"),
        Some("Rate limit exceeded. Please try again later."),
        None,
        None,
    );
    expected.retry_after = Some(Duration::from_secs(60));
    assert_eq!(run(429, &seed_headers, &body), expected);
    // Without Retry-After: the reset stamp (100 s from now).
    expected.retry_after = Some(Duration::from_secs(100));
    assert_eq!(run(429, &seed_headers[..3], &body), expected);
    // Without any header: the body's data.retry_after.
    expected.retry_after = Some(Duration::from_secs(60));
    assert_eq!(run(429, &[], &body), expected);
}

#[test]
fn seeds_000_001_status_tables() {
    let rows = [
        (200, Kind::Ok),
        (201, Kind::Ok),
        (204, Kind::Ok),
        (400, Kind::BadRequest),
        (401, Kind::Unauthorized),
        (403, Kind::Forbidden),
        (404, Kind::NotFound),
        (408, Kind::Timeout),
        (409, Kind::BadRequest),
        (413, Kind::PayloadTooLarge),
        (418, Kind::BadRequest),
        (422, Kind::BadRequest),
        (429, Kind::RateLimited),
        (500, Kind::ServerError),
        (501, Kind::ServerError),
        (502, Kind::ServerError),
        (503, Kind::ServerError),
        (504, Kind::Timeout),
        (520, Kind::ServerError),
        (524, Kind::Timeout),
        (529, Kind::ServerError),
        (101, Kind::BadUpstreamResponse),
        (302, Kind::BadUpstreamResponse),
    ];
    for (status, kind) in rows {
        let outcome = run(status, &[], "");
        assert_eq!(
            (outcome.kind, outcome.upstream_status),
            (kind, Some(status)),
            "{status}"
        );
    }
}
