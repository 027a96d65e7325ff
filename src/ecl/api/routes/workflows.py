"""``/workflows``: submit, list, inspect, signal, cancel, follow, download artifacts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from ecl.api import commands
from ecl.api.guard import ApiRoute
from ecl.api.models import (
    ArtifactOut,
    LlmCallOut,
    LlmCallsOut,
    SignalIn,
    StepOut,
    SubmitIn,
    WorkflowList,
    WorkflowOut,
)
from ecl.api.services import Services, services
from ecl.core.errors import NotFoundError
from ecl.core.state import parse_state
from ecl.store.outage import ride_out
from ecl.store.repositories import LlmUsage
from ecl.store.trace import DECISION_KINDS, trace

__all__ = ["router"]

router = APIRouter(prefix="/workflows", tags=["workflows"], route_class=ApiRoute)
Svc = Annotated[Services, Depends(services)]
WORKFLOW_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


_JSON = "application/json"


def _out(record: Any, usage: LlmUsage | None = None) -> WorkflowOut:
    out = WorkflowOut.model_validate(record.model_dump())
    if usage is not None:
        out.cost_usd = usage.cost_usd
        out.tokens = usage.tokens
    return out


@router.post("", status_code=201, response_model=WorkflowOut, responses={200: {"model": WorkflowOut}, 409: {}})
async def submit(body: SubmitIn, request: Request) -> Response:
    """Start a workflow. With ``workflow_id``, the same id and body return the existing workflow
    (200); the same id with a different body is a 409. An input that does not satisfy the
    definition's input model is a 400 naming the field."""
    # The services straight from the app, not through ``Svc``: one dependency fewer for FastAPI
    # to solve on the busiest operation.
    svc: Services = request.app.state.services
    record, created = await commands.submit(svc, body.definition_id, body.input, body.workflow_id)
    # Serialised by pydantic at once (FastAPI would validate it again, then encode a dict).
    return Response(_out(record).model_dump_json(), status_code=201 if created else 200, media_type=_JSON)


@router.get("")
async def list_workflows(
    svc: Svc,
    state: Annotated[str | None, Query(description="Filter by state")] = None,
    definition_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> WorkflowList:
    """Workflows, newest first, a page at a time (``next_cursor`` continues)."""
    wanted = parse_state(state) if state else None
    page = await svc.workflows.list(state=wanted, definition_id=definition_id, limit=limit, cursor=cursor)
    usage = await svc.llm_calls.usage(w.id for w in page.items)
    return WorkflowList(items=[_out(w, usage[w.id]) for w in page.items], next_cursor=page.next_cursor)


@router.get("/{workflow_id}")
async def get_workflow(workflow_id: str, svc: Svc) -> WorkflowOut:
    """One workflow."""
    record = await svc.workflows.get(workflow_id)
    return _out(record, (await svc.llm_calls.usage([workflow_id]))[workflow_id])


@router.get("/{workflow_id}/steps")
async def list_steps(workflow_id: str, svc: Svc) -> list[StepOut]:
    """Its step executions, in order."""
    await svc.workflows.get(workflow_id)
    costs = await svc.llm_calls.step_costs(workflow_id)
    return [
        StepOut.model_validate({**s.model_dump(), "cost_usd": costs.get(s.id, Decimal(0))})
        for s in await svc.steps.list_for(workflow_id)
    ]


@router.get("/{workflow_id}/llm-calls")
async def list_llm_calls(workflow_id: str, svc: Svc) -> LlmCallsOut:
    """Its LLM calls (tokens, latency, outcome) and totals."""
    await svc.workflows.get(workflow_id)
    calls = await svc.llm_calls.list_for(workflow_id)
    totals = await svc.llm_calls.totals(workflow_id)
    return LlmCallsOut(
        items=[LlmCallOut.model_validate(c.model_dump()) for c in calls],
        calls=totals.calls,
        errors=totals.errors,
        tokens=totals.tokens,
        latency_ms=totals.latency_ms,
        cost_usd=totals.cost_usd,
    )


@router.get("/{workflow_id}/artifacts")
async def list_artifacts(workflow_id: str, svc: Svc) -> list[ArtifactOut]:
    """Its artifacts."""
    await svc.workflows.get(workflow_id)
    return [ArtifactOut.model_validate(a.model_dump()) for a in await svc.store.list(workflow_id)]


@router.get("/{workflow_id}/artifacts/{artifact_id}/metadata")
async def artifact_metadata(workflow_id: str, artifact_id: str, svc: Svc) -> ArtifactOut:
    """One artifact's metadata."""
    return ArtifactOut.model_validate((await svc.store.get(workflow_id, artifact_id)).model_dump())


@router.get(
    "/{workflow_id}/artifacts/{artifact_id}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_artifact(workflow_id: str, artifact_id: str, svc: Svc) -> StreamingResponse:
    """The artifact's content, streamed, with its content type."""
    meta = await svc.store.get(workflow_id, artifact_id)
    chunks = svc.store.open(workflow_id, artifact_id)
    try:
        # The store checks size and sha256 before the first chunk: a missing or corrupted
        # file fails with 404/500 before the response (and its content-length) starts.
        first = await anext(chunks, b"")
    except BaseException:
        await chunks.aclose()
        raise

    async def body() -> AsyncIterator[bytes]:
        # Closing the chunks closes the file now, also when the client goes away mid-stream.
        async with contextlib.aclosing(chunks):
            if first:
                yield first
            async for chunk in chunks:
                yield chunk

    safe_name = "".join(c for c in meta.name if c.isalnum() or c in "._-") or "artifact"
    return StreamingResponse(
        body(),
        media_type=meta.content_type,
        headers={
            "content-length": str(meta.size),
            "content-disposition": f'attachment; filename="{safe_name}"',
        },
    )


@router.delete("/{workflow_id}")
async def cancel(workflow_id: str, svc: Svc) -> WorkflowOut:
    """Cancel it, whatever it is doing."""
    return _out(await commands.cancel(svc, workflow_id))


@router.post("/{workflow_id}/signal", status_code=202)
async def signal(workflow_id: str, body: SignalIn, svc: Svc) -> WorkflowOut:
    """Resolve a durable promise: ``{"decision": "approve"}`` or ``{"decision": "revise",
    "feedback": "..."}`` for human approval, or any ``payload`` for a named promise."""
    record = await commands.signal(
        svc, workflow_id, name=body.name, decision=body.decision, feedback=body.feedback, payload=body.payload
    )
    return _out(record)


@router.get(
    "/{workflow_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    workflow_id: str,
    svc: Svc,
    interval: Annotated[float, Query(ge=0.05, le=10)] = 0.5,
) -> StreamingResponse:
    """Server-sent events as the run progresses: ``step`` (an attempt changed state), the
    decisions in order — ``verdict`` (a critique's pass/revise and feedback), ``revision`` (a
    revision round begins), ``signal`` (an approve/revise answer or budget top-up, with its
    payload), ``waiting`` (a wait begins: what it waits for), ``waited`` (a wait is over: how
    long it lasted) — and ``state``; then ``end``."""
    await svc.workflows.get(workflow_id)

    async def stream() -> AsyncIterator[bytes]:
        seen: dict[str, str] = {}
        told: set[str] = set()
        last_state = ""

        async def read() -> tuple[Any, list[Any], list[Any], list[Any]]:
            workflow = await svc.workflows.get(workflow_id)
            steps = await svc.steps.list_for(workflow_id)
            return workflow, steps, await svc.workflows.signals(workflow_id), await svc.workflows.events(workflow_id)

        while True:
            try:
                # The headers are sent: a database outage cannot be a 503 any more, so the
                # stream waits for the database (as the workflow does) instead of breaking.
                workflow, steps, signals, changes = await ride_out(read)
            except NotFoundError:
                return
            for step in steps:
                if seen.get(step.id) != step.state:
                    seen[step.id] = step.state
                    yield _sse("step", step.model_dump(mode="json", exclude={"input"}))
            for event in trace(workflow, steps, signals=signals, events=changes):
                if event["kind"] in DECISION_KINDS and event["id"] not in told:
                    told.add(event["id"])
                    yield _sse(event["kind"], event)
            if workflow.state.value != last_state:
                last_state = workflow.state.value
                yield _sse("state", {"workflow_id": workflow_id, "state": last_state})
            if workflow.state.is_terminal:
                yield _sse("end", _out(workflow).model_dump(mode="json"))
                return
            await asyncio.sleep(interval)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()
