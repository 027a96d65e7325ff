"""``/ui``: the runs — a table of one page of workflows (newest first), filtered by state and
definition, with cursor pagination and the actions that apply to each row.

The rows come from the same repository calls as ``GET /workflows`` (one page, its usage in one
query). ``runs.js`` refreshes the rows every few seconds by fetching this page's rows again
(``?partial=rows``: the ``<tbody>`` alone) and replacing those that changed; without
JavaScript the page is complete and a reload shows the news.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ecl.api.errors import ecl_error_parts
from ecl.api.guard import ApiRoute
from ecl.api.services import Services, services
from ecl.api.ui.rendering import render
from ecl.core.errors import EclError
from ecl.core.state import WorkflowState, parse_state
from ecl.store.repositories import MAX_PAGE, LlmUsage, Page

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=ApiRoute)
Svc = Annotated[Services, Depends(services)]


@router.get("")
async def runs(
    request: Request,
    svc: Svc,
    state: Annotated[str, Query(max_length=40)] = "",
    definition_id: Annotated[str, Query(max_length=128)] = "",
    cursor: Annotated[str, Query(max_length=512)] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    partial: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """One page of runs (``partial=rows``: only the table's body, for the live refresh)."""
    error = None
    status = 200
    page = Page(items=[])
    usage: dict[str, LlmUsage] = {}
    try:
        wanted = parse_state(state) if state else None
        page = await svc.workflows.list(
            state=wanted, definition_id=definition_id or None, limit=limit, cursor=cursor or None
        )
        usage = await svc.llm_calls.usage(w.id for w in page.items)
    except EclError as exc:
        status, _code, error, _details = ecl_error_parts(exc)
    filters = {"state": state, "definition_id": definition_id, "limit": limit}
    back = "/ui?" + urlencode({**filters, "cursor": cursor}) if cursor or state or definition_id else "/ui"
    return render(
        request,
        "runs_rows.html" if partial == "rows" else "runs.html",
        status=status,
        fragment=partial == "rows",
        title="Runs",
        error=error,
        page=page,
        usage=usage,
        filters=filters,
        cursor=cursor,
        back=back,
        states=[s.value for s in WorkflowState],
        definitions=svc.definitions.ids(),
    )
