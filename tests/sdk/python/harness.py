"""Process harness for the SDK tests: starts `backstop-mock` and `backstop`
from `target/debug/` (or `$BACKSTOP_BIN_DIR`) on ephemeral ports, reads each
one's address from its first stdout line, and stops them again.

Used by `conftest.py` (module-scoped fixtures) and by tests that need a
gateway with extra settings (`start_gateway(mock.url, {...})`).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Mapping

import openai

REPO_ROOT = Path(__file__).resolve().parents[3]
STARTUP_TIMEOUT_S = float(os.environ.get("BACKSTOP_TEST_STARTUP_TIMEOUT_S", "15"))
ADDRESS = re.compile(r"listening on (http://\S+)")

# What every test asks for; the mock echoes the model back.
MODEL = "gpt-4o-mini"
MESSAGES: list[Any] = [{"role": "user", "content": "Say hello."}]
# The mock's default content: three stream pieces.
HELLO = ["Hello", " from", " backstop-mock."]
# Bounded so that a hung gateway fails one test instead of the whole run.
SDK_TIMEOUT_S = 20.0

# Fast retries so that a 3-attempt failure costs milliseconds, not seconds.
GATEWAY_TEST_ENV = {
    "BACKSTOP_RETRY__BASE_DELAY_MS": "10",
    "BACKSTOP_RETRY__MAX_DELAY_MS": "50",
}


def bin_dir() -> Path:
    """Where the binaries are: `$BACKSTOP_BIN_DIR` or `<repo>/target/debug`."""
    override = os.environ.get("BACKSTOP_BIN_DIR")
    return Path(override) if override else REPO_ROOT / "target" / "debug"


def binary(name: str) -> Path:
    path = bin_dir() / name
    if not path.is_file():
        raise RuntimeError(f"{path} not found: run `cargo build --workspace --bins` first (or set BACKSTOP_BIN_DIR)")
    return path


@dataclass
class Server:
    """One running child process and the base URL it printed."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    stderr_file: IO[bytes]
    workdir: tempfile.TemporaryDirectory[str]
    stdout_lines: "queue.Queue[str | None]" = field(repr=False)

    def __repr__(self) -> str:
        return f"Server({self.name} {self.url} pid={self.proc.pid})"

    def stderr(self) -> str:
        return read_log(self.stderr_file)

    def stop(self) -> None:
        if self.stderr_file.closed:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.stderr_file.close()
        self.workdir.cleanup()


def read_log(f: IO[bytes]) -> str:
    f.flush()
    f.seek(0)
    return f.read().decode("utf-8", "replace")


def _pump(stream: IO[bytes], lines: "queue.Queue[str | None]") -> None:
    """Read stdout to the end so the child never blocks on a full pipe."""
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
    lines.put(None)


def start(
    name: str,
    args: list[str],
    env: Mapping[str, str] | None = None,
    files: Mapping[str, str] | None = None,
) -> Server:
    """Start `bin_dir()/name args...` in a fresh empty working directory (so
    no `config/backstop.toml` of the caller's is picked up), wait for its
    `... listening on http://HOST:PORT` line and return it as a [`Server`].
    `files` (relative name -> text) are written into that directory first,
    and go away with it."""
    # The gateway rejects every unknown BACKSTOP_* variable as a config key,
    # so none of ours (BACKSTOP_BIN_DIR, BACKSTOP_TEST_*) or the caller's
    # shell leaks in: children see exactly the BACKSTOP_* given here.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BACKSTOP_")}
    full_env["NO_COLOR"] = "1"  # plain logs in failure reports
    full_env.update(env or {})
    workdir = tempfile.TemporaryDirectory(prefix=f"{name}-")
    for rel, text in (files or {}).items():
        (Path(workdir.name) / rel).write_text(text, encoding="utf-8")
    stderr_file = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [str(binary(name)), *args],
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        stdin=subprocess.DEVNULL,
        env=full_env,
        cwd=workdir.name,
    )
    assert proc.stdout is not None
    lines: "queue.Queue[str | None]" = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()

    def fail(why: str) -> RuntimeError:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        log = read_log(stderr_file)
        stderr_file.close()
        workdir.cleanup()
        return RuntimeError(f"{name} {' '.join(args)}: {why} (exit code {proc.returncode}); stderr:\n{log}")

    try:
        first = lines.get(timeout=STARTUP_TIMEOUT_S)
    except queue.Empty:
        raise fail(f"printed no address within {STARTUP_TIMEOUT_S:.0f} s") from None
    if first is None:
        raise fail("exited before printing its address")
    found = ADDRESS.search(first)
    if not found:
        raise fail(f"first stdout line is not '... listening on http://...': {first!r}")
    return Server(name, proc, found.group(1).rstrip("/"), stderr_file, workdir, lines)


def start_mock(*extra_args: str) -> Server:
    """`backstop-mock --listen 127.0.0.1:0 [extra_args]`."""
    return start("backstop-mock", ["--listen", "127.0.0.1:0", *extra_args])


def start_gateway(mock_url: str, extra_env: Mapping[str, str] | None = None) -> Server:
    """`backstop` in front of the mock, with fast retries and `extra_env`
    (e.g. `{"BACKSTOP_RETRY__MAX_ATTEMPTS": "1"}`) on top."""
    env = {
        "BACKSTOP_LISTEN": "127.0.0.1:0",
        "BACKSTOP_UPSTREAM": f"{mock_url}/v1",
        **GATEWAY_TEST_ENV,
        **(extra_env or {}),
    }
    return start("backstop", [], env)


def start_gateway_with_config(config_toml: str, extra_env: Mapping[str, str] | None = None) -> Server:
    """`backstop` reading `config_toml` as its config file (written into its
    working directory, named by `BACKSTOP_CONFIG`), with fast retries and
    `extra_env` on top. No `BACKSTOP_UPSTREAM`: the file's `[upstream]` and
    `[upstreams.*]` say where requests go."""
    env = {
        "BACKSTOP_LISTEN": "127.0.0.1:0",
        "BACKSTOP_CONFIG": GATEWAY_CONFIG_FILE,
        **GATEWAY_TEST_ENV,
        **(extra_env or {}),
    }
    return start("backstop", [], env, files={GATEWAY_CONFIG_FILE: config_toml})


# Relative to the gateway's working directory, where `start` writes it.
GATEWAY_CONFIG_FILE = "backstop-test.toml"


def new_key() -> str:
    """A fresh `x-mock-key` so each test counts only its own attempts."""
    return f"k-{uuid.uuid4()}"


def get_json(url: str) -> object:
    """GET `url` straight (not through the SDK) and parse its JSON body."""
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def mock_attempts(mock_url: str, key: str) -> int:
    """How many requests the mock has seen with `x-mock-key: key`."""
    stats = get_json(f"{mock_url}/mock/stats")
    assert isinstance(stats, dict), stats
    return int(stats.get("by_key", {}).get(key, 0))


def scenario(steps: str, key: str | None = None, **more: str) -> dict[str, str]:
    """Headers for a mock scenario (and key), for the SDK's `extra_headers`."""
    headers = {"x-mock-scenario": steps}
    if key is not None:
        headers["x-mock-key"] = key
    for name, value in more.items():
        headers[f"x-mock-{name.replace('_', '-')}"] = value
    return headers


def make_client(gateway: Server, **options: Any) -> openai.OpenAI:
    """An official SDK client on `gateway` with the SDK's default retry
    settings; `options` (e.g. `max_retries=0`) go to `openai.OpenAI(...)`."""
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test-backstop", timeout=SDK_TIMEOUT_S, **options)
