"""Failover as the official Python SDK (default settings) sees it: a
repaired stream and a hedged request are each one answer.

- Repair: the primary mock (`--mix stall:5000=1`) stalls after its first
  content event; its upstream's `stream_idle_timeout_ms = 300` cuts it, and
  the route (`repair_streams = true`) continues the answer on the backup as
  a prefill. The SDK reads one stream: one id, model and created, one role,
  the whole text, the whole answer's usage; its stream helper accumulates
  one message.
- Hedge: the primary mock (`--mix first_token:5000=1`) holds its first
  content event (a non-streamed answer: its whole body) for 5 s; the route's
  `hedge_after_ms = 300` starts the backup in parallel, which wins, and
  `backstop_hedges_total{outcome="hedge_won"}` counts it.

Each mock counts its requests by `x-mock-key` (the gateway forwards the
header to every target, continuation and hedge included)."""

from __future__ import annotations

import re
import time
import urllib.request
from typing import Callable, Iterator

import openai
import pytest

import harness
from harness import HELLO, MESSAGES

ROUTED_MODEL = "gpt-failover"
PRIMARY_MODEL = "primary-model"
BACKUP_MODEL = "fallback-model"
CONTENT = "".join(HELLO)
ROUTE = "/v1/chat/completions"
# Every answer here takes well under this; the stalls and holds are 5 s.
BOUND_S = 3.0

# Both configs: `[upstream]` (the default) answers no request here, since the
# route matches them all; it names the primary mock so that nothing could
# leave the machine.
def repair_config(primary_url: str, backup_url: str) -> str:
    return f"""
[upstream]
url = "{primary_url}/v1"

[upstreams.primary]
url = "{primary_url}/v1"
prefill = true
stream_idle_timeout_ms = 300

[upstreams.backup]
url = "{backup_url}/v1"
prefill = true

[[routes]]
name = "repair"
models = ["{ROUTED_MODEL}"]
repair_streams = true
targets = [
  {{ upstream = "primary", model = "{PRIMARY_MODEL}" }},
  {{ upstream = "backup", model = "{BACKUP_MODEL}" }},
]
"""


def hedge_config(primary_url: str, backup_url: str) -> str:
    return f"""
[upstream]
url = "{primary_url}/v1"

[upstreams.primary]
url = "{primary_url}/v1"

[upstreams.backup]
url = "{backup_url}/v1"

[[routes]]
name = "hedge"
models = ["{ROUTED_MODEL}"]
hedge_after_ms = 300
targets = [
  {{ upstream = "primary", model = "{PRIMARY_MODEL}" }},
  {{ upstream = "backup", model = "{BACKUP_MODEL}" }},
]
"""


Servers = tuple[harness.Server, harness.Server, harness.Server]


def _servers(primary_mix: str, config: Callable[[str, str], str]) -> Iterator[Servers]:
    """Starts (primary mock with `--mix primary_mix`, plain backup mock,
    gateway with `config(primary, backup)`) and stops them again."""
    started: list[harness.Server] = []
    try:
        primary = harness.start_mock("--mix", primary_mix)
        started.append(primary)
        backup = harness.start_mock()
        started.append(backup)
        gateway = harness.start_gateway_with_config(config(primary.url, backup.url))
        started.append(gateway)
        yield primary, backup, gateway
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture(scope="module")
def repair() -> Iterator[Servers]:
    """(stalling primary, backup, gateway with a repairing route)."""
    yield from _servers("stall:5000=1", repair_config)


@pytest.fixture(scope="module")
def hedge() -> Iterator[Servers]:
    """(slow-first-token primary, backup, gateway with a hedging route)."""
    yield from _servers("first_token:5000=1", hedge_config)


def counter(gateway: harness.Server, name: str, **labels: str) -> float:
    """The value of the sample of `name` with exactly `labels` on /metrics
    (in whatever order the gateway prints them); 0 when absent."""
    with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=5) as r:
        text = r.read().decode()
    pattern = re.compile(r"^" + re.escape(name) + r"\{([^}]*)\} (\S+)$")
    for line in text.splitlines():
        found = pattern.match(line)
        if found and dict(re.findall(r'(\w+)="([^"]*)"', found.group(1))) == labels:
            return float(found.group(2))
    return 0.0


def assert_one_request_each(primary: harness.Server, backup: harness.Server, key: str) -> None:
    assert (harness.mock_attempts(primary.url, key), harness.mock_attempts(backup.url, key)) == (1, 1)


# --- repair -----------------------------------------------------------------


def test_a_repaired_stream_reads_as_one_stream(repair: Servers) -> None:
    primary, backup, gateway = repair
    key = harness.new_key()
    repairs_before = counter(gateway, "backstop_stream_repairs_total", route=ROUTE)
    started = time.monotonic()
    with harness.make_client(gateway) as client:
        stream = client.chat.completions.create(
            model=ROUTED_MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-mock-key": key},
        )
        chunks = list(stream)
    took = time.monotonic() - started
    assert took < BOUND_S, took
    assert len(chunks) > 1
    first = chunks[0]
    assert first.object == "chat.completion.chunk"
    assert first.model == PRIMARY_MODEL
    for chunk in chunks:
        assert (chunk.id, chunk.model, chunk.created) == (first.id, first.model, first.created), chunk
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert pieces == HELLO
    assert "".join(pieces) == CONTENT
    roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role is not None]
    assert roles == ["assistant"]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason is not None]
    assert finishes == ["stop"]
    # The usage of the whole answer, in the last chunk (no choices).
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (5, 3, 8)
    assert [c for c in chunks[:-1] if c.usage is not None] == []
    assert_one_request_each(primary, backup, key)
    assert counter(gateway, "backstop_stream_repairs_total", route=ROUTE) == repairs_before + 1


def test_the_stream_helper_accumulates_one_message(
    repair: Servers,
) -> None:
    primary, backup, gateway = repair
    key = harness.new_key()
    started = time.monotonic()
    with harness.make_client(gateway) as client:
        with client.chat.completions.stream(
            model=ROUTED_MODEL,
            messages=MESSAGES,
            stream_options={"include_usage": True},
            extra_headers={"x-mock-key": key},
        ) as stream:
            deltas = [e.delta for e in stream if e.type == "content.delta"]
            completion = stream.get_final_completion()
    assert time.monotonic() - started < BOUND_S
    # The opening role delta carries `"content": ""`, which the helper
    # reports as a delta of its own.
    assert deltas == ["", *HELLO]
    assert completion.model == PRIMARY_MODEL
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert choice.message.role == "assistant"
    assert choice.message.content == CONTENT
    assert choice.message.tool_calls is None
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        5,
        3,
        8,
    )
    assert_one_request_each(primary, backup, key)


# --- hedge ------------------------------------------------------------------


def hedges_won(gateway: harness.Server) -> float:
    return counter(gateway, "backstop_hedges_total", route=ROUTE, outcome="hedge_won")


def test_a_hedged_stream_is_one_answer_from_the_backup(
    hedge: Servers,
) -> None:
    primary, backup, gateway = hedge
    key = harness.new_key()
    won_before = hedges_won(gateway)
    started = time.monotonic()
    with harness.make_client(gateway) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=ROUTED_MODEL, messages=MESSAGES, stream=True, extra_headers={"x-mock-key": key}
        )
        assert raw.status_code == 200
        assert raw.headers.get("x-backstop-target") == f"backup/{BACKUP_MODEL}"
        chunks = list(raw.parse())
    took = time.monotonic() - started
    assert took < BOUND_S, took
    assert {c.model for c in chunks} == {BACKUP_MODEL}
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content] == HELLO
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert_one_request_each(primary, backup, key)
    assert hedges_won(gateway) == won_before + 1


def test_a_hedged_completion_is_one_answer_from_the_backup(
    hedge: Servers,
) -> None:
    primary, backup, gateway = hedge
    key = harness.new_key()
    won_before = hedges_won(gateway)
    started = time.monotonic()
    with harness.make_client(gateway) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=ROUTED_MODEL, messages=MESSAGES, extra_headers={"x-mock-key": key}
        )
        completion = raw.parse()
    took = time.monotonic() - started
    assert took < BOUND_S, took
    assert raw.status_code == 200
    assert raw.headers.get("x-backstop-target") == f"backup/{BACKUP_MODEL}"
    assert completion.model == BACKUP_MODEL
    assert len(completion.choices) == 1
    assert completion.choices[0].message.content == CONTENT
    assert completion.choices[0].finish_reason == "stop"
    assert_one_request_each(primary, backup, key)
    assert hedges_won(gateway) == won_before + 1


def test_the_primary_mock_holds_a_whole_answer(hedge: Servers) -> None:
    """The premise: straight to the primary mock (no gateway), a non-streamed
    request gets no answer within 0.5 s (`first_token:MS` holds a whole
    body like `hold:MS`), so a quick answer through the gateway is the
    backup's."""
    primary, _, _ = hedge
    direct = openai.OpenAI(base_url=f"{primary.url}/v1", api_key="sk-test-backstop", max_retries=0, timeout=0.5)
    with direct, pytest.raises(openai.APITimeoutError):
        direct.chat.completions.create(model=PRIMARY_MODEL, messages=MESSAGES)
