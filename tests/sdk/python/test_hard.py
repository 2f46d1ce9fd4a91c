"""Hard failures through the official Python SDK with its DEFAULT retry
settings: every error comes back as the gateway's envelope, raises the SDK's
exception class for its status, keeps the upstream's message verbatim and
then the gateway's `[backstop: ...]` hint tail, exactly, and carries
`x-should-retry: false` so the SDK adds no attempts of its own (the mock's
per-key counter proves it)."""

from __future__ import annotations

import re
import time
from typing import Any

import openai
import pytest

import harness
from harness import HELLO, MESSAGES, MODEL

# `type` of the envelope, by kind (CONTRACT §3).
TYPE_BY_KIND = {
    "bad_request": "invalid_request_error",
    "unauthorized": "authentication_error",
    "forbidden": "permission_error",
    "not_found": "not_found_error",
    "quota_exceeded": "insufficient_quota",
    "server_error": "server_error",
}


# In an expected message: the envelope's `upstream_request_id`.
UPSTREAM_ID = "<upstream_request_id>"


def call_error(client: openai.OpenAI, steps: str, key: str, cls: type[openai.APIStatusError]) -> openai.APIStatusError:
    """Make one chat call with scenario `steps` and return the exception,
    which must be exactly `cls`."""
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=harness.scenario(steps, key))
    err = info.value
    assert type(err) is cls, f"{type(err).__name__}: {err}"
    return err


def assert_envelope(
    err: openai.APIStatusError,
    *,
    status: int,
    kind: str,
    retryable: bool,
    attempts: int,
    upstream_status: int,
    message: str | None = None,
) -> dict[str, Any]:
    """The exception's status, headers and envelope body, exactly."""
    assert err.status_code == status
    headers = err.response.headers
    assert headers.get("x-should-retry") == "false"
    assert headers.get("x-backstop-class") == "hard"
    assert headers.get("x-backstop-kind") == kind
    assert headers.get("x-backstop-attempts") == str(attempts)

    body = err.body
    assert isinstance(body, dict), body
    assert set(body) >= {"message", "type", "param", "code", "backstop"}, body
    assert body["type"] == TYPE_BY_KIND[kind]
    backstop = body["backstop"]
    assert backstop["class"] == "hard"
    assert backstop["kind"] == kind
    assert backstop["retryable"] is retryable
    assert backstop["attempts"] == attempts
    assert backstop["upstream_status"] == upstream_status
    assert backstop["request_id"] == headers.get("x-request-id")
    assert re.fullmatch(r"mock-\d+", backstop["upstream_request_id"] or ""), backstop
    assert isinstance(backstop["hint"], str) and backstop["hint"]
    if message is not None:
        # The upstream's message verbatim (UPSTREAM_ID standing for the
        # request id some of the mock's messages carry), then the hint tail.
        message = message.replace(UPSTREAM_ID, backstop["upstream_request_id"])
        tail = f" [backstop: {kind} after {attempts} attempt(s): {backstop['hint']}]"
        assert body["message"] == message + tail
        assert err.message == f"Error code: {status} - {message}{tail}"
    return body


def test_missing_model_is_400_bad_request(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    err = call_error(client, "error:missing_model", key, openai.BadRequestError)
    body = assert_envelope(
        err, status=400, kind="bad_request", retryable=False, attempts=1, upstream_status=400,
        message="model is required",
    )
    assert body["param"] == "model"
    assert body["code"] == "missing_required_field"
    assert harness.mock_attempts(mock.url, key) == 1


def test_invalid_api_key_is_401_authentication_error(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    err = call_error(client, "error:invalid_api_key", key, openai.AuthenticationError)
    body = assert_envelope(
        err, status=401, kind="unauthorized", retryable=False, attempts=1, upstream_status=401,
        message="Invalid API key provided",
    )
    assert body["code"] == "invalid_api_key"
    assert harness.mock_attempts(mock.url, key) == 1


def test_forbidden_is_403_permission_denied(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    err = call_error(client, "error:forbidden", key, openai.PermissionDeniedError)
    assert_envelope(
        err, status=403, kind="forbidden", retryable=False, attempts=1, upstream_status=403,
        message=f"request blocked by WAF (request id: {UPSTREAM_ID})",
    )
    assert harness.mock_attempts(mock.url, key) == 1


def test_model_not_found_is_404_not_found(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    err = call_error(client, "error:model_not_found", key, openai.NotFoundError)
    body = assert_envelope(
        err, status=404, kind="not_found", retryable=False, attempts=1, upstream_status=404,
        message=f"model '{MODEL}' not found",
    )
    assert body["code"] == "model_not_found"
    assert harness.mock_attempts(mock.url, key) == 1


def test_insufficient_quota_is_429_rate_limit_error_quota_exceeded(
    client: openai.OpenAI, mock: harness.Server, key: str
) -> None:
    err = call_error(client, "error:insufficient_quota", key, openai.RateLimitError)
    body = assert_envelope(
        err, status=429, kind="quota_exceeded", retryable=False, attempts=1, upstream_status=429,
        message="You exceeded your current quota, please check your plan and billing details.",
    )
    assert body["code"] == "insufficient_quota"
    assert harness.mock_attempts(mock.url, key) == 1


def test_internal_error_500_after_exactly_three_attempts(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    err = call_error(client, "error:internal_error", key, openai.InternalServerError)
    body = assert_envelope(
        err, status=500, kind="server_error", retryable=True, attempts=3, upstream_status=500,
        message="Internal error",
    )
    assert body["code"] == "internal_error"
    assert harness.mock_attempts(mock.url, key) == 3


def test_status_503_always_counts_exactly_three_upstream_requests(
    client: openai.OpenAI, mock: harness.Server, key: str
) -> None:
    err = call_error(client, "status:503", key, openai.InternalServerError)
    assert_envelope(err, status=503, kind="server_error", retryable=True, attempts=3, upstream_status=503)
    assert harness.mock_attempts(mock.url, key) == 3


def test_invalid_request_500_is_rewritten_to_400_after_one_attempt(
    client: openai.OpenAI, mock: harness.Server, key: str
) -> None:
    err = call_error(client, "error:invalid_request_500", key, openai.BadRequestError)
    body = assert_envelope(
        err, status=400, kind="bad_request", retryable=False, attempts=1, upstream_status=500,
        message=f"field messages is required (request id: {UPSTREAM_ID})",
    )
    assert body["code"] == "invalid_request"
    assert harness.mock_attempts(mock.url, key) == 1


def test_retry_after_then_ok_waits_and_succeeds(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, extra_headers=harness.scenario("retry_after:1,ok", key)
    )
    elapsed = time.monotonic() - started
    assert raw.status_code == 200
    assert raw.parse().choices[0].message.content == "".join(HELLO)
    assert raw.headers.get("x-backstop-attempts") == "2"
    assert raw.headers.get("x-backstop-kind") == "ok"
    assert harness.mock_attempts(mock.url, key) == 2
    assert elapsed >= 1.0, f"gateway did not honour Retry-After: 1 (took {elapsed:.3f} s)"


def test_own_gateway_max_attempts_1_leaves_retry_to_the_sdk(mock: harness.Server, key: str) -> None:
    """With `retry.max_attempts = 1` a retryable failure goes back after one
    attempt WITHOUT `x-should-retry` (CONTRACT §3), so the SDK may retry."""
    gateway = harness.start_gateway(mock.url, {"BACKSTOP_RETRY__MAX_ATTEMPTS": "1"})
    try:
        with harness.make_client(gateway, max_retries=0) as client:
            err = call_error(client, "status:503", key, openai.InternalServerError)
        assert err.status_code == 503
        headers = err.response.headers
        assert headers.get("x-should-retry") is None
        assert headers.get("x-backstop-attempts") == "1"
        assert headers.get("x-backstop-kind") == "server_error"
        assert isinstance(err.body, dict)
        assert err.body["backstop"]["attempts"] == 1
        assert err.body["backstop"]["retryable"] is True
        assert harness.mock_attempts(mock.url, key) == 1
    finally:
        gateway.stop()
