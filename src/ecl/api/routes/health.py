"""Health checks and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from sqlalchemy import func, select

from ecl.api.models import Health
from ecl.api.services import Services, services
from ecl.engines.restate import RestateEngine
from ecl.store import models as m

__all__ = ["router"]

router = APIRouter(tags=["health"])
Svc = Annotated[Services, Depends(services)]


@router.get("/health/live")
async def live() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/health/ready", responses={503: {"model": Health}})
async def ready(svc: Svc) -> Response:
    """The database and the engine answer."""
    checks: dict[str, str] = {}
    try:
        await svc.workflows.count_by_state()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    if isinstance(svc.engine, RestateEngine):
        checks["engine"] = "ok" if await svc.engine.reachable() else f"restate unreachable at {svc.engine.admin}"
    else:
        checks["engine"] = "ok" if svc.engine.started else "not started"
    ok = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(svc: Svc) -> Response:
    """Prometheus metrics, computed from the records: workflows by state, step durations,
    LLM calls, tokens and errors by kind."""
    registry = CollectorRegistry()
    by_state = Gauge("ecl_workflows", "Workflows by state", ["state"], registry=registry)
    for state, count in (await svc.workflows.count_by_state()).items():
        by_state.labels(state=state).set(count)
    sessions = svc.workflows.sessions
    calls = Gauge("ecl_llm_calls", "LLM calls by provider and outcome", ["provider", "outcome"], registry=registry)
    tokens = Gauge("ecl_llm_tokens", "LLM tokens by kind", ["kind"], registry=registry)
    errors = Gauge("ecl_llm_errors", "LLM errors by kind", ["kind"], registry=registry)
    steps = Gauge("ecl_step_duration_seconds_sum", "Total step time by step", ["step_id"], registry=registry)
    step_count = Gauge(
        "ecl_step_executions", "Step executions by step and state", ["step_id", "state"], registry=registry
    )
    c = m.LlmCall
    s = m.StepExecution
    async with sessions() as session:
        for provider, outcome, n in await session.execute(
            select(c.provider, c.outcome, func.count()).group_by(c.provider, c.outcome)
        ):
            calls.labels(provider=provider, outcome=outcome).set(n)
        row = (
            await session.execute(
                select(
                    func.coalesce(func.sum(c.input_tokens), 0),
                    func.coalesce(func.sum(c.output_tokens), 0),
                    func.coalesce(func.sum(c.cache_creation_tokens), 0),
                    func.coalesce(func.sum(c.cache_read_tokens), 0),
                )
            )
        ).one()
        for kind, value in zip(("input", "output", "cache_creation", "cache_read"), row, strict=True):
            tokens.labels(kind=kind).set(value)
        for error_kind, n in await session.execute(
            select(c.error_kind, func.count()).where(c.error_kind.is_not(None)).group_by(c.error_kind)
        ):
            errors.labels(kind=str(error_kind)).set(n)
        for step_id, state, n in await session.execute(
            select(s.step_id, s.state, func.count()).group_by(s.step_id, s.state)
        ):
            step_count.labels(step_id=step_id, state=state).set(n)
        for step_id, started, completed in await session.execute(
            select(s.step_id, s.started_at, s.completed_at).where(s.completed_at.is_not(None))
        ):
            if completed is not None:
                steps.labels(step_id=step_id).inc((completed - started).total_seconds())
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
