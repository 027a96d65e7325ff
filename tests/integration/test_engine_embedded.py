"""The embedded engine against a real SQLite file, with small scripted orchestrators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from ecl.core import (
    ConflictError,
    DurableContext,
    JournalLimitError,
    LeaseError,
    NonDeterminismError,
    NotFoundError,
    StepError,
    WorkflowResult,
    WorkflowState,
)
from ecl.engines.embedded import EmbeddedEngine, EmbeddedOptions
from ecl.store.database import create_sync_engine, upgrade
from ecl.store.models import Base

Script = Callable[[DurableContext, dict[str, Any]], Awaitable[dict[str, Any]]]

FAST = EmbeddedOptions(
    lease_seconds=2.0,
    heartbeat_seconds=0.2,
    promise_poll_seconds=0.02,
    worker_poll_seconds=0.05,
    journal_max_bytes=10_000,
)


class ScriptOrchestrator:
    """Runs a plain async function as the workflow body."""

    def __init__(self, script: Script) -> None:
        self.script = script

    async def run(
        self, ctx: DurableContext, definition_id: str, input: dict[str, Any], *, recorder: Any
    ) -> WorkflowResult:
        outputs = await self.script(ctx, input)
        return WorkflowResult(
            workflow_id=ctx.workflow_id,
            definition_id=definition_id,
            state=WorkflowState.COMPLETED,
            outputs=outputs,
        )


@pytest.fixture
def db_url(server_url: str) -> str:
    """Every engine test runs on a SQLite file and on real PostgreSQL."""
    upgrade(server_url)
    return server_url


@pytest.fixture
def make_engine(db_url: str) -> AsyncIterator[Callable[..., Awaitable[EmbeddedEngine]]]:
    engines: list[EmbeddedEngine] = []

    async def make(script: Script, options: EmbeddedOptions = FAST) -> EmbeddedEngine:
        engine = EmbeddedEngine(
            create_sync_engine(db_url),
            dict(Base.metadata.tables),
            ScriptOrchestrator(script),
            options=options,
        )
        engines.append(engine)
        return await engine.start()

    yield make  # type: ignore[misc]


def journal_names(db_url: str, workflow_id: str) -> list[tuple[int, str, str]]:
    engine = create_sync_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT seq, kind, name FROM journal_entries WHERE workflow_id = :w ORDER BY seq"),
            {"w": workflow_id},
        )
        result = [(r.seq, r.kind, r.name) for r in rows]
    engine.dispose()
    return result


def workflow_row(db_url: str, workflow_id: str) -> Any:
    engine = create_sync_engine(db_url)
    workflows = Base.metadata.tables["workflows"]
    with engine.connect() as conn:
        row = conn.execute(select(workflows).where(workflows.c.id == workflow_id)).first()
    engine.dispose()
    return row


async def test_steps_are_journaled_and_result_stored(make_engine: Any, db_url: str) -> None:
    calls: list[str] = []

    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        async def step(name: str) -> str:
            calls.append(name)
            return f"{name}:{data['x']}"

        a = await ctx.run("step:a", lambda: step("a"))
        b = await ctx.run("step:b", lambda: step("b"))
        await ctx.set("count", 2)
        return {"a": a, "b": b, "count": await ctx.get("count")}

    engine = await make_engine(script)
    wid = await engine.submit("demo", {"x": 1})
    result = await engine.result(wid)
    await engine.close()
    assert result.state is WorkflowState.COMPLETED
    assert result.outputs == {"a": "a:1", "b": "b:1", "count": 2}
    assert calls == ["a", "b"]
    assert journal_names(db_url, wid) == [
        (0, "run", "step:a"),
        (1, "run", "step:b"),
        (2, "set", "count"),
    ]
    row = workflow_row(db_url, wid)
    assert row.state == "completed"
    assert row.owner is None
    assert row.output["outputs"]["b"] == "b:1"


async def test_resume_replays_completed_steps_and_reruns_the_one_in_flight(make_engine: Any, db_url: str) -> None:
    calls: list[str] = []
    gate = asyncio.Event()

    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        async def first() -> int:
            calls.append("first")
            return 1

        async def second() -> int:
            calls.append("second")
            await gate.wait()
            return 2

        n = await ctx.run("step:first", first)
        await ctx.set("draft", "v1")
        m = await ctx.run("step:second", second)
        return {"sum": n + m, "draft": await ctx.get("draft")}

    a = await make_engine(script)
    wid = await a.submit("demo", {})
    while calls != ["first", "second"]:
        await asyncio.sleep(0.01)
    await a.close()  # "crash": the second step never finished
    assert workflow_row(db_url, wid).state == "running"

    gate.set()
    b = await make_engine(script)
    result = await b.resume(wid)
    await b.close()
    assert result.outputs == {"sum": 3, "draft": "v1"}
    assert calls == ["first", "second", "second"]  # first replayed, second ran again


async def test_non_determinism_names_the_step_and_leaves_the_run_resumable(make_engine: Any, db_url: str) -> None:
    gate = asyncio.Event()

    async def original(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        async def wait() -> str:
            await gate.wait()
            return "x"

        await ctx.run("step:generate", lambda: asyncio.sleep(0, "g"))
        await ctx.run("step:critique", wait)
        return {}

    a = await make_engine(original)
    wid = await a.submit("demo", {})
    while len(journal_names(db_url, wid)) < 1:
        await asyncio.sleep(0.01)
    await a.close()

    executed: list[str] = []

    async def renamed(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        async def step() -> str:
            executed.append("draft")
            return "d"

        await ctx.run("step:draft", step)
        return {}

    b = await make_engine(renamed)
    with pytest.raises(NonDeterminismError) as info:
        await b.resume(wid)
    await b.close()
    assert info.value.position == 0
    assert "step:generate" in str(info.value)
    assert "step:draft" in str(info.value)
    assert executed == []
    assert workflow_row(db_url, wid).state == "running"


async def test_different_state_key_is_non_deterministic(make_engine: Any, db_url: str) -> None:
    block = asyncio.Event()

    async def original(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        await ctx.set("revision_count", 1)
        await ctx.run("step:wait", lambda: block.wait())  # type: ignore[arg-type,return-value]
        return {}

    a = await make_engine(original)
    wid = await a.submit("demo", {})
    while len(journal_names(db_url, wid)) < 1:
        await asyncio.sleep(0.01)
    await a.close()

    async def changed(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        await ctx.set("revisions", 1)
        return {}

    b = await make_engine(changed)
    with pytest.raises(NonDeterminismError) as info:
        await b.resume(wid)
    await b.close()
    assert info.value.expected == "set revision_count"
    assert info.value.actual == "set revisions"


async def test_concurrent_steps_get_positions_by_call_order(make_engine: Any, db_url: str) -> None:
    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        async def slow(value: str, delay: float) -> str:
            await asyncio.sleep(delay)
            return value

        a, b, c = await asyncio.gather(
            ctx.run("step:a", lambda: slow("a", 0.05)),
            ctx.run("step:b", lambda: slow("b", 0.0)),
            ctx.run("step:c", lambda: slow("c", 0.02)),
        )
        return {"v": [a, b, c]}

    engine = await make_engine(script)
    wid = await engine.submit("demo", {})
    result = await engine.result(wid)
    await engine.close()
    assert result.outputs == {"v": ["a", "b", "c"]}
    assert journal_names(db_url, wid) == [
        (0, "run", "step:a"),
        (1, "run", "step:b"),
        (2, "run", "step:c"),
    ]


async def test_promise_waits_for_a_signal(make_engine: Any, db_url: str) -> None:
    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        decision = await ctx.promise("approval")
        return {"decision": decision}

    engine = await make_engine(script)
    wid = await engine.submit("demo", {})
    await asyncio.sleep(0.1)
    assert not (await engine.stored_result(wid))
    await engine.signal(wid, "approval", {"decision": "approve"})
    result = await engine.result(wid)
    with pytest.raises(ConflictError):
        await engine.signal(wid, "approval", {"decision": "approve"})
    await engine.close()
    assert result.outputs == {"decision": {"decision": "approve"}}


async def test_signals_resolve_successive_rounds(make_engine: Any, db_url: str) -> None:
    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        first = await ctx.promise("approval")
        second = await ctx.promise("approval#2")
        return {"answers": [first, second]}

    engine = await make_engine(script)
    wid = await engine.submit("demo", {})
    await engine.signal(wid, "approval", "one")
    await engine.signal(wid, "approval", "two")
    result = await engine.result(wid)
    await engine.close()
    assert result.outputs == {"answers": ["one", "two"]}


async def test_cancel_in_every_state(make_engine: Any, db_url: str) -> None:
    async def waits(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        if data["mode"] == "promise":
            await ctx.promise("approval")
        elif data["mode"] == "running":
            await ctx.run("step:long", lambda: asyncio.sleep(30, "x"))
        elif data["mode"] == "backoff":

            async def flaky() -> str:
                raise StepError("try later", retryable=True)

            from ecl.core import RetryPolicy

            await ctx.run(
                "step:flaky",
                flaky,
                retry=RetryPolicy(max_attempts=5, initial_delay=timedelta(seconds=30)),
            )
        return {}

    engine = await make_engine(waits)
    ids = [await engine.submit("demo", {"mode": m}) for m in ("promise", "running", "backoff")]
    idle = await engine.submit("demo", {"mode": "idle"}, start=False)
    await asyncio.sleep(0.2)
    for wid in [*ids, idle]:
        await engine.cancel(wid)
    results = [await engine.result(wid) for wid in [*ids, idle]]
    await engine.close()
    assert [r.state for r in results] == [WorkflowState.CANCELLED] * 4
    for wid in [*ids, idle]:
        assert workflow_row(db_url, wid).state == "cancelled"


async def test_idempotent_submission(make_engine: Any) -> None:
    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        return dict(data)

    engine = await make_engine(script)
    first = await engine.submit("demo", {"a": 1}, workflow_id="order-42")
    again = await engine.submit("demo", {"a": 1}, workflow_id="order-42")
    assert first == again == "order-42"
    with pytest.raises(ConflictError):
        await engine.submit("demo", {"a": 2}, workflow_id="order-42")
    result = await engine.result("order-42")
    await engine.close()
    assert result.outputs == {"a": 1}


async def test_oversized_step_result_is_refused_before_commit(make_engine: Any, db_url: str) -> None:
    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        await ctx.run("step:big", lambda: asyncio.sleep(0, "x" * 20_000))
        return {}

    engine = await make_engine(script)
    wid = await engine.submit("demo", {})
    result = await engine.result(wid)
    await engine.close()
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["type"] == JournalLimitError.__name__
    assert journal_names(db_url, wid) == []


async def test_step_error_is_journaled_and_replayed(make_engine: Any, db_url: str) -> None:
    calls = 0

    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        async def boom() -> str:
            nonlocal calls
            calls += 1
            raise StepError("bad output", step_id="critique")

        try:
            await ctx.run("step:critique", boom)
        except StepError as err:
            return {"error": err.message}
        return {}

    engine = await make_engine(script)
    wid = await engine.submit("demo", {})
    assert (await engine.result(wid)).outputs == {"error": "bad output"}
    await engine.close()
    assert calls == 1
    assert journal_names(db_url, wid) == [(0, "run", "step:critique")]


async def test_two_engines_never_run_the_same_workflow(make_engine: Any, db_url: str) -> None:
    started: list[str] = []
    gate = asyncio.Event()

    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        async def step() -> str:
            started.append("run")
            await gate.wait()
            return "done"

        return {"v": await ctx.run("step:only", step)}

    a = await make_engine(script)
    b = await make_engine(script)
    wid = await a.submit("demo", {})
    while not started:
        await asyncio.sleep(0.01)
    with pytest.raises(LeaseError):
        await b.resume(wid, wait=False)
    assert await b.recover() == []
    gate.set()
    result = await a.result(wid)
    await a.close()
    await b.close()
    assert result.outputs == {"v": "done"}
    assert started == ["run"]


async def test_a_run_taken_over_by_another_worker_stands_down_with_a_lease_error(make_engine: Any, db_url: str) -> None:
    """The heartbeat finds the row owned by someone else: the run stops with LeaseError naming
    the new owner (not a bare CancelledError), and its step's late result is not written."""
    started, gate = asyncio.Event(), asyncio.Event()

    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        async def step() -> str:
            started.set()
            await gate.wait()
            return "done"

        return {"v": await ctx.run("step:only", step)}

    engine = await make_engine(script)
    wid = await engine.submit("demo", {})
    await asyncio.wait_for(started.wait(), 30)
    db = create_sync_engine(db_url)
    with db.begin() as conn:
        conn.execute(text("UPDATE workflows SET owner = 'someone-else' WHERE id = :w"), {"w": wid})
    db.dispose()
    with pytest.raises(LeaseError) as caught:
        await asyncio.wait_for(engine.result(wid), 60)
    await engine.close()
    assert "someone-else" in caught.value.message
    assert workflow_row(db_url, wid).owner == "someone-else"
    assert journal_names(db_url, wid) == []


async def test_a_lease_taken_between_two_commits_fences_the_next_write(make_engine: Any, db_url: str) -> None:
    """The workflow's first step committed (its ownership read in that transaction), then
    another worker took it over: the next step's entry is not written, the run stands down
    (the heartbeat, too slow here, is not what stops it)."""
    first_done, stolen = asyncio.Event(), asyncio.Event()

    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        async def one() -> str:
            return "one"

        async def two() -> str:
            first_done.set()
            await stolen.wait()
            return "two"

        a = await ctx.run("step:one", one)
        return {"v": [a, await ctx.run("step:two", two)]}

    slow = EmbeddedOptions(lease_seconds=60.0, heartbeat_seconds=30.0, journal_max_bytes=10_000)
    engine = await make_engine(script, slow)
    wid = await engine.submit("demo", {})
    await asyncio.wait_for(first_done.wait(), 30)
    db = create_sync_engine(db_url)
    with db.begin() as conn:
        conn.execute(text("UPDATE workflows SET owner = 'someone-else' WHERE id = :w"), {"w": wid})
    db.dispose()
    stolen.set()
    with pytest.raises(LeaseError) as caught:
        await asyncio.wait_for(engine.result(wid), 60)
    await engine.close()
    assert "someone-else" in caught.value.message
    assert workflow_row(db_url, wid).owner == "someone-else"
    assert journal_names(db_url, wid) == [(0, "run", "step:one")]


async def test_unknown_workflow_is_not_found(make_engine: Any) -> None:
    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        return {}

    engine = await make_engine(script)
    with pytest.raises(NotFoundError):
        await engine.result("nope")
    with pytest.raises(NotFoundError):
        await engine.signal("nope", "approval", {})
    with pytest.raises(NotFoundError):
        await engine.cancel("nope")
    await engine.close()


async def test_a_waiter_given_up_leaves_the_workflow_running(make_engine: Any) -> None:
    """``result`` of a workflow running here: cancelling (or timing out) one waiter stops only
    that waiter; the workflow runs on, and the others get its result or its error."""
    go = asyncio.Event()

    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        await go.wait()
        if data.get("crash"):
            raise RuntimeError("boom")
        return {"done": True}

    engine = await make_engine(script)
    wid = await engine.submit("demo", {})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(engine.result(wid), 0.05)
    given_up = asyncio.ensure_future(engine.result(wid))
    kept = asyncio.gather(engine.result(wid), engine.result(wid))
    await asyncio.sleep(0)
    given_up.cancel()
    go.set()
    first, second = await kept
    assert first is second
    assert first.state is WorkflowState.COMPLETED
    assert first.outputs == {"done": True}
    assert given_up.cancelled()
    assert (await engine.result(wid)).outputs == {"done": True}  # ended: from its row
    crashing = await engine.submit("demo", {"crash": True})
    failed = await engine.result(crashing)
    assert failed.state is WorkflowState.FAILED
    await engine.close()


def three_steps(delay: float) -> Script:
    """A workflow of three journaled steps that each wait ``delay`` s; outputs ``{"total": 3}``."""

    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        total = 0
        for i in range(3):
            total += await ctx.run(f"step:{i}", lambda i=i: asyncio.sleep(delay, i))
        return {"total": total}

    return script


async def test_worker_recovers_orphans_and_many_workflows_share_the_database(make_engine: Any, db_url: str) -> None:
    script = three_steps(0.01)
    submitter = await make_engine(script)
    ids = [await submitter.submit("demo", {}, start=False) for _ in range(200)]
    await submitter.close()

    worker = await make_engine(script)
    stop = asyncio.Event()
    loop = asyncio.create_task(worker.run_worker(stop))
    results = await asyncio.gather(*(worker.result(wid) for wid in ids))
    stop.set()
    await loop
    await worker.close()
    assert all(r.state is WorkflowState.COMPLETED and r.outputs == {"total": 3} for r in results)
    assert worker.writer.batches < 200 * 4  # group commit: far fewer commits than writes
    assert worker.writer.fallbacks == 0  # every batch (finishes of many workflows included) ran whole


async def test_a_write_transaction_open_on_the_same_event_loop_does_not_stall_the_engine(
    make_engine: Any, db_url: str
) -> None:
    """Another connection of this process (say an aiosqlite session) holds the SQLite write
    lock across an ``await``: the engine must not block the loop waiting for it, or the
    holder could never commit."""
    from ecl.store import create_engine

    engine = await make_engine(three_steps(0))
    other = create_engine(db_url)
    held = asyncio.Event()

    async def hold_the_write_lock() -> None:
        async with other.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO workflows (id, definition_id, state, input, input_hash, revision_count, "
                    "created_at, updated_at) VALUES ('holder', 'd', 'pending', '{}', '', 0, "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
            held.set()
            await asyncio.sleep(0.5)

    holder = asyncio.create_task(hold_the_write_lock())
    await held.wait()
    started = asyncio.get_running_loop().time()
    wid = await engine.submit("demo", {})
    result = await engine.result(wid)
    await holder
    elapsed = asyncio.get_running_loop().time() - started
    await other.dispose()
    await engine.close()
    assert result.state is WorkflowState.COMPLETED
    assert result.outputs == {"total": 3}
    assert elapsed < 3.0  # the holder committed after 0.5 s; the engine waited for it, not longer
    if engine.writer.inline:  # SQLite: the batch that found the lock taken waited on a thread
        assert engine.writer.lock_waits >= 1


async def test_admissions_in_one_group_commit(make_engine: Any) -> None:
    """Submissions queued together share one insert; of identical ones exactly one creates
    the workflow, the others get its row; a different body under the same id is a conflict."""

    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        return dict(data)

    engine = await make_engine(script)
    same = [engine.admit("demo", {"a": 1}, "order-7", start=False) for _ in range(5)]
    other = engine.admit("demo", {"b": 2}, "order-8", start=False)
    clash = engine.admit("demo", {"a": 2}, "order-7", start=False)
    *admitted, conflict = await asyncio.gather(*same, other, clash, return_exceptions=True)
    assert isinstance(conflict, ConflictError), conflict
    assert [a.created for a in admitted] == [True, False, False, False, False, True]
    rows = [a.row for a in admitted]
    assert {(r["id"], r["state"], str(r["input"])) for r in rows[:5]} == {("order-7", "pending", "{'a': 1}")}
    again = await engine.admit("demo", {"a": 1}, "order-7", start=False)  # a later batch reads it
    await engine.close()
    assert not again.created
    assert again.row["input"] == {"a": 1}
    assert again.row["created_at"] == rows[0]["created_at"]
    assert again.row["state"] == "pending"


async def test_a_workflow_held_at_the_start_gate_runs_after_the_requests_or_is_cancelled(make_engine: Any) -> None:
    from ecl.engines.embedded import StartGate

    async def script(ctx: DurableContext, data: dict[str, Any]) -> dict[str, Any]:
        return dict(data)

    engine = await make_engine(script)
    engine.start_gate = gate = StartGate(60.0)
    gate.enter()  # a request in hand
    held = await engine.submit("demo", {"a": 1})
    dropped = await engine.submit("demo", {"a": 2})
    await asyncio.sleep(0.1)
    assert gate.held == 2
    assert workflow_row_state(engine, held) == "running"  # stored and owned, not started
    await engine.cancel(dropped)
    gate.leave()
    ran, cancelled = await engine.result(held), await engine.result(dropped)
    await engine.close()
    assert ran.state is WorkflowState.COMPLETED
    assert ran.outputs == {"a": 1}
    assert cancelled.state is WorkflowState.CANCELLED


def workflow_row_state(engine: EmbeddedEngine, workflow_id: str) -> str:
    with engine._db.connect() as conn:
        return str(conn.execute(text("SELECT state FROM workflows WHERE id = :w"), {"w": workflow_id}).scalar_one())
