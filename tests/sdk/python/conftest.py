"""Fixtures for the SDK tests: one mock upstream and one gateway per test
module (started from `target/debug/`, see `harness.py`), an official
`openai.OpenAI` client pointed at the gateway with its default retry
settings, and a fresh `x-mock-key` per test. A failing test's report
carries the tail of the gateway's and the mock's stderr."""

from __future__ import annotations

from typing import Any, Iterator

import openai
import pytest

import harness


@pytest.fixture(scope="module")
def mock() -> Iterator[harness.Server]:
    server = harness.start_mock()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(mock: harness.Server) -> Iterator[harness.Server]:
    server = harness.start_gateway(mock.url)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(gateway: harness.Server) -> Iterator[openai.OpenAI]:
    c = harness.make_client(gateway)
    yield c
    c.close()


@pytest.fixture
def key() -> str:
    return harness.new_key()


LOG_TAIL_LINES = 40


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for name in ("gateway", "mock"):
        server = getattr(item, "funcargs", {}).get(name)
        if isinstance(server, harness.Server) and not server.stderr_file.closed:
            tail = "\n".join(server.stderr().splitlines()[-LOG_TAIL_LINES:])
            report.sections.append((f"{server.name} stderr (last {LOG_TAIL_LINES} lines)", tail))
