"""``/ui/definitions``: every definition, its graph and a form to start a run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ecl.api.services import Services, services
from ecl.api.ui.rendering import render
from ecl.workflows import describe

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)
Svc = Annotated[Services, Depends(services)]


@router.get("/definitions")
async def definitions(request: Request, svc: Svc) -> Response:
    """Every definition."""
    entries = [describe(d) for d in svc.definitions.list()]
    return render(request, "definitions.html", title="Definitions", entries=entries)
