"""Shared plumbing of the workflow commands: settings, database, engine, progress."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ecl.config import Settings, load_settings, sources_of
from ecl.core.durable import Engine
from ecl.core.errors import DatabaseError, InputValidationError
from ecl.core.state import WorkflowState
from ecl.core.waiting import CIRCUIT_OPEN
from ecl.engines.factory import open_engine
from ecl.llm.registry import provider_names
from ecl.observability import configure_content, configure_logging, configure_tracing
from ecl.store.database import (
    check_schema,
    create_engine,
    create_sqlite_folder,
    current_revision,
    sqlite_path,
    upgrade,
)
from ecl.store.repositories import (
    ArtifactRepository,
    LlmCallRepository,
    StepExecutionRepository,
    WorkflowRepository,
)

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "Progress",
    "ensure_database",
    "open_command_engine",
    "repositories",
    "require_database",
    "settings_from",
    "tune_gc",
]

EXIT_FAILED = 10
"""The workflow ended in state failed."""
EXIT_CANCELLED = 11
"""The workflow ended in state cancelled."""
EXIT_INTERRUPTED = 130
"""Ctrl-C: the workflow was left resumable."""


def settings_from(
    config: Path | None, *, engine: str | None = None, service: bool = False, modules: list[str] | None = None
) -> Settings:
    """Load settings once, at the edge, and configure logging from them.

    ``engine`` overrides ``settings.engine``; ``modules`` (``--module/-m``) add to
    ``settings.modules``, which are then importable from the current folder, as with
    ``python -m``. Commands log warnings and errors only, and
    long-running services (``service``) log at ``info`` (request logs, recoveries), unless
    a log level was configured explicitly.
    """
    settings = load_settings(config)
    default = "info" if service else "warning"
    level = settings.log.level if "log.level" in sources_of(settings) else default
    configure_logging(level, settings.log_format, secrets=settings.secrets())
    observe = settings.observability
    configure_tracing(observe.tracing, otlp_endpoint=observe.otlp_endpoint)
    configure_content(observe.capture_content, observe.max_content_chars, secrets=settings.secrets())
    if engine is not None:
        if engine not in ("embedded", "restate"):
            raise InputValidationError(
                f"unknown engine {engine!r}; expected embedded or restate",
                errors=[{"field": "engine", "message": "expected embedded or restate", "value": engine}],
            )
        settings = settings.model_copy(update={"engine": engine})
    if modules:
        settings = settings.model_copy(update={"modules": [*settings.modules, *modules]})
    if settings.modules and os.getcwd() not in sys.path and "" not in sys.path:
        # The console script's sys.path starts at its own folder; user modules live here.
        sys.path.insert(0, os.getcwd())
    return settings


_SECOND_THRESHOLD = 50
"""The second threshold when the first is raised (CPython's default: 10)."""


def tune_gc(threshold: int) -> None:
    """Raise the garbage collector's first threshold to at least ``threshold``, and the
    second to at least 50 (0: leave both).

    Process-wide state, so an entry point sets it, never a library object. Thousands of live
    workflows mean a large heap of long-lived objects; CPython's default (700 allocations)
    scans it so often that collection takes about half the CPU at 10,000 concurrent
    workflows (see bench/run.py). A running workflow's objects live across its awaits, so
    they outlive the first generation and every collection of the second scanned them all
    again: at the default second threshold that was another tenth of the CPU at 10,000
    workflows, at 50 under 1%, with the same peak memory. Each first-generation collection
    walks every object that survived since the last one, and a running workflow's do survive,
    so fewer, larger collections cost less: at 10,000 workflows (which make no cyclic garbage
    at all) 28 collections at 50,000 took 2.2 s of CPU, 9 at 150,000 1.6 s, 3 at 400,000
    1.0 s, with the same peak memory; the default, 200,000, bounds what cyclic garbage can
    pile up between collections. Cyclic garbage is still collected, less often.
    """
    gen0, gen1, gen2 = gc.get_threshold()
    if threshold > gen0:
        gc.set_threshold(threshold, max(gen1, _SECOND_THRESHOLD), gen2)


def check_llm_choice(llm: str | None) -> str | None:
    """Validate ``--llm``."""
    choices = provider_names()
    if llm is not None and llm not in choices:
        raise InputValidationError(
            f"unknown LLM provider {llm!r}; expected one of: {', '.join(choices)}",
            errors=[{"field": "llm", "message": "unknown provider", "value": llm}],
        )
    return llm


def ensure_database(settings: Settings) -> None:
    """A brand-new SQLite database is created on first use; anything else must be migrated."""
    url = settings.database.url
    create_sqlite_folder(url)
    if url.startswith("sqlite") and current_revision(url) is None:
        upgrade(url)


def require_database(settings: Settings) -> None:
    """For commands that only read: the database must exist and be migrated; nothing is
    created (connecting to a missing SQLite file would create it, and its folders)."""
    url = settings.database.url
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise DatabaseError(
            f"no ECL database at {path}",
            hint="check database.url (ECL_DATABASE_URL); `ecl run` or `ecl migrate` creates it",
        )
    check_schema(url)


@dataclass
class Progress:
    """Follows a run's events and shows them on stderr: step, revision, elapsed, tokens."""

    console: Console = field(default_factory=lambda: Console(stderr=True))
    quiet: bool = False
    started: float = field(default_factory=time.monotonic)
    tokens: int = 0
    revisions: int = 0
    steps: int = 0
    current: str = ""

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "llm_call":
            self.tokens += int(event.get("tokens") or 0)
            return
        if kind == "workflow_state" and event.get("revision_count") is not None:
            self.revisions = int(event["revision_count"])
        if kind == "step_started":
            self.current = str(event.get("step_id"))
            iteration = int(event.get("iteration") or 0)
            attempt = int(event.get("attempt") or 1)
            extra = f" (revision {iteration})" if iteration else ""
            extra += f" attempt {attempt}" if attempt > 1 else ""
            self._line(f"→ {self.current}{extra}")
        elif kind == "step_finished":
            state = str(event.get("state"))
            # Only a completed attempt earns the check mark; a failed one is crossed out.
            mark = "✓" if state == "completed" else "✗"
            self.steps += state == "completed"
            self._line(f"{mark} {event.get('step_id') or self.current} ({state})")
        elif kind == "workflow_queued":
            self._line(f"… waiting for a slot (max_concurrent_workflows of {event.get('definition_id')})")
        elif kind == "llm_waiting" and event.get("reason") == CIRCUIT_OPEN:
            self._line(f"… waiting {float(event.get('wait_s') or 0):.1f}s for the open circuit breaker")
        elif kind == "llm_waiting":
            self._line(f"… waiting {float(event.get('wait_s') or 0):.1f}s for the provider's {event.get('reason')}")
        elif kind == "workflow_state" and event.get("state") == WorkflowState.WAITING_FOR_REVISION:
            self._line("… waiting for approval (ecl signal ID approve|revise)")
        elif kind == "workflow_state" and event.get("state") == WorkflowState.WAITING_FOR_BUDGET:
            error = event.get("error") or {}
            self._line(
                f"… over budget: {error.get('message', 'the next LLM call would cross the budget')}; waiting "
                f"(raise it: ecl signal {event.get('workflow_id')} budget --add-usd N)"
            )

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.started
        self.console.print(
            f"[dim]{elapsed:6.1f}s[/dim] {text} [dim]tokens={self.tokens} revisions={self.revisions}[/dim]",
            highlight=False,
            soft_wrap=True,  # one event, one line (the terminal may still fold it)
        )


@asynccontextmanager
async def open_command_engine(
    settings: Settings, *, llm: str | None = None, progress: Progress | None = None
) -> AsyncIterator[Engine]:
    """The configured engine for one command (a brand-new SQLite database is created
    first), shown ``progress`` when the workflows run here; closed on the way out."""
    ensure_database(settings)
    tune_gc(settings.embedded.gc_threshold)
    delay_ms = os.environ.get("ECL_DEBUG_COMMIT_DELAY_MS", "")
    async with open_engine(
        settings,
        llm=llm,
        listener=progress,
        commit_delay_seconds=float(delay_ms) / 1000 if delay_ms else 0.0,
    ) as engine:
        yield engine


@dataclass
class Repositories:
    """The async repositories of one command, sharing one engine."""

    workflows: WorkflowRepository
    steps: StepExecutionRepository
    llm_calls: LlmCallRepository
    artifacts: ArtifactRepository

    async def close(self) -> None:
        """Dispose of the connection pool."""
        await self.workflows.db.dispose()


def repositories(settings: Settings) -> Repositories:
    """Repositories on the configured database."""
    db = create_engine(
        settings.database.url,
        pool_size=settings.database.pool_size,
        sqlite_synchronous=settings.database.sqlite_synchronous,
    )
    return Repositories(
        WorkflowRepository(db),
        StepExecutionRepository(db),
        LlmCallRepository(db),
        ArtifactRepository(db),
    )
