"""The published contract: FastAPI's OpenAPI document, made to say what the server does.

FastAPI documents a ``422 HTTPValidationError`` for every operation with parameters and knows
nothing of what happens outside the routes. Here the document gets, in one place:

- the ``X-API-Key`` security scheme, required by every operation but health;
- the error envelope of docs/api/errors.md, on every error response;
- ``400`` (``VALIDATION_ERROR``, ``details.errors`` naming every bad field) instead of ``422``,
  on every operation (an unknown query parameter is a 400 too);
- ``401`` (key), ``404`` (operations on an id, and an unknown definition at submission),
  ``409`` (conflicts and illegal transitions), ``413`` (bodies over ``api.max_body_bytes``)
  and ``503`` (the database or the engine is down).

``docs/api/openapi.yaml`` is this document (``ecl server openapi``; a test keeps it current).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from ecl.api.auth import OPEN_PATHS
from ecl.api.models import ErrorBody, ValidationErrorBody

__all__ = ["install_openapi"]

SCHEME = "ApiKey"
_CONFLICTS = {
    ("post", "/workflows"),
    ("post", "/workflows/{workflow_id}/signal"),
    ("delete", "/workflows/{workflow_id}"),
}
_ERRORS = {
    "401": ("Missing or wrong X-API-Key (UNAUTHORIZED).", ErrorBody),
    "404": (
        "Unknown id (WORKFLOW_NOT_FOUND, DEFINITION_NOT_FOUND, ARTIFACT_NOT_FOUND, NOT_FOUND).",
        ErrorBody,
    ),
    "409": (
        "The same workflow_id with a different body, a signal to a workflow that has ended (CONFLICT), "
        "or a change the state machine forbids (ILLEGAL_TRANSITION).",
        ErrorBody,
    ),
    "413": ("The request body is larger than api.max_body_bytes (PAYLOAD_TOO_LARGE).", ErrorBody),
    "503": ("The database or the engine is unavailable (DATABASE_ERROR, ENGINE_ERROR).", ErrorBody),
}


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def _response(description: str, model: type[BaseModel]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
    }


def contract(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (as FastAPI generates it) with the security scheme and error responses."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(_schemas(ErrorBody, ValidationErrorBody))
    components["schemas"] = dict(sorted(schemas.items()))
    components["securitySchemes"] = {
        SCHEME: {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "Required on every request but /health/* when a key is configured (always in production).",
        }
    }
    document["security"] = [{SCHEME: []}]
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["400"] = _response(
                "A bad body, query or path value, or an unknown query parameter (VALIDATION_ERROR; "
                "details.errors names every field).",
                ValidationErrorBody,
            )
            wanted = []
            if path in OPEN_PATHS:
                operation["security"] = []
            else:
                wanted += ["401", "503"]
            if "{" in path or (method, path) == ("post", "/workflows"):
                wanted.append("404")
            if (method, path) in _CONFLICTS:
                wanted.append("409")
            if "requestBody" in operation:
                wanted.append("413")
            for status in wanted:
                responses[status] = _response(*_ERRORS[status])
            operation["responses"] = dict(sorted(responses.items()))
    return document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) return the corrected document."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    openapi_version=app.openapi_version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]  # FastAPI's documented way to customise it
