"""Database outages: telling "the database is away" from "this write is wrong", and waiting.

A PostgreSQL server that restarts, fails over or drops off the network makes every write
fail for a while, then works again. Such a failure says nothing about the write itself, so
the writers of a running workflow wait it out (retrying with :class:`Backoff`) instead of
failing the workflow; a request made by a client is refused at once (``503``) instead.
:func:`unreachable` is the one classification all of them use; :class:`OutageLog` turns
the many failed attempts of one outage into one warning when it begins and one when it ends.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import structlog
from sqlalchemy.exc import DBAPIError

__all__ = ["Backoff", "OutageLog", "ride_out", "unreachable"]

_log = structlog.get_logger("ecl.store.outage")

T = TypeVar("T")

_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
    }
)

# SQLSTATEs of a server that is going away or cannot take us now: class 08 (connection
# exception), admin/crash shutdown, "cannot connect now" (starting up), too many connections.
_AWAY_STATES = ("57P01", "57P02", "57P03", "53300")


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be reached (a retry later may work),
    as opposed to a problem with the statement or the data.

    Covers SQLAlchemy's wrapped driver errors (a dropped connection is flagged
    ``connection_invalidated``), psycopg and asyncpg connection errors (by SQLSTATE, or a
    client-side connection failure, which has none), and the raw socket errors that asyncpg
    raises when it cannot connect at all.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _away(current):
            return True
        current = current.orig if isinstance(current, DBAPIError) else current.__cause__
    return False


def _away(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError):  # e.g. "no route to host" is a plain OSError
        return exc.errno in _NETWORK_ERRNOS
    module = type(exc).__module__
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and module.startswith(("psycopg", "asyncpg")):
        return state.startswith("08") or state in _AWAY_STATES
    if module.startswith("psycopg"):
        # psycopg reports a failure on the client side of the connection ("connection
        # failed", "server closed the connection unexpectedly") as an OperationalError
        # without a SQLSTATE, and a use of a closed connection as an InterfaceError.
        import psycopg

        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    if module.startswith("asyncpg"):
        import asyncpg

        return isinstance(exc, asyncpg.ConnectionDoesNotExistError | asyncpg.InterfaceError)
    return False


class Backoff:
    """Exponential delays between attempts: ``first``, doubling, capped at ``cap``.

    Short at first, so a blip costs little; capped, so the database is found again within
    ``cap`` seconds of its return."""

    def __init__(self, first: float = 0.05, cap: float = 2.0) -> None:
        self.first = first
        self.cap = cap

    def delays(self) -> Iterator[float]:
        """The delays, forever."""
        delay = self.first
        while True:
            yield delay
            delay = min(self.cap, delay * 2)


class OutageLog:
    """Logs an outage once as it begins and once as it ends, however many attempts fail."""

    def __init__(self, what: str = "database") -> None:
        self.what = what
        self.since: float | None = None
        """``time.monotonic()`` when the current outage began; ``None`` when reachable."""
        self.failures = 0
        """Failed attempts in the current (or the last) outage."""
        self.outages = 0
        """Outages so far."""

    @property
    def down(self) -> bool:
        """Whether an outage is in progress."""
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        """An attempt failed because the database is unreachable."""
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            self.outages += 1
            self.failures = 1
            _log.warning(
                f"{self.what} unreachable; waiting for it and retrying",
                error=_short(exc),
            )

    def recovered(self) -> None:
        """An attempt succeeded."""
        if self.since is not None:
            _log.warning(
                f"{self.what} reachable again",
                down_s=round(time.monotonic() - self.since, 1),
                failed_attempts=self.failures,
            )
            self.since = None


async def ride_out(operation: Callable[[], Awaitable[T]], *, backoff: Backoff | None = None) -> T:
    """Run ``operation``; while it fails because the database is unreachable, wait and run
    it again (each failure is logged at debug level: the engine's writer reports the outage).
    Any other error propagates at once. Cancelling the caller stops the waiting."""
    delays = (backoff or Backoff()).delays()
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not unreachable(exc):
                raise
            delay = next(delays)
            _log.debug("database unreachable; retrying", error=_short(exc), wait_s=delay)
            await asyncio.sleep(delay)


def _short(exc: BaseException) -> str:
    """A one-line description: the first line of the driver's message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
