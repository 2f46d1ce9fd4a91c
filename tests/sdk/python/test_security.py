"""Inbound auth as an app sees it through the official Python SDK: the SDK's
`api_key` is the gateway's token, the upstream receives the configured
provider key (never the token), and a wrong token is refused with 401
before anything reaches the upstream."""

from __future__ import annotations

import json

import openai
import pytest

import harness
from harness import MESSAGES, MODEL

TOKEN = "gw-token-python-sdk"
PROVIDER_KEY = "sk-provider-configured-py"


@pytest.fixture(scope="module")
def guarded(mock: harness.Server):
    gw = harness.start_gateway(
        mock.url,
        {"BACKSTOP_AUTH__TOKENS": TOKEN, "BACKSTOP_UPSTREAM__API_KEY": PROVIDER_KEY},
    )
    yield gw
    gw.stop()


def test_the_sdk_key_is_the_gateway_token_and_the_upstream_gets_the_provider_key(
    guarded: harness.Server,
) -> None:
    client = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=TOKEN, max_retries=0, timeout=harness.SDK_TIMEOUT_S)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, extra_headers={"x-mock-echo": "1"}
    )
    assert raw.status_code == 200
    echo = json.loads(raw.http_response.text)
    assert echo["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert TOKEN not in raw.http_response.text


def test_a_wrong_token_is_refused_before_the_upstream(guarded: harness.Server, mock: harness.Server, key: str) -> None:
    client = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key="sk-someone-elses", timeout=harness.SDK_TIMEOUT_S)
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=harness.scenario("ok", key))
    err = raised.value
    assert err.status_code == 401
    body = err.body
    assert isinstance(body, dict)
    assert body["backstop"]["kind"] == "unauthorized"
    assert body["backstop"]["attempts"] == 0
    assert err.response.headers["x-should-retry"] == "false"
    assert harness.mock_attempts(mock.url, key) == 0
