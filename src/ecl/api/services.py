"""What the routes use: engine, repositories, artifact store, definitions."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from ecl.artifacts.local import LocalArtifactStore
from ecl.config import Settings
from ecl.core.durable import Engine
from ecl.llm import BreakerBoard
from ecl.store.repositories import (
    ArtifactRepository,
    LlmCallRepository,
    StepExecutionRepository,
    WorkflowRepository,
)
from ecl.workflows import WorkflowCatalog

__all__ = ["Services", "services"]


@dataclass
class Services:
    """Everything a request may need, built once at start-up."""

    settings: Settings
    definitions: WorkflowCatalog
    workflows: WorkflowRepository
    steps: StepExecutionRepository
    llm_calls: LlmCallRepository
    artifacts: ArtifactRepository
    store: LocalArtifactStore
    breakers: BreakerBoard | None = None
    """This process's LLM circuit breakers (embedded engine: the workflows run here)."""
    engine: Engine = field(init=False)
    """Opened when the app starts. Embedded: this process runs the workflows. Restate: it
    submits them to a Restate server, whose ECL endpoint runs them and writes the same records."""


async def services(request: Request) -> Services:
    """The request's app services (a FastAPI dependency; ``async``, since FastAPI runs a
    plain function dependency on its thread pool: a thread hop on every request)."""
    found: Services = request.app.state.services
    return found
