"""Hiding credentials in URLs and in text that may quote one.

A database or service URL may carry a password (``postgresql://user:pw@host/db``) or a
token in its query (``?password=…``, ``?api_key=…``). Whatever shows a URL — ``ecl config
show``, a log line, an error message — passes it through :func:`redact_text`
first. Pure string functions: no I/O, no ECL imports.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact_text", "url_secrets"]

REDACTED = "**********"
"""What a hidden secret is shown as."""

# scheme://user:password@ — the password runs to the last "@" before the host part.
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@?#]*:)(?P<secret>[^\s/?#]*)(?=@)")
# ?password=… / &token=… in a query string.
_QUERY = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?token|sslpassword)=)"
    r"(?P<secret>[^&#\s]+)",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """``text`` with every URL password and credential query value replaced by ``**********``."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: m["head"] + REDACTED if m["secret"] else m[0], text)
    return _QUERY.sub(lambda m: m["head"] + REDACTED, text)


def url_secrets(text: str) -> list[str]:
    """The credentials found in ``text`` (for a redactor that replaces them wherever they appear)."""
    found = [m["secret"] for m in _USERINFO.finditer(text) if m["secret"]]
    found += [m["secret"] for m in _QUERY.finditer(text)]
    return found
