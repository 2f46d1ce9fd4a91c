"""The OpenAI Agents SDK (`openai-agents`) through the gateway: its default
model speaks the Responses API (the gateway's `route` metric label proves
it), an `Agent` run returns the mock's text, whole (`Runner.run_sync`) and
streamed (`Runner.run_streamed`), and a scripted failure raises the official
SDK's exception with the gateway's hint in `str(e)`, at the gateway's
attempt count (the Agents SDK adds no retries of its own)."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Iterator

import openai
import pytest
from agents import Agent, ModelSettings, Runner, set_default_openai_client, set_tracing_disabled
from openai.types.responses import ResponseTextDeltaEvent

import harness
from harness import HELLO, MODEL

TEXT = "".join(HELLO)
ROUTE = "/v1/responses"
HINT_SERVER_ERROR = "Retry later with backoff and keep the upstream request id; try another model if it persists"
HINT_BAD_REQUEST = (
    "Fix the request before retrying: check error.param, then validate `model`, `input`, `text.format`, "
    "the JSON shape and field types"
)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for the module: `Runner.run_sync` runs on the thread's
    default loop, and the AsyncOpenAI client's pooled connections belong to
    the loop that opened them, so the streamed runs use the same one."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture(scope="module", autouse=True)
def agents_client(gateway: harness.Server, loop: asyncio.AbstractEventLoop) -> Iterator[openai.AsyncOpenAI]:
    """The Agents SDK's default client: an AsyncOpenAI on the gateway, with
    tracing off (it would export to the provider)."""
    client = openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key="sk-test-backstop", timeout=harness.SDK_TIMEOUT_S
    )
    set_default_openai_client(client, use_for_tracing=False)
    set_tracing_disabled(True)
    yield client
    loop.run_until_complete(client.close())


def agent(steps: str, key: str) -> Agent:
    return Agent(
        name="greeter",
        instructions="Say hello.",
        model=MODEL,
        model_settings=ModelSettings(extra_headers=harness.scenario(steps, key)),
    )


def requests_ok(gateway: harness.Server, route: str) -> float:
    """`backstop_requests_total` of ok answers for `route` and the model."""
    with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=5) as r:
        text = r.read().decode()
    labels = f'{{class="none",kind="ok",model="{MODEL}",route="{route}"}}'
    for line in text.splitlines():
        if line.startswith(f"backstop_requests_total{labels} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_run_sync_returns_the_mocks_text_over_the_responses_api(
    gateway: harness.Server, mock: harness.Server, key: str
) -> None:
    before = (requests_ok(gateway, ROUTE), requests_ok(gateway, "/v1/chat/completions"))
    result = Runner.run_sync(agent("ok", key), "hi")
    after = (requests_ok(gateway, ROUTE), requests_ok(gateway, "/v1/chat/completions"))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0)
    assert result.final_output == "Hello from backstop-mock."
    assert len(result.raw_responses) == 1
    assert (result.raw_responses[0].response_id or "").startswith("resp_mock_")
    assert harness.mock_attempts(mock.url, key) == 1


def test_run_streamed_yields_the_pieces_and_the_text(
    loop: asyncio.AbstractEventLoop, mock: harness.Server, key: str
) -> None:
    async def run() -> tuple[list[str], object]:
        result = Runner.run_streamed(agent("ok", key), "hi")
        deltas: list[str] = []
        async for event in result.stream_events():
            if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
                deltas.append(event.data.delta)
        return deltas, result.final_output

    deltas, final_output = loop.run_until_complete(run())
    assert deltas == HELLO
    assert final_output == TEXT
    assert harness.mock_attempts(mock.url, key) == 1


def test_status_503_raises_internal_server_error_with_the_hint(mock: harness.Server, key: str) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        Runner.run_sync(agent("status:503", key), "hi")
    err = info.value
    assert str(err) == (
        f"Error code: 503 - mock error 503 [backstop: server_error after 3 attempt(s): {HINT_SERVER_ERROR}]"
    )
    assert err.body["backstop"]["kind"] == "server_error"
    assert harness.mock_attempts(mock.url, key) == 3


def test_failed_invalid_prompt_raises_bad_request_with_the_hint(mock: harness.Server, key: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        Runner.run_sync(agent("failed:invalid_prompt", key), "hi")
    err = info.value
    assert str(err) == (
        f"Error code: 400 - mock failure invalid_prompt [backstop: bad_request after 1 attempt(s): {HINT_BAD_REQUEST}]"
    )
    assert err.body["code"] == "invalid_prompt"
    assert harness.mock_attempts(mock.url, key) == 1


def test_cut_stream_raises_mid_run_with_the_hint(loop: asyncio.AbstractEventLoop, mock: harness.Server, key: str) -> None:
    deltas: list[str] = []

    async def run() -> None:
        result = Runner.run_streamed(agent("cut:2", key), "hi")
        async for event in result.stream_events():
            if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
                deltas.append(event.data.delta)

    with pytest.raises(openai.APIError) as info:
        loop.run_until_complete(run())
    err = info.value
    assert type(err) is openai.APIError, f"{type(err).__name__}: {err}"
    assert deltas == HELLO[:2]
    assert str(err) == (
        "The stream ended before the answer was complete: the stream was cut before its terminal event "
        "(response.completed, response.incomplete or response.failed) "
        "[backstop: stream_truncated after 1 attempt(s): Retry the request: a cut stream cannot be resumed]"
    )
    assert err.body["backstop"]["kind"] == "stream_truncated"
    assert harness.mock_attempts(mock.url, key) == 1
