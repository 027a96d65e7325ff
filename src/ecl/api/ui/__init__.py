"""The web dashboard at ``/ui``, served by ``ecl server start`` in the API's own app.

Server-rendered with Jinja2 (autoescape on), plus a little vanilla JavaScript shipped in
``static/`` (no build step, no CDN; the pages work without it). Pages:

- ``/ui/login``, ``/ui/logout`` (:mod:`.login`): the API key in, a session cookie out;
- ``/ui`` (:mod:`.runs`): the runs, filtered, paginated, live;
- ``/ui/runs/{id}/approve|revise|cancel|rerun`` (:mod:`.actions`): the actions, POST forms;
- ``/ui/definitions`` (:mod:`.definitions`): each definition's graph as SVG and a form to start a run;
- ``/ui/runs/{id}`` (:mod:`.run`): one run in detail — its decisions, step timeline, revision
  rounds with diffs, LLM calls and artifacts — live over the run's server-sent events.

Access (:mod:`ecl.api.auth`, enforced by :class:`ecl.api.guard.RequestGuard` before routing):
with an API key configured, a page without a session redirects (303) to ``/ui/login``; the
session cookie (:mod:`ecl.api.session`) also opens ``GET`` requests of the JSON API to the pages'
scripts. Without a key the dashboard is open, like the API. ``/ui/static/`` is public.

**Adding a page**

1. A module here with ``router = APIRouter(prefix="/ui", include_in_schema=False,
   route_class=ApiRoute)`` (:class:`ecl.api.guard.ApiRoute`: unknown query parameters refused) and its
   routes; include the router in :func:`install_ui` below (before the static mount is fine).
2. A template in ``templates/`` that starts with ``{% extends "base.html" %}`` and fills the
   blocks ``title`` (optional: the ``title`` variable is used by default), ``content`` and
   ``scripts`` (``<script src="/ui/static/x.js" defer></script>``); ``{% set nav = "runs" %}``
   marks the current menu entry.
3. Render it with :func:`ecl.api.ui.rendering.render` (``render(request, "x.html", title=...,
   **values)``), which adds ``csrf_token``, ``csrf_input()``, ``login``, ``signed_in``, ``flash``, ``path``
   and sets the security headers.
4. A form that changes something is ``method="post"`` with ``{{ csrf_input() }}`` inside; its
   route reads it with :func:`ecl.api.ui.forms.read_form` (CSRF token and ``Origin`` checked;
   a refusal is a 403 page). Scripts find the token in ``<meta name="csrf-token">``.
5. The actions on a run: ``{% from "_actions.html" import actions with context %}`` then
   ``{{ actions(run, back="/ui/runs/" ~ run.id) }}``.

The Content-Security-Policy allows scripts only from ``/ui/static`` (no inline scripts or
event attributes); inline ``style`` attributes are allowed.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from ecl.api.auth import is_ui
from ecl.api.ui import actions, definitions, login, run, runs
from ecl.api.ui.forms import FormRefused, safe_back
from ecl.api.ui.rendering import render

__all__ = ["STATIC_DIR", "install_ui"]

STATIC_DIR = Path(__file__).parent / "static"
"""The dashboard's CSS and JavaScript."""


_TITLES = {400: "Bad request", 404: "Not found", 405: "Not allowed", 409: "Conflict", 503: "Unavailable"}


def _as_page(handler: Callable[..., Any]) -> Callable[[Request, Exception], Any]:
    """The API's error handler, but a dashboard path gets its error as a page (same message and code)."""

    async def answer(request: Request, exc: Exception) -> Response:
        response = handler(request, exc)
        if inspect.isawaitable(response):
            response = await response
        if not is_ui(request.url.path) or not isinstance(response, JSONResponse):
            return response  # type: ignore[no-any-return]
        try:
            error = json.loads(bytes(response.body))["error"]
            message = f"{error['message']} ({error['code']})"
        except (ValueError, KeyError, TypeError):
            return response
        title = _TITLES.get(response.status_code, "Error")
        return render(request, "error.html", status=response.status_code, title=title, message=message)

    return answer


def install_ui(app: FastAPI) -> None:
    """Add the dashboard's routes, static files and error page to ``app`` (after the API's error
    handlers: a dashboard path gets their errors as pages)."""
    for kind, handler in list(app.exception_handlers.items()):
        app.exception_handlers[kind] = _as_page(handler)
    app.include_router(login.router)
    app.include_router(runs.router)
    app.include_router(actions.router)
    app.include_router(definitions.router)
    app.include_router(run.router)

    async def refused(request: Request, exc: Exception) -> HTMLResponse:
        message = exc.message if isinstance(exc, FormRefused) else "form refused"
        back = safe_back(request.headers.get("referer", "").partition(request.headers.get("host", ""))[2] or None)
        return render(request, "error.html", status=403, title="Form refused", message=message, back=back)

    app.add_exception_handler(FormRefused, refused)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
