"""``/definitions``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ecl.api.guard import ApiRoute
from ecl.api.models import DefinitionOut
from ecl.api.services import Services, services
from ecl.workflows import WorkflowEntry, describe

__all__ = ["router"]

router = APIRouter(prefix="/definitions", tags=["definitions"], route_class=ApiRoute)
Svc = Annotated[Services, Depends(services)]


def _out(defn: WorkflowEntry) -> DefinitionOut:
    data = describe(defn)
    return DefinitionOut(
        id=defn.id,
        name=defn.name,
        description=defn.description,
        steps=data["steps"],
        transitions=data["transitions"],
    )


@router.get("")
async def list_definitions(svc: Svc) -> list[DefinitionOut]:
    """Every definition."""
    return [_out(d) for d in svc.definitions.list()]


@router.get("/{definition_id}")
async def get_definition(definition_id: str, svc: Svc) -> DefinitionOut:
    """One definition."""
    return _out(svc.definitions.get(definition_id))
