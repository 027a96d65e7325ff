"""The actions on a run, as POST forms: approve, revise with feedback, cancel, run again.

Each goes through :mod:`ecl.api.commands` — the calls ``POST /workflows/{id}/signal``,
``DELETE /workflows/{id}`` and ``POST /workflows`` make — and reports its result as a message
on the page it returns to (an API error as its message and code). A form that arrives without
``confirmed=yes`` (the confirmation dialog adds it; without JavaScript there is none) is answered
with a confirmation page instead of acting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response

from ecl.api import commands
from ecl.api.errors import ecl_error_parts
from ecl.api.guard import ApiRoute
from ecl.api.services import Services, services
from ecl.api.ui.forms import read_form, safe_back
from ecl.api.ui.rendering import flash, render
from ecl.core.errors import EclError
from ecl.store.repositories import WorkflowRecord

__all__ = ["router"]

router = APIRouter(prefix="/ui/runs", include_in_schema=False, route_class=ApiRoute)
Svc = Annotated[Services, Depends(services)]
RunId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]

_QUESTIONS = {
    "approve": ("Approve", "Approve run {id}? It goes on to its final step."),
    "revise": ("Revise", "Send run {id} back for a revision with your feedback?"),
    "cancel": ("Cancel the run", "Cancel run {id}? It stops for good."),
    "rerun": ("Run again", "Start a new run of the same definition with the same input as {id}?"),
}


async def _act(
    request: Request,
    workflow_id: str,
    verb: str,
    do: Callable[[dict[str, str]], Awaitable[WorkflowRecord]],
    done: Callable[[WorkflowRecord], str],
) -> Response:
    fields = await read_form(request)
    back = safe_back(fields.get("back"), f"/ui/runs/{workflow_id}")
    if fields.get("confirmed") != "yes":
        button, question = _QUESTIONS[verb]
        keep = {k: v for k, v in fields.items() if k in ("back", "feedback")}
        return render(
            request,
            "confirm.html",
            title="Confirm",
            question=question.format(id=workflow_id),
            verb=button,
            action=request.url.path,
            fields=keep,
            back=back,
        )
    try:
        record = await do(fields)
    except EclError as exc:
        _status, code, message, _details = ecl_error_parts(exc)
        response = RedirectResponse(back, status_code=303)
        flash(response, f"{message} ({code})", kind="error")
        return response
    response = RedirectResponse(back if verb != "rerun" else f"/ui/runs/{record.id}", status_code=303)
    flash(response, done(record))
    return response


@router.post("/{workflow_id}/approve")
async def approve(request: Request, workflow_id: RunId, svc: Svc) -> Response:
    """Approve a run waiting for approval."""

    async def do(_fields: dict[str, str]) -> WorkflowRecord:
        return await commands.signal(svc, workflow_id, decision="approve")

    return await _act(
        request, workflow_id, "approve", do, lambda r: f"Approved run {r.id}; it goes on to its final step."
    )


@router.post("/{workflow_id}/revise")
async def revise(request: Request, workflow_id: RunId, svc: Svc) -> Response:
    """Send a run waiting for approval back for a revision, with feedback."""

    async def do(fields: dict[str, str]) -> WorkflowRecord:
        feedback = fields.get("feedback", "").strip() or None
        return await commands.signal(svc, workflow_id, decision="revise", feedback=feedback)

    return await _act(
        request, workflow_id, "revise", do, lambda r: f"Sent run {r.id} back for a revision with your feedback."
    )


@router.post("/{workflow_id}/cancel")
async def cancel(request: Request, workflow_id: RunId, svc: Svc) -> Response:
    """Cancel a run."""

    async def do(_fields: dict[str, str]) -> WorkflowRecord:
        return await commands.cancel(svc, workflow_id)

    return await _act(
        request, workflow_id, "cancel", do, lambda r: f"Cancelled run {r.id} (now {r.state.value.replace('_', ' ')})."
    )


@router.post("/{workflow_id}/rerun")
async def rerun(request: Request, workflow_id: RunId, svc: Svc) -> Response:
    """Start a new run with the same definition and input."""

    async def do(_fields: dict[str, str]) -> WorkflowRecord:
        return await commands.rerun(svc, workflow_id)

    return await _act(
        request, workflow_id, "rerun", do, lambda r: f"Started run {r.id} with the same input as {workflow_id}."
    )
