"""Rendering dashboard pages: the Jinja2 environment (autoescape on), what every page gets
(the CSRF token, the flash message, whether a login is in use) and the security headers.

Templates live in ``templates/`` beside this module; every page extends ``base.html``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup

from ecl.api.auth import ApiKeyAuth
from ecl.api.session import COOKIE, CSRF_FIELD
from ecl.api.ui.timeline import duration

__all__ = ["FLASH_COOKIE", "csrf_token", "environment", "flash", "render"]

FLASH_COOKIE = "ecl_flash"
"""A one-time message for the next page (the result of an action), then deleted."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""Scripts only from ``/ui/static``: a value that slipped past escaping still could not run."""


def _duration(start: datetime | None, end: datetime | None = None) -> str:
    """The time from ``start`` to ``end`` (to now while it runs), as :func:`.timeline.duration`
    says it: ``850 ms``, ``12.4 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if start is None:
        return ""
    stop = end or datetime.now(UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if stop.tzinfo is None:
        stop = stop.replace(tzinfo=UTC)
    return duration((stop - start).total_seconds())


def _when(value: datetime | None) -> str:
    """A UTC timestamp to the second: ``2026-11-27 20:31:05``."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _usd(value: Decimal | float | int | None) -> str:
    """``$0.0123`` (at least two decimals, up to six)."""
    if value is None:
        return ""
    amount = Decimal(value)
    text = f"{amount:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def _number(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


@pass_context
def _csrf_input(context: Context) -> Markup:
    """``{{ csrf_input() }}``: the hidden field every dashboard form (a POST) must carry."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, context.get("csrf_token", ""))


def _build() -> Environment:
    env = Environment(
        loader=PackageLoader("ecl.api.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = _duration
    env.filters["when"] = _when
    env.filters["usd"] = _usd
    env.filters["number"] = _number
    env.filters["seconds"] = duration
    env.globals["csrf_input"] = _csrf_input
    env.filters["json"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return env


environment = _build()
"""The dashboard's templates (shared by every page module)."""


def _auth(request: Request) -> ApiKeyAuth:
    found: ApiKeyAuth = request.app.state.auth
    return found


def csrf_token(request: Request) -> str:
    """The CSRF token of this request's session (what its forms must send back)."""
    return _auth(request).sessions.csrf_token(request.cookies.get(COOKIE))


def flash(response: Response, text: str, *, kind: str = "ok") -> None:
    """Show ``text`` on the next page rendered (``kind``: ``ok`` or ``error``)."""
    value = quote(json.dumps({"kind": kind, "text": text[:2000]}))
    response.set_cookie(FLASH_COOKIE, value, max_age=120, path="/ui", httponly=True, samesite="strict")


def _take_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        found = json.loads(unquote(raw))
    except ValueError:
        return None
    if not isinstance(found, dict):
        return None
    kind = "error" if found.get("kind") == "error" else "ok"
    return {"kind": kind, "text": str(found.get("text", ""))}


def render(
    request: Request, template: str, status: int = 200, *, fragment: bool = False, **context: Any
) -> HTMLResponse:
    """``template`` rendered with ``context`` plus what every page gets: ``csrf_token``,
    ``login`` (whether a key is in use), ``signed_in`` (the menu shows), ``flash`` (a message left by the
    previous action, shown once; a ``fragment`` of a page leaves it for the page) and ``path``."""
    message = None if fragment else _take_flash(request)
    auth = _auth(request)
    page = environment.get_template(template).render(
        csrf_token=csrf_token(request),
        login=auth.enabled,
        signed_in=not auth.enabled or auth.sessions.valid(request.cookies.get(COOKIE)),
        flash=message,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(page, status_code=status)
    response.headers["content-security-policy"] = CONTENT_SECURITY_POLICY
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "same-origin"
    response.headers["cache-control"] = "no-store"
    if message is not None:
        response.delete_cookie(FLASH_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response
