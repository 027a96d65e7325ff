"""Leases: which process owns which workflow.

A process registers itself as a *worker* (one row in ``workers``) and renews its lease
with a heartbeat. A workflow is owned through ``workflows.owner``; ownership changes only
by compare-and-swap, so two processes never both run the same workflow. An owner whose
lease expired, or whose process is provably gone (same host, pid not alive), can be
replaced.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Table, and_, delete, or_, select, update

from ecl.core.state import ACTIVE_STATES

__all__ = ["OwnerInfo", "WorkerIdentity", "claim", "owner_info", "pid_alive"]


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """This process as a worker."""

    id: str
    host: str
    pid: int

    @classmethod
    def create(cls) -> WorkerIdentity:
        """A fresh identity for the current process."""
        host = socket.gethostname()
        pid = os.getpid()
        return cls(id=f"{host}:{pid}:{uuid.uuid4().hex[:8]}", host=host, pid=pid)


@dataclass(frozen=True, slots=True)
class OwnerInfo:
    """Who holds a workflow and until when."""

    worker_id: str
    host: str | None
    pid: int | None
    expires_at: datetime | None

    def provably_dead(self, host: str) -> bool:
        """Same host and the process is gone (or no worker row at all)."""
        if self.host is None:
            return True
        return self.host == host and self.pid is not None and not pid_alive(self.pid)

    def expired(self, now: datetime) -> bool:
        """The lease ran out."""
        return self.expires_at is None or self.expires_at <= now


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (zombies count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def owner_info(conn: Connection, workers: Table, worker_id: str) -> OwnerInfo:
    """Look a workflow's owner up in ``workers``."""
    row = conn.execute(
        select(workers.c.host, workers.c.pid, workers.c.expires_at).where(workers.c.id == worker_id)
    ).first()
    if row is None:
        return OwnerInfo(worker_id, None, None, None)
    return OwnerInfo(worker_id, row.host, row.pid, _aware(row.expires_at))


def claim(conn: Connection, workflows: Table, workflow_id: str, me: str, expected_owner: str | None) -> bool:
    """Compare-and-swap ownership from ``expected_owner`` to ``me``; pending becomes running."""
    owner_cond = workflows.c.owner.is_(None) if expected_owner is None else workflows.c.owner == expected_owner
    result = conn.execute(
        update(workflows)
        .where(and_(workflows.c.id == workflow_id, owner_cond, workflows.c.state.in_(ACTIVE_STATES)))
        .values(owner=me, updated_at=datetime.now(UTC))
    )
    return bool(result.rowcount)


def renew(conn: Connection, workers: Table, me: WorkerIdentity, lease: timedelta) -> None:
    """Heartbeat: extend this worker's lease (re-registering if the row vanished)."""
    now = datetime.now(UTC)
    result = conn.execute(update(workers).where(workers.c.id == me.id).values(heartbeat_at=now, expires_at=now + lease))
    if not result.rowcount:
        conn.execute(
            workers.insert().values(
                id=me.id,
                host=me.host,
                pid=me.pid,
                started_at=now,
                heartbeat_at=now,
                expires_at=now + lease,
            )
        )


def reap(conn: Connection, workers: Table, host: str) -> list[str]:
    """Delete the rows of workers whose lease expired or whose process on this host died."""
    now = datetime.now(UTC)
    dead: list[str] = []
    for row in conn.execute(select(workers.c.id, workers.c.host, workers.c.pid, workers.c.expires_at)):
        info = OwnerInfo(row.id, row.host, row.pid, _aware(row.expires_at))
        if info.expired(now) or info.provably_dead(host):
            dead.append(row.id)
    if dead:
        conn.execute(delete(workers).where(workers.c.id.in_(dead)))
    return dead


def orphans(conn: Connection, workflows: Table, workers: Table, limit: int) -> list[tuple[str, str | None]]:
    """Active workflows with no live owner: ``(workflow_id, current_owner)``."""
    live = select(workers.c.id)
    rows = conn.execute(
        select(workflows.c.id, workflows.c.owner)
        .where(
            and_(
                workflows.c.state.in_(ACTIVE_STATES),
                or_(workflows.c.owner.is_(None), workflows.c.owner.not_in(live)),
            )
        )
        .order_by(workflows.c.created_at)
        .limit(limit)
    )
    return [(r.id, r.owner) for r in rows]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
