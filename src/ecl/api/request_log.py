"""The request log: one ``request`` line per answered request, and the request's ids.

A plain ASGI middleware (Starlette's ``BaseHTTPMiddleware`` runs each request in a task of
its own behind memory streams, which costs more than the submit endpoint itself). While the
request is handled, log lines carry ``request_id`` (the client's ``X-Request-Id``, else a
new one, sent back in the same header) and, under ``/workflows/{id}``, ``workflow_id``.
The line is written when the response starts (status known, body perhaps still streaming).

It also tells the embedded engine's :class:`~ecl.engines.embedded.StartGate` while a request
is in hand (from its arrival to the start of its response), so that the workflows submitted
here start after the requests.
"""

from __future__ import annotations

import time
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecl.engines.embedded import StartGate
from ecl.observability.tracing import traced_request

__all__ = ["RequestLog"]

_log = structlog.get_logger("ecl.api")


class RequestLog:
    """ASGI middleware: binds the request's ids for its log lines and logs its answer."""

    def __init__(self, app: ASGIApp, *, gate: StartGate | None = None) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle the request with its ids bound; log the status when the response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        path: str = scope["path"]
        parts = path.split("/", 3)
        workflow_id = parts[2] if len(parts) > 2 and parts[1] == "workflows" else None
        started = time.perf_counter()
        gate = self.gate
        in_hand = gate is not None
        if gate is not None:
            gate.enter()

        async def send_logged(message: Message) -> None:
            nonlocal in_hand
            if message["type"] == "http.response.start":
                if in_hand and gate is not None:
                    in_hand = False
                    gate.leave()
                MutableHeaders(scope=message)["x-request-id"] = request_id
                _log.info(
                    "request",
                    method=scope["method"],
                    path=path,
                    status=message["status"],
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )
            await send(message)

        try:
            # A W3C traceparent makes the caller's trace current: a workflow submitted by this
            # request is traced as its child (nothing happens when tracing is off).
            with (
                structlog.contextvars.bound_contextvars(request_id=request_id, workflow_id=workflow_id),
                traced_request(headers),
            ):
                await self.app(scope, receive, send_logged)
        finally:
            if in_hand and gate is not None:  # no response (the client left, or an error)
                gate.leave()
