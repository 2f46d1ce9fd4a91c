//! Exact envelopes, the status table, redaction and header rules.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::classify::{classify, transport, TransportFailure};
use crate::outcome::Subject;

const KEY: &str = "sk-live-0123456789abcdef";

/// The request's secrets: a client that sent `KEY`.
static SECRETS: std::sync::LazyLock<crate::secrets::Secrets> = std::sync::LazyLock::new(|| {
    let mut h = http::HeaderMap::new();
    h.insert(
        "authorization",
        http::HeaderValue::from_static("Bearer sk-live-0123456789abcdef"),
    );
    crate::secrets::Secrets::default().with_client(&h, &http::Uri::from_static("/v1/x"))
});

fn ctx(attempts: u32) -> EnvelopeContext<'static> {
    EnvelopeContext {
        attempts,
        request_id: "req-local-1",
        secrets: &SECRETS,
        max_attempts: 3,
        target: None,
        attempt_kinds: &[],
        endpoint: Endpoint::ChatCompletions,
        actions: Actions::of(&crate::config::InspectConfig::default()),
        // The exact-body tests below read the upstream's message alone;
        // the tail has its own tests.
        hint_in_message: false,
    }
}

fn json_of(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).expect("envelope is JSON")
}

fn upstream(status: u16, body: Value) -> Outcome {
    let status = StatusCode::from_u16(status).expect("status");
    classify(status, &HeaderMap::new(), body.to_string().as_bytes())
}

#[test]
fn rate_limited_envelope_is_exact() {
    let outcome = Outcome {
        kind: Kind::RateLimited,
        upstream_status: Some(429),
        retry_after: Some(Duration::from_millis(2500)),
        code: Some("rate_limit_exceeded".into()),
        message: Some("Rate limit reached for gpt-4o".into()),
        upstream_request_id: Some("req_up_9".into()),
        ..Outcome::default()
    };
    assert_eq!(
        json_of(&body(&outcome, &ctx(3))),
        json!({"error": {
            "message": "Rate limit reached for gpt-4o",
            "type": "rate_limit_error",
            "param": null,
            "code": "rate_limit_exceeded",
            "backstop": {
                "class": "hard", "kind": "rate_limited", "retryable": true,
                "attempts": 3, "upstream_status": 429,
                "request_id": "req-local-1", "upstream_request_id": "req_up_9",
                "hint": "Wait for retry-after, then back off exponentially with jitter and reduce concurrency"
            }
        }})
    );
}

#[test]
fn comet_500_invalid_request_goes_out_as_400_bad_request() {
    let outcome = upstream(
        500,
        json!({"error": {"message": "field messages is required (request id: 2025ABC)",
            "type": "comet_api_error", "param": "", "code": "invalid_request"}}),
    );
    assert_eq!(client_status(&outcome), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(&body(&outcome, &ctx(1))),
        json!({"error": {
            "message": "field messages is required (request id: 2025ABC)",
            "type": "invalid_request_error",
            "param": null,
            "code": "invalid_request",
            "backstop": {
                "class": "hard", "kind": "bad_request", "retryable": false,
                "attempts": 1, "upstream_status": 500,
                "request_id": "req-local-1", "upstream_request_id": "2025ABC",
                "hint": "Fix the request before retrying: check error.param, then validate `model`, `messages`, the JSON shape and field types"
            }
        }})
    );
}

#[test]
fn gateway_timeout_without_message_gets_a_default_one() {
    let outcome = Outcome::of(Kind::Timeout);
    assert_eq!(client_status(&outcome), StatusCode::GATEWAY_TIMEOUT);
    let envelope = json_of(&body(&outcome, &ctx(3)));
    assert_eq!(
        envelope["error"]["message"],
        "The upstream did not answer in time"
    );
    assert_eq!(envelope["error"]["type"], "timeout_error");
    assert_eq!(
        envelope["error"]["backstop"]["upstream_status"],
        Value::Null
    );
    assert_eq!(
        envelope["error"]["backstop"]["upstream_request_id"],
        Value::Null
    );
    // An upstream error status without a message is named in the default.
    let empty_503 = Outcome {
        upstream_status: Some(503),
        ..Outcome::of(Kind::ServerError)
    };
    assert_eq!(
        json_of(&body(&empty_503, &ctx(3)))["error"]["message"],
        "The upstream failed with a server error (upstream status 503)"
    );
}

#[test]
fn soft_failure_envelope_carries_model_and_finish_reason() {
    let outcome = Outcome {
        kind: Kind::ContentFilter,
        upstream_status: Some(200),
        message: Some("The output was blocked by the content filter".into()),
        model: Some("gpt-5.4-mini".into()),
        finish_reason: Some("content_filter".into()),
        ..Outcome::default()
    };
    assert_eq!(client_status(&outcome), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(&body(&outcome, &ctx(1))),
        json!({"error": {
            "message": "The output was blocked by the content filter",
            "type": "invalid_request_error",
            "param": null,
            "code": null,
            "backstop": {
                "class": "soft", "kind": "content_filter", "retryable": false,
                "attempts": 1, "upstream_status": 200,
                "request_id": "req-local-1", "upstream_request_id": null,
                "hint": "Rephrase the prompt; avoid the specific names or topics the provider's safety filter blocks",
                "model": "gpt-5.4-mini", "finish_reason": "content_filter"
            }
        }})
    );
}

#[test]
fn status_table() {
    let with = |kind: Kind, status: Option<u16>| Outcome {
        upstream_status: status,
        ..Outcome::of(kind)
    };
    let rows = [
        (with(Kind::Ok, Some(200)), 200),
        (with(Kind::Ok, Some(201)), 201),
        (with(Kind::Ok, None), 200),
        (with(Kind::BadRequest, Some(400)), 400),
        (with(Kind::BadRequest, Some(422)), 422),
        (with(Kind::BadRequest, Some(500)), 400),
        (with(Kind::BadRequest, None), 400),
        (with(Kind::ContextLengthExceeded, Some(400)), 400),
        (with(Kind::ContextLengthExceeded, None), 400),
        (with(Kind::Unauthorized, Some(401)), 401),
        (with(Kind::Unauthorized, None), 401),
        (with(Kind::Forbidden, Some(403)), 403),
        (with(Kind::QuotaExceeded, Some(403)), 403),
        (with(Kind::QuotaExceeded, Some(429)), 429),
        (with(Kind::QuotaExceeded, None), 429),
        (with(Kind::NotFound, Some(404)), 404),
        (with(Kind::PayloadTooLarge, None), 413),
        (with(Kind::PayloadTooLarge, Some(413)), 413),
        (with(Kind::RateLimited, Some(429)), 429),
        (with(Kind::RateLimited, Some(200)), 429),
        (with(Kind::RateLimited, None), 429),
        (with(Kind::ServerError, Some(502)), 502),
        (with(Kind::ServerError, Some(503)), 503),
        (with(Kind::ServerError, Some(200)), 502),
        (with(Kind::ServerError, None), 502),
        (with(Kind::Timeout, Some(504)), 504),
        (with(Kind::Timeout, Some(524)), 524),
        (with(Kind::Timeout, Some(408)), 408),
        (with(Kind::Timeout, None), 504),
        (with(Kind::ConnectError, None), 502),
        (with(Kind::BadUpstreamResponse, Some(301)), 502),
        (with(Kind::BadUpstreamResponse, Some(200)), 502),
        (with(Kind::ContentFilter, Some(400)), 400),
        (with(Kind::ContentFilter, Some(200)), 400),
        (with(Kind::Length, Some(200)), 502),
        (with(Kind::EmptyData, Some(200)), 502),
        (with(Kind::EmptyContent, Some(200)), 502),
        (with(Kind::InvalidJson, Some(200)), 502),
        (with(Kind::SchemaMismatch, Some(200)), 502),
        (with(Kind::StreamTruncated, Some(200)), 502),
        (with(Kind::MalformedEvent, Some(200)), 502),
    ];
    for (outcome, status) in rows {
        assert_eq!(client_status(&outcome).as_u16(), status, "{outcome:?}");
    }
    // Transport failures.
    let connect = transport(TransportFailure::Connect, "refused");
    assert_eq!(client_status(&connect), StatusCode::BAD_GATEWAY);
    let first_byte = transport(TransportFailure::FirstByteTimeout, "");
    assert_eq!(client_status(&first_byte), StatusCode::GATEWAY_TIMEOUT);
}

#[test]
fn hints_are_specific() {
    let redirect = Outcome {
        upstream_status: Some(301),
        ..Outcome::of(Kind::BadUpstreamResponse)
    };
    assert_eq!(
        hint(&redirect, Endpoint::ChatCompletions),
        "The upstream base URL is probably wrong: it must include /v1 (e.g. https://api.cometapi.com/v1)"
    );
    assert_eq!(
        hint(&Outcome::of(Kind::Unauthorized), Endpoint::ChatCompletions),
        "Check the header is exactly `Authorization: Bearer <key>` and the key is current"
    );
    assert_eq!(
        hint(
            &Outcome::of(Kind::ContextLengthExceeded),
            Endpoint::ChatCompletions
        ),
        "Reduce the messages or max_tokens to fit the model's context window"
    );
    let own_413 = Outcome::of(Kind::PayloadTooLarge);
    let upstream_413 = Outcome {
        upstream_status: Some(413),
        ..Outcome::of(Kind::PayloadTooLarge)
    };
    assert_ne!(
        hint(&own_413, Endpoint::Other),
        hint(&upstream_413, Endpoint::Other)
    );
    for kind in Kind::ALL {
        for endpoint in [
            Endpoint::ChatCompletions,
            Endpoint::Responses,
            Endpoint::Embeddings,
            Endpoint::Other,
        ] {
            let line = hint(&Outcome::of(kind), endpoint);
            assert!(
                !line.is_empty() && !line.contains('\n') && !line.contains("  "),
                "{kind}"
            );
        }
    }
}

#[test]
fn hints_speak_the_called_apis_words() {
    let tool = |kind| Outcome {
        subject: Subject::ToolArguments,
        ..Outcome::of(kind)
    };
    use Endpoint::{ChatCompletions as Chat, Embeddings, Responses, Transcriptions};
    let rows = [
        (Outcome::of(Kind::Length), Chat, "Raise max_tokens or shorten the prompt"),
        (Outcome::of(Kind::Length), Responses, "Raise max_output_tokens (reasoning tokens count against it) or shorten the input"),
        (tool(Kind::Length), Chat, "Raise max_tokens: the tool call's arguments were cut before they closed"),
        (Outcome::of(Kind::InvalidJson), Chat, "Use response_format json_schema, or tell the model to answer with valid JSON only"),
        (Outcome::of(Kind::InvalidJson), Responses, "Use text.format json_schema, or tell the model to answer with valid JSON only"),
        (tool(Kind::InvalidJson), Chat, "The tool call's arguments are not valid JSON: set `strict: true` on the function definition, or simplify its parameters"),
        (tool(Kind::InvalidJson), Responses, "The tool call's arguments are not valid JSON: set `strict: true` on the function definition, or simplify its parameters"),
        (tool(Kind::SchemaMismatch), Chat, "The tool call's arguments do not match the function's parameters: set `strict: true` on the function definition, or simplify its schema"),
        (Outcome::of(Kind::SchemaMismatch), Responses, "Simplify the schema in text.format or set `strict: true`; check the instructions describe every required field"),
        (Outcome::of(Kind::EmptyContent), Responses, "The response has no output text and no function call: log the full response and make the instructions more explicit; retrying may help"),
        (Outcome::of(Kind::EmptyContent), Transcriptions, "The audio may be silent, too short or in an unsupported format: check the file and the `language` parameter"),
        (Outcome::of(Kind::EmptyData), Embeddings, "Check every input is a non-empty string or token array, then retry; send fewer inputs per request if it repeats"),
        (Outcome::of(Kind::EmptyData), Endpoint::ImagesGenerations, "The prompt was probably filtered: check revised_prompt and rephrase it"),
        (Outcome::of(Kind::ContextLengthExceeded), Responses, "Shorten the input or lower max_output_tokens to fit the model's context window, or send `truncation: \"auto\"`"),
        (Outcome::of(Kind::BadRequest), Responses, "Fix the request before retrying: check error.param, then validate `model`, `input`, `text.format`, the JSON shape and field types"),
    ];
    for (outcome, endpoint, line) in rows {
        assert_eq!(
            hint(&outcome, endpoint),
            line,
            "{:?} {endpoint:?}",
            outcome.kind
        );
    }
}

#[test]
fn the_hint_ends_the_message_unless_turned_off() {
    let outcome = Outcome {
        upstream_status: Some(503),
        message: Some("mock error 503".into()),
        ..Outcome::of(Kind::ServerError)
    };
    let on = EnvelopeContext {
        hint_in_message: true,
        ..ctx(3)
    };
    assert_eq!(
        json_of(&body(&outcome, &on))["error"]["message"],
        "mock error 503 [backstop: server_error after 3 attempt(s): Retry later with backoff \
         and keep the upstream request id; try another model if it persists]"
    );
    assert_eq!(
        json_of(&body(&outcome, &ctx(3)))["error"]["message"],
        "mock error 503"
    );
    // Without an upstream message, the gateway's own comes first.
    let own = Outcome::of(Kind::Overloaded);
    assert_eq!(
        json_of(&body(&own, &EnvelopeContext { hint_in_message: true, ..ctx(0) }))["error"]["message"],
        "The gateway is overloaded and shed this request before any upstream attempt \
         [backstop: overloaded after 0 attempt(s): The gateway is at its in-flight limit \
         (limits.max_inflight): retry after retry-after with backoff, or give the gateway more capacity]"
    );
    // Secrets in the upstream's message stay out of the tail's message too.
    let echoed = Outcome {
        message: Some(format!("bad key {KEY}")),
        ..Outcome::of(Kind::Unauthorized)
    };
    let text = json_of(&body(&echoed, &on))["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !text.contains(KEY) && text.starts_with("bad key [REDACTED] [backstop: unauthorized"),
        "{text}"
    );
}

#[test]
fn retryable_follows_the_policy_in_force() {
    use crate::config::Action;
    let retrying = Actions {
        empty_content: Action::Retry,
        length: Action::Fail,
        ..ctx(3).actions
    };
    let policy = EnvelopeContext {
        actions: retrying,
        ..ctx(3)
    };
    let rows = [
        (Kind::EmptyContent, true),
        (Kind::Length, false),
        (Kind::ServerError, true),
        (Kind::Overloaded, true),
        (Kind::Shutdown, true),
        (Kind::BadRequest, false),
        (Kind::ClientClosed, false),
    ];
    for (kind, retryable) in rows {
        let envelope = json_of(&body(&Outcome::of(kind), &policy));
        assert_eq!(
            envelope["error"]["backstop"]["retryable"], retryable,
            "{kind}"
        );
    }
}

#[test]
fn secrets_are_redacted_from_upstream_text() {
    let outcome = Outcome {
        kind: Kind::Unauthorized,
        upstream_status: Some(401),
        message: Some(format!(
            "Incorrect API key provided: {KEY}. Key {KEY}-x too."
        )),
        param: Some(format!("key={KEY}")),
        code: Some(KEY.to_owned()),
        upstream_request_id: Some(KEY.to_owned()),
        ..Outcome::default()
    };
    let bytes = body(&outcome, &ctx(1));
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
    assert!(!text.contains(KEY), "{text}");
    let envelope = json_of(&bytes);
    assert_eq!(
        envelope["error"]["message"],
        "Incorrect API key provided: [REDACTED]. Key [REDACTED]-x too."
    );
    assert_eq!(envelope["error"]["param"], "key=[REDACTED]");
    assert_eq!(envelope["error"]["code"], "[REDACTED]");
    // Also on a stream's error event.
    let event = sse_error_event(&outcome, &ctx(1), ErrorStyle::Data);
    assert!(!String::from_utf8_lossy(&event).contains(KEY));
}

#[test]
fn header_rules() {
    let get =
        |map: &HeaderMap, name: &str| map.get(name).map(|v| v.to_str().expect("ascii").to_owned());
    let rate = |wait: Option<Duration>| Outcome {
        retry_after: wait,
        upstream_status: Some(429),
        ..Outcome::of(Kind::RateLimited)
    };

    let map = headers(&rate(None), &ctx(3));
    assert_eq!(
        get(&map, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(get(&map, "x-backstop-attempts").as_deref(), Some("3"));
    assert_eq!(get(&map, "x-backstop-class").as_deref(), Some("hard"));
    assert_eq!(
        get(&map, "x-backstop-kind").as_deref(),
        Some("rate_limited")
    );
    assert_eq!(get(&map, "x-should-retry").as_deref(), Some("false"));
    assert_eq!(get(&map, "retry-after").as_deref(), Some("1"));

    // retry-after: ceil, clamped to [1, 60], only on rate_limited.
    for (wait, expected) in [(200, "1"), (2500, "3"), (90_000, "60"), (0, "1")] {
        let map = headers(&rate(Some(Duration::from_millis(wait))), &ctx(3));
        assert_eq!(
            get(&map, "retry-after").as_deref(),
            Some(expected),
            "{wait} ms"
        );
    }
    let server = Outcome {
        retry_after: Some(Duration::from_secs(5)),
        ..Outcome::of(Kind::ServerError)
    };
    assert_eq!(get(&headers(&server, &ctx(3)), "retry-after"), None);

    // x-should-retry: absent on success, and on a retryable failure when
    // the gateway does not retry (max_attempts = 1); never "true".
    let single = EnvelopeContext {
        max_attempts: 1,
        ..ctx(1)
    };
    let rows = [
        (Kind::Ok, ctx(1), None),
        (Kind::ServerError, ctx(3), Some("false")),
        (Kind::ServerError, single, None),
        (Kind::Timeout, single, None),
        (Kind::RateLimited, single, None),
        (Kind::ConnectError, single, None),
        (Kind::BadRequest, single, Some("false")),
        (Kind::ContentFilter, single, Some("false")),
        (Kind::EmptyContent, ctx(2), Some("false")),
    ];
    for (kind, context, expected) in rows {
        let map = headers(&Outcome::of(kind), &context);
        assert_eq!(get(&map, "x-should-retry").as_deref(), expected, "{kind}");
        assert_eq!(get(&map, "x-backstop-kind").as_deref(), Some(kind.as_str()));
        assert_eq!(
            get(&map, "x-backstop-class").as_deref(),
            Some(kind.class().as_str())
        );
    }
    // The gateway's own 413: zero attempts.
    let own = headers(&Outcome::of(Kind::PayloadTooLarge), &ctx(0));
    assert_eq!(get(&own, "x-backstop-attempts").as_deref(), Some("0"));
}

#[test]
fn response_and_sse_event_carry_the_same_envelope() {
    let outcome = upstream(
        503,
        json!({"error": {"message": "overloaded", "type": "server_error"}}),
    );
    let res = response(&outcome, &ctx(3));
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers(), &headers(&outcome, &ctx(3)));
    assert_eq!(res.body(), &body(&outcome, &ctx(3)));

    let named = sse_error_event(&outcome, &ctx(3), ErrorStyle::Named { sequence_number: 7 });
    let data = std::str::from_utf8(&named)
        .unwrap()
        .strip_prefix("event: error\ndata: ")
        .and_then(|t| t.strip_suffix("\n\n"))
        .expect("the Responses API's named event");
    let error = json_of(res.body())["error"].clone();
    assert_eq!(
        serde_json::from_str::<Value>(data).unwrap(),
        json!({"type": "error", "sequence_number": 7, "code": error["code"],
            "message": error["message"], "param": null, "error": error})
    );
    let event = sse_error_event(&outcome, &ctx(3), ErrorStyle::Data);
    let text = std::str::from_utf8(&event).expect("utf-8");
    let data = text
        .strip_prefix("data: ")
        .and_then(|t| t.strip_suffix("\n\n"))
        .expect("one event");
    assert!(!data.contains('\n'));
    assert_eq!(
        serde_json::from_str::<Value>(data).expect("json"),
        json_of(res.body())
    );
    assert_eq!(json_of(res.body())["error"]["message"], "overloaded");
}

#[test]
fn the_attempts_header_is_the_count_in_digits() {
    for (n, want) in [(0, "0"), (1, "1"), (9, "9"), (10, "10"), (123, "123")] {
        assert_eq!(attempts_value(n), want, "{n}");
    }
}
