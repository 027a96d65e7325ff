"""An in-memory :class:`~ecl.core.DurableContext` for testing orchestrator code.

It journals ``run`` results by name, keeps durable state and promises in dicts, and
replays: run the same workflow again on the same context and journaled steps are not
executed again (their journaled results are returned). :meth:`InMemoryDurableContext.replay`
gives a fresh context over the same journal, like a process restart, which also checks
that the code asks for the same durable operations in the same order (a
:class:`~ecl.core.NonDeterminismError` naming the position otherwise), restores
``now()``/``uuid()`` values and rebuilds the state.

Like the engines, it journals JSON values only (a result is returned as its JSON round
trip, so a tuple comes back as a list the first time too) and journals a
:class:`~ecl.core.StepError` that is not retried, raising it again on replay.

Nothing survives the process; for durability use an engine.

::

    ctx = InMemoryDurableContext("wf-1")
    task = asyncio.create_task(orchestrator.run(ctx, "critique-revise", {"topic": "x",
                                                                          "require_approval": True}))
    await ctx.until_waiting("approval")
    ctx.signal("approval", {"decision": "approve"})
    result = await task
    again = await orchestrator.run(ctx.replay(), "critique-revise", {...})  # no LLM calls
"""

from __future__ import annotations

import asyncio
import json
import uuid as uuid_mod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ecl.core.errors import EclError, JournalLimitError, NonDeterminismError, StepError, error_from_dict
from ecl.core.policy import RetryPolicy, step_may_retry

__all__ = ["InMemoryDurableContext"]


@dataclass
class _Shared:
    """What a restart keeps: journal, operation order, promises."""

    journal: dict[str, tuple[str, Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    order: list[tuple[str, str]] = field(default_factory=list)
    promises: dict[str, Any] = field(default_factory=dict)
    events: dict[str, asyncio.Event] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    waiting: set[str] = field(default_factory=set)


def _json_copy(name: str, value: Any) -> tuple[Any, int]:
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"durable value of {name!r} is not JSON: {exc}") from None
    return json.loads(encoded), len(encoded)


class InMemoryDurableContext:
    """Journal, state and promises in memory (see the module docs)."""

    def __init__(
        self,
        workflow_id: str = "test-workflow",
        *,
        journal_max_bytes: int | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._workflow_id = workflow_id
        self._shared = _Shared()
        self._limit = journal_max_bytes
        self._sleep = sleep
        self._cursor = 0
        self._check_order = False
        self._counters: dict[str, int] = {}
        self.state: dict[str, Any] = {}
        """The durable state as this context has seen it."""

    # ------------------------------------------------------------------ inspection

    @property
    def workflow_id(self) -> str:
        """The workflow id given at construction."""
        return self._workflow_id

    @property
    def journal(self) -> dict[str, tuple[str, Any]]:
        """``run`` results by name: ``("ok", value)`` or ``("error", error_dict)``."""
        return self._shared.journal

    @property
    def executed(self) -> list[str]:
        """Names of the ``run`` calls whose function really ran, in order (all contexts)."""
        return self._shared.executed

    @property
    def operations(self) -> list[tuple[str, str]]:
        """Every durable operation as ``(kind, name)``, in the order first recorded."""
        return list(self._shared.order)

    @property
    def promises(self) -> dict[str, Any]:
        """Resolved promises by name."""
        return self._shared.promises

    @property
    def waiting(self) -> set[str]:
        """Promises being awaited right now."""
        return set(self._shared.waiting)

    def replay(self) -> InMemoryDurableContext:
        """A fresh context over the same journal and promises, as after a restart.

        It checks that operations come in the journal's order and rebuilds ``state``.
        """
        twin = InMemoryDurableContext(self._workflow_id, journal_max_bytes=self._limit, sleep=self._sleep)
        twin._shared = self._shared
        twin._check_order = True
        return twin

    # ------------------------------------------------------------------ promises from the test

    def resolve(self, name: str, payload: Any) -> None:
        """Resolve the promise ``name`` exactly (a promise resolves once)."""
        if name in self._shared.promises:
            raise ValueError(f"promise {name!r} is already resolved")
        self._shared.promises[name], _ = _json_copy(name, payload)
        self._shared.waiting.discard(name)
        self._shared.events.setdefault(name, asyncio.Event()).set()

    def signal(self, name: str, payload: Any) -> str:
        """Resolve the first unresolved round of ``name`` (``name``, ``name#2``, ...), as
        ``Engine.signal`` does. Returns the promise name resolved."""
        target, round_ = name, 1
        while target in self._shared.promises:
            round_ += 1
            target = f"{name}#{round_}"
        self.resolve(target, payload)
        return target

    async def until_waiting(self, name: str | None = None, *, timeout: float = 5.0) -> str:
        """Wait until the workflow awaits ``name`` (any promise when ``None``); returns its name."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for waiting in sorted(self._shared.waiting):
                if name is None or waiting == name or waiting.startswith(f"{name}#"):
                    return waiting
            if loop.time() > deadline:
                raise TimeoutError(f"nothing waits on promise {name or '(any)'} after {timeout} s")
            await asyncio.sleep(0.001)

    # ------------------------------------------------------------------ the journal

    def _take(self, kind: str, name: str) -> None:
        position = self._cursor
        self._cursor += 1
        order = self._shared.order
        if position < len(order):
            if self._check_order and order[position] != (kind, name):
                expected = " ".join(order[position])
                raise NonDeterminismError(
                    f"workflow {self._workflow_id}: journal position {position} holds {expected!r} "
                    f"but the code now asks for {kind} {name!r}",
                    workflow_id=self._workflow_id,
                    position=position,
                    expected=expected,
                    actual=f"{kind} {name}",
                )
            if self._check_order:
                return
        order.append((kind, name))

    def _fixed(self, kind: str) -> str:
        self._counters[kind] = self._counters.get(kind, 0) + 1
        return f"{kind}#{self._counters[kind]}"

    def _copy(self, name: str, value: Any) -> Any:
        copy, size = _json_copy(name, value)
        if self._limit is not None and size > self._limit:
            raise JournalLimitError(
                f"run {name!r} produced {size} bytes, over the journal limit of {self._limit} bytes",
                name=name,
                size=size,
                limit=self._limit,
            )
        return copy

    # ------------------------------------------------------------------ DurableContext

    async def run(
        self,
        name: str,
        fn: Callable[[], Awaitable[Any]],
        *,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Return the journaled result of ``name``, or run ``fn`` and journal it.

        Retryable :class:`StepError` s are retried per ``retry`` (default: no retry).
        """
        self._take("run", name)
        journal = self._shared.journal
        if name in journal:
            status, payload = journal[name]
            if status == "ok":
                return json.loads(json.dumps(payload))
            raise error_from_dict(payload)
        self._shared.executed.append(name)
        policy = retry or RetryPolicy.none()
        attempt = 0
        while True:
            attempt += 1
            try:
                value = await fn()
            except StepError as err:
                if step_may_retry(err) and attempt < policy.max_attempts:
                    await self._sleep(policy.delay(attempt))
                    continue
                journal[name] = ("error", err.to_dict())
                raise
            except EclError as err:
                if not isinstance(err, NonDeterminismError | JournalLimitError):
                    journal[name] = ("error", err.to_dict())
                raise
            copy = self._copy(name, value)
            journal[name] = ("ok", copy)
            return json.loads(json.dumps(copy))

    async def get(self, key: str) -> Any:
        """The state value of ``key`` as of this point of the run, or ``None``."""
        value = self.state.get(key)
        return None if value is None else json.loads(json.dumps(value))

    async def set(self, key: str, value: Any) -> None:
        """Set state (journaled as an operation, so replay checks its position)."""
        self._take("set", key)
        self.state[key] = self._copy(key, value)

    async def promise(self, name: str) -> Any:
        """Wait until the test resolves ``name`` (:meth:`resolve` / :meth:`signal`)."""
        self._take("promise", name)
        shared = self._shared
        if name not in shared.promises:
            shared.waiting.add(name)
            try:
                await shared.events.setdefault(name, asyncio.Event()).wait()
            finally:
                shared.waiting.discard(name)
        return json.loads(json.dumps(shared.promises[name]))

    async def sleep(self, delta: timedelta) -> None:
        """Sleep for real the first time; a replay does not sleep again."""
        key = self._fixed("sleep")
        self._take("sleep", "sleep")
        if key not in self._shared.fixed:
            await self._sleep(delta.total_seconds())
            self._shared.fixed[key] = True

    async def now(self) -> datetime:
        """The current time, fixed on replay (through :meth:`replay`)."""
        key = self._fixed("now")
        self._take("now", "now")
        if key not in self._shared.fixed:
            self._shared.fixed[key] = datetime.now(UTC).isoformat()
        return datetime.fromisoformat(self._shared.fixed[key])

    async def uuid(self) -> str:
        """A random UUID, fixed on replay (through :meth:`replay`)."""
        key = self._fixed("uuid")
        self._take("uuid", "uuid")
        if key not in self._shared.fixed:
            self._shared.fixed[key] = str(uuid_mod.uuid4())
        return str(self._shared.fixed[key])
