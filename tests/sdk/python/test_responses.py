"""The Responses API (`client.responses.create`, streamed and not) through
the official Python SDK with its DEFAULT settings and the gateway's default
policies: good answers pass intact; every failure raises the SDK's
exception for its status — or, after the first byte, the plain `APIError`
mid-stream — with the gateway's hint in `str(e)`, and the mock's per-key
counter shows exactly how many upstream attempts it cost. Also: the hint
tail turned off, and a `[[routes]]` fallback that answers as its own model.
The same behaviour at the HTTP level is in `tests/responses.rs`."""

from __future__ import annotations

import socket
from typing import Any, Iterator

import openai
import pytest

import harness
from harness import HELLO, MODEL

TEXT = "".join(HELLO)
INPUT = "Say hello."
JSON_OBJECT: dict[str, Any] = {"format": {"type": "json_object"}}

# The gateway's hints, by kind, as the Responses API gets them.
HINT_SERVER_ERROR = "Retry later with backoff and keep the upstream request id; try another model if it persists"
HINT_BAD_REQUEST = (
    "Fix the request before retrying: check error.param, then validate `model`, `input`, `text.format`, "
    "the JSON shape and field types"
)
HINT_CONTENT_FILTER = "Rephrase the prompt; avoid the specific names or topics the provider's safety filter blocks"
HINT_EMPTY_CONTENT = (
    "The response has no output text and no function call: log the full response and make the instructions "
    "more explicit; retrying may help"
)
HINT_INVALID_JSON = "Use text.format json_schema, or tell the model to answer with valid JSON only"
HINT_STREAM_TRUNCATED = "Retry the request: a cut stream cannot be resumed"

# The gateway's own words for what the upstream's 200 did not say.
MSG_CONTENT_FILTER = (
    "The provider's content filter blocked the output: the response: finish_reason content_filter"
)
MSG_EMPTY = (
    "The model returned no content and no tool calls: the response: finish_reason stop with no content and no tool calls"
)
MSG_INVALID_JSON = (
    "The model's output is not valid JSON: the response: content is not valid JSON: expected value at line 1 column 1"
)
MSG_TRUNCATED = (
    "The stream ended before the answer was complete: the stream was cut before its terminal event "
    "(response.completed, response.incomplete or response.failed)"
)


def tail(kind: str, attempts: int, hint: str) -> str:
    """The bracketed tail the gateway appends to `error.message`."""
    return f" [backstop: {kind} after {attempts} attempt(s): {hint}]"


def create(client: openai.OpenAI, steps: str, key: str, *, stream: bool = False, **body: Any) -> Any:
    return client.responses.create(
        model=MODEL, input=INPUT, stream=stream, extra_headers=harness.scenario(steps, key), **body
    )


# ---------------------------------------------------------------------------
# Good answers


def test_good_answer_passes_intact(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    raw = client.responses.with_raw_response.create(
        model=MODEL, input=INPUT, extra_headers=harness.scenario("ok", key)
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-backstop-class") == "none"
    assert raw.headers.get("x-backstop-kind") == "ok"
    assert raw.headers.get("x-backstop-attempts") == "1"
    assert raw.headers.get("x-should-retry") is None
    response = raw.parse()
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == MODEL
    assert response.output_text == "Hello from backstop-mock."
    assert [item.type for item in response.output] == ["message"]
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (5, 3)
    assert harness.mock_attempts(mock.url, key) == 1


def test_good_stream_passes_intact(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    stream = create(client, "ok", key, stream=True)
    types: list[str] = []
    deltas: list[str] = []
    last: Any = None
    for event in stream:
        types.append(event.type)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        last = event
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert types.count("response.completed") == 1
    assert "error" not in types
    assert deltas == HELLO
    assert "".join(deltas) == "Hello from backstop-mock."
    assert last.response.status == "completed"
    assert last.response.model == MODEL
    assert last.response.output_text == "Hello from backstop-mock."
    assert harness.mock_attempts(mock.url, key) == 1


def test_stream_helper_final_response_is_completed(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    """`client.responses.stream(...)` (the SDK's accumulating helper) too."""
    with client.responses.stream(
        model=MODEL, input=INPUT, extra_headers=harness.scenario("ok", key)
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == HELLO
    assert final.status == "completed"
    assert final.output_text == "Hello from backstop-mock."
    assert harness.mock_attempts(mock.url, key) == 1


# ---------------------------------------------------------------------------
# Failures decided before the first byte: an HTTP status and the envelope,
# raised by `create` itself, streamed or not.

BEFORE_FIRST_BYTE = [
    # (steps, exception, status, class, kind, code, attempts, message)
    (
        "failed:server_error", openai.InternalServerError, 502, "hard", "server_error", "server_error", 3,
        "mock failure server_error" + tail("server_error", 3, HINT_SERVER_ERROR),
    ),
    (
        "failed:invalid_prompt", openai.BadRequestError, 400, "hard", "bad_request", "invalid_prompt", 1,
        "mock failure invalid_prompt" + tail("bad_request", 1, HINT_BAD_REQUEST),
    ),
    (
        "finish:content_filter", openai.BadRequestError, 400, "soft", "content_filter", None, 1,
        MSG_CONTENT_FILTER + tail("content_filter", 1, HINT_CONTENT_FILTER),
    ),
    (
        "empty", openai.InternalServerError, 502, "silent", "empty_content", None, 3,
        MSG_EMPTY + tail("empty_content", 3, HINT_EMPTY_CONTENT),
    ),
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(
    "steps, cls, status, klass, kind, code, attempts, message",
    BEFORE_FIRST_BYTE,
    ids=[row[0] for row in BEFORE_FIRST_BYTE],
)
def test_failure_raises_its_status_class_with_the_hint(
    client: openai.OpenAI,
    mock: harness.Server,
    key: str,
    stream: bool,
    steps: str,
    cls: type[openai.APIStatusError],
    status: int,
    klass: str,
    kind: str,
    code: str | None,
    attempts: int,
    message: str,
) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        create(client, steps, key, stream=stream)
    err = info.value
    assert type(err) is cls, f"{type(err).__name__}: {err}"
    assert err.status_code == status
    assert str(err) == f"Error code: {status} - {message}"
    assert err.message == f"Error code: {status} - {message}"
    headers = err.response.headers
    assert headers.get("x-should-retry") == "false"
    assert headers.get("x-backstop-class") == klass
    assert headers.get("x-backstop-kind") == kind
    assert headers.get("x-backstop-attempts") == str(attempts)
    body = err.body
    assert isinstance(body, dict), body
    assert body["message"] == message
    assert body["code"] == code
    backstop = body["backstop"]
    assert backstop["class"] == klass
    assert backstop["kind"] == kind
    assert backstop["attempts"] == attempts
    assert backstop["upstream_status"] == 200
    assert backstop["request_id"] == headers.get("x-request-id")
    assert message.endswith(tail(kind, attempts, backstop["hint"]))
    assert harness.mock_attempts(mock.url, key) == attempts


def test_bad_json_whole_is_502_after_three_attempts(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        create(client, "bad_json", key, text=JSON_OBJECT)
    err = info.value
    message = MSG_INVALID_JSON + tail("invalid_json", 3, HINT_INVALID_JSON)
    assert str(err) == f"Error code: 502 - {message}"
    assert err.body["backstop"]["kind"] == "invalid_json"
    assert err.body["backstop"]["retryable"] is True
    assert err.body["backstop"]["attempts"] == 3
    assert harness.mock_attempts(mock.url, key) == 3


def test_status_503_whole_names_the_hint_in_str(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    expected_tail = (
        "[backstop: server_error after 3 attempt(s): Retry later with backoff and keep the upstream request id; "
        "try another model if it persists]"
    )
    with pytest.raises(openai.InternalServerError) as info:
        create(client, "status:503", key)
    err = info.value
    assert expected_tail in str(err)
    assert str(err) == f"Error code: 503 - mock error 503 {expected_tail}"
    assert err.status_code == 503
    assert err.body["code"] == "service_unavailable"
    assert err.body["backstop"]["upstream_status"] == 503
    assert harness.mock_attempts(mock.url, key) == 3


# ---------------------------------------------------------------------------
# Failures after the first byte: the stream ends with `event: error`, which
# the SDK raises mid-iteration as the plain APIError, after the pieces that
# had arrived; no `response.completed` is ever seen.


def consume(stream: Any) -> tuple[list[str], list[str], openai.APIError]:
    """Iterate `stream` until it raises; the event types and text deltas
    seen before, and the exception (exactly `openai.APIError`)."""
    types: list[str] = []
    deltas: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
    err = info.value
    assert type(err) is openai.APIError, f"{type(err).__name__}: {err}"
    assert "response.completed" not in types
    return types, deltas, err


def assert_mid_stream(err: openai.APIError, *, klass: str, kind: str, code: str | None, message: str) -> None:
    assert str(err) == message
    assert err.message == message
    body = err.body
    assert isinstance(body, dict), body
    assert body["message"] == message
    assert body["type"] == "server_error"
    assert body["code"] == code
    assert body["backstop"]["class"] == klass
    assert body["backstop"]["kind"] == kind
    assert body["backstop"]["attempts"] == 1
    assert body["backstop"]["upstream_status"] == 200


def test_bad_json_stream_raises_mid_stream_invalid_json(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    types, deltas, err = consume(create(client, "bad_json", key, stream=True, text=JSON_OBJECT))
    assert deltas == ["Sure! ", '{"answ', 'er": 4']
    assert types[-1] == "response.output_item.done"
    assert_mid_stream(
        err, klass="silent", kind="invalid_json", code=None,
        message=MSG_INVALID_JSON + tail("invalid_json", 1, HINT_INVALID_JSON),
    )
    assert err.body["backstop"]["retryable"] is True
    assert harness.mock_attempts(mock.url, key) == 1


def test_cut_stream_raises_mid_stream_stream_truncated(client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    types, deltas, err = consume(create(client, "cut:2", key, stream=True))
    assert deltas == HELLO[:2]
    assert types[-1] == "response.output_text.delta"
    assert_mid_stream(
        err, klass="silent", kind="stream_truncated", code=None,
        message=MSG_TRUNCATED + tail("stream_truncated", 1, HINT_STREAM_TRUNCATED),
    )
    assert harness.mock_attempts(mock.url, key) == 1


def test_in_band_error_after_first_byte_raises_mid_stream_server_error(
    client: openai.OpenAI, mock: harness.Server, key: str
) -> None:
    types, deltas, err = consume(create(client, "error_after:1", key, stream=True))
    assert deltas == HELLO[:1]
    assert types[-1] == "response.output_text.delta"
    assert_mid_stream(
        err, klass="hard", kind="server_error", code="server_error",
        message="mock in-band error" + tail("server_error", 1, HINT_SERVER_ERROR),
    )
    assert harness.mock_attempts(mock.url, key) == 1


# ---------------------------------------------------------------------------
# envelope.hint_in_message = false: the message as the upstream said it.


@pytest.fixture(scope="module")
def plain_client(mock: harness.Server) -> Iterator[openai.OpenAI]:
    server = harness.start_gateway(mock.url, {"BACKSTOP_ENVELOPE__HINT_IN_MESSAGE": "false"})
    c = harness.make_client(server)
    yield c
    c.close()
    server.stop()


def test_hint_off_status_503_has_no_tail(plain_client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        create(plain_client, "status:503", key)
    err = info.value
    assert str(err) == "Error code: 503 - mock error 503"
    assert err.body["message"] == "mock error 503"
    assert err.body["backstop"]["hint"] == HINT_SERVER_ERROR
    assert err.body["backstop"]["attempts"] == 3
    assert harness.mock_attempts(mock.url, key) == 3


def test_hint_off_cut_stream_has_no_tail(plain_client: openai.OpenAI, mock: harness.Server, key: str) -> None:
    _, deltas, err = consume(create(plain_client, "cut:2", key, stream=True))
    assert deltas == HELLO[:2]
    assert str(err) == MSG_TRUNCATED
    assert err.body["backstop"]["kind"] == "stream_truncated"
    assert err.body["backstop"]["hint"] == HINT_STREAM_TRUNCATED
    assert harness.mock_attempts(mock.url, key) == 1


# ---------------------------------------------------------------------------
# A route falls over from an upstream where nothing listens to the mock,
# whose target renames the model.

FALLBACK_MODEL = "gpt-fallback"


@pytest.fixture(scope="module")
def dead_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nothing else can
    take it while the module runs) but never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="module")
def fallback_client(mock: harness.Server, dead_port: int) -> Iterator[openai.OpenAI]:
    # Circuit thresholds out of reach, so every call tries the dead default
    # first and the attempt counts stay exact.
    config = f"""
[upstream]
url = "http://127.0.0.1:{dead_port}/v1"

[upstreams.backup]
url = "{mock.url}/v1"

[[routes]]
name = "responses"
models = ["{MODEL}"]
targets = [
  {{ upstream = "default", model = "{MODEL}" }},
  {{ upstream = "backup", model = "{FALLBACK_MODEL}" }},
]

[circuit]
consecutive_failures = 10000
window = 10000
min_requests = 10000
"""
    server = harness.start_gateway_with_config(config)
    c = harness.make_client(server)
    yield c
    c.close()
    server.stop()


def test_fallback_whole_answers_as_the_fallback_model(
    fallback_client: openai.OpenAI, mock: harness.Server, key: str
) -> None:
    raw = fallback_client.responses.with_raw_response.create(
        model=MODEL, input=INPUT, extra_headers={"x-mock-key": key}
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-backstop-target") == f"backup/{FALLBACK_MODEL}"
    assert raw.headers.get("x-backstop-attempts") == "2"
    assert raw.headers.get("x-backstop-kind") == "ok"
    response = raw.parse()
    assert response.model == FALLBACK_MODEL
    assert response.status == "completed"
    assert response.output_text == "Hello from backstop-mock."
    assert harness.mock_attempts(mock.url, key) == 1


def test_fallback_stream_answers_as_the_fallback_model(
    fallback_client: openai.OpenAI, mock: harness.Server, key: str
) -> None:
    raw = fallback_client.responses.with_raw_response.create(
        model=MODEL, input=INPUT, stream=True, extra_headers={"x-mock-key": key}
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-backstop-target") == f"backup/{FALLBACK_MODEL}"
    assert raw.headers.get("x-backstop-attempts") == "2"
    deltas: list[str] = []
    last: Any = None
    for event in raw.parse():
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        last = event
    assert last.type == "response.completed"
    assert last.response.model == FALLBACK_MODEL
    assert last.response.status == "completed"
    assert deltas == HELLO
    assert harness.mock_attempts(mock.url, key) == 1
