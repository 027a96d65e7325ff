"""One way to run workflows from Python: ``ecl.open_engine``.

::

    async with ecl.open_engine(database_url="sqlite:///app.db", workflows=[summary]) as engine:
        result = await engine.run("summary", {"text": "..."})

It opens the embedded engine on the database (a SQLite file is created and migrated on
first use; a PostgreSQL database must be migrated with ``ecl migrate`` and an out-of-date
one is refused with that hint), with every workflow the CLI would see (the built-ins,
``settings.modules``, ``ecl.workflows`` entry points, the definitions folder) plus
``workflows``, and closes it on the way out (in-flight workflows stay resumable). The
records are the ones the CLI and the API show: ``ecl status``, ``ecl logs`` work on them.

Settings come from the same sources as the ``ecl`` command (environment, config files)
unless ``settings`` is given; the keyword arguments override them. Process-wide tuning (the
garbage collector's thresholds) is left to the program; so is logging, except that a program
that has not configured structlog gets ECL's logs on stderr at ``warning`` (or the configured
``log.level``), as from the ``ecl`` command, rather than structlog's default of every event
on stdout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog

from ecl.artifacts.local import LocalArtifactStore
from ecl.config import Settings, load_settings, sources_of
from ecl.core.durable import JsonValue
from ecl.core.results import WorkflowResult
from ecl.engines.embedded import EmbeddedEngine
from ecl.engines.factory import Runtime, build_prices, build_provider_from, check_fallbacks
from ecl.engines.factory import open_engine as open_configured_engine
from ecl.llm.prices import PriceTable
from ecl.llm.provider import LlmProvider
from ecl.observability import configure_content, configure_logging, configure_tracing, tracing_enabled
from ecl.steps.prompts import PromptLibrary
from ecl.store.database import check_schema, create_engine, current_revision, sqlite_path, upgrade
from ecl.store.repositories import ArtifactRepository
from ecl.workflows.catalog import WorkflowCatalog

__all__ = ["EngineHandle", "open_engine"]


class EngineHandle:
    """An open engine: run, submit, signal, cancel and await workflows of its catalog."""

    def __init__(self, engine: EmbeddedEngine, catalog: WorkflowCatalog) -> None:
        self.engine = engine
        """The embedded engine underneath (the :class:`~ecl.core.Engine` protocol)."""
        self.workflows = catalog
        """Every workflow this engine runs, by id."""

    async def run(
        self, workflow: str, input: dict[str, JsonValue] | None = None, *, workflow_id: str | None = None
    ) -> WorkflowResult:
        """Start ``workflow`` (or re-attach to ``workflow_id``) and wait for its result.

        A failed run is a result with ``state == "failed"`` and ``error``, not an exception;
        an invalid input raises :class:`~ecl.core.InputValidationError` before anything is
        stored.
        """
        return await self.engine.run(workflow, dict(input or {}), workflow_id)

    async def submit(
        self, workflow: str, input: dict[str, JsonValue] | None = None, *, workflow_id: str | None = None
    ) -> str:
        """Start ``workflow`` in the background; returns its id (idempotent on ``workflow_id``)."""
        return await self.engine.submit(workflow, dict(input or {}), workflow_id)

    async def result(self, workflow_id: str) -> WorkflowResult:
        """Wait for a workflow started here to end."""
        return await self.engine.result(workflow_id)

    async def signal(self, workflow_id: str, name: str, payload: JsonValue) -> None:
        """Resolve the durable promise ``name`` of a workflow (e.g. ``approval``)."""
        await self.engine.signal(workflow_id, name, payload)

    async def cancel(self, workflow_id: str) -> None:
        """Cancel a workflow."""
        await self.engine.cancel(workflow_id)


def _prepare_database(url: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if current_revision(url) is None:
            upgrade(url)
    check_schema(url)  # a database behind this ECL: DatabaseError with the `ecl migrate` hint


@asynccontextmanager
async def open_engine(
    *,
    database_url: str | None = None,
    workflows: Iterable[Any] = (),
    llm: LlmProvider | str | None = None,
    modules: Iterable[str] = (),
    artifacts_path: str | Path | None = None,
    settings: Settings | None = None,
) -> AsyncIterator[EngineHandle]:
    """Open the embedded engine for a Python program (see the module docs).

    ``workflows``: ``@ecl.workflow`` functions, ``@ecl.step`` handles, definitions or modules
    to add. ``llm``: a provider instance (used as it is, e.g. :class:`ecl.MockLlmProvider`)
    or a provider name (default: ``llm.provider``).
    """
    base = settings if settings is not None else load_settings()
    update: dict[str, Any] = {"engine": "embedded"}
    if modules:
        update["modules"] = [*base.modules, *modules]
    settings = base.model_copy(update=update)
    if database_url is not None:
        settings = settings.model_copy(update={"database": settings.database.model_copy(update={"url": database_url})})
    if artifacts_path is not None:
        settings = settings.model_copy(
            update={"artifacts": settings.artifacts.model_copy(update={"path": str(artifacts_path)})}
        )
    if not structlog.is_configured():
        level = settings.log.level if "log.level" in sources_of(settings) else "warning"
        configure_logging(level, settings.log_format, secrets=settings.secrets())
    observe = settings.observability
    if observe.tracing and not tracing_enabled():
        configure_tracing(True, otlp_endpoint=observe.otlp_endpoint)
    configure_content(observe.capture_content, observe.max_content_chars, secrets=settings.secrets())
    url = settings.database.url
    _prepare_database(url)

    folder = Path(settings.definitions_path) if settings.definitions_path else None
    catalog = WorkflowCatalog.build(modules=settings.modules, workflows=workflows, folder=folder)
    if isinstance(llm, str) or llm is None:
        prices = build_prices(settings, llm)
        check_fallbacks(settings, catalog, prices, llm)
        provider = build_provider_from(settings, llm)
    else:
        # A provider of the program's own: priced by the table where it knows the model.
        prices = PriceTable.shipped({model: price.model_dump() for model, price in settings.llm.prices.items()})
        provider = llm
    db = create_engine(url, pool_size=settings.database.pool_size)
    artifacts = LocalArtifactStore(
        Path(settings.artifacts.path), ArtifactRepository(db), max_bytes=settings.artifacts.max_bytes
    )
    prompts_dir = Path(settings.prompts_path) if settings.prompts_path else None
    orchestrator = catalog.orchestrator(
        provider,
        artifacts=artifacts,
        prompts=PromptLibrary(override_dir=prompts_dir, search_dirs=catalog.prompt_dirs),
        prices=prices,
    )
    runtime = Runtime(orchestrator=orchestrator, definitions=catalog, llm=provider)
    try:
        # Built, started and closed as every command does it (settings.engine is "embedded").
        async with open_configured_engine(settings, runtime=runtime) as engine:
            assert isinstance(engine, EmbeddedEngine)
            yield EngineHandle(engine, catalog)
    finally:
        await db.dispose()
        closer = getattr(provider, "close", None) if provider is not llm else None
        if closer is not None:  # the provider built here owns an HTTP client
            await closer()
