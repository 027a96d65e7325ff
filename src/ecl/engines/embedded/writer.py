"""The embedded engine's database writer: one thread, one connection, group commit.

Every journal append, lease update and run record of every workflow in this process goes
through one queue. The writer thread drains whatever is queued, executes it in a single
transaction (consecutive inserts into the same table as one ``executemany``) and commits
once, so a thousand concurrent workflows pay for a handful of commits instead of a
thousand. Callers that need durability await the returned future, which resolves only
after the commit; fire-and-forget writes ride along in the next batch, and because the
queue is FIFO they are committed no later than any awaited write queued after them.

On SQLite the writer can run *inline* instead: writes queued during one turn of the event
loop are committed together at the end of that turn, on the loop's own thread. A SQLite
commit costs tens of microseconds, less than waking a thread and waking the loop again, so
this halves the latency of a sequential durable step; concurrent workflows still share
commits. The loop never waits for the write lock, though: when another connection holds
it (another process, or an async session of this one that holds it across an ``await``),
the batch waits for it on a thread and the loop goes on. PostgreSQL, where a commit is a
network round trip, always uses the thread.

When PostgreSQL cannot be reached (it restarts, fails over, the network drops), the thread
keeps the batch and tries again with backoff until the database is back, so the workflows
waiting on their writes simply pause; one warning says when the outage began and one when
it ended. Writes made for a client's request (``ride_out=False``) fail at once with
:class:`~ecl.core.errors.DatabaseError` instead, so the client hears ``503`` rather than
waiting. A batch whose COMMIT was sent when the connection broke may or may not have
committed: its transaction id, read before the COMMIT, is looked up when the database is
back (``pg_xact_status``), so such a batch is neither lost nor applied twice.

The writer's log lines are the process's, not a workflow's: it serves every workflow at once,
from its own thread (or, inline, from a callback run in an empty context), so they carry no
``workflow_id``/``step_id`` of whichever caller happened to queue first. The outage lines
concern every run of the process; a fire-and-forget write that fails names its workflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

import structlog
from sqlalchemy import JSON, Column, Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from ecl.core.errors import DatabaseError, RuntimeFailure
from ecl.core.json_values import dumps
from ecl.core.state import TERMINAL_STATES
from ecl.store.models import UtcDateTime
from ecl.store.outage import Backoff, OutageLog, unreachable

__all__ = [
    "DatabaseWriter",
    "EncodedJson",
    "Fence",
    "FencedInsert",
    "FencedUpdate",
    "Insert",
    "InsertOnce",
    "LeaseLost",
    "Operation",
    "driver_execute",
    "reject",
]

_log = structlog.get_logger("ecl.engines.embedded.writer")

Operation = Callable[[Connection], Any]
"""A unit of work run on the writer's connection inside the batch transaction."""

_MAX_BATCH = 2000
_MULTI_ROWS = 500
"""Rows per multi-row ``INSERT`` on SQLite (the statement text is cached per size)."""
# A fenced write stands down when its workflow ended or its row is gone.
_ENDED = frozenset({*TERMINAL_STATES, "missing"})
_PARENT = "workflows"
_SQLITE_LIMIT_VARIABLE_NUMBER = 9


@dataclass(slots=True, weakref_slot=True)
class Insert:
    """An insert of one row; consecutive inserts into one table become one executemany.
    Weakly referable: a recorder may amend the row while the insert is queued without
    keeping it once committed."""

    table: Table
    row: dict[str, Any]


@dataclass(slots=True)
class InsertOnce:
    """An insert of one row unless its table holds a row with the same (one-column) primary
    key already: an idempotent submission. Its future resolves with ``None`` when this
    insert wrote the row, else with the row found (column name → value), for the caller to
    compare with what it asked for.

    The ones of a batch into one table are one ``INSERT ... ON CONFLICT DO NOTHING
    RETURNING`` statement; only when some of them conflicted, one ``SELECT`` reads the rows
    found. Two in one batch with the same key: the first is inserted, the later ones find
    its row."""

    table: Table
    row: dict[str, Any]


@dataclass(slots=True)
class FencedInsert:
    """An insert that only happens while ``owner`` still holds ``workflow_id``'s lease and
    the workflow has not ended; otherwise the caller's future fails with ``LeaseLost``."""

    table: Table
    row: dict[str, Any]
    workflow_id: str
    owner: str


@dataclass(frozen=True, slots=True)
class EncodedJson:
    """A JSON column's value with the text SQLAlchemy would store for it already made
    (``json.dumps(value)``): on a database that stores that text (SQLite, with SQLAlchemy's
    own serializer) the writer binds it as is instead of encoding the value again; elsewhere
    it binds ``value`` as usual. Only in rows of :class:`Insert` / :class:`FencedInsert`."""

    value: Any
    text: str


@dataclass(slots=True)
class FencedUpdate:
    """An update run (with others of the same statement, as one executemany) only while
    ``owner`` holds ``workflow_id``; otherwise the caller's future fails with ``LeaseLost``."""

    statement: Any
    params: dict[str, Any]
    workflow_id: str | None = None
    """``None``: no fence (e.g. a step row's completion)."""
    owner: str = ""


class LeaseLost(Exception):
    """The workflow is no longer owned by this worker (taken over or ended)."""

    def __init__(self, workflow_id: str, owner: str | None, state: str | None) -> None:
        super().__init__(f"workflow {workflow_id} is now owned by {owner!r} in state {state!r}")
        self.workflow_id = workflow_id
        self.owner = owner
        self.state = state


Fence = Callable[[Connection, set[str]], dict[str, tuple[str | None, str]]]
"""Reads ``{workflow_id: (owner, state)}`` for the fenced workflows of a batch."""


@dataclass(slots=True)
class _Item:
    work: Insert | InsertOnce | FencedInsert | FencedUpdate | Operation
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop | None
    result: Any = None
    error: BaseException | None = None
    done: bool = field(default=False)
    ride_out: bool = True
    """Wait out a database outage; ``False``: fail at once with ``DatabaseError``."""


class DatabaseWriter:
    """Serialises all writes of this process onto one connection in a daemon thread."""

    def __init__(
        self,
        engine: Engine,
        fence: Fence,
        *,
        commit_delay: float = 0.0,
        inline: bool = False,
        backoff: Backoff | None = None,
    ) -> None:
        self._engine = engine
        self._fence = fence
        self._insert_plans: dict[tuple[str, tuple[str, ...]], _InsertPlan] = {}
        self._update_plans: dict[tuple[int, tuple[str, ...]], _StatementPlan | None] = {}
        self._once_statements: dict[str, Any] = {}
        self._once_plans: dict[tuple[str, tuple[str, ...]], _InsertPlan] = {}
        self._known: dict[str, tuple[str | None, str]] = {}
        """SQLite: the owner and state of workflows as read in an earlier transaction (see
        :meth:`_holders`)."""
        self._known_version: int | None = 0 if engine.dialect.name == "sqlite" else None
        """SQLite: ``PRAGMA data_version`` in the transaction being written; ``None``: no cache."""
        self._known_mark: tuple[Any, int, int] | None = None
        """(connection, data version, total changes) right after the last commit whose
        reads :attr:`_known` holds; ``None``: none (cleared when a transaction begins)."""
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._commit_delay = commit_delay
        self._closed = False
        self.batches = 0
        """Commits so far."""
        self.items = 0
        self.fallbacks = 0
        """Batches that failed as a whole and were retried item by item (one bad write)."""
        self.inline = inline
        self._lock = threading.Lock()
        """Inline mode: guards the pending list, the flags and (on the loop) the connection."""
        self._conn: Connection | None = None
        self._busy_timeout_ms = 0
        """Inline mode: the configured busy timeout, used only off the loop (drainer, close)."""
        self._pending: list[_Item] = []
        self._taken = 0
        """Inline mode: how many times the pending list was taken for a batch (see :meth:`amend`)."""
        self._flush_scheduled: set[asyncio.AbstractEventLoop] = set()
        self._drainer: threading.Thread | None = None
        """Inline mode: the thread waiting for the write lock, while another connection holds it."""
        self.lock_waits = 0
        """Inline mode: batches that found the write lock taken and waited on a thread."""
        self.outage = OutageLog()
        """The state of the database as this writer last found it (thread mode)."""
        self._backoff = backoff or Backoff()
        self._wake = threading.Event()
        """Set by :meth:`close`: a thread waiting out an outage stops waiting."""
        self._xid_sql = (
            "SELECT pg_current_xact_id_if_assigned()::text || ':' || pg_backend_pid()"
            if engine.dialect.name == "postgresql"
            else None
        )
        self._thread: threading.Thread | None = None
        if not inline:
            self._thread = threading.Thread(target=self._main, name="ecl-db-writer", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ API

    def submit(
        self, work: Insert | InsertOnce | FencedInsert | FencedUpdate | Operation, *, ride_out: bool = True
    ) -> asyncio.Future[Any]:
        """Queue ``work``; the future resolves with its result after the commit.

        While the database is unreachable the write waits for it (``ride_out``), or fails
        at once with :class:`~ecl.core.errors.DatabaseError` (``ride_out=False``, for a
        client's request) unless it may already have committed."""
        if self._closed:
            raise RuntimeError("database writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._enqueue(_Item(work, future, loop, ride_out=ride_out), loop)
        return future

    def post(self, work: Insert | InsertOnce | FencedInsert | FencedUpdate | Operation) -> int:
        """Queue ``work`` without waiting; failures are logged. Returns a ticket for
        :meth:`amend`."""
        if self._closed:
            raise RuntimeError("database writer is closed")
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        ticket = self._taken if self.inline else -1
        self._enqueue(_Item(work, None, None), loop)
        return ticket

    def amend(self, ticket: int, change: Callable[[], None]) -> bool:
        """Run ``change`` (which edits the data of the write posted with ``ticket``) if that
        write is still queued here, not yet taken for a batch; returns whether it ran.

        So a later change of a row can ride in its insert instead of being a second write
        in the same transaction. Inline mode only (thread mode: always ``False``)."""
        if ticket < 0:
            return False
        with self._lock:
            if ticket != self._taken:
                return False
            change()
            return True

    def _enqueue(self, item: _Item, loop: asyncio.AbstractEventLoop | None) -> None:
        if not self.inline:
            self._queue.put(item)
            return
        with self._lock:
            self._pending.append(item)
            if loop is None or loop in self._flush_scheduled or self._drainer is not None:
                return  # a flush is due already, or the drainer takes it
            self._flush_scheduled.add(loop)
        # Not in the caller's context: the batch is everyone's, its lines are the process's.
        loop.call_soon(self._flush, loop, context=contextvars.Context())

    def _connection(self) -> Connection:
        """Inline mode: the connection, with a busy timeout of 0 so the loop never waits."""
        if self._conn is None:
            conn = self._engine.connect()
            self._busy_timeout_ms = int(_raw(conn).execute("PRAGMA busy_timeout").fetchone()[0])
            _raw(conn).execute("PRAGMA busy_timeout=0")
            self._conn = conn
        return self._conn

    @staticmethod
    def _begin_now(conn: Connection) -> bool:
        """Take SQLite's write lock if it is free this instant (``BEGIN IMMEDIATE``, no wait)."""
        conn.begin()
        try:
            _raw(conn).execute("BEGIN IMMEDIATE")
            return True
        except conn.dialect.loaded_dbapi.OperationalError:
            conn.rollback()
            return False

    def _flush(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Inline mode, on the event loop: commit everything pending if the write lock is
        free now; otherwise hand it to a thread that waits for the lock."""
        with self._lock:
            if loop is not None:
                self._flush_scheduled.discard(loop)
            if self._drainer is not None or not self._pending:
                return
            batch, self._pending = self._pending, []
            self._taken += 1
            try:
                conn = self._connection()
                free = self._begin_now(conn)
            except Exception:  # anything odd: the thread's path reports it on each future
                free = False
            if free:
                self._run_batches(conn, batch)
                return
            self.lock_waits += 1
            self._drainer = threading.Thread(target=self._drain, args=(batch,), name="ecl-db-drain", daemon=True)
            self._drainer.start()

    def _drain(self, batch: list[_Item]) -> None:
        """Inline mode, on a thread: wait for the write lock (busy timeout), commit, and keep
        going until nothing is pending; then the loop commits inline again."""
        conn: Connection | None = None
        while True:
            try:
                if conn is None:
                    conn = self._connection()
                    _raw(conn).execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            except Exception as exc:  # e.g. the database file cannot be opened
                for item in batch:
                    item.error = exc
                self._settle(batch)
            else:
                self._run_batches(conn, batch)
            with self._lock:
                batch, self._pending = self._pending, []
                self._taken += 1
                if not batch:
                    if conn is not None:  # before the loop may use the connection again
                        _raw(conn).execute("PRAGMA busy_timeout=0")
                    self._drainer = None
                    return

    def _run_batches(self, conn: Connection, batch: list[_Item]) -> None:
        for start in range(0, len(batch), _MAX_BATCH):
            self._run_batch(conn, batch[start : start + _MAX_BATCH])

    async def call(self, work: Operation, *, ride_out: bool = True) -> Any:
        """Run ``work`` on the writer connection and return its result (after commit)."""
        return await self.submit(work, ride_out=ride_out)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued and stop the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._wake.set()
            self._queue.put(None)
            self._thread.join(timeout)
        else:
            drainer = self._drainer
            if drainer is not None:
                drainer.join(timeout)
            with self._lock:
                batch, self._pending = self._pending, []
                self._taken += 1
                if batch:  # off the loop: this may wait for the lock
                    conn = self._connection()
                    _raw(conn).execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
                    self._run_batches(conn, batch)
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
        self._engine.dispose()

    # ------------------------------------------------------------------ thread

    def _main(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch, stop = self._take([first])
                conn, stopped = self._commit_riding_out(conn, batch)
                if stop or stopped:
                    return
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _take(self, batch: list[_Item]) -> tuple[list[_Item], bool]:
        """Add what is queued to ``batch`` (up to the batch limit); ``True`` if the stop
        marker was among it."""
        batch = list(batch)
        while len(batch) < _MAX_BATCH:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return batch, True
            batch.append(nxt)
        return batch, False

    def _commit_riding_out(self, conn: Connection | None, batch: list[_Item]) -> tuple[Connection | None, bool]:
        """Thread mode: commit ``batch``, waiting out an unreachable database; returns the
        connection to use next (``None`` after it broke) and whether the stop marker was
        taken from the queue meanwhile."""
        delays = self._backoff.delays()
        unsure: _Unsure | None = None
        stop = False
        while True:
            try:
                if conn is None:
                    conn = self._engine.connect()
                if unsure is not None:
                    batch = self._resolve(conn, unsure, batch)
                    unsure = None
                if batch:
                    self._run_batch(conn, batch)
                return conn, stop
            except _Broken as broken:
                exc: BaseException = broken.cause
                batch = broken.pending
                unsure = broken.unsure or unsure
            except Exception as exc_:
                if not unreachable(exc_):  # e.g. refused credentials: these writes fail
                    self._fail_all(batch, unsure, exc_, drain=False)
                    _discard(conn)
                    return None, stop
                exc = exc_
            _discard(conn)
            conn = None
            self.outage.failed(exc)
            batch = self._fail_impatient(batch, unsure, exc)
            if self._closed or self._wake.is_set():
                return None, self._fail_all(batch, unsure, exc) or stop
            if self._wake.wait(next(delays)):
                continue  # closing: one last attempt, then give up
            if not stop:
                batch, stop = self._take(batch)

    def _resolve(self, conn: Connection, unsure: _Unsure, batch: list[_Item]) -> list[_Item]:
        """After a COMMIT whose answer was lost: did it commit? Settles its items if so."""
        xid, pid = unsure.xid.split(":")
        while True:
            status = driver_execute(conn, "SELECT pg_xact_status(%s::xid8)", (xid,))[0][0]
            if status == "in progress":
                # Its server process has not noticed the broken connection yet (or cannot,
                # on a broken network); the pid is still that process's while it runs.
                driver_execute(conn, "SELECT pg_terminate_backend(%s::int)", (pid,))
            conn.rollback()
            if status != "in progress":
                break
            time.sleep(0.05)
        self.outage.recovered()
        if status == "committed":
            for item in unsure.items:
                item.done = True
            self.batches += 1
            self.items += len(unsure.items)
            self._settle(unsure.items)
            return [item for item in batch if not item.done]
        for item in unsure.items:  # aborted: nothing of it happened, so it runs again
            item.result, item.error = None, None
        return batch

    def _fail_impatient(self, batch: list[_Item], unsure: _Unsure | None, exc: BaseException) -> list[_Item]:
        """Fail the writes made for a client's request (unless they may have committed)."""
        maybe_done = {id(item) for item in unsure.items} if unsure is not None else set()
        failing = [item for item in batch if not item.ride_out and id(item) not in maybe_done]
        if not failing:
            return batch
        for item in failing:
            item.error = _unavailable(exc)
        self._settle(failing)
        return [item for item in batch if item.ride_out or id(item) in maybe_done]

    def _fail_all(self, batch: list[_Item], unsure: _Unsure | None, exc: BaseException, *, drain: bool = True) -> bool:
        """Fail what is left: when closing while the database is away (and then whatever
        is still queued, ``drain``), or on an error that waiting cannot cure. Returns
        whether the stop marker was among what it drained."""
        items = batch + [i for i in (unsure.items if unsure else []) if all(i is not b for b in batch)]
        for item in items:
            item.error = _unavailable(exc) if unreachable(exc) else exc
        self._settle(items)
        stop = False
        while drain:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                stop = True
            else:
                nxt.error = _unavailable(exc)
                self._settle([nxt])
        return stop

    def _commit(self, conn: Connection) -> None:
        conn.commit()

    def _run_batch(self, conn: Connection, batch: list[_Item]) -> None:
        """Execute and commit ``batch``; one bad item fails alone. Thread mode: raises
        :class:`_Broken` when the database became unreachable (items not settled)."""
        xid: str | None = None
        for item in batch:  # from an earlier attempt of this batch
            item.result, item.error = None, None
        try:
            self._execute(conn, batch)
            if self._commit_delay:
                time.sleep(self._commit_delay)
            xid = self._xid(conn)
            self._commit(conn)
            self._committed(conn)
            self.outage.recovered()  # before the waiting writes hear of it
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            if not self.inline and unreachable(exc):
                raise _Broken(exc, batch, _Unsure(xid, list(batch)) if xid else None) from exc
            # One bad item must not fail its neighbours: run each on its own.
            self.fallbacks += 1
            for index, item in enumerate(batch):
                item.done, item.error, item.result = False, None, None
                xid = None
                try:
                    self._execute(conn, [item])
                    xid = self._xid(conn)
                    self._commit(conn)
                    self._committed(conn)
                    self.outage.recovered()
                    self.batches += 1
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        conn.rollback()
                    if not self.inline and unreachable(exc):
                        self._settle(batch[:index])
                        rest = batch[index:]
                        raise _Broken(exc, rest, _Unsure(xid, [item]) if xid else None) from exc
                    item.error = exc
            self._settle(batch)
            return
        self.batches += 1
        self.items += len(batch)
        self._settle(batch)

    def _xid(self, conn: Connection) -> str | None:
        """PostgreSQL: the id of the open transaction if it wrote anything (read before the
        COMMIT, to learn its fate if the answer to the COMMIT is lost)."""
        if self._xid_sql is None:
            return None
        value = driver_execute(conn, self._xid_sql, ())[0][0]
        return None if value is None else str(value)

    def _insert_rows(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """One ``executemany`` at the driver level: the statement is compiled once per table
        and column set; each value still goes through its column type's bind processor."""
        keys = tuple(rows[0])
        if len(rows) > 1 and any(tuple(row) != keys for row in rows):  # (a sequential step's: one row)
            conn.execute(table.insert(), [_plain(row) for row in rows])
            return
        plan = self._insert_plans.get((table.name, keys))
        if plan is None:
            plan = self._insert_plans[(table.name, keys)] = _InsertPlan.build(conn, table, keys)
        driver_execute(conn, plan.sql, [plan.params(row) for row in rows], many=True)

    def _update_rows(self, conn: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
        """Fenced updates at the driver level, like inserts: the statement is compiled once
        (one step_executions update per step is on the hot path); one that needs SQL
        rendered per execution (an expanding IN) goes through SQLAlchemy."""
        key = (id(statement), tuple(rows[0]))
        plan = self._update_plans.get(key)
        if plan is None:
            plan = self._update_plans[key] = _StatementPlan.build(conn, statement, key[1])
        if plan is None or any(tuple(row) != key[1] for row in rows):
            conn.execute(statement, rows)
            return
        driver_execute(conn, plan.sql, [plan.params(row) for row in rows], many=True)

    def _insert_once(self, conn: Connection, table: Table, items: list[tuple[_Item, dict[str, Any]]]) -> None:
        """The :class:`InsertOnce` items (with their rows) of a batch into ``table``: one
        insert of the new keys (the first item of each), one read of the keys found there."""
        (key,) = table.primary_key.columns
        first: dict[Any, tuple[_Item, dict[str, Any]]] = {}
        for item, row in items:
            first.setdefault(row[key.name], (item, row))
        new = [row for _item, row in first.values()]
        keys = tuple(new[0])
        if conn.dialect.name == "sqlite" and all(tuple(row) == keys for row in new):
            written = self._insert_new_sqlite(conn, table, key, keys, new)
        else:  # one multi-row statement: one round trip for the batch
            statement = self._once_statement(conn, table, key)
            written = {found[0] for found in conn.execute(statement, [_plain(row) for row in new])}
        there = [k for k in first if k not in written]
        stored: dict[Any, dict[str, Any]] = {}
        if there:
            for found in conn.execute(select(table).where(key.in_(there))).mappings():
                stored[found[key.name]] = dict(found)
        for item, row in items:
            k = row[key.name]
            earlier, earlier_row = first[k]
            if k in written:
                item.result = None if earlier is item else _plain(earlier_row)
            elif k in stored:
                item.result = stored[k]
            else:  # it conflicted, then was gone: deleted in between
                item.error = RuntimeFailure(f"{table.name} row {k} could not be created")

    def _insert_new_sqlite(
        self, conn: Connection, table: Table, key: Column[Any], keys: tuple[str, ...], rows: list[dict[str, Any]]
    ) -> set[Any]:
        """SQLite: insert ``rows`` unless their keys are there, as multi-row ``INSERT ...
        ON CONFLICT DO NOTHING RETURNING`` statements (one for a single row, as for many);
        returns the keys written.

        One statement for many rows, rather than one per row, matters on ``workflows``: its
        triggers make SQLite keep a statement journal, a copy of every page the statement
        changes, so per row that copying was most of the insert's cost (a burst of 10,000
        submissions took about twice as long)."""
        plan = self._once_plans.get((table.name, keys))
        if plan is None:
            statement = self._once_statement(conn, table, key)
            plan = self._once_plans[(table.name, keys)] = _InsertPlan.build(conn, table, keys, statement)
        head, group, tail = plan.split()
        if not group:  # not a VALUES statement we can repeat: a statement per row
            return {row[key.name] for row in rows if driver_execute(conn, plan.sql, plan.params(row))}
        per = max(1, min(_MULTI_ROWS, _sqlite_variables(conn) // max(1, len(plan.names))))
        written: set[Any] = set()
        pairs = plan.pairs
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            values = tuple([row[name] if proc is None else proc(row[name]) for row in chunk for name, proc in pairs])
            found = driver_execute(conn, head + ", ".join([group] * len(chunk)) + tail, values)
            written.update(value for (value,) in found)
        # RETURNING gives the keys as stored; the caller's are the rows' own values.
        return {row[key.name] for row in rows if row[key.name] in written}

    def _once_statement(self, conn: Connection, table: Table, key: Column[Any]) -> Any:
        statement = self._once_statements.get(table.name)
        if statement is None:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(table).on_conflict_do_nothing(index_elements=[key]).returning(key)
            self._once_statements[table.name] = statement
        return statement

    def _execute(self, conn: Connection, batch: list[_Item]) -> None:
        """Run a batch: insert-once items grouped per table, inserts grouped per table
        (parents first), then fenced updates grouped per statement, then operations in queue
        order.

        Reordering is safe because an insert never depends on a later write, an update
        only on inserts, and writes of different workflows are independent.
        """
        fenced = {
            i.work.workflow_id for i in batch if isinstance(i.work, FencedInsert | FencedUpdate) and i.work.workflow_id
        }
        holders = self._holders(conn, fenced)
        inserts: dict[str, tuple[Table, list[dict[str, Any]]]] = {}
        once: dict[str, tuple[Table, list[tuple[_Item, dict[str, Any]]]]] = {}
        updates: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
        operations: list[_Item] = []
        changed: list[str] = []
        for item in batch:
            work = item.work
            if isinstance(work, FencedInsert | FencedUpdate) and work.workflow_id:
                owner, state = holders.get(work.workflow_id, (None, "missing"))
                if owner != work.owner or state in _ENDED:
                    item.error = LeaseLost(work.workflow_id, owner, state)
                    continue
            if isinstance(work, InsertOnce):
                once.setdefault(work.table.name, (work.table, []))[1].append((item, work.row))
            elif isinstance(work, Insert | FencedInsert):
                inserts.setdefault(work.table.name, (work.table, []))[1].append(work.row)
            elif isinstance(work, FencedUpdate):
                updates.setdefault(id(work.statement), (work.statement, []))[1].append(work.params)
                if work.workflow_id:
                    changed.append(work.workflow_id)
            else:
                operations.append(item)
        # What this batch may change (a workflow's state, its owner) is read again next time.
        if operations:
            holders.clear()
        for workflow_id in changed:
            holders.pop(workflow_id, None)
        for table, items in once.values():
            self._insert_once(conn, table, items)
        order = sorted(inserts, key=lambda name: name != _PARENT)
        for name in order:
            table, rows = inserts[name]
            self._insert_rows(conn, table, rows)
        for statement, params in updates.values():
            self._update_rows(conn, statement, params)
        for item in operations:
            try:
                item.result = item.work(conn)  # type: ignore[operator]
            except _Rejected as rejected:
                item.error = rejected.error

    def _holders(self, conn: Connection, fenced: set[str]) -> dict[str, tuple[str | None, str]]:
        """``{workflow_id: (owner, state)}`` of the fenced workflows of the batch being
        written, as they are now, in this transaction (which holds the write lock).

        On SQLite the rows read for earlier batches are kept while nothing else can have
        changed them: ``PRAGMA data_version`` is the same as in the last transaction this
        connection committed (no other connection, in this process or another, committed
        since) and so is the connection's ``total_changes`` right after that commit (nobody
        else wrote through this very connection either), and this writer's own writes that
        may change a row (a fenced update of the workflow, an operation) dropped it. Then
        only the workflows not known yet are read: a sequential step's commit needs no
        ``SELECT`` of its workflow, only the pragma. Anywhere else (PostgreSQL), every
        batch reads its workflows."""
        known = self._known
        mark, self._known_mark = self._known_mark, None
        if self._known_version is None:  # not SQLite
            known.clear()
            return dict(self._fence(conn, fenced)) if fenced else known
        raw = _raw(conn)
        if not raw.in_transaction:  # (the drainer's batches) reads under the write lock too
            if not conn.in_transaction():
                conn.begin()
            raw.execute("BEGIN IMMEDIATE")
        version = raw.execute("PRAGMA data_version").fetchone()[0]
        if mark is None or mark[0] is not raw or mark[1:] != (version, raw.total_changes):
            known.clear()
        self._known_version = version
        missing = [wid for wid in fenced if wid not in known]
        if missing:
            known.update(self._fence(conn, set(missing)))
        return known

    def _committed(self, conn: Connection) -> None:
        """After a commit of :meth:`_execute`'s batch: what it read of the workflows holds
        until another connection commits (or writes through this one)."""
        if self._known_version is not None:
            raw = _raw(conn)
            self._known_mark = (raw, self._known_version, raw.total_changes)

    @staticmethod
    def _settle(items: list[_Item]) -> None:
        """Resolve the futures of ``items``: one wake-up of each event loop per batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        for item in items:
            if item.future is None or item.loop is None:
                if item.error is not None:
                    _log.error(
                        "background database write failed",
                        workflow_id=_workflow_of(item.work),
                        error=repr(item.error),
                    )
                continue
            by_loop.setdefault(item.loop, []).append(item)
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, waiting in by_loop.items():

            def resolve(waiting: list[_Item] = waiting) -> None:
                for item in waiting:
                    future = item.future
                    if future is None or future.done():
                        continue
                    if item.error is not None:
                        future.set_exception(item.error)
                    else:
                        future.set_result(item.result)

            if loop is current:
                resolve()
                continue
            with contextlib.suppress(RuntimeError):  # the loop may be closed at shutdown
                loop.call_soon_threadsafe(resolve)


def _workflow_of(work: Insert | InsertOnce | FencedInsert | FencedUpdate | Operation) -> str | None:
    """The workflow a write is for, when the write says (a log line names it)."""
    if isinstance(work, FencedInsert | FencedUpdate):
        return work.workflow_id
    if isinstance(work, Insert | InsertOnce):
        found = work.row.get("workflow_id", work.row.get("id") if work.table.name == _PARENT else None)
        return found if isinstance(found, str) else None
    return None


def _sqlite_variables(conn: Connection) -> int:
    """How many parameters one statement may bind on this SQLite connection."""
    raw = _raw(conn)
    try:
        return int(raw.getlimit(_SQLITE_LIMIT_VARIABLE_NUMBER))
    except (AttributeError, sqlite3.Error):  # not the stdlib driver: SQLite's old default
        return 999


def _raw(conn: Connection) -> Any:
    return conn.connection.dbapi_connection


def driver_execute(conn: Connection, sql: str, params: Any, *, many: bool = False) -> list[Any]:
    """Run ``sql`` on the DBAPI cursor inside ``conn``'s transaction and return its rows, for
    the few statements on the hot path where SQLAlchemy's per-execution overhead costs more
    than the database; driver errors come out as SQLAlchemy's (``IntegrityError`` and so on),
    as from ``conn.execute``. The engine's ``before/after_cursor_execute`` listeners (query
    counting, tracing) hear of it as of any statement."""
    if not conn.in_transaction():
        conn.begin()
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.cursor()
    dispatch = conn.dispatch
    try:
        for listener in dispatch.before_cursor_execute:
            sql, params = listener(conn, cursor, sql, params, None, many)
        if many:
            cursor.executemany(sql, params)
            rows = []
        else:
            cursor.execute(sql, params)
            rows = list(cursor.fetchall()) if cursor.description else []
        if dispatch.after_cursor_execute:
            dispatch.after_cursor_execute(conn, cursor, sql, params, None, many)
        return rows
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, params, exc, dbapi.Error) from exc
    finally:
        cursor.close()


@dataclass(frozen=True, slots=True)
class _InsertPlan:
    """An insert compiled for one dialect and column set, with its bind processors."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool
    pairs: tuple[tuple[str, Callable[[Any], Any] | None], ...] = ()
    """``zip(names, processors)``, made once (a row's values are a comprehension over it)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pairs", tuple(zip(self.names, self.processors, strict=True)))

    @classmethod
    def build(cls, conn: Connection, table: Table, keys: tuple[str, ...], statement: Any = None) -> _InsertPlan:
        """``statement``: an insert into ``table`` other than the plain one (``ON CONFLICT``...)."""
        insert = table.insert() if statement is None else statement
        compiled: Any = insert.compile(dialect=conn.dialect, column_keys=list(keys))
        names = tuple(compiled.positiontup) if compiled.positional else keys
        found = compiled._bind_processors  # the per-column type processing SQLAlchemy itself applies
        dialect = conn.dialect
        stores_text = _stores_json_text(dialect)
        processors = []
        for name in names:
            proc = found.get(name)
            column = table.c.get(name)
            if proc is not None and column is not None and isinstance(column.type, JSON):
                proc = _json_bind(proc, stores_text=stores_text)
            elif proc is not None and column is not None and isinstance(column.type, UtcDateTime):
                proc = _utc_bind(proc, dialect)
            processors.append(proc)
        return cls(str(compiled), names, tuple(processors), bool(compiled.positional))

    def params(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = tuple([row[name] if proc is None else proc(row[name]) for name, proc in self.pairs])
        return values if self.positional else dict(zip(self.names, values, strict=True))

    def split(self) -> tuple[str, str, str]:
        """The SQL as ``(head, group, tail)`` around its one ``VALUES`` group of ``?``, for a
        multi-row statement (``head + ", ".join([group] * n) + tail``); ``group`` is empty
        when the statement is not of that shape."""
        head, sep, rest = self.sql.rpartition(" VALUES (")
        end = rest.find(")")
        group = "(" + rest[: end + 1]
        if not sep or not self.positional or end < 0 or group.count("?") != len(self.names) or "(" in group[1:]:
            return self.sql, "", ""
        return head + sep[:-1], group, rest[end + 1 :]


@dataclass(frozen=True, slots=True)
class _StatementPlan:
    """A statement with bound parameters, compiled once for one dialect and parameter set."""

    compiled: Any
    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool
    pairs: tuple[tuple[str, Callable[[Any], Any] | None], ...] = ()
    """``zip(names, processors)``, made once."""
    fixed: dict[str, Any] | None = None
    """The statement's own parameter values (its literals) that rows do not name; ``None``:
    worked out per row by SQLAlchemy (a bind whose value is computed at execution)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pairs", tuple(zip(self.names, self.processors, strict=True)))

    @classmethod
    def build(cls, conn: Connection, statement: Any, keys: tuple[str, ...]) -> _StatementPlan | None:
        compiled: Any = statement.compile(dialect=conn.dialect, column_keys=list(keys))
        sql = str(compiled)
        if "POSTCOMPILE" in sql or compiled.literal_execute_params or compiled.post_compile_params:
            return None  # rendered per execution: leave it to SQLAlchemy
        names = tuple(compiled.positiontup) if compiled.positional else tuple(compiled.bind_names.values())
        found = compiled._bind_processors
        stores_text = _stores_json_text(conn.dialect)
        processors = tuple(
            _json_bind(found[n], stores_text=True)
            if stores_text and isinstance(compiled.binds[n].type, JSON)
            else _utc_bind(found[n], conn.dialect)
            if n in found and isinstance(compiled.binds[n].type, UtcDateTime)
            else found.get(n)
            for n in names
        )
        # The statement's own values (literals in its SQL expression) are fixed: they are
        # taken once, and each row's values are laid over them, as construct_params does.
        fixed: dict[str, Any] | None = None
        if not any(bind.callable is not None for bind in compiled.binds.values()):
            fixed = {k: v for k, v in compiled.construct_params(_check=False).items() if k not in keys}
        return cls(compiled, sql, names, processors, bool(compiled.positional), fixed=fixed)

    def params(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        fixed = self.fixed
        full = self.compiled.construct_params(row) if fixed is None else ({**fixed, **row} if fixed else row)
        values = tuple([full[name] if proc is None else proc(full[name]) for name, proc in self.pairs])
        return values if self.positional else dict(zip(self.names, values, strict=True))


@dataclass(slots=True)
class _Unsure:
    """A transaction whose COMMIT was sent but not answered, and the items it held."""

    xid: str
    """``"<transaction id>:<server process id>"``."""
    items: list[_Item]


class _Broken(Exception):
    """Thread mode: the database became unreachable during a batch."""

    def __init__(self, cause: BaseException, pending: list[_Item], unsure: _Unsure | None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.pending = pending
        """The items not settled (committed or failed) yet."""
        self.unsure = unsure


def _plain_kinds(proc: Callable[[Any], Any]) -> tuple[type, ...]:
    """``(dict, list)`` if ``proc`` (a JSON column's bind processor on a database that stores
    its text) makes the text :func:`~ecl.core.json_values.dumps` makes, checked on a sample;
    else ``()`` (then ``proc`` encodes every value)."""
    sample = {"k": ["é", 1, 2.5, None, True]}
    return (dict, list) if proc(sample) == dumps(sample) else ()


def _utc_bind(proc: Callable[[Any], Any], dialect: Any) -> Callable[[Any], Any]:
    """A :class:`~ecl.store.models.UtcDateTime` column's bind processor, on SQLite without
    SQLAlchemy's two steps per value (to naive UTC, then the text through a ``%`` format):
    a UTC ``datetime`` (every one the engine writes) becomes its ``isoformat`` text, the
    same text. Anything else, or a dialect or storage format where the texts differ (checked
    here on samples), keeps ``proc``."""
    if dialect.name != "sqlite":
        return proc
    samples = [
        datetime(2026, 11, 27, 23, 5, 7, 123456, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    ]
    utc = UTC

    def bind(value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is utc:  # "+00:00" cut off
            return value.isoformat(" ", "microseconds")[:-6]
        return proc(value)

    if any(bind(sample) != proc(sample) for sample in samples):
        return proc
    return bind


def _stores_json_text(dialect: Any) -> bool:
    """Whether JSON columns hold the text SQLAlchemy's own serializer makes (SQLite without
    a serializer of the dialect's own)."""
    return bool(dialect.name == "sqlite" and getattr(dialect, "_json_serializer", None) is None)


def _json_bind(proc: Callable[[Any], Any], *, stores_text: bool) -> Callable[[Any], Any]:
    """A JSON column's bind processor (of inserts and updates) that takes :class:`EncodedJson`
    values too: their text as is where the database stores SQLAlchemy's text
    (``stores_text``), else their value. Where it stores text, ``None`` (a step row's error,
    most of the time) is bound as ``proc(None)``, worked out once, and a dict or list is
    encoded as ``proc`` does (``json.dumps``) without its layers: a step row's input and
    output, a workflow's result (checked on a sample; else ``proc`` encodes every value)."""
    if stores_text:
        null = proc(None)
        plain = _plain_kinds(proc)

        def bind(value: Any) -> Any:
            if value is None:
                return null
            kind = type(value)
            if kind is EncodedJson:
                return value.text
            return dumps(value) if kind in plain else proc(value)

    else:

        def bind(value: Any) -> Any:
            return proc(value.value if type(value) is EncodedJson else value)

    return bind


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every :class:`EncodedJson` replaced by its value (for SQLAlchemy)."""
    return {k: v.value if type(v) is EncodedJson else v for k, v in row.items()}


def _discard(conn: Connection | None) -> None:
    """Drop a connection that broke (it goes back to no pool)."""
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.invalidate()
        with contextlib.suppress(Exception):
            conn.close()


def _unavailable(exc: BaseException) -> DatabaseError:
    error = DatabaseError(
        "the database is unreachable; try again later",
        hint="the server retries its own writes until the database is back",
    )
    error.__cause__ = exc
    return error


class _Rejected(Exception):
    """Raised by an operation to fail its own future without failing the batch."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def reject(error: BaseException) -> NoReturn:
    """From inside an :data:`Operation`: fail this operation's future, keep the batch."""
    raise _Rejected(error)
