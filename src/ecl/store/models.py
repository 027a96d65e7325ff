"""The ECL schema as SQLAlchemy 2 typed models.

Table and column names are compatibility data: the Alembic history in
``ecl/store/migrations`` must agree with them (a test runs autogenerate to prove it).
JSON columns are JSONB on PostgreSQL and JSON elsewhere; timestamps are stored in UTC and
always come back timezone-aware, SQLite included.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Artifact",
    "Base",
    "JournalEntry",
    "LlmCall",
    "Money",
    "Promise",
    "StepExecution",
    "Timer",
    "UtcDateTime",
    "Worker",
    "Workflow",
    "WorkflowEvent",
    "WorkflowKv",
]

JsonType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store in UTC (naive values are taken to be UTC already)."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC) if dialect.name != "sqlite" else value
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Always return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """An exact amount of USD: NUMERIC on PostgreSQL; on SQLite, which has no exact decimal
    type (it would store a float), the decimal's text."""

    impl = Numeric(24, 12, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        """Text on SQLite, NUMERIC elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(48))
        return dialect.type_descriptor(Numeric(24, 12, asdecimal=True))

    def process_bind_param(self, value: Decimal | int | str | None, dialect: Dialect) -> Any:
        """Store exactly (a float is refused: it is not an exact amount)."""
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("Money takes a Decimal, an int or a str, not a float")
        amount = Decimal(value)
        return str(amount) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Always a :class:`~decimal.Decimal`."""
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every ECL table."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JsonType, Any: JsonType}


class Workflow(Base):
    """One workflow run."""

    __tablename__ = "workflows"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    definition_id: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(32))
    input: Mapped[Any] = mapped_column(JsonType)
    output: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    error: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    waiting: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    """What the running workflow waits for now (a rate limit, a slot, budget); ``None`` otherwise."""
    trace_context: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The W3C ``traceparent`` every run of the workflow continues (set at its first traced start)."""
    input_hash: Mapped[str] = mapped_column(String(64), default="")
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revision_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=_now)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (
        Index("ix_workflows_created", "created_at", "id"),
        Index("ix_workflows_state_created", "state", "created_at", "id"),
        Index("ix_workflows_definition_created", "definition_id", "created_at", "id"),
        Index("ix_workflows_owner", "owner"),
    )


class StepExecution(Base):
    """One attempt of one step of a workflow."""

    __tablename__ = "step_executions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(128), ForeignKey("workflows.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    iteration: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(32))
    input: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    output: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    error: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=_now)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    tokens_used: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_step_executions_workflow", "workflow_id", "started_at"),)


class LlmCall(Base):
    """One request to an LLM provider."""

    __tablename__ = "llm_calls"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(128), ForeignKey("workflows.id", ondelete="CASCADE"))
    step_execution_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_creation_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(16))
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=_now)
    cost_usd: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0), server_default="0")
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The request's messages (``observability.capture_content`` only; capped, redacted)."""
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The model's answer (``observability.capture_content`` only; capped, redacted)."""

    __table_args__ = (Index("ix_llm_calls_workflow", "workflow_id", "created_at"),)


class Artifact(Base):
    """Metadata of a stored artifact (the content lives in the artifact store)."""

    __tablename__ = "artifacts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(128), ForeignKey("workflows.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=_now)

    __table_args__ = (Index("ix_artifacts_workflow", "workflow_id", "created_at"),)


class JournalEntry(Base):
    """Embedded engine: one journaled durable operation."""

    __tablename__ = "journal_entries"

    workflow_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(8))
    payload: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=_now)


class WorkflowKv(Base):
    """Embedded engine: current durable state of a workflow (for inspection)."""

    __tablename__ = "workflow_kv"

    workflow_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=_now)


class WorkflowEvent(Base):
    """A state change or a wait (begun or ended) of a workflow, in the order they happened.

    Written by database triggers (migration ``0005``) in the transaction of the ``workflows``
    update that made the change, whichever engine or command made it: ``kind`` ``state``
    (``data``: ``{"state": ...}``), ``wait`` (``data``: the new ``waiting``, see
    :mod:`ecl.core.waiting`) or ``wait_end`` (``data``: the ``waiting`` that ended)."""

    __tablename__ = "workflow_events"
    __table_args__ = (Index("ix_workflow_events_workflow", "workflow_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str] = mapped_column(String(128), ForeignKey("workflows.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=_now)
    kind: Mapped[str] = mapped_column(String(16))
    data: Mapped[Any | None] = mapped_column(JsonType, nullable=True)


class Promise(Base):
    """Embedded engine: a durable promise, resolved by a signal."""

    __tablename__ = "promises"

    workflow_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    payload: Mapped[Any | None] = mapped_column(JsonType, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Worker(Base):
    """Embedded engine: a process holding workflow leases, kept alive by its heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=_now)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=_now)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=_now)


class Timer(Base):
    """Embedded engine: a durable sleep's wake-up time."""

    __tablename__ = "timers"

    workflow_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    wake_at: Mapped[datetime] = mapped_column(UtcDateTime())
