"""WriterThread on SQLite: transactions given while its thread is busy commit together, and
one's failure stays its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, event, insert, select
from sqlalchemy.exc import IntegrityError

from ecl.store.database import WriterThread, create_sync_engine

_META = MetaData()
_ROWS = Table("rows", _META, Column("id", Integer, primary_key=True), Column("name", String(16)))


def _add(key: int) -> object:
    def statements(conn: Connection) -> int:
        conn.execute(insert(_ROWS).values(id=key, name=f"n{key}"))
        return key

    return statements


async def test_concurrent_transactions_commit_together_and_a_failure_stays_its_own(tmp_path: Path) -> None:
    engine = create_sync_engine(f"sqlite:///{tmp_path / 'w.db'}")
    _META.create_all(engine)
    commits = 0

    def count(_conn: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(engine, "commit", count)
    writer = WriterThread(engine, name="test-writer")
    try:
        await writer.run(_add(0))  # taken first: the duplicate below fails in a group
        keys = [*range(1, 200), 0, *range(200, 300)]
        outcomes = await asyncio.gather(*(writer.run(_add(k)) for k in keys), return_exceptions=True)  # type: ignore[arg-type]
        failed = [k for k, outcome in zip(keys, outcomes, strict=True) if isinstance(outcome, BaseException)]
        assert failed == [0]
        assert isinstance(outcomes[keys.index(0)], IntegrityError)
        assert [o for o in outcomes if not isinstance(o, BaseException)] == [k for k in keys if k != 0]
        with engine.connect() as conn:
            stored = sorted(conn.execute(select(_ROWS.c.id)).scalars())
        assert stored == list(range(300))  # every other row once; the group's rollback lost none
        # Grouped: far fewer commits than transactions (each alone after a failed group).
        assert commits < 1 + len(keys)
    finally:
        writer.close()
        engine.dispose()


async def test_a_caller_that_gives_up_stops_waiting_only(tmp_path: Path) -> None:
    engine = create_sync_engine(f"sqlite:///{tmp_path / 'w.db'}")
    _META.create_all(engine)
    writer = WriterThread(engine, name="test-writer")
    try:
        tasks = [asyncio.ensure_future(writer.run(_add(k))) for k in range(50)]  # type: ignore[arg-type]
        await asyncio.sleep(0)  # every one queued
        tasks[10].cancel()  # its caller stops waiting; its transaction is the writer's already
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[10], asyncio.CancelledError)
        assert [d for i, d in enumerate(done) if i != 10] == [k for k in range(50) if k != 10]
        assert await writer.run(lambda conn: conn.execute(select(_ROWS.c.id)).scalars().all()) == list(range(50))
    finally:
        writer.close()
        engine.dispose()


@pytest.mark.parametrize("size", [1, 3])
async def test_results_come_back_in_order(tmp_path: Path, size: int) -> None:
    engine = create_sync_engine(f"sqlite:///{tmp_path / 'w.db'}")
    _META.create_all(engine)
    writer = WriterThread(engine, name="test-writer")
    try:
        assert await asyncio.gather(*(writer.run(_add(k)) for k in range(size))) == list(range(size))  # type: ignore[arg-type]
    finally:
        writer.close()
        engine.dispose()
