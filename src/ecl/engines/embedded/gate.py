"""The start gate: requests first, then the workflows they submitted.

When ``ecl server start`` is also the worker, the HTTP requests and the workflows share one
event loop. A burst of submissions would start a workflow per request at once, and the
workflows' steps would take the loop from the requests still coming in: each answer waits
behind the work the previous ones started. So the API tells the gate while it has requests
in hand (:meth:`StartGate.enter` / :meth:`StartGate.leave`), and a submitted workflow's run
waits at :meth:`StartGate.turn` before its first step: it starts once no request is in hand
and none has arrived for ``settle`` seconds (a burst's clients leave gaps between their
requests, shorter than this: each gap is not the burst's end), or after ``max_delay`` seconds
at the latest (requests that never pause do not starve the workflows), and then at most
``per_turn`` of them per turn of the loop, so that a request arriving meanwhile is not
queued behind hundreds of starts. Overdue starts while requests keep arriving go a batch
per ``settle`` seconds: each started workflow's steps take turns of the loop from the
requests, so they are let in gradually rather than all at once.

Only where the process serves an API: without requests (``ecl run``, a library user) nothing
ever waits. The workflow is stored, and owned by this process, before it waits: a crash
meanwhile leaves it to be recovered like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque

__all__ = ["StartGate"]


class StartGate:
    """Holds submitted workflows back while requests are being handled."""

    def __init__(self, max_delay: float, *, per_turn: int = 8, settle: float = 0.02) -> None:
        self.max_delay = max_delay
        self.per_turn = per_turn
        self.settle = settle
        self._in_hand = 0
        self._arrived = -math.inf
        """When the last request arrived (``time.monotonic``)."""
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
        self._arrived = time.monotonic()
        self._quiet.clear()

    def leave(self) -> None:
        """A request was answered (its response started)."""
        self._in_hand -= 1
        if self._in_hand <= 0:
            self._in_hand = 0
            self._quiet.set()

    def _busy(self, now: float) -> bool:
        """Requests in hand, or one arrived less than ``settle`` seconds ago."""
        return self._in_hand > 0 or now - self._arrived < self.settle

    async def turn(self) -> None:
        """Wait until this workflow may start (at once when no request is in hand, none
        arrived within ``settle`` seconds and nothing waits before it)."""
        if self.max_delay <= 0:
            return
        now = time.monotonic()
        if not self._waiting and not self._busy(now):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((now + self.max_delay, future))
        self.held += 1
        if self._releaser is None or self._releaser.done():
            self._releaser = asyncio.create_task(self._release(), name="ecl-start-gate")
        await future

    async def _release(self) -> None:
        waiting = self._waiting
        while waiting:
            due = waiting[0][0]
            now = time.monotonic()
            busy = self._busy(now)
            if busy and now < due:
                if self._in_hand:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._quiet.wait(), due - now)
                else:  # none in hand: quiet for ``settle`` since the last arrival, or more come
                    await asyncio.sleep(min(self._arrived + self.settle, due) - now)
                continue
            released = 0
            while waiting and released < self.per_turn:
                _due, future = waiting.popleft()
                if not future.done():  # a cancelled run no longer waits
                    future.set_result(None)
                    released += 1
            # One turn of the loop: the requests that came in go first. Overdue starts while
            # requests go on: a batch per ``settle`` seconds.
            await asyncio.sleep(self.settle if busy else 0)
