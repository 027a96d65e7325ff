"""Persistence: SQLAlchemy models, Alembic migrations, async repositories."""

from ecl.store.database import (
    check_schema,
    create_engine,
    create_sync_engine,
    current_revision,
    downgrade,
    head_revision,
    normalize_url,
    sync_url,
    upgrade,
)
from ecl.store.repositories import (
    ArtifactRecord,
    ArtifactRepository,
    LlmCallRecord,
    LlmCallRepository,
    LlmTotals,
    Page,
    StepExecutionRecord,
    StepExecutionRepository,
    WorkflowRecord,
    WorkflowRepository,
)

__all__ = [
    "ArtifactRecord",
    "ArtifactRepository",
    "LlmCallRecord",
    "LlmCallRepository",
    "LlmTotals",
    "Page",
    "StepExecutionRecord",
    "StepExecutionRepository",
    "WorkflowRecord",
    "WorkflowRepository",
    "check_schema",
    "create_engine",
    "create_sync_engine",
    "current_revision",
    "downgrade",
    "head_revision",
    "normalize_url",
    "sync_url",
    "upgrade",
]
