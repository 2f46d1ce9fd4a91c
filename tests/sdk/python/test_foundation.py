"""Foundation: the plain success paths through the gateway, as the official
Python SDK sees them. Everything else builds on these."""

from __future__ import annotations

import openai

import harness
from harness import HELLO, MESSAGES, MODEL


def test_chat_completion_returns_mock_content_and_model(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_headers=harness.scenario("ok", key)
    )
    assert completion.model == MODEL
    assert completion.object == "chat.completion"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello from backstop-mock."
    assert choice.finish_reason == "stop"
    assert harness.mock_attempts(mock.url, key) == 1


def test_stream_yields_chunks_in_order_and_ends_normally(
    client: openai.OpenAI, mock: harness.Server, key: str
) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_headers=harness.scenario("ok", key)
    )
    pieces: list[str] = []
    finishes: list[str] = []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.model == MODEL
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason is not None:
                finishes.append(choice.finish_reason)
    assert pieces == HELLO
    assert "".join(pieces) == "Hello from backstop-mock."
    assert finishes == ["stop"]
    assert harness.mock_attempts(mock.url, key) == 1


def test_models_list_returns_the_mocks_three_ids(client: openai.OpenAI, mock: harness.Server) -> None:
    direct = harness.get_json(f"{mock.url}/v1/models")
    assert isinstance(direct, dict)
    expected = [m["id"] for m in direct["data"]]
    assert len(expected) == 3

    ids = [m.id for m in client.models.list()]
    assert ids == expected


def test_success_headers_request_id_attempts_and_kind(client: openai.OpenAI, key: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, extra_headers=harness.scenario("ok", key)
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-request-id")
    assert raw.headers.get("x-backstop-attempts") == "1"
    assert raw.headers.get("x-backstop-class") == "none"
    assert raw.headers.get("x-backstop-kind") == "ok"
    assert raw.headers.get("x-should-retry") is None
    assert raw.parse().choices[0].message.content == "Hello from backstop-mock."


def test_client_request_id_is_kept(client: openai.OpenAI, key: str) -> None:
    mine = f"req-{key}"
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, extra_headers={**harness.scenario("ok", key), "x-request-id": mine}
    )
    assert raw.headers.get("x-request-id") == mine
