"""The door of the API: what every request passes before the application sees it.

In this order, so that a client without the key never makes the server read or parse its
body, nor learns which paths and methods exist (401 comes before 404 and 405):

1. the ``X-API-Key`` check (health excepted) → 401; the dashboard's session cookie stands in
   for the key on dashboard pages and on ``GET``/``HEAD`` of the JSON API, and a dashboard page
   without either redirects to its login page (303) — :meth:`ApiKeyAuth.admit`;
2. the body-size limit ``api.max_body_bytes``, enforced while the body streams in (at once
   when ``Content-Length`` announces more) → 413; the body is never held beyond the limit;
3. NUL characters in the path (404: no id holds one) or the query string (400);
4. a JSON body is parsed and checked by :func:`ecl.core.json_values.parse_json` — depth,
   string sizes, ``NaN``/``Infinity``, lone surrogates, NUL, integers past 64 bits → 400
   naming the field. PostgreSQL cannot store some of these, SQLite stores what no reader
   can serve back: refused here, neither ever reaches the database.

The checked body is then handed to the application unchanged, and the value parsed here is
the one the route validates (:class:`ApiRoute`: the body is parsed once). The routes of the API
are :class:`ApiRoute` instances, which also refuse a query parameter the matched operation does not
declare (:func:`known_query_only`, 400) rather than ignoring it silently: that needs the matched
route, so it cannot be done here, before routing.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import Headers, QueryParams
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecl.api.auth import Admission, ApiKeyAuth
from ecl.api.errors import error_body
from ecl.api.session import COOKIE
from ecl.core.errors import InputValidationError
from ecl.core.json_values import JsonLimits, check_json, parse_json

__all__ = ["ApiRoute", "RequestGuard", "known_query_only"]

_PARSED = "ecl.parsed_body"
"""The scope key under which the guard leaves the body it read and the JSON value it parsed."""


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would parse this body as JSON (no content type counts, as it does)."""
    if not content_type:
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


class RequestGuard:
    """ASGI middleware: the checks of the module docstring, in that order."""

    def __init__(self, app: ASGIApp, *, auth: ApiKeyAuth, max_body_bytes: int, limits: JsonLimits) -> None:
        self.app = app
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request; answer the error itself or pass the request on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        session = cookie_parser(headers.get("cookie", "")).get(COOKIE)
        admission = self.auth.admit(scope["method"], scope["path"], headers.get("x-api-key"), session)
        if admission is Admission.LOGIN:
            await RedirectResponse("/ui/login", status_code=303)(scope, receive, send)
            return
        if admission is Admission.REFUSE:
            await _refuse(scope, receive, send, 401, "UNAUTHORIZED", "missing or invalid X-API-Key")
            return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nothing to answer
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            more = bool(message.get("more_body", False))
        if "\x00" in scope["path"]:
            await _refuse(scope, receive, send, 404, "NOT_FOUND", "not found")
            return
        data = bytes(body)
        try:
            query_string = scope.get("query_string")
            if query_string:
                check_json(dict(QueryParams(query_string).multi_items()), self.limits)
            if data and _is_json(headers.get("content-type")):
                scope[_PARSED] = (data, parse_json(data, self.limits))
        except InputValidationError as exc:
            await _refuse(scope, receive, send, 400, exc.code, exc.message, {"errors": exc.errors})
            return
        await self.app(scope, _replay(data, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        await _refuse(
            scope,
            receive,
            send,
            413,
            "PAYLOAD_TOO_LARGE",
            f"request body larger than {limit} bytes (api.max_body_bytes)",
            {"max_body_bytes": limit},
        )


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> None:
    await JSONResponse(error_body(code, message, details), status_code=status)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the application the body already read, then the client's
    later messages (a disconnect, which streaming responses wait for)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


class ApiRoute(APIRoute):
    """The route class of every router of the API: before FastAPI solves the operation's
    parameters, :func:`known_query_only`; and a JSON body the guard parsed is the value FastAPI
    validates, instead of being parsed again. (As a route class rather than an app-wide
    dependency: solving one more dependency on every request cost more than the check.)"""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler of this operation, behind the query check."""
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            known_query_only(request)
            parsed = request.scope.get(_PARSED)
            if parsed is not None:
                # What Starlette's Request.body() and .json() keep once they have read it.
                request._body, request._json = parsed
            return await handler(request)

        return checked


def known_query_only(request: Request) -> None:
    """400 for a query parameter the matched operation does not declare."""
    if not request.scope.get("query_string"):
        return  # most requests: nothing to check
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _query_names(route.dependant)  # a walk over a handful of nodes: not worth a cache
    unknown = [name for name in request.query_params if name not in allowed]
    if unknown:
        expected = ", ".join(sorted(allowed)) or "none"
        raise InputValidationError(
            f"unknown query parameter {unknown[0]!r}; expected: {expected}",
            errors=[
                {"field": name, "message": f"unknown query parameter; expected: {expected}", "value": name[:40]}
                for name in unknown
            ],
        )
