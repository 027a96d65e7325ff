"""``/ui/definitions``: every definition — its graph drawn as SVG (a code-first workflow, which
has no graph, lists its steps) — and a form to start a run with the definition's input fields.

The form's fields come from the definition's input model (its JSON schema): a text box per
string, a number box per number, a checkbox per boolean, a text box parsed as JSON for an
untyped field; a JSON textarea takes the whole input instead. It is submitted through
:func:`ecl.api.commands.submit`, the path of ``POST /workflows``; a bad input re-renders the page
(400) with the error naming the field, a good one goes to the new run's page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from ecl.api import commands
from ecl.api.errors import ecl_error_parts
from ecl.api.guard import ApiRoute
from ecl.api.services import Services, services
from ecl.api.ui.forms import read_form
from ecl.api.ui.graph import definition_svg
from ecl.api.ui.rendering import flash, render
from ecl.core.errors import EclError, InputValidationError
from ecl.workflows import WorkflowDefinition, WorkflowEntry, describe

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=ApiRoute)
Svc = Annotated[Services, Depends(services)]
DefinitionId = Annotated[str, Path(max_length=128)]

JSON_FIELD = "input_json"
"""The form's textarea for the whole input as a JSON object (used instead of the fields when given)."""


@dataclass
class InputField:
    """One field of a start form."""

    name: str
    label: str
    kind: str
    """``text``, ``textarea``, ``number``, ``integer``, ``boolean`` or ``json`` (any value, parsed)."""
    required: bool = False
    description: str = ""
    max_length: int | None = None


@dataclass
class DefinitionView:
    """What the page shows of one definition."""

    id: str
    name: str
    description: str
    kind: str
    steps: list[str]
    graph: Markup | None
    fields: list[InputField]
    error: str | None = None
    problems: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)


def _types(prop: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    if isinstance(prop.get("type"), str):
        found.add(prop["type"])
    for option in prop.get("anyOf", []):
        if isinstance(option, dict) and isinstance(option.get("type"), str):
            found.add(option["type"])
    return found - {"null"}


def input_fields(entry: WorkflowEntry) -> list[InputField]:
    """The start form's fields from the definition's input model."""
    schema = entry.input_model.model_json_schema() if entry.input_model is not None else {}
    required = set(schema.get("required", []))
    fields: list[InputField] = []
    for name, prop in schema.get("properties", {}).items():
        if not isinstance(prop, dict):
            continue
        types = _types(prop)
        max_length = prop.get("maxLength") if isinstance(prop.get("maxLength"), int) else None
        if types == {"string"}:
            kind = "textarea" if max_length is not None and max_length > 200 else "text"
        elif types == {"boolean"}:
            kind = "boolean"
        elif types in ({"integer"}, {"number"}, {"integer", "number"}):
            kind = "integer" if types == {"integer"} else "number"
        else:
            kind = "json"
        fields.append(
            InputField(
                name=name,
                label=str(prop.get("title") or name.replace("_", " ").capitalize()),
                kind=kind,
                required=name in required,
                description=str(prop.get("description") or ""),
                max_length=max_length,
            )
        )
    return fields


def _parse(fields: list[InputField], form: dict[str, str]) -> dict[str, Any]:
    """The input a submitted form describes (the JSON textarea, if given, else the fields)."""
    raw = form.get(JSON_FIELD, "").strip()
    if raw:
        try:
            given: Any = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputValidationError(
                f"input JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                errors=[{"field": JSON_FIELD, "message": f"not JSON: {exc.msg}"}],
            ) from None
        if not isinstance(given, dict):
            raise InputValidationError(
                "input JSON must be an object", errors=[{"field": JSON_FIELD, "message": "must be an object"}]
            )
        return given
    data: dict[str, Any] = {}
    for f in fields:
        text = form.get(f.name)
        if f.kind == "boolean":
            if text is not None:
                data[f.name] = True
            continue
        if text is None or text.strip() == "":
            continue
        if f.kind in ("integer", "number"):
            try:
                data[f.name] = int(text) if f.kind == "integer" else float(text)
            except ValueError:
                raise InputValidationError(
                    f"{f.name}: {text[:40]!r} is not a number",
                    errors=[{"field": f.name, "message": "not a number", "value": text[:40]}],
                ) from None
        elif f.kind == "json":
            try:
                data[f.name] = json.loads(text)
            except json.JSONDecodeError:
                data[f.name] = text
        else:
            data[f.name] = text
    return data


def _view(entry: WorkflowEntry) -> DefinitionView:
    described = describe(entry)
    return DefinitionView(
        id=entry.id,
        name=entry.name,
        description=entry.description,
        kind=str(described.get("kind", "graph")),
        steps=[str(s.get("step_id")) for s in described.get("steps", [])],
        graph=definition_svg(entry) if isinstance(entry, WorkflowDefinition) else None,
        fields=input_fields(entry),
    )


def _views(svc: Services) -> list[DefinitionView]:
    """Every definition, graphs first (the built-in critique-revise leads)."""
    views = [_view(d) for d in svc.definitions.list()]
    return sorted(views, key=lambda v: (v.kind != "graph", v.id))


@router.get("/definitions")
async def definitions(request: Request, svc: Svc) -> Response:
    """Every definition: graph and start form."""
    views = _views(svc)
    return render(request, "definitions.html", title="Definitions", views=views)


@router.post("/definitions/{definition_id}/start")
async def start(request: Request, definition_id: DefinitionId, svc: Svc) -> Response:
    """Start a run from the form; on to its page, or back to the form naming the bad field."""
    form = await read_form(request)
    views = _views(svc)
    view = next((v for v in views if v.id == definition_id), None)
    try:
        if view is None:
            svc.definitions.get(definition_id)  # raises the API's DEFINITION_NOT_FOUND
            raise InputValidationError(f"unknown definition {definition_id!r}")
        record, _created = await commands.submit(svc, definition_id, _parse(view.fields, form))
    except EclError as exc:
        status, code, message, details = ecl_error_parts(exc)
        if view is None:
            return render(request, "error.html", status=status, title="Cannot start", message=f"{message} ({code})")
        view.error = f"{message} ({code})"
        for problem in details.get("errors", []):
            name = str(problem.get("field", "")).removeprefix("input.")
            view.problems[name] = str(problem.get("message", ""))
        view.values = {k: v for k, v in form.items() if k != "csrf_token"}
        return render(request, "definitions.html", status=status, title="Definitions", views=views, focus=view.id)
    response = RedirectResponse(f"/ui/runs/{record.id}", status_code=303)
    flash(response, f"Started run {record.id} of {definition_id}.")
    return response
