"""A submitted dashboard form: read (URL-encoded, the browsers' default), its CSRF token and
``Origin`` checked before any action runs."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from fastapi import Request

from ecl.api.auth import ApiKeyAuth
from ecl.api.session import COOKIE, CSRF_FIELD

__all__ = ["FormRefused", "read_form", "safe_back"]


class FormRefused(Exception):
    """A form the dashboard will not act on (403): a missing or wrong CSRF token, a foreign origin."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not every browser sends it on same-origin posts; the token decides
    parts = urlsplit(origin)
    host = request.headers.get("host", "")
    return parts.scheme in ("http", "https") and parts.netloc == host


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields (the last value of a repeated field), or :class:`FormRefused`."""
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        fields = dict(parse_qsl(body, keep_blank_values=True, max_num_fields=200))
    except ValueError:
        raise FormRefused("form refused: more than 200 fields") from None
    if not _same_origin(request):
        raise FormRefused(f"form refused: it came from another site ({request.headers.get('origin', '')[:80]})")
    auth: ApiKeyAuth = request.app.state.auth
    if not auth.sessions.csrf_valid(request.cookies.get(COOKIE), fields.get(CSRF_FIELD)):
        raise FormRefused(
            "form refused: missing or invalid CSRF token (the page is too old or from another site); "
            "reload the page and try again"
        )
    return fields


def safe_back(value: str | None, default: str = "/ui") -> str:
    """Where to go after an action: a dashboard path given by the form, never another site."""
    if not value or not value.startswith("/ui") or value.startswith("//") or "\\" in value or "\n" in value:
        return default
    return value
