"""Logs that carry their context (issue 14, item 3): every line logged while a workflow or a
step runs, by whichever module (the LLM provider's retries, the circuit breaker), carries
``workflow_id``, ``step_id`` and ``attempt``.

Critique-Revise on the embedded engine in this process, the real ``anthropic`` SDK against the
fake server over HTTP answering a scripted 429, logging configured to JSON lines.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

import ecl
from ecl.config import load_settings
from ecl.core import RetryPolicy, WorkflowState
from ecl.engines.handle import EngineHandle
from ecl.llm import BreakerBoard, LlmProvider, build_provider
from ecl.observability import configure_logging
from ecl.testing import FakeAnthropicServer, ReceivedRequest, Reply
from tests.e2e.helpers import PASS, is_critique

pytestmark = pytest.mark.timeout(300)

MODEL = "claude-sonnet-5-5"
FAST = RetryPolicy(max_attempts=3, initial_delay=timedelta(milliseconds=10), max_delay=timedelta(milliseconds=50))
TOO_MANY = Reply(status=429, headers={"retry-after": "0"})


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


@asynccontextmanager
async def _engine(tmp_path: Path, server: FakeAnthropicServer, **options: Any) -> AsyncIterator[EngineHandle]:
    llm: LlmProvider = build_provider(
        "anthropic", model=MODEL, api_key="sk-test", base_url=server.url, retry=FAST, **options
    )
    settings = load_settings(environ={"ECL_ARTIFACT_PATH": str(tmp_path / "artifacts")}, cwd=tmp_path)
    try:
        async with ecl.open_engine(
            database_url=f"sqlite:///{tmp_path / 'ecl.db'}", workflows=[pair], llm=llm, settings=settings
        ) as engine:
            yield engine
    finally:
        await llm.close()  # type: ignore[attr-defined]


async def test_the_retry_and_breaker_lines_of_a_429_carry_the_workflow_step_and_attempt(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    with FakeAnthropicServer(responder=lambda r: PASS if is_critique(r) else "a draft") as server:
        server.enqueue(TOO_MANY)
        # One 429 opens the circuit: its transitions are logged by the call that causes them.
        board = BreakerBoard(failure_threshold=1, open_for=0.2)
        async with _engine(tmp_path, server, breakers=board) as engine:
            result = await engine.run("critique-revise", {"topic": "logs"}, workflow_id="wf-logs")
            structlog.get_logger("test").info("after the run")
    assert result.state is WorkflowState.COMPLETED, result.error
    lines = _lines(stream)
    retry = [line for line in lines if line["event"] == "llm call failed; retrying"]
    assert len(retry) == 1, lines
    assert retry[0]["status"] == 429 and retry[0]["request"] == 1
    assert (retry[0]["workflow_id"], retry[0]["step_id"], retry[0]["attempt"]) == ("wf-logs", "generate", 1)
    breaker = [line for line in lines if "circuit breaker" in line["event"]]
    assert {line["event"] for line in breaker} >= {
        "circuit breaker open",
        "llm call waits for the circuit breaker",
        "circuit breaker half-open",
        "circuit breaker closed",
    }
    assert {(line["workflow_id"], line["step_id"], line["attempt"]) for line in breaker} == {("wf-logs", "generate", 1)}
    # Every step's lines carry the step and its attempt; the run's own lines carry no step.
    steps = [line for line in lines if line.get("step_id")]
    assert {line["step_id"] for line in steps} == {"generate", "critique", "final"}
    assert all(line["workflow_id"] == "wf-logs" and line["attempt"] == 1 for line in steps)
    run = [line for line in lines if line["event"] == "workflow run"]
    assert run and all(line["workflow_id"] == "wf-logs" and "step_id" not in line for line in run)
    # Nothing stays bound once the run is over.
    (after,) = [line for line in lines if line["event"] == "after the run"]
    assert "workflow_id" not in after and "step_id" not in after and "attempt" not in after


def _first_429_of_each(topics: tuple[str, ...]) -> Callable[[ReceivedRequest], Reply | str]:
    """A 429 for each workflow's first request, answered only once every workflow has sent
    its own: the workflows are in flight together when their retries are logged."""
    together = threading.Barrier(len(topics), timeout=60)
    seen: set[str] = set()
    lock = threading.Lock()

    def reply(request: ReceivedRequest) -> Reply | str:
        if is_critique(request):
            return PASS
        topic = next(t for t in topics if t in request.text)
        with lock:
            first = topic not in seen
            seen.add(topic)
        if first:
            together.wait()
            return TOO_MANY
        return f"a draft about {topic}"

    return reply


async def test_two_concurrent_workflows_each_log_their_own_ids(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    topics = ("otters", "volcanoes")
    with FakeAnthropicServer(responder=_first_429_of_each(topics)) as server:
        async with _engine(tmp_path, server, breaker=False) as engine:
            results = await asyncio.gather(
                *(engine.run("critique-revise", {"topic": t}, workflow_id=f"wf-{t}") for t in topics)
            )
    assert all(r.state is WorkflowState.COMPLETED for r in results), [r.error for r in results]
    retries = [line for line in _lines(stream) if line["event"] == "llm call failed; retrying"]
    assert sorted((line["workflow_id"], line["step_id"], line["attempt"]) for line in retries) == [
        ("wf-otters", "generate", 1),
        ("wf-volcanoes", "generate", 1),
    ]
    # Each workflow sent its own requests: the 429, the generate again, the critique.
    assert [sum(t in r.text for r in server.requests) for t in topics] == [3, 3]


barrier: asyncio.Barrier | None = None


@ecl.step
async def left(ctx: ecl.StepContext, text: str) -> str:
    """Logs once the other step is running too."""
    assert barrier is not None
    await barrier.wait()
    structlog.get_logger("test").info("inside", side="left")
    return text


@ecl.step
async def right(ctx: ecl.StepContext, text: str) -> str:
    """Logs once the other step is running too."""
    assert barrier is not None
    await barrier.wait()
    structlog.get_logger("test").info("inside", side="right")
    return text


@ecl.workflow("pair")
async def pair(ctx: ecl.WorkflowContext, text: str) -> list[str]:
    """Two steps at once."""
    return list(await asyncio.gather(left(ctx, text), right(ctx, text)))


async def test_concurrent_steps_each_carry_their_own_step_id(tmp_path: Path) -> None:
    global barrier
    barrier = asyncio.Barrier(2)
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    with FakeAnthropicServer() as server:
        async with _engine(tmp_path, server) as engine:
            result = await asyncio.wait_for(engine.run("pair", {"text": "x"}, workflow_id="wf-pair"), 60)
    assert result.state is WorkflowState.COMPLETED, result.error
    inside = [line for line in _lines(stream) if line["event"] == "inside"]
    assert sorted((line["side"], line["step_id"], line["workflow_id"], line["attempt"]) for line in inside) == [
        ("left", "left", "wf-pair", 1),
        ("right", "right", "wf-pair", 1),
    ]
