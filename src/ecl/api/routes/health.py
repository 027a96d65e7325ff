"""Health checks and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from ecl.api.guard import ApiRoute
from ecl.api.models import Health
from ecl.api.services import Services, services
from ecl.observability import metrics as instruments

__all__ = ["router"]

router = APIRouter(tags=["health"], route_class=ApiRoute)
Svc = Annotated[Services, Depends(services)]


@router.get("/health/live")
async def live() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/health/ready", responses={503: {"model": Health}})
async def ready(svc: Svc) -> Response:
    """The database and the engine answer; the LLM circuit breakers' states (an open one makes
    the service ``degraded``, still 200: workflows wait for it rather than fail)."""
    checks: dict[str, str] = {}
    try:
        await svc.workflows.count_by_state()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["engine"] = await svc.engine.health()
    ok = all(v == "ok" for v in checks.values())
    breakers = svc.breakers.snapshot() if svc.breakers is not None else {}
    degraded = ok and svc.breakers is not None and svc.breakers.degraded
    status = "degraded" if degraded else ("ok" if ok else "unavailable")
    body = Health(status=status, checks=checks, breakers=breakers)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(svc: Svc) -> Response:
    """Prometheus metrics: ECL's instruments (LLM calls, tokens, cost, latency; step attempts
    and durations; circuit breakers), updated as things happen, plus workflows by state, read
    from the database."""
    registry = CollectorRegistry()
    by_state = Gauge("ecl_workflows", "Workflows by state", ["state"], registry=registry)
    for state, count in (await svc.workflows.count_by_state()).items():
        by_state.labels(state=state).set(count)
    body = generate_latest(instruments.REGISTRY) + generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
