"""Mapping of provider SDK failures onto :class:`~ecl.core.LlmError`."""

from __future__ import annotations

from collections.abc import Mapping

from ecl.core.errors import LlmError, LlmErrorKind

__all__ = ["RETRYABLE_KINDS", "error_for_status", "parse_retry_after"]

RETRYABLE_KINDS: frozenset[LlmErrorKind] = frozenset({"rate_limited", "overloaded", "server", "timeout", "connection"})
"""Kinds worth another attempt. bad_request and auth never are."""


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds form), if present."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            return None
    return None


def kind_for_status(status: int) -> LlmErrorKind:
    """Classify an HTTP status."""
    if status == 429:
        return "rate_limited"
    if status == 529:
        return "overloaded"
    if status in (401, 403):
        return "auth"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server"
    return "bad_request"


def error_for_status(provider: str, status: int, detail: str, headers: Mapping[str, str] | None = None) -> LlmError:
    """An :class:`LlmError` for an HTTP error response (the detail never holds the key)."""
    kind = kind_for_status(status)
    return LlmError(
        f"{provider}: HTTP {status} ({kind}): {detail[:300]}",
        kind=kind,
        status_code=status,
        retryable=kind in RETRYABLE_KINDS,
        retry_after=parse_retry_after(headers),
    )
