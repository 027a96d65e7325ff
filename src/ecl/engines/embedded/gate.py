"""The start gate: requests first, then the workflows they submitted.

When ``ecl server start`` is also the worker, the HTTP requests and the workflows share one
event loop. A burst of submissions would start a workflow per request at once, and the
workflows' steps would take the loop from the requests still coming in: each answer waits
behind the work the previous ones started. So the API tells the gate while it has requests
in hand (:meth:`StartGate.enter` / :meth:`StartGate.leave`), and a submitted workflow's run
waits at :meth:`StartGate.turn` before its first step: it starts once no request is in hand,
or after ``max_delay`` seconds at the latest (requests that never pause do not starve the
workflows), and then at most ``per_turn`` of them per turn of the loop, so that a request
arriving meanwhile is not queued behind hundreds of starts.

Only where the process serves an API: without requests (``ecl run``, a library user) nothing
ever waits. The workflow is stored, and owned by this process, before it waits: a crash
meanwhile leaves it to be recovered like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

__all__ = ["StartGate"]


class StartGate:
    """Holds submitted workflows back while requests are being handled."""

    def __init__(self, max_delay: float, *, per_turn: int = 8) -> None:
        self.max_delay = max_delay
        self.per_turn = per_turn
        self._in_hand = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._waiting: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._releaser: asyncio.Task[None] | None = None
        self.held = 0
        """How many starts waited so far (for tests and benchmarks)."""

    @property
    def in_hand(self) -> int:
        """Requests being handled now."""
        return self._in_hand

    def enter(self) -> None:
        """A request arrived."""
        self._in_hand += 1
        self._quiet.clear()

    def leave(self) -> None:
        """A request was answered (its response started)."""
        self._in_hand -= 1
        if self._in_hand <= 0:
            self._in_hand = 0
            self._quiet.set()

    async def turn(self) -> None:
        """Wait until this workflow may start (at once when no request is in hand and
        nothing waits before it)."""
        if self.max_delay <= 0 or (not self._in_hand and not self._waiting):
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((loop.time() + self.max_delay, future))
        self.held += 1
        if self._releaser is None or self._releaser.done():
            self._releaser = asyncio.create_task(self._release(), name="ecl-start-gate")
        await future

    async def _release(self) -> None:
        loop = asyncio.get_running_loop()
        waiting = self._waiting
        while waiting:
            due = waiting[0][0]
            if self._in_hand and loop.time() < due:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._quiet.wait(), due - loop.time())
                continue
            released = 0
            while waiting and released < self.per_turn:
                _due, future = waiting.popleft()
                if not future.done():  # a cancelled run no longer waits
                    future.set_result(None)
                    released += 1
            await asyncio.sleep(0)  # one turn of the loop: the requests that came in go first
