"""The embedded engine: durable workflows in this process, journal in the ECL database.

One :class:`EmbeddedEngine` per process. It registers the process as a worker (a lease
renewed by a heartbeat), runs each workflow as an asyncio task on an
:class:`~ecl.engines.embedded.context.EmbeddedDurableContext`, and writes everything
through one group-commit :class:`~ecl.engines.embedded.writer.DatabaseWriter`.

What survives a crash, and why:

- a step whose journal entry committed is replayed from the journal, never re-executed;
- a step in flight when the process died has no entry, so it runs again on resume;
- state, revision counters and promises are journal entries (promises also rows that
  ``signal`` writes), so they are rebuilt exactly on replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection, Engine, Table, and_, case, delete, or_, select, update

from ecl.core.durable import Admission, DurableContext, JsonValue, OwnerWait
from ecl.core.errors import (
    DatabaseError,
    EclError,
    LeaseError,
    NonDeterminismError,
    NotFoundError,
    RuntimeFailure,
    WorkflowCancelled,
)
from ecl.core.ids import new_workflow_id, parse_workflow_id
from ecl.core.results import WorkflowResult
from ecl.core.rules import (
    CANCELLED_ERROR,
    HasInputModel,
    check_same_submission,
    check_takes_signals,
    next_round,
    result_from_stored,
    submission_hash,
    validate_input,
)
from ecl.core.state import TERMINAL_STATES, WorkflowState
from ecl.core.waiting import slot_wait
from ecl.engines.embedded import lease
from ecl.engines.embedded.context import EmbeddedDurableContext, JournalEntry
from ecl.engines.embedded.gate import StartGate
from ecl.engines.embedded.recorder import Listener, WriterRecorder
from ecl.engines.embedded.statements import Statements
from ecl.engines.embedded.writer import (
    DatabaseWriter,
    FencedUpdate,
    InsertOnce,
    LeaseLost,
    driver_execute,
    reject,
)
from ecl.observability.logging import LazyLogger, bind_workflow
from ecl.observability.tracing import link_workflow, signal_span, submit_span, workflow_span
from ecl.store.progress import cancelled_result_from_records

__all__ = ["EmbeddedEngine", "EmbeddedOptions", "Orchestrates", "OwnerWait"]

_log = structlog.get_logger("ecl.engines.embedded")

Fresh = tuple[str, dict[str, Any], str | None]
"""A workflow just admitted here: its definition, input and trace context."""


class Orchestrates(Protocol):
    """What the engine needs of the orchestrator."""

    async def run(
        self,
        ctx: DurableContext,
        definition_id: str,
        input: dict[str, Any],
        *,
        recorder: Any,
    ) -> WorkflowResult:
        """Execute (or replay) one workflow on ``ctx``."""
        ...


@dataclass(frozen=True)
class EmbeddedOptions:
    """Tuning of the embedded engine (from ``Settings.embedded`` / ``Settings.database``)."""

    journal_max_bytes: int = 1024 * 1024
    lease_seconds: float = 15.0
    heartbeat_seconds: float = 3.0
    promise_poll_seconds: float = 0.2
    worker_poll_seconds: float = 1.0
    max_concurrent: int = 10_000
    commit_delay_seconds: float = 0.0
    """Fault injection for crash tests: sleep inside each transaction before COMMIT."""


class EmbeddedEngine:
    """In-process durable engine on SQLite or PostgreSQL."""

    name = "embedded"

    def __init__(
        self,
        db: Engine,
        tables: dict[str, Table],
        orchestrator: Orchestrates,
        *,
        known_definitions: Callable[[str], HasInputModel] | None = None,
        options: EmbeddedOptions | None = None,
        listener: Listener | None = None,
    ) -> None:
        self._db = db
        self._t = tables
        self._sql = Statements.build(tables)
        self._orchestrator = orchestrator
        self._known = known_definitions
        self._opts = options or EmbeddedOptions()
        self._listener = listener
        self._me = lease.WorkerIdentity.create()
        self._writer: DatabaseWriter | None = None
        self._tasks: dict[str, asyncio.Task[WorkflowResult]] = {}
        self._cancelling: set[str] = set()
        self._lost: dict[str, str | None] = {}
        """Workflows the heartbeat found taken over by another process (their new owner)."""
        self._finishing: set[str] = set()
        """Workflows whose final write is on its way: the heartbeat, which may read that write
        (terminal, no owner) before the task has returned, must not cancel them."""
        self._heartbeat: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(self._opts.max_concurrent)
        self.start_gate: StartGate | None = None
        """Where a process serves the API: submitted workflows start after its requests
        (see :mod:`ecl.engines.embedded.gate`); ``None``: at once."""
        self._per_definition: dict[str, asyncio.Semaphore] = {}
        self._limits: dict[str, int] = {}  # each definition's max_concurrent_workflows
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def started(self) -> bool:
        """Whether :meth:`start` ran and :meth:`close` did not."""
        return self._writer is not None and not self._closed

    async def health(self) -> str:
        """``"ok"`` once started (the database is checked on its own)."""
        return "ok" if self.started else "not started"

    @property
    def worker_id(self) -> str:
        """This process's worker id (the lease owner name)."""
        return self._me.id

    async def start(self) -> EmbeddedEngine:
        """Open the writer, register this worker and start the heartbeat."""
        if self._writer is not None:
            return self
        mark = "?" if self._db.dialect.paramstyle == "qmark" else "%s"

        def fence(conn: Connection, ids: set[str]) -> dict[str, tuple[str | None, str]]:
            # Driver-level SQL: this runs once per commit, on the hot path of every step.
            sql = f"SELECT id, owner, state FROM workflows WHERE id IN ({', '.join([mark] * len(ids))})"
            return {row[0]: (row[1], row[2]) for row in driver_execute(conn, sql, tuple(ids))}

        self._writer = DatabaseWriter(
            self._db,
            fence,
            commit_delay=self._opts.commit_delay_seconds,
            inline=self._db.dialect.name == "sqlite",
        )
        await self._renew(ride_out=False)
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="ecl-heartbeat")
        return self

    async def __aenter__(self) -> EmbeddedEngine:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop: running workflows are left resumable (their leases released)."""
        if self._closed:
            return
        self._closed = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._heartbeat
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._writer is not None:
            workflows, workers, me = self._t["workflows"], self._t["workers"], self._me.id

            def release_all(conn: Connection) -> None:
                conn.execute(
                    update(workflows)
                    .where(workflows.c.owner == me)
                    .values(owner=None, waiting=_still_waiting(workflows))
                )
                conn.execute(delete(workers).where(workers.c.id == me))

            with contextlib.suppress(Exception):  # with the database away, the leases just expire
                await self._writer.call(release_all, ride_out=False)
            writer = self._writer
            await asyncio.to_thread(writer.close)

    @property
    def writer(self) -> DatabaseWriter:
        """The group-commit writer (after :meth:`start`)."""
        if self._writer is None:
            raise RuntimeFailure("the embedded engine is not started; call start() first")
        return self._writer

    async def _renew(self, *, ride_out: bool = True) -> None:
        """Extend this worker's lease. The heartbeat's renewal waits out a database outage
        and lands as soon as it is back (re-registering the worker if its lease ran out and
        its row was reaped); the first one, at start, fails at once instead."""
        workers, me = self._t["workers"], self._me
        span = timedelta(seconds=self._opts.lease_seconds)
        await self.writer.call(lambda conn: lease.renew(conn, workers, me, span), ride_out=ride_out)

    async def _heartbeat_loop(self) -> None:
        workflows, me = self._t["workflows"], self._me.id
        while True:
            await asyncio.sleep(self._opts.heartbeat_seconds)
            try:
                await self._renew()
                ids = list(self._tasks)
                if not ids:
                    continue

                def ended(conn: Connection, ids: list[str] = ids) -> list[tuple[str, str | None, str]]:
                    rows = conn.execute(
                        select(workflows.c.id, workflows.c.owner, workflows.c.state).where(workflows.c.id.in_(ids))
                    )
                    return [(r.id, r.owner, r.state) for r in rows if r.owner != me or r.state in TERMINAL_STATES]

                for workflow_id, owner, state in await self.writer.call(ended):
                    task = self._tasks.get(workflow_id)
                    if task is not None and not task.done() and workflow_id not in self._finishing:
                        if state == WorkflowState.CANCELLED:
                            self._cancelling.add(workflow_id)
                        else:
                            self._lost[workflow_id] = owner
                        task.cancel()
            except Exception as exc:  # keep beating: a transient DB error must not kill us
                _log.warning("heartbeat failed", error=repr(exc))

    # ------------------------------------------------------------------ Engine

    async def submit(
        self,
        definition_id: str,
        input: dict[str, JsonValue],
        workflow_id: str | None = None,
        *,
        start: bool = True,
    ) -> str:
        """Record a workflow and (by default) start running it in this process (see :meth:`admit`)."""
        return (await self.admit(definition_id, input, workflow_id, start=start)).workflow_id

    async def admit(
        self,
        definition_id: str,
        input: dict[str, JsonValue],
        workflow_id: str | None = None,
        *,
        start: bool = True,
    ) -> Admission:
        """Like :meth:`submit`; also says whether this call created the workflow (of many
        concurrent identical submissions exactly one did: the API answers it 201, the rest 200)
        and gives its row as stored, so the API answers without reading it back.

        The input is checked against the definition's input model first (with
        ``known_definitions``). Idempotent on ``workflow_id``: the same id with the same
        definition and input returns the existing workflow; a different body raises
        :class:`~ecl.core.ConflictError`.
        """
        validate_input(definition_id, self._known(definition_id).input_model if self._known else None, input)
        wid = parse_workflow_id(workflow_id) if workflow_id else new_workflow_id()
        digest = submission_hash(definition_id, input)
        # The trace every run of the workflow continues (its first run's and each resume's).
        trace_context = submit_span(wid, definition_id)
        now = datetime.now(UTC)
        row = {
            "id": wid,
            "definition_id": definition_id,
            "state": (WorkflowState.RUNNING if start else WorkflowState.PENDING).value,
            "input": input,
            "input_hash": digest,
            "owner": self._me.id if start else None,
            "revision_count": 0,
            "output": None,
            "error": None,
            "waiting": None,
            "trace_context": trace_context,
            "created_at": now,
            "updated_at": now,
            "completed_at": None,
        }
        # One statement, in the writer's next group commit with whatever else is queued:
        # the insert, or (a resubmission) the stored row, read in the same transaction.
        stored = await self.writer.submit(InsertOnce(self._t["workflows"], row), ride_out=False)
        if stored is not None:
            check_same_submission(
                wid,
                definition_id=definition_id,
                digest=digest,
                stored_definition_id=stored["definition_id"],
                stored_digest=stored["input_hash"],
            )
            return Admission(wid, created=False, row=stored)
        if start:
            self._spawn(wid, fresh=(definition_id, dict(input), trace_context))
        return Admission(wid, created=True, row=row)

    async def signal(self, workflow_id: str, name: str, payload: JsonValue) -> None:
        """Resolve the durable promise ``name``; the waiting run picks it up."""
        promises, workflows = self._t["promises"], self._t["workflows"]

        def resolve(conn: Connection) -> str | None:
            row = conn.execute(
                select(workflows.c.state, workflows.c.trace_context).where(workflows.c.id == workflow_id)
            ).first()
            if row is None:
                reject(_not_found(workflow_id))
                return None
            try:
                check_takes_signals(workflow_id, WorkflowState(row.state))
            except EclError as err:
                reject(err)
                return None
            # A promise resolves once; a signal resolves the first round not yet resolved.
            rows = conn.execute(
                select(promises.c.name, promises.c.resolved_at).where(
                    and_(
                        promises.c.workflow_id == workflow_id,
                        or_(promises.c.name == name, promises.c.name.like(f"{name}#%")),
                    )
                )
            ).all()
            target = next_round(name, {r.name for r in rows if r.resolved_at is not None})
            now = datetime.now(UTC)
            if any(r.name == target for r in rows):
                conn.execute(
                    update(promises)
                    .where(and_(promises.c.workflow_id == workflow_id, promises.c.name == target))
                    .values(payload=payload, resolved_at=now)
                )
            else:
                conn.execute(
                    promises.insert().values(workflow_id=workflow_id, name=target, payload=payload, resolved_at=now)
                )
            return str(row.trace_context) if row.trace_context else None

        with signal_span(workflow_id, name) as span:  # in the sender's trace, linked to the workflow's
            link_workflow(span, await self.writer.call(resolve, ride_out=False))

    async def cancel(self, workflow_id: str) -> None:
        """Cancel in any state: running, waiting on a promise, backing off, or idle."""
        workflows = self._t["workflows"]

        def mark(conn: Connection) -> str:
            row = conn.execute(
                select(workflows.c.state, workflows.c.definition_id).where(workflows.c.id == workflow_id)
            ).first()
            if row is None:
                reject(_not_found(workflow_id))
                return ""
            if row.state in TERMINAL_STATES:
                return str(row.state)
            now = datetime.now(UTC)
            # The stored result keeps what the workflow had done, whoever runs it (or nobody).
            result = cancelled_result_from_records(conn, workflow_id, row.definition_id)
            conn.execute(
                update(workflows)
                .where(workflows.c.id == workflow_id)
                .values(
                    state=WorkflowState.CANCELLED.value,
                    output=result.model_dump(mode="json"),
                    updated_at=now,
                    completed_at=now,
                    error=CANCELLED_ERROR,
                    waiting=None,
                )
            )
            return WorkflowState.CANCELLED.value

        state = await self.writer.call(mark, ride_out=False)
        task = self._tasks.get(workflow_id)
        if state == WorkflowState.CANCELLED and task is not None and not task.done():
            self._cancelling.add(workflow_id)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def run(
        self,
        definition_id: str,
        input: dict[str, JsonValue],
        workflow_id: str | None = None,
        *,
        on_submitted: Callable[[str], None] | None = None,
        on_wait: Callable[[OwnerWait], Awaitable[None] | None] | None = None,
    ) -> WorkflowResult:
        """:meth:`submit`, then :meth:`resume`: a new workflow (or one of the same id that
        nobody runs) runs here, one that another process runs is waited for."""
        wid = await self.submit(definition_id, input, workflow_id)
        if on_submitted is not None:
            on_submitted(wid)
        if wid in self._tasks:  # started here just now: no need to look it up
            return await self.result(wid)
        return await self.resume(wid, on_wait=on_wait)

    def result(self, workflow_id: str) -> Awaitable[WorkflowResult]:
        """Wait for the workflow to end (here or in another process) and return its result.

        For a workflow running here: a future of its own (not a coroutine), so a caller
        that gathers thousands of them makes no task and holds no coroutine frame for each;
        cancelling it stops the waiting, not the workflow (as ``asyncio.shield``)."""
        task = self._tasks.get(workflow_id)
        if task is None:
            return self._stored_result_when_done(workflow_id)
        waiter: asyncio.Future[WorkflowResult] = task.get_loop().create_future()
        task.add_done_callback(functools.partial(_relay, waiter), context=_NO_CONTEXT)
        return waiter

    async def _stored_result_when_done(self, workflow_id: str) -> WorkflowResult:
        """The stored result of a workflow not running here, once it has ended."""
        while True:
            found = await self.stored_result(workflow_id)
            if found is not None:
                return found
            await asyncio.sleep(self._opts.promise_poll_seconds)

    async def stored_result(self, workflow_id: str) -> WorkflowResult | None:
        """The stored result of an ended workflow, ``None`` while it is still active."""
        workflows = self._t["workflows"]

        def read(conn: Connection) -> Any:
            return conn.execute(select(workflows).where(workflows.c.id == workflow_id)).first()

        row = await self.writer.call(read, ride_out=False)
        if row is None:
            raise _not_found(workflow_id)
        if row.state not in TERMINAL_STATES:
            return None
        return result_from_stored(
            workflow_id=row.id,
            definition_id=row.definition_id,
            state=row.state,
            output=row.output,
            error=row.error,
            revision_count=row.revision_count,
        )

    # ------------------------------------------------------------------ resume / worker

    async def resume(
        self,
        workflow_id: str,
        *,
        on_wait: Callable[[OwnerWait], Awaitable[None] | None] | None = None,
        wait: bool = True,
    ) -> WorkflowResult:
        """Take a workflow over and run it to its end in this process.

        Takes over at once when the owner is provably dead (same host, process gone) or
        its lease expired; otherwise waits for the lease to expire, telling ``on_wait``.
        """
        told = False
        while True:
            done = await self.stored_result(workflow_id)
            if done is not None:
                return done
            if workflow_id in self._tasks:
                return await self.result(workflow_id)
            got, info = await self._try_claim(workflow_id)
            if got:
                return await self._spawn(workflow_id)
            if info is None:
                continue
            if not wait:
                raise LeaseError(
                    f"workflow {workflow_id} is owned by {info.worker_id}",
                    workflow_id=workflow_id,
                    owner=info.worker_id,
                )
            if not told and on_wait is not None:
                told = True
                maybe = on_wait(OwnerWait(workflow_id, info.worker_id, info.host, info.pid, info.expires_at))
                if maybe is not None:
                    await maybe
            await asyncio.sleep(min(1.0, self._opts.heartbeat_seconds))

    async def _try_claim(self, workflow_id: str) -> tuple[bool, lease.OwnerInfo | None]:
        workflows, workers, me, host = (
            self._t["workflows"],
            self._t["workers"],
            self._me,
            self._me.host,
        )

        def attempt(conn: Connection) -> tuple[bool, lease.OwnerInfo | None]:
            row = conn.execute(
                select(workflows.c.owner, workflows.c.state).where(workflows.c.id == workflow_id)
            ).first()
            if row is None:
                reject(_not_found(workflow_id))
            if row.state in TERMINAL_STATES:
                return False, None
            if row.owner is None or row.owner == me.id:
                return lease.claim(conn, workflows, workflow_id, me.id, row.owner), None
            info = lease.owner_info(conn, workers, row.owner)
            if info.expired(datetime.now(UTC)) or info.provably_dead(host):
                conn.execute(delete(workers).where(workers.c.id == row.owner))
                return lease.claim(conn, workflows, workflow_id, me.id, row.owner), None
            return False, info

        result: tuple[bool, lease.OwnerInfo | None] = await self.writer.call(attempt, ride_out=False)
        return result

    async def recover(self, limit: int = 1000) -> list[str]:
        """Claim and start every active workflow whose owner is gone (start-up recovery)."""
        workflows, workers, me = self._t["workflows"], self._t["workers"], self._me

        def sweep(conn: Connection) -> list[str]:
            lease.reap(conn, workers, me.host)
            lease.renew(conn, workers, me, timedelta(seconds=self._opts.lease_seconds))
            claimed = []
            for wid, owner in lease.orphans(conn, workflows, workers, limit):
                if wid not in self._tasks and lease.claim(conn, workflows, wid, me.id, owner):
                    claimed.append(wid)
            return claimed

        claimed: list[str] = await self.writer.call(sweep, ride_out=False)
        for wid in claimed:
            self._spawn(wid)
        if claimed:
            _log.info("recovered workflows", count=len(claimed))
        return claimed

    async def run_worker(self, stop: asyncio.Event) -> None:
        """Keep recovering orphaned and pending workflows until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.recover()
            except DatabaseError:
                pass  # the database is away; the writer reports the outage once
            except Exception as exc:
                _log.warning("worker sweep failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._opts.worker_poll_seconds)

    @property
    def running(self) -> list[str]:
        """Ids of workflows running in this process."""
        return [wid for wid, task in self._tasks.items() if not task.done()]

    # ------------------------------------------------------------------ running one

    def _spawn(self, workflow_id: str, fresh: Fresh | None = None) -> asyncio.Task[WorkflowResult]:
        task = asyncio.create_task(self._drive(workflow_id, fresh), name=f"ecl-workflow-{workflow_id}")
        self._tasks[workflow_id] = task
        task.add_done_callback(functools.partial(self._forget, workflow_id))  # (smaller than a closure)
        return task

    def _forget(self, workflow_id: str, task: asyncio.Task[WorkflowResult]) -> None:
        if self._tasks.get(workflow_id) is task:
            del self._tasks[workflow_id]

    def _concurrency(self, definition_id: str) -> asyncio.Semaphore | None:
        """The slots of a definition with ``max_concurrent_workflows`` (``None``: no limit)."""
        found = self._per_definition.get(definition_id)
        if found is not None or self._known is None:
            return found
        try:
            known: Any = self._known(definition_id)
        except EclError:
            return None
        options = getattr(known, "options", known)
        limit = getattr(options, "max_concurrent_workflows", None)
        if not isinstance(limit, int) or limit < 1:
            return None
        found = self._per_definition[definition_id] = asyncio.Semaphore(limit)
        self._limits[definition_id] = limit
        return found

    async def _turn(self, workflow_id: str, definition_id: str) -> tuple[asyncio.Semaphore | None, bool]:
        """Wait for a slot of the definition (``max_concurrent_workflows``), saying so;
        returns the slots taken (``None``: no limit) and whether it had to wait."""
        slots = self._concurrency(definition_id)
        if slots is None:
            return None, False
        waited = slots.locked()
        if waited:
            _log.info("workflow waits for a slot", workflow_id=workflow_id, definition_id=definition_id)
            # Its status says why it does not go on (cleared by its first state change).
            waiting = slot_wait(definition_id, self._limits.get(definition_id, 0))
            params = {"b_id": workflow_id, "b_owner": self._me.id, "b_waiting": waiting}
            self.writer.post(FencedUpdate(self._sql.set_waiting, params, workflow_id, self._me.id))
            if self._listener is not None:
                self._listener({"event": "workflow_queued", "workflow_id": workflow_id, "definition_id": definition_id})
        await slots.acquire()
        return slots, waited

    async def _drive(self, workflow_id: str, fresh: Fresh | None) -> WorkflowResult:
        """A workflow's task: load it (unless just admitted here), take its slots, run it,
        write its end. One coroutine, not a chain of them: every resumption of the run (each
        step's commit) passes through each coroutine the task awaits in."""
        # The task's lines carry this workflow, not what the code that spawned it had bound.
        with bind_workflow(workflow_id):
            if fresh is not None and self.start_gate is not None:
                try:
                    await self.start_gate.turn()  # the API's requests first
                except asyncio.CancelledError:
                    if workflow_id not in self._cancelling:
                        raise
                    self._cancelling.discard(workflow_id)
                    return await self._finish_cancelled(workflow_id, fresh[0])
            async with self._slots:
                entries: list[JournalEntry] = []
                if fresh is not None:
                    definition_id, data, trace_context = fresh
                else:
                    row, entries = await self.writer.call(self._loader(workflow_id))
                    if row is None:
                        raise _not_found(workflow_id)
                    definition_id, data, trace_context = row.definition_id, dict(row.input or {}), row.trace_context
                # A resumed run continues the workflow's trace: a child of its recorded submission.
                with workflow_span(workflow_id, trace_context, resumed=bool(entries)):
                    slots, waited = await self._turn(workflow_id, definition_id)
                    if slots is not None:  # held until this workflow's task ends, however it ends
                        task = asyncio.current_task()
                        assert task is not None
                        task.add_done_callback(lambda _task: slots.release())
                    started = time.perf_counter()
                    # A run just admitted here starts from the row this process inserted (running,
                    # not waiting) unless it waited for a slot: its recorder need not write that again.
                    recorder, ctx = self._run_of(workflow_id, entries, fresh is not None and not waited)
                    # Loggers made where they are used: one held across the whole run is held by
                    # every one of thousands of concurrent runs.
                    _run_log(workflow_id).debug("workflow run", replaying=len(entries))
                    try:
                        result = await self._orchestrator.run(ctx, definition_id, data, recorder=recorder)
                        if result.state in (WorkflowState.COMPLETED, WorkflowState.FAILED):
                            ctx.check_complete()
                    except (WorkflowCancelled, asyncio.CancelledError) as exc:
                        if workflow_id in self._cancelling or isinstance(exc, WorkflowCancelled):
                            self._cancelling.discard(workflow_id)
                            return await self._finish_cancelled(workflow_id, definition_id)
                        if workflow_id in self._lost:  # not our run any more: say so, not "cancelled"
                            owner = self._lost.pop(workflow_id)
                            _run_log(workflow_id).warning("lease lost; standing down", owner=owner)
                            raise LeaseError(
                                f"workflow {workflow_id} was taken over by {owner}; this process stood down",
                                workflow_id=workflow_id,
                                owner=owner or "",
                            ) from None
                        await self._release(workflow_id)
                        raise
                    except LeaseLost as lost:
                        if lost.state == WorkflowState.CANCELLED:
                            return await self._finish_cancelled(workflow_id, definition_id)
                        _run_log(workflow_id).warning("lease lost; standing down", owner=lost.owner, state=lost.state)
                        raise LeaseError(
                            f"workflow {workflow_id} was taken over by {lost.owner}; this process stood down",
                            workflow_id=workflow_id,
                            owner=lost.owner or "",
                        ) from None
                    except NonDeterminismError:
                        await self._release(workflow_id)
                        raise
                    except EclError as err:
                        result = WorkflowResult(
                            workflow_id=workflow_id,
                            definition_id=definition_id,
                            state=WorkflowState.FAILED,
                            error=err.to_dict(),
                        )
                    except Exception as exc:
                        _run_log(workflow_id).exception("workflow crashed")
                        result = WorkflowResult(
                            workflow_id=workflow_id,
                            definition_id=definition_id,
                            state=WorkflowState.FAILED,
                            error={"type": type(exc).__name__, "message": str(exc)},
                        )
                    if result.duration_ms is None:  # the run's own result, not kept elsewhere: no copy
                        result.duration_ms = (time.perf_counter() - started) * 1000
                    return await self._finish(result)

    def _run_of(
        self, workflow_id: str, entries: list[JournalEntry], running: bool
    ) -> tuple[WriterRecorder, EmbeddedDurableContext]:
        """A run's recorder and durable context (``running``: its row says so already)."""
        t, me = self._t, self._me.id
        stored = WorkflowState.RUNNING if running else None
        recorder = WriterRecorder(self.writer, t, self._sql, owner=me, listener=self._listener, stored_state=stored)
        ctx = EmbeddedDurableContext(
            workflow_id=workflow_id,
            owner=me,
            writer=self.writer,
            journal_table=t["journal_entries"],
            entries=entries,
            promise_source=functools.partial(self._promise, workflow_id),
            journal_max_bytes=self._opts.journal_max_bytes,
            promise_poll=self._opts.promise_poll_seconds,
        )
        return recorder, ctx

    def _loader(self, workflow_id: str) -> Callable[[Connection], tuple[Any, list[JournalEntry]]]:
        """The writer operation that loads a workflow to resume it (its row and journal)."""
        sql, me = self._sql, self._me.id

        def load(conn: Connection) -> tuple[Any, list[JournalEntry]]:
            params = {"b_id": workflow_id, "b_now": datetime.now(UTC)}
            row = conn.execute(sql.load_workflow, params).first()
            entries = [
                JournalEntry(r.seq, r.kind, r.name, r.status, r.payload) for r in conn.execute(sql.load_journal, params)
            ]
            # Rows of steps (and LLM requests) that were in flight when the previous owner died.
            conn.execute(sql.interrupt_steps, params)
            conn.execute(sql.interrupt_calls, params)
            conn.execute(sql.start_pending, {**params, "b_owner": me})
            return row, entries

        return load

    async def _finish(self, result: WorkflowResult) -> WorkflowResult:
        me, finish = self._me.id, self._sql.finish
        params = {
            "b_id": result.workflow_id,
            "b_owner": me,
            "b_state": result.state.value,
            "b_output": result.model_dump(mode="json"),
            "b_error": result.error,
            "b_revisions": result.revisions,
            "b_now": datetime.now(UTC),
        }

        self._finishing.add(result.workflow_id)
        try:
            await self.writer.submit(FencedUpdate(finish, params, result.workflow_id, me))
        except LeaseLost as lost:
            if lost.state == WorkflowState.CANCELLED:
                return await self._finish_cancelled(result.workflow_id, result.definition_id)
            raise LeaseError(
                f"workflow {result.workflow_id} was taken over by {lost.owner}",
                workflow_id=result.workflow_id,
                owner=lost.owner or "",
            ) from None
        finally:
            self._finishing.discard(result.workflow_id)
        if self._listener is not None:
            self._listener(
                {
                    "event": "workflow_finished",
                    "workflow_id": result.workflow_id,
                    "state": result.state.value,
                }
            )
        return result

    async def _finish_cancelled(self, workflow_id: str, definition_id: str) -> WorkflowResult:
        workflows = self._t["workflows"]

        def write(conn: Connection) -> WorkflowResult:
            now = datetime.now(UTC)
            # The run has stopped: an attempt (and an LLM request) it cut short is settled.
            params = {"b_id": workflow_id, "b_now": now}
            conn.execute(self._sql.interrupt_steps, params)
            conn.execute(self._sql.interrupt_calls, params)
            # Written after the run stopped, so its last completed step is in the records too.
            result = cancelled_result_from_records(conn, workflow_id, definition_id)
            conn.execute(
                update(workflows)
                .where(workflows.c.id == workflow_id)
                .values(
                    state=WorkflowState.CANCELLED.value,
                    output=result.model_dump(mode="json"),
                    error=result.error,
                    waiting=None,
                    owner=None,
                    updated_at=now,
                    completed_at=now,
                )
            )
            return result

        self._finishing.add(workflow_id)
        try:
            written: WorkflowResult = await self.writer.call(write)
        finally:
            self._finishing.discard(workflow_id)
        return written

    async def _release(self, workflow_id: str) -> None:
        workflows, me = self._t["workflows"], self._me.id

        def write(conn: Connection) -> None:
            conn.execute(
                update(workflows)
                .where(and_(workflows.c.id == workflow_id, workflows.c.owner == me))
                .values(owner=None, waiting=_still_waiting(workflows))
            )

        with contextlib.suppress(Exception):  # with the database away, the lease just expires
            await self.writer.call(write, ride_out=False)

    async def _promise(self, workflow_id: str, name: str) -> tuple[bool, JsonValue]:
        promises = self._t["promises"]

        def read(conn: Connection) -> tuple[bool, JsonValue]:
            row = conn.execute(
                select(promises.c.payload, promises.c.resolved_at).where(
                    and_(promises.c.workflow_id == workflow_id, promises.c.name == name)
                )
            ).first()
            if row is None or row.resolved_at is None:
                return False, None
            return True, row.payload

        result: tuple[bool, JsonValue] = await self.writer.call(read)
        return result


_NO_CONTEXT = contextvars.Context()
"""Where :func:`_relay` runs: it logs nothing, so it needs no copy of the caller's context."""


def _relay(waiter: asyncio.Future[WorkflowResult], task: asyncio.Task[WorkflowResult]) -> None:
    """Pass a workflow task's outcome to a waiter of :meth:`EmbeddedEngine.result` (unless
    the waiter was cancelled meanwhile): what ``asyncio.shield`` does, with one callback."""
    if waiter.done():  # the waiter was cancelled: the outcome is not for it
        if not task.cancelled():
            task.exception()  # (taken, as shield takes it: no "never retrieved" warning)
        return
    if task.cancelled():
        waiter.cancel()
        return
    exc = task.exception()
    if exc is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(task.result())


def _still_waiting(workflows: Table) -> Any:
    """A released workflow's ``waiting``: kept while it waits for budget (durably, whoever
    runs it), cleared otherwise (a rate-limit or slot wait ended with this process)."""
    return case((workflows.c.state == WorkflowState.WAITING_FOR_BUDGET.value, workflows.c.waiting), else_=None)


def _run_log(workflow_id: str) -> LazyLogger:
    """The logger of a workflow's run."""
    return LazyLogger("ecl.engines.embedded", workflow_id=workflow_id)


def _not_found(workflow_id: str) -> NotFoundError:
    return NotFoundError(f"workflow {workflow_id} not found", kind="workflow", id=workflow_id)
