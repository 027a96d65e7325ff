"""ecl.testing.InMemoryDurableContext: the DurableContext users test their workflows on."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from ecl.core import DurableContext, JournalLimitError, NonDeterminismError, RetryPolicy, StepError
from ecl.testing import InMemoryDurableContext


def counter() -> tuple[list[int], Any]:
    calls: list[int] = []

    async def fn() -> dict[str, Any]:
        calls.append(1)
        return {"n": len(calls), "t": (1, 2)}

    return calls, fn


def test_it_is_a_durable_context() -> None:
    assert isinstance(InMemoryDurableContext(), DurableContext)


async def test_run_journals_by_name_and_returns_json() -> None:
    ctx = InMemoryDurableContext("w")
    calls, fn = counter()
    first = await ctx.run("a", fn)
    assert first == {"n": 1, "t": [1, 2]}  # the JSON round trip, already on the first run
    assert await ctx.run("a", fn) == first
    assert calls == [1]
    assert ctx.executed == ["a"]
    assert ctx.journal == {"a": ("ok", {"n": 1, "t": [1, 2]})}
    first["n"] = 99
    assert (await ctx.run("a", fn))["n"] == 1  # callers cannot change the journal


async def test_non_json_results_and_oversized_results_are_refused() -> None:
    ctx = InMemoryDurableContext(journal_max_bytes=50)

    async def not_json() -> Any:
        return {"x": {1, 2}}

    async def big() -> Any:
        return "x" * 100

    with pytest.raises(TypeError, match="'a' is not JSON"):
        await ctx.run("a", not_json)
    with pytest.raises(JournalLimitError) as info:
        await ctx.run("b", big)
    assert (info.value.name, info.value.limit) == ("b", 50)
    assert ctx.journal == {}


async def test_step_errors_are_journaled_and_raised_again() -> None:
    ctx = InMemoryDurableContext()
    attempts: list[int] = []

    async def fails() -> Any:
        attempts.append(1)
        raise StepError("boom", step_id="s", retryable=True)

    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    ctx = InMemoryDurableContext(sleep=fake_sleep)
    policy = RetryPolicy(max_attempts=3, initial_delay=timedelta(seconds=1))
    with pytest.raises(StepError, match="boom"):
        await ctx.run("s", fails, retry=policy)
    assert len(attempts) == 3
    assert waits == [1.0, 2.0]
    with pytest.raises(StepError, match="boom") as info:
        await ctx.replay().run("s", fails)
    assert info.value.step_id == "s"
    assert len(attempts) == 3


async def test_other_exceptions_are_not_journaled() -> None:
    ctx = InMemoryDurableContext()

    async def bug() -> Any:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await ctx.run("x", bug)
    assert ctx.journal == {}


async def test_replay_checks_the_order_of_operations() -> None:
    ctx = InMemoryDurableContext("w")
    _, fn = counter()
    await ctx.run("a", fn)
    await ctx.set("k", 1)
    await ctx.run("b", fn)
    assert ctx.operations == [("run", "a"), ("set", "k"), ("run", "b")]

    same = ctx.replay()
    await same.run("a", fn)
    await same.set("k", 1)
    assert same.state == {"k": 1}
    assert await same.get("k") == 1

    other = ctx.replay()
    await other.run("a", fn)
    with pytest.raises(NonDeterminismError) as info:
        await other.run("b", fn)
    assert (info.value.position, info.value.expected, info.value.actual) == (1, "set k", "run b")
    assert info.value.workflow_id == "w"


async def test_now_uuid_and_sleep_are_fixed_on_replay() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    ctx = InMemoryDurableContext(sleep=fake_sleep)
    now, uid = await ctx.now(), await ctx.uuid()
    await ctx.sleep(timedelta(seconds=2))
    again = ctx.replay()
    assert await again.now() == now
    assert await again.uuid() == uid
    await again.sleep(timedelta(seconds=2))
    assert slept == [2.0]
    assert now.tzinfo is not None


async def test_promises_resolve_by_name_and_by_round() -> None:
    ctx = InMemoryDurableContext()
    assert ctx.signal("approval", {"decision": "approve"}) == "approval"
    assert ctx.signal("approval", "second") == "approval#2"
    assert await ctx.promise("approval") == {"decision": "approve"}
    assert await ctx.promise("approval#2") == "second"
    with pytest.raises(ValueError, match="already resolved"):
        ctx.resolve("approval", 1)


async def test_until_waiting_reports_the_awaited_promise() -> None:
    ctx = InMemoryDurableContext()
    task = asyncio.create_task(ctx.promise("approval#2"))
    assert await ctx.until_waiting("approval") == "approval#2"
    assert ctx.waiting == {"approval#2"}
    ctx.resolve("approval#2", 5)
    assert ctx.waiting == set()
    assert await task == 5
    with pytest.raises(TimeoutError):
        await ctx.until_waiting("approval", timeout=0.01)
