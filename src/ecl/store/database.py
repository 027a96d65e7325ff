"""Database URLs, engines and migrations.

ECL accepts plain URLs — ``sqlite:///path/to/ecl.db``, ``sqlite://`` (in memory),
``postgresql://user@host:5432/db`` — and picks the drivers itself: aiosqlite / asyncpg for
the async engine, pysqlite / psycopg for the sync engine the embedded engine's writer
uses. A relative SQLite path (``sqlite:///ecl.db``) is relative to the current working
directory, as with SQLAlchemy.

SQLite connections get ``journal_mode=WAL``, ``busy_timeout``, ``foreign_keys=ON`` and the
configured ``synchronous`` level (``NORMAL`` survives any process crash; ``FULL`` also
survives power loss, at about 0.2 ms per commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Engine, event, inspect, make_url, text
from sqlalchemy import create_engine as create_sync_sa_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from ecl.core.errors import ConfigError, DatabaseError
from ecl.core.json_values import load_stored
from ecl.core.redaction import redact_text

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "WriterThread",
    "check_schema",
    "create_engine",
    "create_sqlite_folder",
    "create_sync_engine",
    "current_revision",
    "downgrade",
    "head_revision",
    "normalize_url",
    "sync_url",
    "upgrade",
    "upgrade_connection",
]

_SYNC_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        # ValueError: a port that is not a number (``host:abc``). The cause quotes the whole
        # URL, password included, so it is not chained.
        shown = redact_text(url)
        raise ConfigError(
            f"database.url = {shown!r}: not a database URL (expected sqlite:///path.db or "
            "postgresql://user@host:port/db)",
            key="database.url",
            value=shown,
        ) from None


def _backend(parsed: URL) -> str:
    backend = parsed.get_backend_name()
    if backend in ("sqlite", "postgresql"):
        return backend
    if backend == "postgres":
        return "postgresql"
    raise ConfigError(
        f"database.url: unsupported database {backend!r}; use sqlite or postgresql",
        key="database.url",
        value=parsed.render_as_string(hide_password=True),
    )


def normalize_url(url: str) -> str:
    """The async-driver form of ``url`` (aiosqlite / asyncpg)."""
    parsed = _parse(url)
    driver = "sqlite+aiosqlite" if _backend(parsed) == "sqlite" else "postgresql+asyncpg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The sync-driver form of ``url`` (pysqlite / psycopg)."""
    parsed = _parse(url)
    driver = "sqlite" if _backend(parsed) == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def is_memory(url: str) -> bool:
    """Whether ``url`` is an in-memory SQLite database."""
    parsed = _parse(url)
    return _backend(parsed) == "sqlite" and parsed.database in (None, "", ":memory:")


def _pragmas(synchronous: str, busy_timeout_ms: int) -> Any:
    level = synchronous.upper()
    if level not in _SYNC_LEVELS:
        raise ConfigError(
            f"database.sqlite_synchronous = {synchronous!r}: expected one of {', '.join(_SYNC_LEVELS)}",
            key="database.sqlite_synchronous",
            value=synchronous,
        )

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={level}")
        # The statement journal of a write that fires triggers (every insert or update of
        # ``workflows``: its workflow_events) in memory, not in a temporary file.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    return on_connect


def create_engine(
    url: str,
    *,
    pool_size: int = 5,
    sqlite_synchronous: str = "NORMAL",
    busy_timeout_ms: int = 5000,
    echo: bool = False,
) -> AsyncEngine:
    """An async engine for ``url`` with ECL's connection settings."""
    target = normalize_url(url)
    # A stored value nested past the recursion limit must not fail every query of its row.
    kwargs: dict[str, Any] = {"echo": echo, "json_deserializer": load_stored}
    if target.startswith("sqlite"):
        if is_memory(url):
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
    else:
        kwargs["pool_size"] = pool_size
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(target, **kwargs)
    if target.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _pragmas(sqlite_synchronous, busy_timeout_ms))
    return engine


def create_sync_engine(
    url: str,
    *,
    pool_size: int = 5,
    sqlite_synchronous: str = "NORMAL",
    busy_timeout_ms: int = 5000,
) -> Engine:
    """A sync engine for ``url`` (used by the embedded engine's writer thread)."""
    target = sync_url(url)
    kwargs: dict[str, Any] = {}
    if target.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False}
        if is_memory(url):
            kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_size"] = pool_size
        kwargs["pool_pre_ping"] = True
        # A host that drops packets would otherwise hold a connect for the kernel's
        # SYN retries (minutes); the writer retries on its own schedule instead.
        kwargs["connect_args"] = {"connect_timeout": 10}
    engine = create_sync_sa_engine(target, **kwargs)
    if target.startswith("sqlite"):
        event.listen(engine, "connect", _pragmas(sqlite_synchronous, busy_timeout_ms))
    return engine


# ---------------------------------------------------------------- migrations


HEAD_REVISION = "0005_events"
"""The newest migration this code ships (a test holds it equal to Alembic's head). Known
without Alembic, which is imported only to migrate: checking the schema, as every command
does, then costs a query and not Alembic's import (about 0.2 s of each command's start)."""


def _alembic_config(url: str) -> Config:
    from alembic.config import Config

    folder = resources.files("ecl.store") / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(folder))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return cfg


@contextlib.contextmanager
def _connected(url: str) -> Iterator[Any]:
    engine = create_sync_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot reach the database at {_parse(url).render_as_string(hide_password=True)}: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}",
            hint="check database.url (ECL_DATABASE_URL) and that the server is running",
        ) from exc
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest migration this code ships."""
    return HEAD_REVISION


def _scripts(url: str) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(url))


def current_revision(url: str) -> str | None:
    """The revision the database is at, ``None`` when it was never migrated (read from
    Alembic's ``alembic_version`` table, as Alembic reads it)."""
    with _connected(url) as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        found = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    if len(found) > 1:
        raise DatabaseError(
            f"the database's alembic_version table holds {len(found)} revisions ({', '.join(found)}), not one",
            hint="ECL's migrations have a single head; repair the table or use another database",
        )
    return found[0] if found else None


def upgrade(url: str, target: str = "head") -> list[str]:
    """Migrate forward to ``target``; returns the revisions applied (empty when up to date)."""
    from alembic import command

    before = current_revision(url)
    script = _scripts(url)
    try:
        script.get_revision(target if target != "head" else head_revision())
    except Exception as exc:
        raise DatabaseError(f"unknown migration revision {target!r}", hint="see: ecl migrate --help") from exc
    if before is not None and not _known(script, before):
        raise DatabaseError(
            f"the database is at revision {before}, which this version of ECL does not know "
            "(the database is newer than the code)",
            hint="upgrade ECL, or point database.url at another database",
        )
    with _connected(url) as conn:
        cfg = _alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)
        conn.commit()
    after = current_revision(url)
    if after == before:
        return []
    applied = []
    for rev in script.iterate_revisions(after, before):
        applied.append(rev.revision)
    return list(reversed(applied))


def upgrade_connection(conn: Any, target: str = "head") -> None:
    """Migrate over an existing sync connection (e.g. ``await aconn.run_sync(...)``);
    the way to migrate an in-memory database that only one engine can see."""
    from alembic import command

    cfg = _alembic_config("sqlite://")
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)


def downgrade(url: str, target: str) -> None:
    """Migrate back to ``target`` (``base`` removes everything)."""
    from alembic import command

    with _connected(url) as conn:
        cfg = _alembic_config(url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, target)
        conn.commit()


def check_schema(url: str) -> None:
    """Raise :class:`DatabaseError` with what to run unless the database is at head."""
    current = current_revision(url)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise DatabaseError(
            "the database has no ECL schema yet",
            hint="run: ecl migrate",
        )
    script = _scripts(url)
    if not _known(script, current):
        raise DatabaseError(
            f"the database is at revision {current}, newer than this ECL (head {head})",
            hint="upgrade ECL, or point database.url at another database",
        )
    raise DatabaseError(
        f"the database is at revision {current}, behind this ECL (head {head})",
        hint="run: ecl migrate",
    )


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:
        return False


def create_sqlite_folder(url: str) -> None:
    """Create the folder of a file-backed SQLite URL (SQLite creates the file itself);
    :class:`ConfigError` naming the URL when that is impossible (its parent is a file, say)."""
    path = sqlite_path(url)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
        reason = f"{blocker} is a file" if blocker is not None and not blocker.is_dir() else exc.strerror
        raise ConfigError(
            f"database.url = {url!r}: cannot create the folder {path.parent}: {reason}",
            key="database.url",
            value=url,
        ) from None


def sqlite_path(url: str) -> Path | None:
    """The file of a file-backed SQLite URL."""
    parsed = _parse(url)
    if _backend(parsed) != "sqlite" or is_memory(url):
        return None
    return Path(str(parsed.database))


T = TypeVar("T")


class WriterThread:
    """Transactions of a sync engine (pysqlite, psycopg) run on threads of their own, one hop
    per transaction: several times cheaper in CPU than an async session, whose every statement
    is a hop to the driver's thread, and the database's lock is held only while the statements
    run. On SQLite one thread (the process's one writer: its writes queue in the process instead
    of contending for the lock), and what queued while it wrote is committed together (a group
    commit); elsewhere a few threads, one transaction each. The engine stays the caller's to
    dispose."""

    def __init__(self, engine: Engine, *, name: str) -> None:
        self.engine = engine
        sqlite = engine.dialect.name == "sqlite"
        self._threads = ThreadPoolExecutor(1 if sqlite else 4, thread_name_prefix=name)
        # On SQLite the one thread keeps its connection between transactions: a file's
        # connection does not go stale, and a checkout from the pool and back (its reset)
        # per transaction cost more than the transaction's statement when, as for a
        # workflow's one insert or final update, it runs cold between network waits (one
        # insert, 10 ms apart: 886 -> 758 us of thread CPU). Elsewhere each transaction
        # checks a connection out (pre-pinged) as before.
        self._keep = sqlite
        self._conn: Connection | None = None
        # SQLite: the transactions waiting for the thread, and whether it is draining them.
        self._lock = threading.Lock()
        self._queued: list[_Queued] = []
        self._draining = False

    def _connection(self) -> Connection:
        """The kept connection of the (one) SQLite writer thread, connected again if lost."""
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                conn.close()
            conn = self._conn = self.engine.connect()
        return conn

    async def run(self, statements: Callable[[Connection], T]) -> T:
        """``statements(conn)`` in one transaction on a writer thread; its result.

        On SQLite, the transactions given while the thread is busy are run as one (up to
        :data:`_GROUP` of them), each one's statements in turn as if alone, and committed
        once: under many concurrent workflows a commit (and a thread hop) per few rows is
        most of the writer's time. If that transaction fails, it is rolled back and each
        is run again in a transaction of its own, so one's failure (a row another process
        inserted first) stays its own."""
        loop = asyncio.get_running_loop()
        if not self._keep:
            engine = self.engine

            def work() -> T:
                with engine.begin() as conn:
                    return statements(conn)

            return await loop.run_in_executor(self._threads, work)
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._queued.append(_Queued(statements, future, loop))
            start = not self._draining
            self._draining = True
        if start:
            self._threads.submit(self._drain)
        return await future

    def _drain(self) -> None:
        """On the thread: run what is queued, a group at a time, until nothing is."""
        while True:
            with self._lock:
                group, self._queued = self._queued[:_GROUP], self._queued[_GROUP:]
                if not group:
                    self._draining = False
                    return
            outcomes = self._together(group) if len(group) > 1 else None
            if outcomes is None:
                outcomes = [self._alone(item.statements) for item in group]
            for item, (ok, value) in zip(group, outcomes, strict=True):
                with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits
                    item.loop.call_soon_threadsafe(_settle_future, item.future, ok, value)

    def _together(self, group: list[_Queued]) -> list[tuple[bool, Any]] | None:
        """``group``'s statements in one transaction: their results, or ``None`` if it failed
        (rolled back)."""
        try:
            conn = self._connection()
            with conn.begin():
                return [(True, item.statements(conn)) for item in group]
        except Exception:
            return None

    def _alone(self, statements: Callable[[Connection], Any]) -> tuple[bool, Any]:
        """``statements`` in a transaction of their own: (True, result) or (False, error)."""
        try:
            conn = self._connection()
            with conn.begin():
                return True, statements(conn)
        except BaseException as exc:  # the caller's to see, as if it ran on its own
            return False, exc

    def close(self) -> None:
        """Stop the threads once what was given them has run (the kept connection goes
        back to the pool)."""
        self._threads.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_GROUP = 500
"""At most this many of :class:`WriterThread`'s SQLite transactions are committed as one."""


class _Queued(NamedTuple):
    """A transaction given to :class:`WriterThread` on SQLite, and where its outcome goes."""

    statements: Callable[[Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _settle_future(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """On the caller's loop: a queued transaction's outcome (unless its caller gave up)."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
