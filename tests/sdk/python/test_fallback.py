"""Fallback through a route, as the official Python SDK (default settings)
sees it: two mocks, the primary always answering 503 and a healthy backup;
a `[[routes]]` rule in a config file sends `gpt-fallback*` first to the
primary as `primary-model`, then to the backup as `fallback-model`. With
the route's default `attempts_per_target = 2`, every call spends exactly two
attempts on the primary (a lone 5xx is retried there once) and then
succeeds on the backup, and says so in `x-backstop-target` /
`x-backstop-attempts` (3) and in the answer's `model`."""

from __future__ import annotations

from typing import Iterator

import openai
import pytest

import harness
from harness import HELLO, MESSAGES

ROUTED_MODEL = "gpt-fallback"
PRIMARY_MODEL = "primary-model"
BACKUP_MODEL = "fallback-model"
BACKUP_TARGET = f"backup/{BACKUP_MODEL}"
CONTENT = "".join(HELLO)


def fallback_config(primary_url: str, backup_url: str) -> str:
    """The route under test. The circuit thresholds are raised out of reach:
    with the defaults the always-failing primary would be taken out of
    rotation after 5 failures, and later calls would no longer try it."""
    return f"""
[upstream]
url = "{primary_url}/v1"

[upstreams.backup]
url = "{backup_url}/v1"

[[routes]]
name = "chat"
models = ["gpt-fallback*"]
targets = [
  {{ upstream = "default", model = "{PRIMARY_MODEL}" }},
  {{ upstream = "backup", model = "{BACKUP_MODEL}" }},
]

[circuit]
consecutive_failures = 10000
window = 10000
min_requests = 10000
"""


@pytest.fixture(scope="module")
def primary() -> Iterator[harness.Server]:
    server = harness.start_mock("--mix", "status:503=1")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backup() -> Iterator[harness.Server]:
    server = harness.start_mock()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(primary: harness.Server, backup: harness.Server) -> Iterator[harness.Server]:
    """Overrides conftest's `gateway` (and so the `client` built on it)."""
    server = harness.start_gateway_with_config(fallback_config(primary.url, backup.url))
    yield server
    server.stop()


def totals(primary: harness.Server, backup: harness.Server) -> tuple[int, int]:
    """`/mock/stats` total of each mock."""
    counts = []
    for server in (primary, backup):
        stats = harness.get_json(f"{server.url}/mock/stats")
        assert isinstance(stats, dict), stats
        counts.append(int(stats["total"]))
    return counts[0], counts[1]


def assert_two_attempts_then_one(primary: harness.Server, backup: harness.Server, key: str) -> None:
    assert harness.mock_attempts(primary.url, key) == 2
    assert harness.mock_attempts(backup.url, key) == 1


def test_primary_mock_always_answers_503(primary: harness.Server) -> None:
    """The premise: the primary fails on its own, without a scenario."""
    direct = openai.OpenAI(base_url=f"{primary.url}/v1", api_key="sk-test-backstop", max_retries=0)
    with direct, pytest.raises(openai.InternalServerError) as info:
        direct.chat.completions.create(model=PRIMARY_MODEL, messages=MESSAGES)
    assert info.value.status_code == 503


def test_chat_completion_falls_over_to_the_backup(
    client: openai.OpenAI, primary: harness.Server, backup: harness.Server, key: str
) -> None:
    completion = client.chat.completions.create(
        model=ROUTED_MODEL, messages=MESSAGES, extra_headers={"x-mock-key": key}
    )
    assert completion.model == BACKUP_MODEL
    assert completion.object == "chat.completion"
    assert len(completion.choices) == 1
    assert completion.choices[0].message.content == CONTENT
    assert completion.choices[0].finish_reason == "stop"
    assert_two_attempts_then_one(primary, backup, key)


def test_raw_headers_name_the_backup_target_and_three_attempts(
    client: openai.OpenAI, primary: harness.Server, backup: harness.Server, key: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=ROUTED_MODEL, messages=MESSAGES, extra_headers={"x-mock-key": key}
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-backstop-target") == BACKUP_TARGET
    assert raw.headers.get("x-backstop-attempts") == "3"
    assert raw.headers.get("x-backstop-class") == "none"
    assert raw.headers.get("x-backstop-kind") == "ok"
    assert raw.headers.get("x-should-retry") is None
    completion = raw.parse()
    assert completion.model == BACKUP_MODEL
    assert completion.choices[0].message.content == CONTENT
    assert_two_attempts_then_one(primary, backup, key)


def test_stream_falls_over_to_the_backup(
    client: openai.OpenAI, primary: harness.Server, backup: harness.Server, key: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=ROUTED_MODEL, messages=MESSAGES, stream=True, extra_headers={"x-mock-key": key}
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-backstop-target") == BACKUP_TARGET
    assert raw.headers.get("x-backstop-attempts") == "3"
    pieces: list[str] = []
    finishes: list[str] = []
    models: set[str] = set()
    chunks = 0
    for chunk in raw.parse():
        chunks += 1
        assert chunk.object == "chat.completion.chunk"
        models.add(chunk.model)
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason is not None:
                finishes.append(choice.finish_reason)
    assert chunks > 0
    assert models == {BACKUP_MODEL}
    assert pieces == HELLO
    assert "".join(pieces) == CONTENT
    assert finishes == ["stop"]
    assert_two_attempts_then_one(primary, backup, key)


def test_each_sdk_call_costs_the_primary_exactly_two_attempts(
    client: openai.OpenAI, primary: harness.Server, backup: harness.Server
) -> None:
    calls = 3
    before = totals(primary, backup)
    for n in range(calls):
        if n == 1:
            stream = client.chat.completions.create(model=ROUTED_MODEL, messages=MESSAGES, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == CONTENT
        else:
            completion = client.chat.completions.create(model=ROUTED_MODEL, messages=MESSAGES)
            assert completion.model == BACKUP_MODEL
        assert totals(primary, backup) == (before[0] + 2 * (n + 1), before[1] + n + 1)
