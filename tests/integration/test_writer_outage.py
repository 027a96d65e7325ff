"""ECL's own writes against real PostgreSQL behind a proxy that the test cuts.

The embedded engine's writer: writes made for a running workflow wait the outage out,
retrying with backoff; writes made for a client's request fail at once with DatabaseError;
a COMMIT whose answer is lost is looked up, never applied twice. A step's artifact: its
metadata row waits too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from ecl.artifacts import LocalArtifactStore
from ecl.core.errors import DatabaseError
from ecl.engines.embedded import EmbeddedEngine
from ecl.engines.embedded.writer import DatabaseWriter, Insert
from ecl.engines.factory import tables
from ecl.store import ArtifactRepository, WorkflowRepository, create_engine, upgrade
from ecl.store.database import create_sync_engine
from ecl.store.outage import Backoff
from tests.db_fixtures import PG_HOST, PG_PORT, fresh_pg
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres

_meta = MetaData()
notes = Table("notes", _meta, Column("id", String, primary_key=True))
counter = Table("counter", _meta, Column("id", Integer, primary_key=True), Column("n", Integer, nullable=False))


@pytest.fixture
def direct(pg_url: str) -> str:
    url = fresh_pg(pg_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id text PRIMARY KEY)")
        conn.execute("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)")
        conn.execute("INSERT INTO counter VALUES (1, 0)")
    return url


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy(PG_HOST, int(PG_PORT)) as running:
        yield running


def _writer(direct: str, proxy: TcpProxy, cls: type[DatabaseWriter] = DatabaseWriter) -> DatabaseWriter:
    url = make_url(direct).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    return cls(create_sync_engine(url), lambda _conn, _ids: {}, backoff=Backoff(first=0.01, cap=0.2))


def _rows(direct: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(direct) as conn:
        return list(conn.execute(sql))


def _increment(conn: Connection) -> int:
    """Not idempotent: run twice, it counts twice."""
    conn.execute(update(counter).where(counter.c.id == 1).values(n=counter.c.n + 1))
    return int(conn.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one())


async def _until(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_workflow_writes_wait_out_the_outage_client_writes_fail_at_once(direct: str, proxy: TcpProxy) -> None:
    writer = _writer(direct, proxy)
    try:
        await writer.submit(Insert(notes, {"id": "before"}))
        proxy.stop()
        waiting = writer.submit(Insert(notes, {"id": "during"}))
        counted = writer.submit(_increment)
        # A client's request is told at once that the database is away.
        with pytest.raises(DatabaseError):
            await asyncio.wait_for(writer.call(_increment, ride_out=False), 60)
        # The workflow's writes keep being retried, with backoff, and wait.
        await _until(lambda: writer.outage.failures >= 5)
        assert writer.outage.down
        assert not waiting.done() and not counted.done()
        proxy.start()
        await asyncio.wait_for(waiting, 60)
        assert await asyncio.wait_for(counted, 60) == 1
        assert not writer.outage.down
        assert writer.outage.outages == 1
        # New writes go through on a fresh connection.
        await writer.submit(Insert(notes, {"id": "after"}))
    finally:
        await asyncio.to_thread(writer.close)
    assert _rows(direct, "SELECT id FROM notes ORDER BY id") == [("after",), ("before",), ("during",)]
    assert _rows(direct, "SELECT n FROM counter") == [(1,)]


class _CommitThenBreak(DatabaseWriter):
    """The first COMMIT reaches the server, then the connection breaks before its answer."""

    broke = False

    def _commit(self, conn: Connection) -> None:
        super()._commit(conn)
        if not self.broke:
            self.broke = True
            raise OperationalError("COMMIT", {}, psycopg.OperationalError("server closed the connection unexpectedly"))


class _BreakBeforeCommit(DatabaseWriter):
    """The connection breaks while the first COMMIT is being sent: nothing is committed."""

    broke = False

    def _commit(self, conn: Connection) -> None:
        if not self.broke:
            self.broke = True
            conn.rollback()
            raise OperationalError("COMMIT", {}, psycopg.OperationalError("server closed the connection unexpectedly"))
        super()._commit(conn)


@pytest.mark.parametrize("cls", [_CommitThenBreak, _BreakBeforeCommit], ids=["committed", "not-committed"])
async def test_a_commit_without_an_answer_is_applied_exactly_once(
    direct: str, proxy: TcpProxy, cls: type[DatabaseWriter]
) -> None:
    writer = _writer(direct, proxy, cls)
    try:
        inserted = writer.submit(Insert(notes, {"id": "once"}))
        assert await asyncio.wait_for(writer.call(_increment), 60) == 1
        await asyncio.wait_for(inserted, 60)
        assert writer.outage.outages == 1  # the broken COMMIT was seen, and got over
    finally:
        await asyncio.to_thread(writer.close)
    assert _rows(direct, "SELECT id FROM notes") == [("once",)]
    assert _rows(direct, "SELECT n FROM counter") == [(1,)]


async def test_closing_during_an_outage_fails_what_waits_instead_of_hanging(direct: str, proxy: TcpProxy) -> None:
    writer = _writer(direct, proxy)
    await writer.submit(Insert(notes, {"id": "before"}))
    proxy.stop()
    waiting = writer.submit(Insert(notes, {"id": "never"}))
    await _until(lambda: writer.outage.down)
    await asyncio.wait_for(asyncio.to_thread(writer.close), 60)
    with pytest.raises(DatabaseError):
        await asyncio.wait_for(waiting, 60)
    assert writer._thread is not None
    assert not writer._thread.is_alive()  # it ended; close() did not give up waiting for it


async def test_an_artifact_stored_during_an_outage_waits_for_the_database(
    direct: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    upgrade(direct)
    db = create_engine(make_url(direct).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    try:
        await WorkflowRepository(db).create("wf-1", "critique-revise", {})
        repository = ArtifactRepository(db)
        attempts = 0
        delete = repository.delete

        async def counted_delete(workflow_id: str, artifact_id: str) -> bool:
            nonlocal attempts
            attempts += 1
            return await delete(workflow_id, artifact_id)

        repository.delete = counted_delete  # type: ignore[method-assign]
        store = LocalArtifactStore(tmp_path / "artifacts", repository)
        proxy.stop()
        saving = asyncio.create_task(store.store("wf-1", "final", "final.md", b"# Hello", "text/markdown"))
        await _until(lambda: attempts >= 3)  # it failed, and tried again, and again
        assert not saving.done()
        proxy.start()
        artifact = await asyncio.wait_for(saving, 60)
        assert await store.retrieve("wf-1", artifact.id) == b"# Hello"
    finally:
        await db.dispose()
    assert _rows(direct, "SELECT name, size FROM artifacts") == [("final.md", 7)]


async def test_an_engine_started_while_the_database_is_away_says_so(direct: str, proxy: TcpProxy) -> None:
    upgrade(direct)
    proxy.stop()
    url = make_url(direct).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    engine = EmbeddedEngine(create_sync_engine(url), tables(), orchestrator=_NoOrchestrator())
    try:
        with pytest.raises(DatabaseError):  # at once, instead of waiting for the database
            await asyncio.wait_for(engine.start(), 60)
    finally:
        await asyncio.wait_for(engine.close(), 60)


class _NoOrchestrator:
    async def run(self, *_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("no workflow runs here")
