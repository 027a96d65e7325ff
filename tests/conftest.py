"""Shared fixtures: real LLM requests are blocked unless a test asks for them."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
import structlog

from ecl.testing import FakeAnthropicServer
from tests.db_fixtures import any_url, pg_url, server_url
from tests.e2e.helpers import reap, spawned
from tests.otlp_receiver import OtlpReceiver

__all__ = ["any_url", "pg_url", "server_url"]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A test that runs ``ecl`` in-process configures logging onto its captured stderr, which
    pytest closes afterwards: put the previous configuration back so later tests can log."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _block_real_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the SDKs at a closed loopback port and drop real keys."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9")
    for var in ("ANTHROPIC_API_KEY", "ECL_CLAUDE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)


SUBPROCESS_TEST_TIMEOUT = 900
"""Seconds a test that starts servers may run (pyproject's ``timeout`` is for the rest): on a
machine busy with other work one ``ecl server start`` alone has taken 50 s."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give tests that drive subprocesses (e2e, Restate, a browser) a long timeout unless they set one."""
    for item in items:
        slow = any(item.get_closest_marker(name) for name in ("e2e", "restate", "browser"))
        if slow and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SUBPROCESS_TEST_TIMEOUT))


@pytest.fixture(scope="session", autouse=True)
def _reap_leftover_processes() -> Iterator[None]:
    """At the end, stop whatever a module's fixtures left running."""
    yield
    reap(kept=True)


@pytest.fixture(autouse=True)
def _reap_processes() -> Iterator[None]:
    """Stop (and reap, closing their pipes) the processes a test started and left running,
    also when it failed half-way: a server left on its port, or pipes closed only by the
    garbage collector during some later test (a ResourceWarning, an error there)."""
    mark = spawned()
    yield
    reap(mark)


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropicServer]:
    """A running fake Anthropic server."""
    with FakeAnthropicServer() as server:
        yield server


def base_env() -> dict[str, str]:
    """A subprocess environment with no real keys and no user config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECL_", "ANTHROPIC_"))}
    env["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9"
    return env


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP receiver on loopback for the spans of ``ecl`` subprocesses."""
    found = OtlpReceiver()
    try:
        yield found
    finally:
        found.close()
