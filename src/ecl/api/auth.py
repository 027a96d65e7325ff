"""``X-API-Key`` authentication, compared in constant time, and the dashboard's session cookie.

Who may pass (:meth:`ApiKeyAuth.admit`), when a key is configured:

- health (:data:`OPEN_PATHS`), the dashboard's login page and its static assets
  (:data:`UI_OPEN_PATHS`, :data:`UI_STATIC`): everyone;
- a request with the right ``X-API-Key``: everything;
- a request with a valid dashboard session cookie (:mod:`ecl.api.session`): the dashboard's
  pages and forms (which check a CSRF token too) and the JSON API's ``GET``/``HEAD``;
- anyone else: a dashboard page redirects to the login page, the JSON API answers 401.
"""

from __future__ import annotations

import enum
import hmac

from ecl.api.session import SessionKeys

__all__ = ["OPEN_PATHS", "UI_OPEN_PATHS", "UI_PREFIX", "UI_STATIC", "Admission", "ApiKeyAuth"]

OPEN_PATHS = frozenset({"/health/live", "/health/ready"})
"""The only API paths served without the key (the API docs and the OpenAPI document need it too)."""

UI_PREFIX = "/ui"
"""Where the dashboard lives."""

UI_OPEN_PATHS = frozenset({"/ui/login"})
"""Dashboard paths served without a session: the login form (GET) and its submission (POST)."""

UI_STATIC = "/ui/static/"
"""The dashboard's CSS and JavaScript: public files of the package, no data."""

_READS = frozenset({"GET", "HEAD"})


class Admission(enum.Enum):
    """What the door does with a request."""

    ADMIT = "admit"
    LOGIN = "login"
    """A dashboard page without a session: redirect to the login page."""
    REFUSE = "refuse"
    """401."""


def is_ui(path: str) -> bool:
    """Whether ``path`` belongs to the dashboard."""
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


class ApiKeyAuth:
    """Passes every request when no key is configured, else those that send it (and health)."""

    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else None
        self.sessions = SessionKeys(self._key)

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

    def admit(self, method: str, path: str, given: str | None, session: str | None) -> Admission:
        """The door's answer for a request: header ``given``, session cookie ``session``."""
        if self.allows(path, given) or path in UI_OPEN_PATHS or path.startswith(UI_STATIC):
            return Admission.ADMIT
        ui = is_ui(path)
        if self.sessions.valid(session) and (ui or method in _READS):
            return Admission.ADMIT
        return Admission.LOGIN if ui else Admission.REFUSE
