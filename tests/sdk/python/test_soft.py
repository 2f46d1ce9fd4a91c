"""Soft and silent failures through the official Python SDK, with the
gateway's default `[inspect]` policies: content_filter=fail, length=pass,
empty_content=retry, stream_truncated=fail."""

from __future__ import annotations

import re

import openai
import pytest

import harness
from harness import HELLO, MESSAGES, MODEL


def test_content_filter_fails_as_400_bad_request(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers=harness.scenario("finish:content_filter", key)
        )
    err = info.value
    assert type(err) is openai.BadRequestError, f"{type(err).__name__}: {err}"
    assert err.status_code == 400
    assert err.response.headers.get("x-should-retry") == "false"
    assert err.response.headers.get("x-backstop-class") == "soft"
    assert err.response.headers.get("x-backstop-kind") == "content_filter"
    body = err.body
    assert isinstance(body, dict), body
    assert re.search(r"content[ _-]?filter", body["message"], re.IGNORECASE), body["message"]
    assert body["type"] == "invalid_request_error"
    assert body["backstop"]["class"] == "soft"
    assert body["backstop"]["kind"] == "content_filter"
    assert body["backstop"]["retryable"] is False
    assert body["backstop"]["attempts"] == 1
    assert body["backstop"]["upstream_status"] == 200
    assert harness.mock_attempts(mock.url, key) == 1


def test_cut_stream_raises_instead_of_returning_partial_text(
    client: openai.OpenAI, mock: harness.Server, key: str
) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_headers=harness.scenario("cut:2", key)
    )
    pieces: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
    err = info.value
    # Mid-stream the SDK raises the plain APIError carrying the envelope.
    assert type(err) is openai.APIError, f"{type(err).__name__}: {err}"
    assert pieces == HELLO[:2]
    body = err.body
    assert isinstance(body, dict), body
    assert err.message == body["message"]
    assert body["type"] == "server_error"
    assert body["backstop"]["class"] == "silent"
    assert body["backstop"]["kind"] == "stream_truncated"
    assert body["backstop"]["attempts"] == 1
    assert harness.mock_attempts(mock.url, key) == 1


def test_length_passes_with_kind_header(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, extra_headers=harness.scenario("finish:length", key)
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-backstop-kind") == "length"
    assert raw.headers.get("x-backstop-class") == "soft"
    assert raw.headers.get("x-backstop-attempts") == "1"
    assert raw.headers.get("x-should-retry") is None
    choice = raw.parse().choices[0]
    assert choice.message.content == "".join(HELLO)
    assert choice.finish_reason == "length"
    assert harness.mock_attempts(mock.url, key) == 1


def test_tool_calls_with_null_content_pass_untouched(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, extra_headers=harness.scenario("finish:tool_calls", key)
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-backstop-kind") == "ok"
    assert raw.headers.get("x-backstop-class") == "none"
    choice = raw.parse().choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.id == "call_mock_1"
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city": "Paris"}'
    assert harness.mock_attempts(mock.url, key) == 1


def test_empty_content_is_retried_then_succeeds(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, extra_headers=harness.scenario("empty,ok", key)
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-backstop-attempts") == "2"
    assert raw.headers.get("x-backstop-kind") == "ok"
    assert raw.parse().choices[0].message.content == "".join(HELLO)
    assert harness.mock_attempts(mock.url, key) == 2
