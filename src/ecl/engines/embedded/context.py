"""The embedded engine's :class:`~ecl.core.DurableContext`.

Every durable operation takes the next journal position *when it is called* (not when it
completes), so concurrent steps started in a fixed order get fixed positions whatever
order they finish in. On replay the entry at that position must have the same kind and
name, or :class:`~ecl.core.NonDeterminismError` stops the run before anything executes.
Durable state is rebuilt from the journal's ``set`` entries, so ``get`` during replay sees
the value as it was at that point of the original run.
"""

from __future__ import annotations

import asyncio
import json
import uuid as uuid_mod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table

from ecl.core.durable import JsonValue
from ecl.core.errors import (
    EclError,
    JournalLimitError,
    NonDeterminismError,
    StepError,
    WorkflowCancelled,
    error_from_dict,
)
from ecl.core.json_values import dumps
from ecl.core.policy import RetryPolicy, step_may_retry
from ecl.core.state import WorkflowState
from ecl.engines.embedded.writer import DatabaseWriter, EncodedJson, FencedInsert, LeaseLost

__all__ = ["EmbeddedDurableContext", "JournalEntry"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One committed journal entry."""

    seq: int
    kind: str
    name: str
    status: str
    payload: JsonValue


_ONE_ATTEMPT = RetryPolicy.none()
"""The policy of a run without one (frozen: one object for all runs)."""

PromiseSource = Callable[[str], Awaitable[tuple[bool, JsonValue]]]
"""Looks a promise up: ``(resolved, payload)``."""


class EmbeddedDurableContext:
    """Journaled operations for one run of one workflow in this process."""

    def __init__(
        self,
        *,
        workflow_id: str,
        owner: str,
        writer: DatabaseWriter,
        journal_table: Table,
        entries: list[JournalEntry],
        promise_source: PromiseSource,
        journal_max_bytes: int,
        promise_poll: float = 0.2,
        on_waiting: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self._workflow_id = workflow_id
        self._owner = owner
        self._writer = writer
        self._table = journal_table
        self._entries = {e.seq: e for e in entries}
        self._last_seq = max(self._entries, default=-1)
        self._seq = 0
        self._state: dict[str, JsonValue] = {}
        self._promise_source = promise_source
        self._limit = journal_max_bytes
        self._poll = promise_poll
        self._on_waiting = on_waiting
        self.replayed = 0
        self.executed = 0

    @property
    def workflow_id(self) -> str:
        """The id of the running workflow."""
        return self._workflow_id

    @property
    def state(self) -> dict[str, JsonValue]:
        """The durable state as of the current position (read-only view)."""
        return dict(self._state)

    # ------------------------------------------------------------------ journal

    def _take(self, kind: str, name: str) -> tuple[int, JournalEntry | None]:
        seq = self._seq
        self._seq += 1
        # Positions only go forward: a replayed entry is never looked at again (nor is an
        # appended one kept), so a long run does not hold its whole journal in memory.
        entry = self._entries.pop(seq, None) if self._entries else None
        if entry is not None and (entry.kind != kind or entry.name != name):
            raise NonDeterminismError(
                f"workflow {self._workflow_id}: journal position {seq} holds "
                f"{entry.kind} {entry.name!r} but the code now asks for {kind} {name!r}; "
                "the workflow code changed since this run started",
                workflow_id=self._workflow_id,
                position=seq,
                expected=f"{entry.kind} {entry.name}",
                actual=f"{kind} {name}",
            )
        if entry is not None:
            self.replayed += 1
        return seq, entry

    def check_complete(self) -> None:
        """After the orchestrator returned: every journal entry must have been consumed."""
        leftover = [e for e in self._entries.values() if e.seq >= self._seq]
        if leftover:
            first = min(leftover, key=lambda e: e.seq)
            raise NonDeterminismError(
                f"workflow {self._workflow_id}: the code finished at position {self._seq} "
                f"but the journal holds {first.kind} {first.name!r} at position {first.seq}",
                workflow_id=self._workflow_id,
                position=first.seq,
                expected=f"{first.kind} {first.name}",
                actual="end of workflow",
            )

    async def _append(self, seq: int, kind: str, name: str, status: str, payload: Any) -> None:
        # The limit counts the compact encoding. The text the database stores (SQLAlchemy's
        # json.dumps) is made first: it is never shorter than the compact one, so when it
        # fits, so does the compact one, and the writer stores this text without encoding
        # the payload a second time.
        try:
            stored: str | None = dumps(payload)
        except Exception:
            stored = None  # not JSON as it is: measured (and failed) as before
        if stored is not None and len(stored) <= self._limit:
            column: Any = EncodedJson(payload, stored)
        else:
            encoded = json.dumps(payload, separators=(",", ":"), default=str)
            if len(encoded) > self._limit:
                raise JournalLimitError(
                    f"{kind} {name!r} produced {len(encoded)} bytes, over the journal limit of "
                    f"{self._limit} bytes; store large results as artifacts instead",
                    name=name,
                    size=len(encoded),
                    limit=self._limit,
                )
            column = payload
        row = {
            "workflow_id": self._workflow_id,
            "seq": seq,
            "name": name,
            "kind": kind,
            "status": status,
            "payload": column,
            "created_at": datetime.now(UTC),
        }
        try:
            await self._writer.submit(FencedInsert(self._table, row, self._workflow_id, self._owner))
        except LeaseLost as lost:
            if lost.state == WorkflowState.CANCELLED:
                raise WorkflowCancelled(self._workflow_id) from None
            raise
        self.executed += 1

    # ------------------------------------------------------------------ DurableContext

    async def run(
        self,
        name: str,
        fn: Callable[[], Awaitable[JsonValue]],
        *,
        retry: RetryPolicy | None = None,
    ) -> JsonValue:
        """Run ``fn`` once; journal its result (or its terminal error) under ``name``."""
        seq, entry = self._take("run", name)
        if entry is not None:
            if entry.status == "ok":
                return entry.payload
            raise error_from_dict(entry.payload)
        policy = retry or _ONE_ATTEMPT
        attempt = 0
        while True:
            attempt += 1
            try:
                value = await fn()
            except StepError as err:
                if step_may_retry(err) and attempt < policy.max_attempts:
                    await asyncio.sleep(policy.delay(attempt))
                    continue
                await self._append(seq, "run", name, "error", err.to_dict())
                raise
            except EclError as err:
                if isinstance(err, NonDeterminismError | JournalLimitError):
                    raise
                await self._append(seq, "run", name, "error", err.to_dict())
                raise
            await self._append(seq, "run", name, "ok", value)
            return value

    async def get(self, key: str) -> JsonValue | None:
        """The durable value of ``key`` at this point of the run."""
        return self._state.get(key)

    async def set(self, key: str, value: JsonValue) -> None:
        """Journal a state change; replay re-applies it at the same position."""
        seq, entry = self._take("set", key)
        if entry is None:
            await self._append(seq, "set", key, "ok", value)
            self._state[key] = value
        else:
            self._state[key] = entry.payload

    async def promise(self, name: str) -> JsonValue:
        """Wait until ``name`` is resolved (by a signal), journal and return its payload."""
        seq, entry = self._take("promise", name)
        if entry is not None:
            return entry.payload
        waiting = False
        try:
            while True:
                resolved, payload = await self._promise_source(name)
                if resolved:
                    break
                if not waiting:
                    waiting = True
                    if self._on_waiting is not None:
                        await self._on_waiting(True)
                await asyncio.sleep(self._poll)
        finally:
            if waiting and self._on_waiting is not None:
                await self._on_waiting(False)
        await self._append(seq, "promise", name, "ok", payload)
        return payload

    async def sleep(self, delta: timedelta) -> None:
        """Sleep until a journaled wake-up time (a restart does not restart the timer)."""
        seq, entry = self._take("sleep", "sleep")
        if entry is None:
            wake_at = datetime.now(UTC) + delta
            await self._append(seq, "sleep", "sleep", "ok", wake_at.isoformat())
        else:
            wake_at = datetime.fromisoformat(str(entry.payload))
        remaining = (wake_at - datetime.now(UTC)).total_seconds()
        if remaining > 0:
            await asyncio.sleep(remaining)

    async def now(self) -> datetime:
        """The current time, fixed by the journal."""
        seq, entry = self._take("now", "now")
        if entry is not None:
            return datetime.fromisoformat(str(entry.payload))
        value = datetime.now(UTC)
        await self._append(seq, "now", "now", "ok", value.isoformat())
        return value

    async def uuid(self) -> str:
        """A random UUID, fixed by the journal."""
        seq, entry = self._take("uuid", "uuid")
        if entry is not None:
            return str(entry.payload)
        value = str(uuid_mod.uuid4())
        await self._append(seq, "uuid", "uuid", "ok", value)
        return value
