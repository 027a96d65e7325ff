"""``X-API-Key`` authentication, compared in constant time."""

from __future__ import annotations

import hmac

__all__ = ["OPEN_PATHS", "ApiKeyAuth"]

OPEN_PATHS = frozenset({"/health/live", "/health/ready"})
"""The only paths served without the key (the API docs and the OpenAPI document need it too)."""


class ApiKeyAuth:
    """Passes every request when no key is configured, else those that send it (and health)."""

    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else None

    @property
    def enabled(self) -> bool:
        """Whether a key is required."""
        return self._key is not None

    def allows(self, path: str, given: str | None) -> bool:
        """Whether a request for ``path`` with header value ``given`` may proceed."""
        if self._key is None or path in OPEN_PATHS:
            return True
        # compare_digest on every request, same body on every failure: no timing or wording leak.
        return hmac.compare_digest((given or "").encode(), self._key)
