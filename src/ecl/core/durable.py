"""The two protocols every engine implements.

:class:`DurableContext` is all that orchestrator code may use between steps;
:class:`Engine` is what the CLI and the API use to drive workflows. Both live in
``core`` so the orchestrator depends on the protocol and each engine depends on the
orchestrator, never the reverse.

Journal entries carry JSON values only (``None``, bool, int, float, str, list, dict).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from ecl.core.policy import RetryPolicy
from ecl.core.results import WorkflowResult

__all__ = ["Admission", "DurableContext", "Engine", "JsonValue", "OwnerWait"]

JsonValue = Any
"""A JSON-compatible value. (``Any`` because recursive aliases fight with pydantic.)"""


@runtime_checkable
class DurableContext(Protocol):
    """Durable operations for orchestrator code. Identical on every engine."""

    @property
    def workflow_id(self) -> str:
        """The id of the running workflow."""
        ...

    async def run(
        self,
        name: str,
        fn: Callable[[], Awaitable[JsonValue]],
        *,
        retry: RetryPolicy | None = None,
    ) -> JsonValue:
        """Run ``fn`` once and journal its JSON result under ``name``.

        On replay the journaled result is returned and ``fn`` is not called. A
        :class:`~ecl.core.errors.StepError` that is not retryable (or that exhausts
        ``retry``) is journaled too and raised again on replay.
        """
        ...

    async def get(self, key: str) -> JsonValue | None:
        """Durable workflow state: the value of ``key``, or ``None``."""
        ...

    async def set(self, key: str, value: JsonValue) -> None:
        """Durable workflow state: store ``value`` under ``key``."""
        ...

    async def promise(self, name: str) -> JsonValue:
        """Wait for the durable promise ``name`` (resolved by ``Engine.signal``)."""
        ...

    async def sleep(self, delta: timedelta) -> None:
        """Durable sleep: survives restarts, not repeated on replay."""
        ...

    async def now(self) -> datetime:
        """The current UTC time, journaled so replay sees the same value."""
        ...

    async def uuid(self) -> str:
        """A random UUID, journaled so replay sees the same value."""
        ...


@dataclass(frozen=True)
class OwnerWait:
    """Reported by :meth:`Engine.resume` while another live worker holds the workflow."""

    workflow_id: str
    owner: str
    host: str | None
    pid: int | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Admission:
    """What :meth:`Engine.admit` did."""

    workflow_id: str
    created: bool
    """Whether this call created the workflow (of concurrent identical submissions, one did)."""
    row: Mapping[str, Any]
    """The workflow's ``workflows`` row as stored when admitted (column name → value): the
    one written, or the one found by an identical resubmission. A caller answers with it
    instead of reading the row back."""


class Engine(Protocol):
    """Submit, signal, cancel and await workflows: all the CLI and the API know of an engine.

    The rules these follow (idempotency, input validation, no signal to an ended
    workflow...) are shared by every engine: :mod:`ecl.core.rules`.
    """

    name: str

    async def submit(
        self,
        definition_id: str,
        input: dict[str, JsonValue],
        workflow_id: str | None = None,
        *,
        start: bool = True,
    ) -> str:
        """Record a workflow and start it; idempotent on ``workflow_id``. Returns its id.

        ``start=False`` only records it, for a worker to start (an engine whose workflows
        run elsewhere, like Restate, starts it all the same).
        """
        ...

    async def admit(
        self,
        definition_id: str,
        input: dict[str, JsonValue],
        workflow_id: str | None = None,
        *,
        start: bool = True,
    ) -> Admission:
        """Like :meth:`submit`; also says whether this call created the workflow (of many
        concurrent identical submissions exactly one did) and gives its row as stored."""
        ...

    async def run(
        self,
        definition_id: str,
        input: dict[str, JsonValue],
        workflow_id: str | None = None,
        *,
        on_submitted: Callable[[str], None] | None = None,
        on_wait: Callable[[OwnerWait], Awaitable[None] | None] | None = None,
    ) -> WorkflowResult:
        """:meth:`submit` and wait for the result (:meth:`resume`), in as few round trips as
        the engine can; ``on_submitted`` hears the workflow's id once it is recorded."""
        ...

    async def signal(self, workflow_id: str, name: str, payload: JsonValue) -> None:
        """Resolve the durable promise ``name`` of a workflow."""
        ...

    async def cancel(self, workflow_id: str) -> None:
        """Cancel a workflow in whatever state it is."""
        ...

    def result(self, workflow_id: str) -> Awaitable[WorkflowResult]:
        """Wait for the workflow to end and return its result (an awaitable: a coroutine,
        or a future where the engine has one at hand)."""
        ...

    async def resume(
        self,
        workflow_id: str,
        *,
        on_wait: Callable[[OwnerWait], Awaitable[None] | None] | None = None,
    ) -> WorkflowResult:
        """Wait for the workflow to end, running it here if nothing else does (``on_wait``
        hears of a live owner being waited out); then its result."""
        ...

    async def run_worker(self, stop: asyncio.Event) -> None:
        """Run the workflows that need a runner until ``stop`` is set (an engine whose
        workflows run elsewhere just waits)."""
        ...

    async def health(self) -> str:
        """``"ok"``, or what keeps the engine from working (one line)."""
        ...

    async def close(self) -> None:
        """Release connections and background tasks."""
        ...
