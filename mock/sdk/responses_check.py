"""Drives backstop-mock's Responses API with the official `openai` SDK:
every stream must parse into the SDK's typed events and pass its strict
`responses.stream()` accumulator, and the non-streamed and background
objects must parse as `Response`.

    python mock/sdk/responses_check.py http://127.0.0.1:PORT/v1

Run by the mock's Rust test `sdk_check` when a Python with `openai` is at
hand ($BACKSTOP_MOCK_PYTHON, or the workspace's .venv). Prints one line per
check and `N passed, 0 failed` at the end; exits non-zero on a failure.
"""

from __future__ import annotations

import sys

import openai
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseIncompleteEvent,
    ResponseTextDeltaEvent,
)

HELLO = "Hello from backstop-mock."


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="sk-mock", max_retries=0, timeout=10)


def events(c: openai.OpenAI, step: str) -> list:
    stream = c.responses.create(
        model="mock-model", input="hi", stream=True, extra_headers={"x-mock-scenario": step}
    )
    return list(stream)


def check_ok_stream(c: openai.OpenAI) -> None:
    got = events(c, "ok")
    types = [e.type for e in got]
    assert types[0] == "response.created" and types[-1] == "response.completed", types
    assert isinstance(got[0], ResponseCreatedEvent), type(got[0])
    assert isinstance(got[-1], ResponseCompletedEvent), type(got[-1])
    deltas = [e for e in got if isinstance(e, ResponseTextDeltaEvent)]
    assert [d.delta for d in deltas] == ["Hello", " from", " backstop-mock."], deltas
    assert [e.sequence_number for e in got] == list(range(len(got)))
    assert got[-1].response.output_text == HELLO


def check_accumulator(c: openai.OpenAI) -> None:
    with c.responses.stream(model="mock-model", input="hi", extra_headers={"x-mock-scenario": "ok"}) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == HELLO, text
    assert final.output_text == HELLO and final.status == "completed", final
    assert final.usage is not None and final.usage.output_tokens == 3


def check_function_call(c: openai.OpenAI) -> None:
    with c.responses.stream(
        model="mock-model", input="hi", extra_headers={"x-mock-scenario": "finish:tool_calls"}
    ) as stream:
        args = "".join(
            e.delta for e in stream if isinstance(e, ResponseFunctionCallArgumentsDeltaEvent)
        )
        final = stream.get_final_response()
    assert args == '{"city": "Paris"}', args
    item = final.output[0]
    assert item.type == "function_call" and item.name == "get_weather" and item.arguments == args, item


def check_incomplete_and_failed(c: openai.OpenAI) -> None:
    got = events(c, "finish:length")
    assert isinstance(got[-1], ResponseIncompleteEvent), type(got[-1])
    assert got[-1].response.incomplete_details.reason == "max_output_tokens"
    got = events(c, "failed:server_error")
    assert isinstance(got[-1], ResponseFailedEvent), type(got[-1])
    assert got[-1].response.error.code == "server_error"
    got = events(c, "error_event")
    assert len(got) == 1 and isinstance(got[0], ResponseErrorEvent), got
    assert (got[0].code, got[0].message, got[0].sequence_number) == ("server_error", "mock in-band error", 0)


def check_whole_and_background(c: openai.OpenAI) -> None:
    resp = c.responses.create(model="mock-model", input="hi")
    assert isinstance(resp, Response) and resp.output_text == HELLO and resp.status == "completed", resp
    queued = c.responses.create(model="mock-model", input="hi", background=True)
    assert queued.status == "queued" and queued.background, queued
    pending = c.responses.retrieve(queued.id, extra_headers={"x-mock-scenario": "pending"})
    assert pending.status == "in_progress", pending
    done = c.responses.retrieve(queued.id)
    assert done.status == "completed" and done.output_text == HELLO, done
    cancelled = c.responses.cancel(queued.id)
    assert cancelled.status == "cancelled", cancelled
    try:
        c.responses.retrieve("resp_mock_999999")
    except openai.NotFoundError:
        pass
    else:
        raise AssertionError("an unknown id must be a 404")


CHECKS = [
    check_ok_stream,
    check_accumulator,
    check_function_call,
    check_incomplete_and_failed,
    check_whole_and_background,
]


def main() -> int:
    c = client(sys.argv[1])
    failed = 0
    for check in CHECKS:
        try:
            check(c)
            print(f"ok   {check.__name__}")
        except Exception as e:  # noqa: BLE001 - report every check
            failed += 1
            print(f"FAIL {check.__name__}: {type(e).__name__}: {e}")
    print(f"{len(CHECKS) - failed} passed, {failed} failed (openai {openai.__version__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
