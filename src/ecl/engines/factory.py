"""Builds the runtime from settings: provider, orchestrator and engine.

The one place (below the CLI and API) that turns a :class:`~ecl.config.Settings` into
live objects; settings are passed in, never read from the environment here. The CLI and
the API open their engine with :func:`open_engine` and know it only as an
:class:`~ecl.core.Engine`: which engine ``settings.engine`` names is decided here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Table

from ecl.artifacts.local import LocalArtifactStore
from ecl.config import Settings
from ecl.core.durable import Engine
from ecl.core.policy import RetryPolicy
from ecl.engines.embedded import EmbeddedEngine, EmbeddedOptions, Listener
from ecl.llm import BreakerBoard, LlmProvider, build_provider
from ecl.llm.budget import BudgetPolicy
from ecl.llm.fallback import require_priced
from ecl.llm.prices import PriceTable
from ecl.llm.ratelimit import RateLimit, RateLimitBoard
from ecl.llm.registry import provider_factory
from ecl.steps import PromptLibrary
from ecl.store.database import check_schema, create_engine, create_sync_engine
from ecl.store.models import Base
from ecl.store.repositories import ArtifactRepository, WorkflowRepository
from ecl.workflows import CatalogOrchestrator, WorkflowCatalog

__all__ = [
    "Runtime",
    "build_breakers",
    "build_catalog",
    "build_embedded_engine",
    "build_orchestrator",
    "build_prices",
    "build_provider_from",
    "check_fallbacks",
    "local_runtime",
    "open_engine",
    "runs_in_process",
    "tables",
]


@dataclass
class Runtime:
    """What a command needs to run workflows."""

    orchestrator: CatalogOrchestrator
    definitions: WorkflowCatalog
    """Every workflow the engine may run (graph definitions and code-first workflows)."""
    llm: LlmProvider
    breakers: BreakerBoard | None = None
    """The provider's circuit breakers (``None`` for the mock provider)."""
    artifacts: LocalArtifactStore | None = None
    """The store the steps write artifacts to (its database connections are the runtime's own)."""

    async def close(self) -> None:
        """Close the runtime's own database connections (its artifact records) and its
        provider's HTTP client (its connections would outlive an app stopped in process)."""
        if self.artifacts is not None:
            await self.artifacts.repository.db.dispose()
        closer = getattr(self.llm, "close", None)
        if closer is not None:
            await closer()


def tables() -> dict[str, Table]:
    """The ECL tables by name."""
    return dict(Base.metadata.tables)


def build_breakers(settings: Settings) -> BreakerBoard:
    """Circuit breakers per provider and model, tuned by ``llm.breaker``."""
    tuning = settings.llm.breaker
    return BreakerBoard(
        failure_threshold=tuning.failure_threshold, window=tuning.window_seconds, open_for=tuning.open_seconds
    )


def build_provider_from(
    settings: Settings, provider: str | None = None, *, breakers: BreakerBoard | None = None
) -> LlmProvider:
    """The configured LLM provider (``provider`` overrides ``settings.llm.provider``)."""
    llm = settings.llm
    retry = RetryPolicy(
        max_attempts=llm.retry.max_attempts,
        initial_delay=timedelta(seconds=llm.retry.initial_delay),
        max_delay=timedelta(seconds=llm.retry.max_delay),
        multiplier=llm.retry.multiplier,
    )
    return build_provider(
        provider or llm.provider,
        model=llm.model,
        api_key=llm.api_key,
        base_url=llm.base_url,
        timeout=llm.timeout_seconds,
        max_tokens=llm.max_tokens,
        retry=retry,
        breakers=breakers or build_breakers(settings),
        breaker_max_wait=llm.breaker.max_wait_seconds,
        fallback=llm.fallback,
        rate_limits=RateLimitBoard(
            {
                model: RateLimit(limit.requests_per_minute, limit.tokens_per_minute)
                for model, limit in llm.rate_limits.items()
            }
        ),
    )


def build_prices(settings: Settings, provider: str | None = None) -> PriceTable:
    """The price table (shipped, with ``llm.prices`` on top); the configured model must have
    a price unless ``llm.allow_unpriced`` (a :class:`~ecl.core.ConfigError` naming it).

    The provider's name is checked first (the registry's error: an unknown name, an entry
    point that fails to import), so a bad name is never reported as an unpriced model."""
    name = provider or settings.llm.provider
    provider_factory(name)
    table = PriceTable.shipped({model: price.model_dump() for model, price in settings.llm.prices.items()})
    if not settings.llm.allow_unpriced and name != "mock":
        table.require(name, settings.llm.model)
        require_priced(table, name, settings.llm.fallback, key="llm.fallback")
    return table


def check_fallbacks(settings: Settings, catalog: WorkflowCatalog, prices: PriceTable, provider: str | None) -> None:
    """Every fallback model a step or definition names has a price (unless
    ``llm.allow_unpriced``): a one-line :class:`~ecl.core.ConfigError` naming it otherwise."""
    name = provider or settings.llm.provider
    if settings.llm.allow_unpriced or name == "mock":
        return
    for step in catalog.steps:
        require_priced(prices, name, getattr(step, "fallback", ()), key=f"step {step.id}: fallback")
    for defn in catalog.definitions.list():
        require_priced(prices, name, defn.options.fallback, key=f"workflow {defn.id}: options.fallback")
        for spec in defn.steps:
            require_priced(prices, name, spec.fallback or (), key=f"workflow {defn.id}, step {spec.step_id}: fallback")


def build_catalog(settings: Settings) -> WorkflowCatalog:
    """Every workflow and step an entry point offers: the built-ins, the configured
    ``modules``, the ``ecl.workflows`` entry points of installed packages, then the configured
    definitions folder (whose files may use any of those steps)."""
    folder = Path(settings.definitions_path) if settings.definitions_path else None
    return WorkflowCatalog.build(modules=settings.modules, folder=folder)


def build_orchestrator(settings: Settings, *, provider: str | None = None) -> Runtime:
    """Orchestrator with the configured provider, prompts and artifact store."""
    prices = build_prices(settings, provider)
    breakers = build_breakers(settings)
    llm = build_provider_from(settings, provider, breakers=breakers)
    catalog = build_catalog(settings)
    check_fallbacks(settings, catalog, prices, provider)
    prompts_dir = Path(settings.prompts_path) if settings.prompts_path else None
    artifacts = LocalArtifactStore(
        Path(settings.artifacts.path),
        ArtifactRepository(create_engine(settings.database.url)),
        max_bytes=settings.artifacts.max_bytes,
    )
    orchestrator = catalog.orchestrator(
        llm,
        artifacts=artifacts,
        prompts=PromptLibrary(override_dir=prompts_dir, search_dirs=catalog.prompt_dirs),
        prices=prices,
        budget=BudgetPolicy(
            usd=settings.budget.usd, tokens=settings.budget.tokens, on_exceeded=settings.budget.on_exceeded
        ),
    )
    return Runtime(orchestrator=orchestrator, definitions=catalog, llm=llm, breakers=breakers, artifacts=artifacts)


def build_embedded_engine(
    settings: Settings,
    runtime: Runtime,
    *,
    listener: Listener | None = None,
    commit_delay_seconds: float = 0.0,
) -> EmbeddedEngine:
    """An embedded engine on the configured database (check it is migrated with
    :func:`~ecl.store.database.check_schema` before starting it)."""
    url = settings.database.url
    options = EmbeddedOptions(
        journal_max_bytes=settings.database.journal_max_bytes,
        lease_seconds=settings.embedded.lease_seconds,
        heartbeat_seconds=settings.embedded.heartbeat_seconds,
        commit_delay_seconds=commit_delay_seconds,
    )
    return EmbeddedEngine(
        create_sync_engine(url, sqlite_synchronous=settings.database.sqlite_synchronous),
        tables(),
        runtime.orchestrator,
        known_definitions=runtime.definitions.get,
        options=options,
        listener=listener,
    )


def runs_in_process(settings: Settings) -> bool:
    """Whether the configured engine runs workflows in the process that opens it (embedded),
    rather than in a separate worker (Restate: its ECL endpoint, ``ecl server start``)."""
    return settings.engine != "restate"


def local_runtime(settings: Settings, *, provider: str | None = None) -> Runtime | None:
    """The runtime that runs workflows in this process, or ``None`` when they run elsewhere
    (on Restate its ECL endpoint runs them; this process only submits)."""
    return build_orchestrator(settings, provider=provider) if runs_in_process(settings) else None


@asynccontextmanager
async def open_engine(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    llm: str | None = None,
    listener: Listener | None = None,
    commit_delay_seconds: float = 0.0,
) -> AsyncIterator[Engine]:
    """The engine ``settings.engine`` names, started, on a migrated database; closed (running
    workflows left resumable) on the way out.

    ``embedded`` runs the workflows in this process with ``runtime`` (by default
    :func:`build_orchestrator` with provider ``llm``), reporting progress to ``listener``;
    ``restate`` is a client of the Restate server, whose ECL endpoint runs them. Either way a
    submission is checked against the configured definitions.
    """
    url = settings.database.url
    check_schema(url)
    if not runs_in_process(settings):
        # Imported here: the Restate endpoint imports this module.
        from ecl.engines.restate.engine import RestateEngine

        db = create_engine(
            url, pool_size=settings.database.pool_size, sqlite_synchronous=settings.database.sqlite_synchronous
        )
        writer = create_sync_engine(
            url, pool_size=settings.database.pool_size, sqlite_synchronous=settings.database.sqlite_synchronous
        )
        definitions = runtime.definitions if runtime is not None else build_catalog(settings)
        remote = RestateEngine(
            settings.restate.ingress_url,
            settings.restate.admin_url,
            WorkflowRepository(db),
            known_definitions=definitions.get,
            writer=writer,
        )
        try:
            yield remote
        finally:
            await remote.close()
            await db.dispose()
            writer.dispose()
        return
    own = runtime is None
    runtime = runtime if runtime is not None else build_orchestrator(settings, provider=llm)
    local = build_embedded_engine(settings, runtime, listener=listener, commit_delay_seconds=commit_delay_seconds)
    try:
        await local.start()
        try:
            yield local
        finally:
            await local.close()
    finally:
        if own:
            await runtime.close()
