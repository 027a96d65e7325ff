"""The embedded engine's database writer: one thread, one connection, group commit.

Every journal append, lease update and run record of every workflow in this process goes
through one queue. The writer thread drains whatever is queued, executes it in a single
transaction (consecutive inserts into the same table as one ``executemany``) and commits
once, so a thousand concurrent workflows pay for a handful of commits instead of a
thousand. Callers that need durability await the returned future, which resolves only
after the commit; fire-and-forget writes ride along in the next batch, and because the
queue is FIFO they are committed no later than any awaited write queued after them.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import structlog
from sqlalchemy import Connection, Engine, Table

__all__ = [
    "DatabaseWriter",
    "Fence",
    "FencedInsert",
    "FencedUpdate",
    "Insert",
    "LeaseLost",
    "Operation",
    "reject",
]

_log = structlog.get_logger("ecl.engines.embedded.writer")

Operation = Callable[[Connection], Any]
"""A unit of work run on the writer's connection inside the batch transaction."""

_MAX_BATCH = 2000
_ENDED = frozenset({"completed", "failed", "cancelled", "missing"})
_PARENT = "workflows"


@dataclass(slots=True)
class Insert:
    """An insert of one row; consecutive inserts into one table become one executemany."""

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
    work: Insert | FencedInsert | FencedUpdate | Operation
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop | None
    result: Any = None
    error: BaseException | None = None
    done: bool = field(default=False)


class DatabaseWriter:
    """Serialises all writes of this process onto one connection in a daemon thread."""

    def __init__(self, engine: Engine, fence: Fence, *, commit_delay: float = 0.0) -> None:
        self._engine = engine
        self._fence = fence
        self._inserts: dict[str, Any] = {}
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._commit_delay = commit_delay
        self._thread = threading.Thread(target=self._main, name="ecl-db-writer", daemon=True)
        self._closed = False
        self.batches = 0
        self.items = 0
        self._thread.start()

    # ------------------------------------------------------------------ API

    def submit(self, work: Insert | FencedInsert | FencedUpdate | Operation) -> asyncio.Future[Any]:
        """Queue ``work``; the future resolves with its result after the commit."""
        if self._closed:
            raise RuntimeError("database writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Item(work, future, loop))
        return future

    def post(self, work: Insert | FencedInsert | FencedUpdate | Operation) -> None:
        """Queue ``work`` without waiting; failures are logged."""
        if self._closed:
            raise RuntimeError("database writer is closed")
        self._queue.put(_Item(work, None, None))

    async def call(self, work: Operation) -> Any:
        """Run ``work`` on the writer connection and return its result (after commit)."""
        return await self.submit(work)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        self._engine.dispose()

    # ------------------------------------------------------------------ thread

    def _main(self) -> None:
        with self._engine.connect() as conn:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                self._run_batch(conn, batch)
                if stop:
                    return

    def _run_batch(self, conn: Connection, batch: list[_Item]) -> None:
        try:
            self._execute(conn, batch)
            if self._commit_delay:
                time.sleep(self._commit_delay)
            conn.commit()
        except Exception:
            with contextlib.suppress(Exception):
                conn.rollback()
            # One bad item must not fail its neighbours: run each on its own.
            for item in batch:
                item.done, item.error, item.result = False, None, None
                try:
                    self._execute(conn, [item])
                    conn.commit()
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        conn.rollback()
                    item.error = exc
            self._settle(batch)
            return
        self.batches += 1
        self.items += len(batch)
        self._settle(batch)

    def _insert(self, table: Table) -> Any:
        stmt = self._inserts.get(table.name)
        if stmt is None:
            stmt = self._inserts[table.name] = table.insert()
        return stmt

    def _execute(self, conn: Connection, batch: list[_Item]) -> None:
        """Run a batch: inserts grouped per table (parents first), then fenced updates
        grouped per statement, then operations in queue order.

        Reordering is safe because an insert never depends on a later write, an update
        only on inserts, and writes of different workflows are independent.
        """
        fenced = {
            i.work.workflow_id for i in batch if isinstance(i.work, FencedInsert | FencedUpdate) and i.work.workflow_id
        }
        holders = self._fence(conn, fenced) if fenced else {}
        inserts: dict[str, tuple[Table, list[dict[str, Any]]]] = {}
        updates: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
        operations: list[_Item] = []
        for item in batch:
            work = item.work
            if isinstance(work, FencedInsert | FencedUpdate) and work.workflow_id:
                owner, state = holders.get(work.workflow_id, (None, "missing"))
                if owner != work.owner or state in _ENDED:
                    item.error = LeaseLost(work.workflow_id, owner, state)
                    continue
            if isinstance(work, Insert | FencedInsert):
                inserts.setdefault(work.table.name, (work.table, []))[1].append(work.row)
            elif isinstance(work, FencedUpdate):
                updates.setdefault(id(work.statement), (work.statement, []))[1].append(work.params)
            else:
                operations.append(item)
        order = sorted(inserts, key=lambda name: name != _PARENT)
        for name in order:
            table, rows = inserts[name]
            conn.execute(self._insert(table), rows)
        for statement, params in updates.values():
            conn.execute(statement, params)
        for item in operations:
            try:
                item.result = item.work(conn)  # type: ignore[operator]
            except _Rejected as rejected:
                item.error = rejected.error

    @staticmethod
    def _settle(items: list[_Item]) -> None:
        """Resolve the futures of ``items``: one wake-up of each event loop per batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        for item in items:
            if item.future is None or item.loop is None:
                if item.error is not None:
                    _log.error("background database write failed", error=repr(item.error))
                continue
            by_loop.setdefault(item.loop, []).append(item)
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

            with contextlib.suppress(RuntimeError):  # the loop may be closed at shutdown
                loop.call_soon_threadsafe(resolve)


class _Rejected(Exception):
    """Raised by an operation to fail its own future without failing the batch."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def reject(error: BaseException) -> NoReturn:
    """From inside an :data:`Operation`: fail this operation's future, keep the batch."""
    raise _Rejected(error)
