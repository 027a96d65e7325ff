"""``/ui/login`` and ``/ui/logout``: the API key in, a session cookie out (:mod:`ecl.api.session`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecl.api.auth import ApiKeyAuth
from ecl.api.guard import ApiRoute
from ecl.api.session import COOKIE, SESSION_SECONDS
from ecl.api.ui.forms import read_form
from ecl.api.ui.rendering import render

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=ApiRoute)


def _auth(request: Request) -> ApiKeyAuth:
    found: ApiKeyAuth = request.app.state.auth
    return found


@router.get("/login")
async def login_form(request: Request) -> Response:
    """The login form (straight to the runs when no key is configured or already logged in)."""
    auth = _auth(request)
    if not auth.enabled or auth.sessions.valid(request.cookies.get(COOKIE)):
        return RedirectResponse("/ui", status_code=303)
    return render(request, "login.html", title="Log in")


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key (constant time); set the session cookie and go to the runs."""
    auth = _auth(request)
    fields = await read_form(request)
    if not auth.enabled:
        return RedirectResponse("/ui", status_code=303)
    if not auth.sessions.key_matches(fields.get("api_key", "")):
        return render(request, "login.html", status=401, title="Log in", error="That is not the API key.")
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(
        COOKIE,
        auth.sessions.issue(),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Forget the session cookie."""
    await read_form(request)
    response = RedirectResponse("/ui/login" if _auth(request).enabled else "/ui", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
