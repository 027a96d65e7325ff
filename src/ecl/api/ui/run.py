"""``/ui/runs/{workflow_id}``: one run in detail.

The page shows the run's header (state, definition, started, duration, tokens, cost, what it
waits for now, the error of a failed run), the actions that apply, the decision trace
(:func:`ecl.store.trace.trace`), the step timeline (:mod:`.timeline`), the revision rounds
with a diff between successive drafts (:mod:`.diff`), each LLM call (with its prompt and
reply when they were captured), and the artifacts with a preview (:mod:`.preview`) and a
download link to ``GET /workflows/{id}/artifacts/{aid}``.

It reads the same repositories as the JSON API's ``/workflows/{id}``, ``/steps``,
``/llm-calls`` and ``/artifacts``. ``run.js`` keeps an unfinished run's page live: on each
server-sent event of ``GET /workflows/{id}/events`` it fetches ``/ui/runs/{id}/fragment``
(the page's main part alone) and swaps it in; without JavaScript the page is complete and a
reload shows the news. An unknown id is a 404 page naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ecl.api.guard import ApiRoute
from ecl.api.services import Services, services
from ecl.api.ui.diff import rounds
from ecl.api.ui.preview import Preview, head, is_text, preview
from ecl.api.ui.rendering import render
from ecl.api.ui.timeline import layout, svg
from ecl.artifacts.store import Artifact
from ecl.core.errors import NotFoundError
from ecl.core.waiting import describe_wait
from ecl.store.trace import DECISION_KINDS, read_run

__all__ = ["MAX_PREVIEWS", "router"]

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=ApiRoute)
Svc = Annotated[Services, Depends(services)]

MAX_PREVIEWS = 20
"""At most this many artifacts of a run are previewed on its page (all are listed)."""


@dataclass(frozen=True, slots=True)
class _Shown:
    """An artifact and what the page shows of it."""

    artifact: Artifact
    preview: Preview


async def _view(svc: Services, workflow_id: str) -> dict[str, Any]:
    """Everything the page shows of one run (a :class:`NotFoundError` for an unknown id)."""
    records = await read_run(svc.workflows, svc.steps, svc.llm_calls, workflow_id)
    run, steps, calls, totals, step_costs = (
        records.workflow,
        records.steps,
        records.calls,
        records.totals,
        records.step_costs,
    )
    artifacts = await svc.store.list(workflow_id)
    events = records.trace()
    timeline = layout(steps, now=run.completed_at)
    attempt_of = {s.id: s for s in steps}
    shown: list[_Shown] = []
    for n, artifact in enumerate(artifacts):
        content = None
        if n < MAX_PREVIEWS and is_text(artifact.content_type, artifact.name):
            content = await head(svc.store, workflow_id, artifact.id)
        shown.append(_Shown(artifact, preview(artifact.content_type, artifact.name, content, artifact.size)))
    return {
        "run": run,
        "state": run.state.value,
        "live": not run.state.is_terminal,
        "wait": describe_wait(run.waiting) if isinstance(run.waiting, dict) else None,
        "totals": totals,
        "steps": steps,
        "step_costs": step_costs,
        "events": events,
        "decision_kinds": DECISION_KINDS,
        "timeline": timeline,
        "timeline_svg": svg(timeline, title=f"Step timeline of run {workflow_id}"),
        "rounds": rounds(steps, events),
        "calls": calls,
        "attempt_of": attempt_of,
        "artifacts": shown,
    }


def _not_found(request: Request, workflow_id: str) -> Response:
    return render(
        request,
        "error.html",
        status=404,
        title="Run not found",
        message=f"There is no run with id {workflow_id!r}.",
        back="/ui",
    )


@router.get("/runs/{workflow_id}")
async def run_page(request: Request, workflow_id: str, svc: Svc) -> Response:
    """The run page."""
    try:
        view = await _view(svc, workflow_id)
    except NotFoundError:
        return _not_found(request, workflow_id)
    return render(request, "run.html", title=f"Run {workflow_id}", **view)


@router.get("/runs/{workflow_id}/fragment")
async def run_fragment(request: Request, workflow_id: str, svc: Svc) -> Response:
    """The page's main part alone, for ``run.js`` to swap in when the run moves on."""
    try:
        view = await _view(svc, workflow_id)
    except NotFoundError:
        return _not_found(request, workflow_id)
    return render(request, "_run.html", fragment=True, **view)
