"""Persistence on SQLite (file and memory) and real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ecl.core import (
    DatabaseError,
    IllegalTransitionError,
    InputValidationError,
    NotFoundError,
    TokenUsage,
    WorkflowState,
)
from ecl.store import (
    ArtifactRecord,
    ArtifactRepository,
    LlmCallRecord,
    LlmCallRepository,
    StepExecutionRepository,
    WorkflowRepository,
    check_schema,
    create_engine,
    create_sync_engine,
    current_revision,
    downgrade,
    head_revision,
    normalize_url,
    sync_url,
    upgrade,
)
from ecl.store.database import is_memory, upgrade_connection
from ecl.store.models import Base


@pytest.fixture
async def engine(any_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(any_url)
    if is_memory(any_url):
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_connection)
    else:
        upgrade(any_url)
    yield engine
    await engine.dispose()


def test_urls() -> None:
    assert normalize_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalize_url("postgresql://u@h:1/d") == "postgresql+asyncpg://u@h:1/d"
    assert sync_url("postgresql://u@h:1/d") == "postgresql+psycopg://u@h:1/d"
    assert sync_url("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    with pytest.raises(Exception, match="unsupported database"):
        normalize_url("mysql://x")


async def test_workflow_crud_and_state_machine(engine: AsyncEngine) -> None:
    repo = WorkflowRepository(engine)
    created = await repo.create("wf-1", "critique-revise", {"topic": "t"})
    assert created.state is WorkflowState.PENDING
    assert created.created_at.tzinfo is not None
    assert (await repo.get("wf-1")).input == {"topic": "t"}
    running = await repo.update_state("wf-1", WorkflowState.RUNNING)
    assert running.state is WorkflowState.RUNNING
    done = await repo.update_state("wf-1", WorkflowState.COMPLETED, output={"x": 1})
    assert done.completed_at is not None
    with pytest.raises(IllegalTransitionError, match="completed to running"):
        await repo.update_state("wf-1", WorkflowState.RUNNING)
    with pytest.raises(NotFoundError):
        await repo.get("missing")
    assert await repo.find("missing") is None
    with pytest.raises(NotFoundError):
        await repo.update_state("missing", WorkflowState.RUNNING)


async def test_a_recorded_signal_is_inserted_once(engine: AsyncEngine) -> None:
    """The Restate endpoint's record of a signal: a retried write keeps the first row."""
    repo = WorkflowRepository(engine)
    await repo.create("wf-sig", "critique-revise", {})
    first = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert await repo.add_signal("wf-sig", "approval", {"decision": "revise", "feedback": "f"}, first)
    assert not await repo.add_signal("wf-sig", "approval", {"decision": "approve"}, datetime.now(UTC))
    assert await repo.add_signal("wf-sig", "approval#2", {"decision": "approve"}, datetime(2026, 1, 1, 13, tzinfo=UTC))
    signals = await repo.signals("wf-sig")
    assert [(s.name, s.payload, s.resolved_at) for s in signals] == [
        ("approval", {"decision": "revise", "feedback": "f"}, first),
        ("approval#2", {"decision": "approve"}, datetime(2026, 1, 1, 13, tzinfo=UTC)),
    ]


async def test_steps_llm_calls_and_artifacts(engine: AsyncEngine) -> None:
    await WorkflowRepository(engine).create("wf-2", "d", {})
    steps = StepExecutionRepository(engine)
    await steps.start(id="s1", workflow_id="wf-2", step_id="generate", attempt=1, input={"topic": "t"})
    await steps.finish("s1", state="completed", output={"draft": "d"}, tokens=10)
    await steps.start(id="s2", workflow_id="wf-2", step_id="critique", attempt=1)
    listed = await steps.list_for("wf-2")
    assert [(s.step_id, s.state) for s in listed] == [("generate", "completed"), ("critique", "running")]
    calls = LlmCallRepository(engine)
    for i, outcome in enumerate(["ok", "error"]):
        await calls.record(
            LlmCallRecord(
                id=f"c{i}",
                workflow_id="wf-2",
                step_execution_id="s1",
                provider="anthropic",
                model="m",
                input_tokens=10,
                output_tokens=5,
                cache_creation_tokens=1,
                cache_read_tokens=2,
                latency_ms=12.5,
                outcome=outcome,
                error_kind=None if outcome == "ok" else "server",
                created_at=datetime.now(UTC),
            )
        )
    totals = await calls.totals("wf-2")
    assert totals.calls == 2
    assert totals.errors == 1
    assert totals.tokens == TokenUsage(input=20, output=10, cache_creation=2, cache_read=4)
    assert len(await calls.list_for("wf-2")) == 2
    artifacts = ArtifactRepository(engine)
    record = ArtifactRecord(
        id="a1",
        workflow_id="wf-2",
        step_id="final",
        name="final.md",
        content_type="text/markdown",
        path="wf-2/final/a1",
        size=3,
        created_at=datetime.now(UTC),
    )
    await artifacts.add(record)
    assert (await artifacts.find("wf-2", "a1")) == record
    assert await artifacts.find("other", "a1") is None
    assert [a.id for a in await artifacts.list_for("wf-2")] == ["a1"]
    assert await artifacts.delete("wf-2", "a1")
    assert not await artifacts.delete("wf-2", "a1")


async def test_pagination_filters_and_limits(engine: AsyncEngine) -> None:
    repo = WorkflowRepository(engine)
    for i in range(25):
        await repo.create(f"p-{i:02d}", "a" if i % 2 else "b", {})
    page = await repo.list()
    assert len(page.items) == 20
    rest = await repo.list(cursor=page.next_cursor)
    assert len(rest.items) == 5
    assert rest.next_cursor is None
    assert len({w.id for w in page.items + rest.items}) == 25
    assert all(w.definition_id == "a" for w in (await repo.list(definition_id="a", limit=100)).items)
    assert (await repo.list(state=WorkflowState.COMPLETED)).items == []
    with pytest.raises(InputValidationError, match="limit"):
        await repo.list(limit=101)
    with pytest.raises(InputValidationError, match="cursor"):
        await repo.list(cursor="not-a-cursor!!")
    assert (await repo.count_by_state()) == {"pending": 25}


async def test_pagination_sees_every_row_once_while_inserting(engine: AsyncEngine) -> None:
    repo = WorkflowRepository(engine)
    for i in range(30):
        await repo.create(f"old-{i:02d}", "d", {})
    seen: list[str] = []
    cursor = None
    inserted = 0
    while True:
        page = await repo.list(limit=7, cursor=cursor)
        seen += [w.id for w in page.items]
        await repo.create(f"new-{inserted}", "d", {})  # newer rows land before the cursor
        inserted += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    old = [s for s in seen if s.startswith("old-")]
    assert sorted(old) == [f"old-{i:02d}" for i in range(30)]
    assert len(seen) == len(set(seen))


async def test_jsonb_on_postgres(pg_url: str) -> None:
    from tests.db_fixtures import fresh_pg

    url = fresh_pg(pg_url)
    upgrade(url)
    engine = create_sync_engine(url)
    with engine.connect() as conn:
        kinds = {c["name"]: str(c["type"]) for c in inspect(conn).get_columns("workflows")}
    engine.dispose()
    assert kinds["input"] == "JSONB"


def test_migrations_forward_back_and_match_the_models(server_url: str) -> None:
    any_url = server_url
    assert current_revision(any_url) is None
    with pytest.raises(DatabaseError) as info:
        check_schema(any_url)
    assert info.value.hint == "run: ecl migrate"
    assert upgrade(any_url)[-1] == head_revision()
    assert upgrade(any_url) == []
    check_schema(any_url)
    engine = create_sync_engine(any_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
    downgrade(any_url, "base")
    assert current_revision(any_url) is None
    engine = create_sync_engine(any_url)
    with engine.connect() as conn:
        assert "workflows" not in inspect(conn).get_table_names()
    engine.dispose()
    upgrade(any_url)


def _migrated_then(tmp_path: Path, sql: str) -> str:
    """A migrated SQLite database's URL, after ``sql`` has run on it."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    engine = create_sync_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()
    return url


def test_newer_database_is_refused(tmp_path: Path) -> None:
    url = _migrated_then(tmp_path, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(DatabaseError, match="newer"):
        check_schema(url)
    with pytest.raises(DatabaseError, match="newer than the code"):
        upgrade(url)


def test_head_revision_is_alembics_head() -> None:
    """``head_revision`` is a constant (the schema check imports no Alembic); a new migration
    without it moved fails here."""
    from ecl.store.database import _scripts

    assert head_revision() == _scripts("sqlite://").get_current_head()


def test_two_revisions_in_alembic_version_are_refused(tmp_path: Path) -> None:
    url = _migrated_then(tmp_path, "INSERT INTO alembic_version (version_num) VALUES ('0004_trace')")
    with pytest.raises(DatabaseError, match="alembic_version table holds 2 revisions") as info:
        current_revision(url)
    assert "0004_trace" in str(info.value) and head_revision() in str(info.value)


async def test_fifty_concurrent_writers_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    upgrade(url)
    engines = [create_engine(url) for _ in range(5)]
    repos = [WorkflowRepository(e) for e in engines]

    async def writer(n: int) -> None:
        repo = repos[n % len(repos)]
        wid = f"w-{n}-{uuid.uuid4().hex[:6]}"
        await repo.create(wid, "d", {"n": n})
        await repo.update_state(wid, WorkflowState.RUNNING)
        await repo.update_state(wid, WorkflowState.COMPLETED, output={"n": n})

    await asyncio.gather(*(writer(n) for n in range(50)))
    assert (await repos[0].count_by_state()) == {"completed": 50}
    for e in engines:
        await e.dispose()
