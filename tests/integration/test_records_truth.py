"""Records that tell the truth: what a cancelled workflow keeps, on a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select, text

from ecl.core import WorkflowState
from ecl.engines.embedded import EmbeddedEngine, EmbeddedOptions
from ecl.llm import CompletionRequest, CompletionResponse, MockLlmProvider
from ecl.llm.mock import scripted_workflow_responder
from ecl.store.database import create_sync_engine, upgrade
from ecl.store.models import Base
from ecl.workflows import DefinitionRegistry, WorkflowOrchestrator, builtin_steps

FAST = EmbeddedOptions(lease_seconds=2.0, heartbeat_seconds=0.2, promise_poll_seconds=0.02, worker_poll_seconds=0.05)


class HeldCritique(MockLlmProvider):
    """Answers like the scripted mock, but holds every critique request until released."""

    def __init__(self) -> None:
        super().__init__(responder=scripted_workflow_responder)
        self.critique_arrived = asyncio.Event()

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        if '"decision"' in "\n".join(m.content for m in request.messages) + (request.system_prompt or ""):
            self.critique_arrived.set()
            await asyncio.Event().wait()  # never answered: the workflow is cancelled meanwhile
        return await super().complete(request)


@pytest.fixture
async def engine(server_url: str) -> AsyncIterator[tuple[EmbeddedEngine, HeldCritique, str]]:
    upgrade(server_url)
    llm = HeldCritique()
    orchestrator = WorkflowOrchestrator(DefinitionRegistry.with_builtins(), builtin_steps(), llm)
    eng = await EmbeddedEngine(
        create_sync_engine(server_url), dict(Base.metadata.tables), orchestrator, options=FAST
    ).start()
    try:
        yield eng, llm, server_url
    finally:
        await eng.close()


def _stored(url: str, workflow_id: str) -> Any:
    db = create_sync_engine(url)
    workflows = Base.metadata.tables["workflows"]
    try:
        with db.connect() as conn:
            return conn.execute(select(workflows).where(workflows.c.id == workflow_id)).one()
    finally:
        db.dispose()


async def test_a_cancelled_workflow_keeps_its_outputs_steps_and_tokens(
    engine: tuple[EmbeddedEngine, HeldCritique, str],
) -> None:
    eng, llm, url = engine
    wid = await eng.submit("critique-revise", {"topic": "cancelled"})
    await asyncio.wait_for(llm.critique_arrived.wait(), 120)  # generate completed, critique in flight
    await eng.cancel(wid)
    result = await eng.result(wid)
    row = _stored(url, wid)
    assert row.state == "cancelled"
    for kept in (result.model_dump(mode="json"), row.output):
        assert kept["state"] == "cancelled"
        assert set(kept["outputs"]) == {"generate"}
        assert kept["outputs"]["generate"]["draft"]
        assert [s["step_id"] for s in kept["steps"]] == ["generate"]
        assert kept["steps"][0]["llm_calls"] == 1
        tokens = kept["tokens"]
        assert tokens["input"] + tokens["output"] > 0
    assert result.state is WorkflowState.CANCELLED
    assert result.error == {"type": "WorkflowCancelled", "message": "cancelled"}


async def test_a_cancelled_attempt_and_its_request_in_flight_are_settled(
    engine: tuple[EmbeddedEngine, HeldCritique, str],
) -> None:
    eng, llm, url = engine
    wid = await eng.submit("critique-revise", {"topic": "cut short"})
    await asyncio.wait_for(llm.critique_arrived.wait(), 120)
    await eng.cancel(wid)
    await eng.result(wid)
    db = create_sync_engine(url)
    try:
        with db.connect() as conn:
            steps = conn.execute(
                text("SELECT step_id, state FROM step_executions WHERE workflow_id = :w ORDER BY started_at"),
                {"w": wid},
            ).all()
            calls = conn.execute(
                text("SELECT outcome FROM llm_calls WHERE workflow_id = :w ORDER BY created_at"), {"w": wid}
            ).all()
    finally:
        db.dispose()
    assert [tuple(r) for r in steps] == [("generate", "completed"), ("critique", "interrupted")]
    assert [r[0] for r in calls] == ["ok", "interrupted"]  # the critique request was sent: it has a row
