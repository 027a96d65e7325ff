"""Async repositories over the ECL tables.

They return plain pydantic records, never ORM objects bound to a session. Lists use
cursor pagination: a stable order (newest first: ``created_at`` desc, ``id`` desc), an
opaque cursor that encodes the last row's position, a default page of 20 and at most 100.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Executable, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ecl.core.errors import InputValidationError, NotFoundError
from ecl.core.json_values import servable
from ecl.core.metadata import TokenUsage
from ecl.core.records import INTERRUPTED, INTERRUPTED_STEP_ERROR, PENDING
from ecl.core.state import TERMINAL_STATES, WorkflowState, check_transition
from ecl.store import models as m

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "ArtifactRecord",
    "ArtifactRepository",
    "LlmCallRecord",
    "LlmCallRepository",
    "LlmTotals",
    "LlmUsage",
    "Page",
    "SignalRecord",
    "StepExecutionRecord",
    "StepExecutionRepository",
    "WorkflowEventRecord",
    "WorkflowRecord",
    "WorkflowRepository",
    "Write",
    "finish_step",
    "insert_workflow",
    "interrupt_pending_calls",
    "interrupt_running_steps",
    "new_workflow_values",
    "set_workflow",
    "start_step",
    "workflow_exists",
    "workflow_record",
]

DEFAULT_PAGE = 20
MAX_PAGE = 100


class WorkflowRecord(BaseModel):
    """A row of ``workflows``."""

    id: str
    definition_id: str
    state: WorkflowState
    input: Any
    output: Any = None
    error: Any = None
    waiting: Any = None
    trace_context: str | None = None
    input_hash: str = ""
    owner: str | None = None
    revision_count: int = 0
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None


class StepExecutionRecord(BaseModel):
    """A row of ``step_executions``."""

    id: str
    workflow_id: str
    step_id: str
    attempt: int
    iteration: int
    state: str
    input: Any = None
    output: Any = None
    error: Any = None
    started_at: datetime
    completed_at: datetime | None = None
    tokens_used: int | None = None


class SignalRecord(BaseModel):
    """A resolved row of ``promises``: a signal the workflow received."""

    name: str
    payload: Any = None
    resolved_at: datetime


class WorkflowEventRecord(BaseModel):
    """A row of ``workflow_events``: a state change (``state``) or a wait begun (``wait``)
    or ended (``wait_end``)."""

    id: int
    at: datetime
    kind: str
    data: Any = None


class LlmCallRecord(BaseModel):
    """A row of ``llm_calls``."""

    id: str
    workflow_id: str
    step_execution_id: str | None
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    latency_ms: float
    outcome: str
    error_kind: str | None
    created_at: datetime
    cost_usd: Decimal = Decimal(0)
    prompt: str | None = None
    """Stored only with ``observability.capture_content``."""
    reply: str | None = None
    """Stored only with ``observability.capture_content``."""


class LlmTotals(BaseModel):
    """Totals of a workflow's LLM calls."""

    calls: int = 0
    errors: int = 0
    tokens: TokenUsage = TokenUsage()
    latency_ms: float = 0.0
    cost_usd: Decimal = Decimal(0)


class LlmUsage(BaseModel):
    """What one workflow's LLM calls cost and used."""

    cost_usd: Decimal = Decimal(0)
    tokens: int = 0
    """Input plus output tokens."""


class ArtifactRecord(BaseModel):
    """A row of ``artifacts``."""

    id: str
    workflow_id: str
    step_id: str
    name: str
    content_type: str
    path: str
    size: int
    sha256: str | None = None
    created_at: datetime


class Page(BaseModel):
    """One page of a list, and the cursor of the next (``None`` at the end)."""

    items: list[WorkflowRecord]
    next_cursor: str | None = None


def _record(model: type[BaseModel], row: Any) -> Any:
    # servable(): a value stored before the API refused such input (a lone surrogate, NaN,
    # nesting hundreds deep) is repaired for reading, so one bad row never breaks a list.
    return model.model_validate({c: servable(getattr(row, c)) for c in model.model_fields})


def workflow_record(row: Mapping[str, Any]) -> WorkflowRecord:
    """A ``workflows`` row given by column name (an engine's :class:`~ecl.core.Admission`)
    as a record, repaired for reading like every row read here."""
    return WorkflowRecord.model_validate({c: servable(row.get(c)) for c in WorkflowRecord.model_fields})


def _encode_cursor(created_at: datetime, id_: str) -> str:
    raw = json.dumps([created_at.isoformat(), id_]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, id_ = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(created)
        return (when if when.tzinfo else when.replace(tzinfo=UTC)), str(id_)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise InputValidationError(
            f"invalid cursor {cursor[:40]!r}",
            errors=[{"field": "cursor", "message": "not a cursor from this API", "value": cursor[:40]}],
        ) from None


def check_limit(limit: int | None) -> int:
    """The page size, or an error naming the bad value."""
    if limit is None:
        return DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise InputValidationError(
            f"limit must be between 1 and {MAX_PAGE}, got {limit}",
            errors=[{"field": "limit", "message": f"must be 1..{MAX_PAGE}", "value": limit}],
        )
    return limit


Write = tuple[Executable, dict[str, Any]]
"""A statement built once (its SQL compiled and cached once) and the values of one write:
``conn.execute(*write)``. Building a statement per write cost several times its execution."""

_W = m.Base.metadata.tables["workflows"]
_S = m.Base.metadata.tables["step_executions"]
_C = m.Base.metadata.tables["llm_calls"]
_START_STEP = insert(_S)
_FINISH_STEP = update(_S).where(_S.c.id == bindparam("execution_id"))
_INTERRUPT_STEPS = (
    update(_S)
    .where(_S.c.workflow_id == bindparam("wid"), _S.c.state == "running")
    .values(state=INTERRUPTED, error=bindparam("interrupted_error"), completed_at=bindparam("now"))
)
_INTERRUPT_CALLS = (
    update(_C).where(_C.c.workflow_id == bindparam("wid"), _C.c.outcome == PENDING).values(outcome=INTERRUPTED)
)
_INSERT_WORKFLOW = insert(_W)
_SET_WORKFLOW = update(_W).where(_W.c.id == bindparam("wid"), _W.c.state.not_in(TERMINAL_STATES))
_WORKFLOW_EXISTS = select(_W.c.id).where(_W.c.id == bindparam("wid"))


def start_step(
    *, id: str, workflow_id: str, step_id: str, attempt: int, iteration: int = 0, input: Any = None
) -> Write:
    """The insert of a started attempt's ``step_executions`` row (``running``)."""
    return _START_STEP, {
        "id": id,
        "workflow_id": workflow_id,
        "step_id": step_id,
        "attempt": attempt,
        "iteration": iteration,
        "state": "running",
        "input": input,
        "started_at": datetime.now(UTC),
    }


def finish_step(id: str, *, state: str, output: Any = None, error: Any = None, tokens: int | None = None) -> Write:
    """The update of an attempt's row with how it ended."""
    return _FINISH_STEP, {
        "execution_id": id,
        "state": state,
        "output": output,
        "error": error,
        "tokens_used": tokens,
        "completed_at": datetime.now(UTC),
    }


def interrupt_running_steps(workflow_id: str) -> Write:
    """The attempts of ``workflow_id`` still ``running`` become ``interrupted``."""
    return _INTERRUPT_STEPS, {
        "wid": workflow_id,
        "interrupted_error": INTERRUPTED_STEP_ERROR,
        "now": datetime.now(UTC),
    }


def interrupt_pending_calls(workflow_id: str) -> Write:
    """The LLM calls of ``workflow_id`` still ``pending`` become ``interrupted``."""
    return _INTERRUPT_CALLS, {"wid": workflow_id}


def set_workflow(workflow_id: str, values: dict[str, Any]) -> Write:
    """The update of a workflow's row with ``values`` (column: value), unless it has ended."""
    return _SET_WORKFLOW, {"wid": workflow_id, **values}


def workflow_exists(workflow_id: str) -> Write:
    """The query of a workflow's id: a row when the workflow has one."""
    return _WORKFLOW_EXISTS, {"wid": workflow_id}


def insert_workflow(values: dict[str, Any]) -> Write:
    """The insert of a new ``workflows`` row (``values``: :func:`new_workflow_values`)."""
    return _INSERT_WORKFLOW, values


class _Repository:
    def __init__(self, db: AsyncEngine) -> None:
        self.db = db
        self.sessions = async_sessionmaker(db, expire_on_commit=False)


def new_workflow_values(
    workflow_id: str,
    definition_id: str,
    input: Any,
    *,
    input_hash: str = "",
    state: WorkflowState = WorkflowState.PENDING,
    trace_context: str | None = None,
) -> dict[str, Any]:
    """The columns of a new ``workflows`` row (what :meth:`WorkflowRepository.insert` writes)."""
    now = datetime.now(UTC)
    return {
        "id": workflow_id,
        "definition_id": definition_id,
        "state": state.value,
        "input": input,
        "input_hash": input_hash,
        "trace_context": trace_context,
        "revision_count": 0,
        "created_at": now,
        "updated_at": now,
    }


class WorkflowRepository(_Repository):
    """Workflows: create, get, state changes, filtered cursor-paginated lists."""

    async def create(
        self,
        workflow_id: str,
        definition_id: str,
        input: Any,
        *,
        input_hash: str = "",
        state: WorkflowState = WorkflowState.PENDING,
        trace_context: str | None = None,
    ) -> WorkflowRecord:
        """Insert a workflow; returns it as stored."""
        await self.insert(
            workflow_id, definition_id, input, input_hash=input_hash, state=state, trace_context=trace_context
        )
        return await self.get(workflow_id)

    async def insert(
        self,
        workflow_id: str,
        definition_id: str,
        input: Any,
        *,
        input_hash: str = "",
        state: WorkflowState = WorkflowState.PENDING,
        trace_context: str | None = None,
    ) -> None:
        """Insert a workflow (:meth:`create` without reading it back)."""
        row = m.Workflow(
            **new_workflow_values(
                workflow_id, definition_id, input, input_hash=input_hash, state=state, trace_context=trace_context
            )
        )
        async with self.sessions.begin() as session:
            session.add(row)

    async def find(self, workflow_id: str) -> WorkflowRecord | None:
        """The workflow, or ``None``."""
        async with self.sessions() as session:
            row = await session.get(m.Workflow, workflow_id)
            return None if row is None else _record(WorkflowRecord, row)

    async def get(self, workflow_id: str) -> WorkflowRecord:
        """The workflow, or :class:`NotFoundError`."""
        found = await self.find(workflow_id)
        if found is None:
            raise NotFoundError(f"workflow {workflow_id} not found", kind="workflow", id=workflow_id)
        return found

    async def update_state(
        self,
        workflow_id: str,
        state: WorkflowState,
        *,
        output: Any = None,
        error: Any = None,
    ) -> WorkflowRecord:
        """Change the state, rejecting transitions the state machine forbids."""
        async with self.sessions.begin() as session:
            row = await session.get(m.Workflow, workflow_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"workflow {workflow_id} not found", kind="workflow", id=workflow_id)
            check_transition(workflow_id, WorkflowState(row.state), state)
            now = datetime.now(UTC)
            row.state = state.value
            row.updated_at = now
            if output is not None:
                row.output = output
            if error is not None:
                row.error = error
            if state.is_terminal:
                row.completed_at = now
        return await self.get(workflow_id)

    async def list(
        self,
        *,
        state: WorkflowState | None = None,
        definition_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page:
        """One page, newest first; pass ``next_cursor`` back for the next."""
        size = check_limit(limit)
        query = select(m.Workflow)
        if state is not None:
            query = query.where(m.Workflow.state == state.value)
        if definition_id is not None:
            query = query.where(m.Workflow.definition_id == definition_id)
        if cursor:
            created, id_ = _decode_cursor(cursor)
            query = query.where(
                or_(
                    m.Workflow.created_at < created,
                    and_(m.Workflow.created_at == created, m.Workflow.id < id_),
                )
            )
        query = query.order_by(m.Workflow.created_at.desc(), m.Workflow.id.desc()).limit(size + 1)
        async with self.sessions() as session:
            rows = list((await session.execute(query)).scalars())
        items = [_record(WorkflowRecord, r) for r in rows[:size]]
        next_cursor = None
        if len(rows) > size and items:
            last = items[-1]
            next_cursor = _encode_cursor(last.created_at, last.id)
        return Page(items=items, next_cursor=next_cursor)

    async def count_by_state(self) -> dict[str, int]:
        """How many workflows are in each state."""
        query = select(m.Workflow.state, func.count()).group_by(m.Workflow.state)
        async with self.sessions() as session:
            return {state: int(n) for state, n in (await session.execute(query)).all()}

    async def kv(self, workflow_id: str) -> dict[str, Any]:
        """The workflow's durable state as the embedded engine journaled it (latest values)."""
        query = (
            select(m.JournalEntry.name, m.JournalEntry.payload)
            .where(and_(m.JournalEntry.workflow_id == workflow_id, m.JournalEntry.kind == "set"))
            .order_by(m.JournalEntry.seq)
        )
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return {str(row[0]): servable(row[1]) for row in rows}

    async def add_signal(self, workflow_id: str, name: str, payload: Any, resolved_at: datetime) -> bool:
        """Record the resolved promise ``name`` unless a row for it exists (a retried write):
        ``True`` when this call inserted it. The Restate endpoint's record of a signal (the
        embedded engine writes its ``promises`` rows itself)."""
        async with self.sessions.begin() as session:
            if await session.get(m.Promise, (workflow_id, name)) is not None:
                return False
            session.add(m.Promise(workflow_id=workflow_id, name=name, payload=payload, resolved_at=resolved_at))
        return True

    async def events(self, workflow_id: str) -> builtins.list[WorkflowEventRecord]:
        """The workflow's state changes and waits (``workflow_events``), in the order they happened."""
        e = m.WorkflowEvent
        query = select(e.id, e.at, e.kind, e.data).where(e.workflow_id == workflow_id).order_by(e.id)
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [WorkflowEventRecord(id=r[0], at=r[1], kind=r[2], data=servable(r[3])) for r in rows]

    async def signals(self, workflow_id: str) -> builtins.list[SignalRecord]:
        """The workflow's resolved promises (its signals, on either engine), oldest first."""
        query = (
            select(m.Promise.name, m.Promise.payload, m.Promise.resolved_at)
            .where(and_(m.Promise.workflow_id == workflow_id, m.Promise.resolved_at.is_not(None)))
            .order_by(m.Promise.resolved_at, m.Promise.name)
        )
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [SignalRecord(name=r[0], payload=servable(r[1]), resolved_at=r[2]) for r in rows]


class StepExecutionRepository(_Repository):
    """Step executions of workflows."""

    async def start(
        self,
        *,
        id: str,
        workflow_id: str,
        step_id: str,
        attempt: int,
        iteration: int = 0,
        input: Any = None,
    ) -> None:
        """Record a started attempt."""
        statement = start_step(
            id=id, workflow_id=workflow_id, step_id=step_id, attempt=attempt, iteration=iteration, input=input
        )
        async with self.sessions.begin() as session:
            await session.execute(*statement)

    async def finish(
        self, id: str, *, state: str, output: Any = None, error: Any = None, tokens: int | None = None
    ) -> None:
        """Record how an attempt ended."""
        async with self.sessions.begin() as session:
            await session.execute(*finish_step(id, state=state, output=output, error=error, tokens=tokens))

    async def interrupt_running(self, workflow_id: str, *, session: AsyncSession | None = None) -> None:
        """Mark the attempts of ``workflow_id`` still ``running`` as ``interrupted``: called when
        its run starts again, so they are the leftovers of a process that died. In
        ``session``'s transaction when given, else in one of its own."""
        statement = interrupt_running_steps(workflow_id)
        if session is not None:
            await session.execute(*statement)
            return
        async with self.sessions.begin() as own:
            await own.execute(*statement)

    async def list_for(self, workflow_id: str, *, step_id: str | None = None) -> list[StepExecutionRecord]:
        """A workflow's step executions in the order they started."""
        query = select(m.StepExecution).where(m.StepExecution.workflow_id == workflow_id)
        if step_id is not None:
            query = query.where(m.StepExecution.step_id == step_id)
        query = query.order_by(m.StepExecution.started_at, m.StepExecution.id)
        async with self.sessions() as session:
            return [_record(StepExecutionRecord, r) for r in (await session.execute(query)).scalars()]


class LlmCallRepository(_Repository):
    """LLM calls of workflows."""

    async def record(self, call: LlmCallRecord) -> None:
        """Insert one call."""
        async with self.sessions.begin() as session:
            session.add(m.LlmCall(**call.model_dump()))

    async def settle(self, call: LlmCallRecord) -> None:
        """Record how a call ended: update its pending row, or insert it when there is none."""
        values = call.model_dump(exclude={"id", "workflow_id", "created_at"})
        async with self.sessions.begin() as session:
            done = await session.execute(update(m.LlmCall).where(m.LlmCall.id == call.id).values(**values))
            if getattr(done, "rowcount", 0) == 0:
                session.add(m.LlmCall(**call.model_dump()))

    async def interrupt_pending(self, workflow_id: str, *, session: AsyncSession | None = None) -> None:
        """Settle the calls of ``workflow_id`` still pending as ``interrupted`` (their process
        died). In ``session``'s transaction when given, else in one of its own."""
        statement = interrupt_pending_calls(workflow_id)
        if session is not None:
            await session.execute(*statement)
            return
        async with self.sessions.begin() as own:
            await own.execute(*statement)

    async def list_for(self, workflow_id: str) -> list[LlmCallRecord]:
        """A workflow's calls, oldest first."""
        query = (
            select(m.LlmCall).where(m.LlmCall.workflow_id == workflow_id).order_by(m.LlmCall.created_at, m.LlmCall.id)
        )
        async with self.sessions() as session:
            return [_record(LlmCallRecord, r) for r in (await session.execute(query)).scalars()]

    async def totals(self, workflow_id: str) -> LlmTotals:
        """Sums over a workflow's calls."""
        c = m.LlmCall
        query = select(
            func.count(),
            func.coalesce(func.sum(c.input_tokens), 0),
            func.coalesce(func.sum(c.output_tokens), 0),
            func.coalesce(func.sum(c.cache_creation_tokens), 0),
            func.coalesce(func.sum(c.cache_read_tokens), 0),
            func.coalesce(func.sum(c.latency_ms), 0.0),
            func.coalesce(func.sum(case((c.outcome != "ok", 1), else_=0)), 0),
        ).where(c.workflow_id == workflow_id)
        async with self.sessions() as session:
            n, tin, tout, tcc, tcr, lat, errors = (await session.execute(query)).one()
            # Summed here, not in SQL: SQLite would add the amounts as floats.
            costs = (await session.execute(select(c.cost_usd).where(c.workflow_id == workflow_id))).scalars()
            cost = sum(costs, Decimal(0))
        return LlmTotals(
            calls=int(n),
            errors=int(errors),
            tokens=TokenUsage(input=int(tin), output=int(tout), cache_creation=int(tcc), cache_read=int(tcr)),
            latency_ms=float(lat),
            cost_usd=cost,
        )

    async def usage(self, workflow_ids: Iterable[str]) -> dict[str, LlmUsage]:
        """The exact cost and the tokens (input + output) of each workflow's calls (zero for a
        workflow without calls), in one query."""
        ids = list(dict.fromkeys(workflow_ids))
        found = {wid: LlmUsage() for wid in ids}
        if not ids:
            return found
        c = m.LlmCall
        query = select(c.workflow_id, c.cost_usd, c.input_tokens, c.output_tokens).where(c.workflow_id.in_(ids))
        async with self.sessions() as session:
            # Summed here, not in SQL: SQLite would add the amounts as floats.
            for wid, cost, tin, tout in await session.execute(query):
                seen = found[wid]
                seen.cost_usd += cost
                seen.tokens += int(tin or 0) + int(tout or 0)
        return found

    async def costs(self, workflow_ids: Iterable[str]) -> dict[str, Decimal]:
        """The exact cost of each workflow's calls (0 for a workflow without calls)."""
        return {wid: u.cost_usd for wid, u in (await self.usage(workflow_ids)).items()}

    async def step_costs(self, workflow_id: str) -> dict[str, Decimal]:
        """The exact cost of each step execution (attempt) of a workflow, by execution id."""
        c = m.LlmCall
        found: dict[str, Decimal] = {}
        query = select(c.step_execution_id, c.cost_usd).where(
            and_(c.workflow_id == workflow_id, c.step_execution_id.is_not(None))
        )
        async with self.sessions() as session:
            for execution_id, cost in await session.execute(query):
                key = str(execution_id)
                found[key] = found.get(key, Decimal(0)) + cost
        return found


class ArtifactRepository(_Repository):
    """Artifact metadata."""

    async def add(self, record: ArtifactRecord) -> ArtifactRecord:
        """Insert metadata."""
        async with self.sessions.begin() as session:
            session.add(m.Artifact(**record.model_dump()))
        return record

    async def find(self, workflow_id: str, artifact_id: str) -> ArtifactRecord | None:
        """Metadata of one artifact of a workflow, or ``None``."""
        query = select(m.Artifact).where(and_(m.Artifact.workflow_id == workflow_id, m.Artifact.id == artifact_id))
        async with self.sessions() as session:
            row = (await session.execute(query)).scalar_one_or_none()
            return None if row is None else _record(ArtifactRecord, row)

    async def list_for(self, workflow_id: str) -> list[ArtifactRecord]:
        """A workflow's artifacts, oldest first."""
        query = (
            select(m.Artifact)
            .where(m.Artifact.workflow_id == workflow_id)
            .order_by(m.Artifact.created_at, m.Artifact.id)
        )
        async with self.sessions() as session:
            return [_record(ArtifactRecord, r) for r in (await session.execute(query)).scalars()]

    async def delete(self, workflow_id: str, artifact_id: str) -> bool:
        """Remove metadata; whether it existed."""
        async with self.sessions.begin() as session:
            row = (
                await session.execute(
                    select(m.Artifact).where(and_(m.Artifact.workflow_id == workflow_id, m.Artifact.id == artifact_id))
                )
            ).scalar_one_or_none()
            if row is None:
                return False
            await session.delete(row)
            return True
