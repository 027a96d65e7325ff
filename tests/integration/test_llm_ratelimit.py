"""Rate limits toward the provider (issue 13, item 4) against the fake Anthropic server over
HTTP: retry-after pauses every caller, the RPM bucket keeps the request rate of 50
concurrent workflows under the limit (measured at the server), waits are visible, bad
configuration is one line."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import ecl
from ecl.config import load_settings
from ecl.core import ConfigError, RetryPolicy, WorkflowState
from ecl.llm import CompletionRequest, build_provider
from ecl.llm.ratelimit import RateLimit, RateLimitBoard, on_wait
from ecl.steps import StepExecutor, StepRegistry
from ecl.testing import FakeAnthropicServer, Reply
from tests.unit.workflows_support import RecordingRecorder

pytestmark = pytest.mark.timeout(300)

MODEL = "claude-sonnet-5-5"
REQUEST = CompletionRequest.of("Say something.", max_tokens=100)
FAST = RetryPolicy(max_attempts=5, initial_delay=timedelta(milliseconds=10))


def _provider(server: FakeAnthropicServer, board: RateLimitBoard) -> Any:
    return build_provider(
        "anthropic", model=MODEL, api_key="sk-test", base_url=server.url, retry=FAST, rate_limits=board
    )


async def test_a_429_storm_with_retry_after_pauses_every_caller_of_the_model() -> None:
    with FakeAnthropicServer() as server:
        for _ in range(3):
            server.enqueue_fault(429, headers={"retry-after": "1"})
        server.enqueue("a", "b", "c")
        board = RateLimitBoard()
        llm = _provider(server, board)
        try:
            first = asyncio.create_task(llm.complete(REQUEST))
            limiter = board.limiter("anthropic", MODEL)
            deadline = time.monotonic() + 30
            while limiter.paused.paused_until <= time.monotonic():  # the first 429 came back
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            # Another workflow's call, started during the pause, waits for it too.
            second, third = asyncio.create_task(llm.complete(REQUEST)), asyncio.create_task(llm.complete(REQUEST))
            replies = await asyncio.gather(first, second, third)
        finally:
            await llm.close()
    assert sorted(r.content for r in replies) == ["a", "b", "c"]
    times = [r.time for r in server.requests]
    assert len(times) == 6
    statuses = times[:3]  # the three 429s were served first
    # After a 429 came back, no caller sent anything until its retry-after (1 s) had passed;
    # requests arriving within 0.3 s of it were already on their way (a busy machine delays them).
    for t in statuses:
        early = [u - t for u in times if t + 0.3 <= u < t + 0.95]
        assert not early, [u - times[0] for u in times]
    assert times[-1] - times[0] >= 2 * 0.95


async def test_ratelimit_headers_at_zero_pause_until_the_reset() -> None:
    reset = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    headers = {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset}
    with FakeAnthropicServer() as server:
        server.enqueue(Reply(text="last one", headers=headers))
        server.enqueue("after the reset")
        board = RateLimitBoard({MODEL: RateLimit(requests_per_minute=6000)})
        llm = _provider(server, board)
        try:
            assert (await llm.complete(REQUEST)).content == "last one"
            assert (await llm.complete(REQUEST)).content == "after the reset"
        finally:
            await llm.close()
    gap = server.requests[1].time - server.requests[0].time
    assert gap >= 1.0, gap


async def test_a_wait_for_capacity_is_announced() -> None:
    heard: list[tuple[str, float]] = []
    went_on: list[str] = []

    async def hear(reason: str, seconds: float, limiter: str) -> None:
        if seconds > 0:
            heard.append((reason, seconds))
        else:
            went_on.append(limiter)

    with FakeAnthropicServer() as server:
        server.enqueue("one", "two")
        board = RateLimitBoard({"*": RateLimit(requests_per_minute=30)})  # one every 2 s
        llm = _provider(server, board)
        token = on_wait.set(hear)
        try:
            await llm.complete(REQUEST)
            await llm.complete(REQUEST)
        finally:
            on_wait.reset(token)
            await llm.close()
    assert len(heard) == 1
    reason, seconds = heard[0]
    assert reason == "requests per minute"
    assert 1.5 <= seconds <= 2.2  # (30 - 1) / 60 requests a second
    assert went_on == [f"anthropic/{MODEL}"]  # and when it went on
    assert server.requests[1].time - server.requests[0].time >= 1.5


class WaitRecorder(RecordingRecorder):
    """Also remembers the rate-limit waits (the embedded engine's recorder emits them)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[tuple[str, str, str, float]] = []

    async def llm_waiting(
        self, workflow_id: str, execution_id: str, reason: str, seconds: float, model: str = ""
    ) -> None:
        """Remember the wait."""
        self.waits.append((workflow_id, execution_id, reason, seconds))


@ecl.step
async def twice(ctx: ecl.StepContext, n: int) -> str:
    """Two LLM calls."""
    first = await ctx.llm.complete(CompletionRequest.of(f"one {n}", max_tokens=50))
    second = await ctx.llm.complete(CompletionRequest.of(f"two {n}", max_tokens=50))
    return first.content + second.content


async def test_a_step_waiting_for_capacity_tells_its_recorder() -> None:
    with FakeAnthropicServer() as server:
        server.enqueue("a", "b")
        llm = _provider(server, RateLimitBoard({"*": RateLimit(requests_per_minute=30)}))
        recorder = WaitRecorder()
        try:
            executor = StepExecutor(StepRegistry([twice.step]), llm, recorder=recorder)
            execution = await executor.execute("twice", {"n": 1}, workflow_id="w-wait")
        finally:
            await llm.close()
    assert execution.output == {"result": "ab"}
    assert len(recorder.waits) == 1
    workflow_id, execution_id, reason, seconds = recorder.waits[0]
    assert (workflow_id, execution_id, reason) == ("w-wait", "x1", "requests per minute")
    assert seconds >= 1.5


@ecl.step
async def ping(ctx: ecl.StepContext, n: int) -> str:
    """One LLM call."""
    reply = await ctx.llm.complete(CompletionRequest.of(f"ping {n}", max_tokens=50))
    return reply.content


@ecl.workflow("ping")
async def ping_flow(ctx: ecl.WorkflowContext, n: int) -> str:
    """One step."""
    return await ping(ctx, n)


RPM = 600  # 10 requests a second


async def test_the_rpm_bucket_keeps_50_concurrent_workflows_under_the_limit(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.toml").write_text(
        f'[llm.rate_limits."{MODEL}"]\nrequests_per_minute = {RPM}\n', encoding="utf-8"
    )
    with FakeAnthropicServer(responder=lambda request: Reply(text="pong")) as server:
        settings = load_settings(
            environ={
                "ECL_LLM_PROVIDER": "anthropic",
                "ECL_LLM_MODEL": MODEL,
                "ECL_LLM_BASE_URL": server.url,
                "ECL_CLAUDE_API_KEY": "sk-test",
                "ECL_ARTIFACT_PATH": str(tmp_path / "artifacts"),
            },
            cwd=tmp_path,
        )
        assert settings.llm.rate_limits[MODEL].requests_per_minute == RPM
        async with ecl.open_engine(
            database_url=f"sqlite:///{tmp_path / 'ecl.db'}", workflows=[ping_flow], llm="anthropic", settings=settings
        ) as engine:
            ids = [await engine.submit("ping", {"n": n}, workflow_id=f"p-{n}") for n in range(50)]
            results = await asyncio.gather(*(engine.result(wid) for wid in ids))
        times = sorted(r.time for r in server.requests)
    assert all(r.state is WorkflowState.COMPLETED for r in results), [r.error for r in results if r.error]
    assert len(times) == 50
    burst = max(1.0, RPM / 60)
    rate = (RPM - burst) / 60
    span = times[-1] - times[0]
    # Any window of T seconds holds at most the burst plus T seconds of refill, so no 60 s
    # window exceeds RPM (+ 0.25 s of refill and 1 request: sending and the server's
    # timestamp are apart by a busy machine's jitter).
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= burst + rate * (times[j] - start + 0.25) + 1, (i, j, times[j] - start)
    sustained = (len(times) - burst) / span  # what came after the first burst, per second
    assert sustained <= RPM / 60 * 1.05, sustained  # (5 %: the timestamps' jitter)
    peak = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    print(
        f"50 workflows, limit {RPM}/min: {span:.2f} s; sustained {sustained:.2f} requests/s after the "
        f"burst of {burst:g} (limit {RPM / 60:g}/s); peak {peak} in a 1 s window"
    )


@pytest.mark.parametrize(
    ("value", "needle"),
    [("-1", "requests_per_minute"), ('"lots"', "requests_per_minute"), ("0", "requests_per_minute")],
)
def test_a_bad_rate_limit_is_a_one_line_error_naming_the_field(tmp_path: Path, value: str, needle: str) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.toml").write_text(
        f'[llm.rate_limits."{MODEL}"]\nrequests_per_minute = {value}\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, cwd=tmp_path)
    message = str(info.value)
    assert f"llm.rate_limits.{MODEL}.{needle}" in message, message
    assert "\n" not in message
