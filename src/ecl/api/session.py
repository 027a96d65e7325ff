"""The dashboard's login session and CSRF tokens, both derived from the API key.

- The **session cookie** (``ecl_session``) holds ``<expiry>.<HMAC-SHA256(key, "ecl-ui-session:<expiry>")>``:
  never the key itself, and worthless for any other key. It is HTTP-only, ``SameSite=Strict``,
  ``Path=/`` (it also authorizes ``GET``/``HEAD`` requests of the JSON API, so the pages'
  scripts can read ``/workflows`` and follow ``/workflows/{id}/events``; unsafe methods of
  the JSON API still need the ``X-API-Key`` header). It expires after :data:`SESSION_SECONDS`;
  changing the key ends every session.
- The **CSRF token** of a page is ``HMAC-SHA256(secret, "ecl-ui-csrf:<session cookie>")``; every
  ``POST`` under ``/ui`` sends it back in the ``csrf_token`` form field and it is compared in
  constant time. Without a configured key (the API and the UI are open) the secret is random per
  process, so a form from before a restart is refused and must be reloaded.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

__all__ = ["COOKIE", "CSRF_FIELD", "SESSION_SECONDS", "SessionKeys"]

COOKIE = "ecl_session"
"""The name of the session cookie."""

CSRF_FIELD = "csrf_token"
"""The form field that carries the CSRF token."""

SESSION_SECONDS = 12 * 3600
"""How long a login lasts."""


class SessionKeys:
    """Issues and checks session cookies and CSRF tokens for one API key (or none)."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key
        self._csrf_secret = key if key is not None else secrets.token_bytes(32)

    @property
    def enabled(self) -> bool:
        """Whether a login is needed (a key is configured)."""
        return self._key is not None

    def key_matches(self, given: str) -> bool:
        """Whether ``given`` is the API key (constant time; ``False`` when none is configured)."""
        if self._key is None:
            return False
        return hmac.compare_digest(given.encode(), self._key)

    def _sign(self, expiry: int) -> str:
        assert self._key is not None
        return hmac.new(self._key, f"ecl-ui-session:{expiry}".encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        """A fresh session cookie value."""
        expiry = int(now if now is not None else time.time()) + SESSION_SECONDS
        return f"{expiry}.{self._sign(expiry)}"

    def valid(self, value: str | None, now: float | None = None) -> bool:
        """Whether ``value`` is an unexpired session cookie of this key."""
        if self._key is None or not value:
            return False
        expiry_text, _, signature = value.partition(".")
        expiry = int(expiry_text) if expiry_text.isdigit() and len(expiry_text) < 16 else 0
        expected = self._sign(expiry)
        # The comparison runs for every value (also a malformed one) so its timing tells nothing.
        matches = hmac.compare_digest(signature.encode(), expected.encode())
        return matches and expiry > (now if now is not None else time.time())

    def csrf_token(self, session: str | None) -> str:
        """The CSRF token of forms rendered for ``session`` (the cookie value; ``None`` when open)."""
        label = f"ecl-ui-csrf:{session or ''}".encode()
        return hmac.new(self._csrf_secret, label, hashlib.sha256).hexdigest()

    def csrf_valid(self, session: str | None, given: str | None) -> bool:
        """Whether ``given`` is the CSRF token of ``session`` (constant time)."""
        return hmac.compare_digest((given or "").encode(), self.csrf_token(session).encode())
