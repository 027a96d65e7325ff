"""The FastAPI application: ``create_app(settings)``.

On the embedded engine the app is also the worker: at start-up it recovers workflows whose
owner is gone and keeps picking up submitted ones; at shutdown it stops taking work and
leaves in-flight workflows resumable (their leases released), so nothing is lost. With
``engine = "restate"`` it is a client of a Restate server instead: it submits, signals and
cancels there, and reads the records that ECL's Restate endpoint writes to the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI

from ecl.api.auth import ApiKeyAuth
from ecl.api.errors import install_error_handlers
from ecl.api.guard import RequestGuard
from ecl.api.openapi import install_openapi
from ecl.api.request_log import RequestLog
from ecl.api.routes import definitions, health, workflows
from ecl.api.services import Services
from ecl.api.ui import install_ui
from ecl.artifacts.local import LocalArtifactStore
from ecl.config import Settings
from ecl.core.errors import ConfigError
from ecl.core.json_values import JsonLimits
from ecl.engines.embedded import EmbeddedEngine, StartGate
from ecl.engines.factory import build_catalog, local_runtime, open_engine
from ecl.store.database import create_engine
from ecl.store.repositories import (
    ArtifactRepository,
    LlmCallRepository,
    StepExecutionRepository,
    WorkflowRepository,
)

__all__ = ["create_app"]

_log = structlog.get_logger("ecl.api")


def _check_security(settings: Settings) -> None:
    key = settings.api.api_key
    if settings.environment == "production" and (key is None or not key.get_secret_value()):
        raise ConfigError(
            "api.api_key is required when environment = production (set ECL_API_KEY)",
            key="api.api_key",
            value=None,
            source="environment",
        )


def create_app(settings: Settings, *, llm: str | None = None, worker: bool = True) -> FastAPI:
    """Build the app; the engine starts with the app and stops with it."""
    _check_security(settings)
    db = create_engine(
        settings.database.url,
        pool_size=settings.database.pool_size,
        sqlite_synchronous=settings.database.sqlite_synchronous,
    )
    runtime = local_runtime(settings, provider=llm)  # None: the workflows run on Restate
    artifacts = ArtifactRepository(db)
    svc = Services(
        settings=settings,
        definitions=runtime.definitions if runtime is not None else build_catalog(settings),
        workflows=WorkflowRepository(db),
        steps=StepExecutionRepository(db),
        llm_calls=LlmCallRepository(db),
        artifacts=artifacts,
        store=LocalArtifactStore(Path(settings.artifacts.path), artifacts, max_bytes=settings.artifacts.max_bytes),
        breakers=runtime.breakers if runtime is not None else None,
    )

    gate = StartGate(settings.embedded.max_start_delay_seconds)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        try:
            async with open_engine(settings, runtime=runtime) as engine:
                svc.engine = engine
                if isinstance(engine, EmbeddedEngine):
                    engine.start_gate = gate  # the workflows submitted here start after the requests
                loop = asyncio.create_task(engine.run_worker(stop)) if worker else None
                _log.info("ecl api started", worker=worker, engine=engine.name)
                try:
                    yield
                finally:
                    stop.set()
                    if loop is not None:
                        with contextlib.suppress(Exception):
                            await loop
        finally:
            if runtime is not None:
                await runtime.close()
            await db.dispose()
            _log.info("ecl api stopped; unfinished workflows are resumable")

    auth = ApiKeyAuth(settings.api.api_key.get_secret_value() if settings.api.api_key else None)
    app = FastAPI(
        title="ECL",
        version="0.1.0",
        description="Durable AI workflows: submit, follow, signal and cancel workflows; "
        "download what they produced. Errors: docs/api/errors.md.",
        lifespan=lifespan,
    )
    app.state.services = svc
    app.state.auth = auth
    install_error_handlers(app)
    app.include_router(workflows.router)
    app.include_router(definitions.router)
    app.include_router(health.router)
    install_ui(app)
    install_openapi(app)
    # The key, the body size and the JSON checks come before routing and before the body is
    # read whole (the request log, added below, stays outermost and logs these answers too).
    app.add_middleware(
        RequestGuard,
        auth=auth,
        max_body_bytes=settings.api.max_body_bytes,
        limits=JsonLimits(max_depth=settings.api.max_json_depth, max_string_chars=settings.api.max_string_chars),
    )

    app.add_middleware(RequestLog, gate=gate)  # added last: the outermost

    return app
