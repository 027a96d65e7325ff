"""``X-API-Key`` authentication, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Request

from ecl.api.errors import ApiError

__all__ = ["ApiKeyAuth"]

OPEN_PATHS = ("/health/live", "/health/ready")


class ApiKeyAuth:
    """A dependency: passes when no key is configured, or when the header matches it."""

    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else None

    @property
    def enabled(self) -> bool:
        """Whether a key is required."""
        return self._key is not None

    async def __call__(self, request: Request) -> None:
        if self._key is None or request.url.path in OPEN_PATHS:
            return
        given = request.headers.get("x-api-key", "").encode()
        # compare_digest on every request, same body on every failure: no timing or wording leak.
        if not hmac.compare_digest(given, self._key):
            raise ApiError(401, "UNAUTHORIZED", "missing or invalid X-API-Key")
