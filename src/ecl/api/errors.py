"""One error format for every API failure.

``{"error": {"code": "WORKFLOW_NOT_FOUND", "message": "...", "details": {...}}}``

| code | status | when |
|---|---|---|
| VALIDATION_ERROR | 400 | a bad body, query or path value (details.errors names every field) |
| UNAUTHORIZED | 401 | missing or wrong X-API-Key |
| WORKFLOW_NOT_FOUND, DEFINITION_NOT_FOUND, ARTIFACT_NOT_FOUND, NOT_FOUND | 404 | unknown id or path |
| METHOD_NOT_ALLOWED | 405 | wrong method |
| CONFLICT | 409 | same workflow id with a different body; signal to an ended workflow |
| ILLEGAL_TRANSITION | 409 | a state change the state machine forbids |
| PAYLOAD_TOO_LARGE | 413 | over the configured size |
| DATABASE_ERROR, ENGINE_ERROR | 503 | a dependency is down |
| ARTIFACT_CORRUPTED | 500 | a stored artifact no longer matches its recorded size or sha256 |
| INTERNAL_ERROR | 500 | anything else (no stack trace is ever returned) |

Database failures are translated here, at the boundary: a database that cannot be reached
(connection refused or dropped, whether the driver's error arrives wrapped by SQLAlchemy or
as the raw socket error asyncpg raises on connect) is ``503 DATABASE_ERROR``; a value the
database refuses to store (SQLSTATE class 22, e.g. a NUL character in text) is a ``400``.
While the database is away every request fails the same way, so the failure is logged once
per outage (a warning), not once per request.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecl.core.errors import (
    ArtifactCorrupted,
    ConflictError,
    DatabaseError,
    EclError,
    EngineError,
    IllegalTransitionError,
    InputValidationError,
    NotFoundError,
    UserError,
)
from ecl.store.outage import unreachable

__all__ = ["ApiError", "ecl_error_parts", "error_body", "install_error_handlers"]

_log = structlog.get_logger("ecl.api")

_QUIET_SECONDS = 60.0
"""Database failures less than this apart belong to one outage: logged once."""


class _OutageNotes:
    """Logs the first database failure of an outage as a warning, the rest at debug."""

    def __init__(self) -> None:
        self.last: float | None = None

    def note(self, exc: BaseException) -> None:
        now = time.monotonic()
        quiet = self.last is None or now - self.last > _QUIET_SECONDS
        self.last = now
        line = str(exc).strip().splitlines()
        fields = {"error": f"{type(exc).__name__}: {line[0] if line else ''}"}
        if quiet:
            _log.warning("database unavailable to API requests; answering 503", **fields)
        else:
            _log.debug("database unavailable", **fields)


class ApiError(Exception):
    """An error with an explicit status and code (auth, size limits)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of an error."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _respond(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status)


def ecl_error_parts(err: EclError) -> tuple[int, str, str, dict[str, Any]]:
    """Status, code, message and details of an ECL error: what the API answers (and the
    dashboard shows) for it."""
    if isinstance(err, NotFoundError):
        code = f"{err.kind.upper()}_NOT_FOUND" if err.kind else "NOT_FOUND"
        return 404, code, err.message, {"id": err.id}
    if isinstance(err, InputValidationError):
        return 400, "VALIDATION_ERROR", err.message, {"errors": err.errors}
    if isinstance(err, IllegalTransitionError):
        return 409, "ILLEGAL_TRANSITION", err.message, err.to_dict()
    if isinstance(err, ConflictError):
        return 409, "CONFLICT", err.message, {"id": err.id}
    if isinstance(err, UserError):
        return 400, err.code, err.message, {}
    if isinstance(err, DatabaseError | EngineError):
        return 503, err.code, err.message, {}
    if isinstance(err, ArtifactCorrupted):
        _log.error("artifact corrupted", error=err.message)
        return 500, err.code, err.message, {"id": err.artifact_id}
    _log.error("request failed", error=err.message, type=type(err).__name__)
    return 500, "INTERNAL_ERROR", "internal error", {}


def _for_ecl(err: EclError) -> JSONResponse:
    return _respond(*ecl_error_parts(err))


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through the one format."""
    outage = _OutageNotes()

    def database_unavailable(exc: BaseException) -> JSONResponse:
        outage.note(exc)
        return _respond(503, "DATABASE_ERROR", "the database is unavailable")

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _respond(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(EclError)
    async def ecl_error(_request: Request, exc: EclError) -> JSONResponse:
        return _for_ecl(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "(body)",
                "message": e.get("msg", ""),
            }
            for e in exc.errors()
        ]
        names = ", ".join(e["field"] for e in errors)
        return _respond(400, "VALIDATION_ERROR", f"invalid request: {names}", {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 401: "UNAUTHORIZED", 413: "PAYLOAD_TOO_LARGE"}
        message = exc.detail if isinstance(exc.detail, str) else "error"
        return _respond(exc.status_code, codes.get(exc.status_code, "HTTP_ERROR"), message)

    @app.exception_handler(SQLAlchemyError)
    async def database_error(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        if isinstance(exc, DataError):
            return _respond(400, "VALIDATION_ERROR", "a value cannot be stored (e.g. a NUL character in text)")
        if unreachable(exc):
            return database_unavailable(exc)
        _log.error("database failure", error=type(exc).__name__)
        return _respond(503, "DATABASE_ERROR", "the database is unavailable")

    async def driver_error(_request: Request, exc: Exception) -> JSONResponse:
        # asyncpg's own errors escape SQLAlchemy when they happen while connecting.
        if unreachable(exc):
            return database_unavailable(exc)
        _log.error("database failure", error=type(exc).__name__)
        return _respond(503, "DATABASE_ERROR", "the database is unavailable")

    for driver_exc in (asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(driver_exc, driver_error)

    @app.exception_handler(OSError)
    async def connection_error(_request: Request, exc: OSError) -> JSONResponse:
        # asyncpg raises the socket's own error when it cannot connect at all.
        if unreachable(exc):
            return database_unavailable(exc)
        _log.error("request failed", error=f"{type(exc).__name__}: {exc.strerror or ''}")
        return _respond(500, "INTERNAL_ERROR", "internal error")

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unhandled error", error=type(exc).__name__)
        return _respond(500, "INTERNAL_ERROR", "internal error")
