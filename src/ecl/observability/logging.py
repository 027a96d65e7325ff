"""Structured logging with structlog.

Readable console output in development, JSON lines in production. ``workflow_id`` and
``step_id`` are bound through contextvars (:func:`bind_workflow`, :func:`bind_step`), so
every line logged while a step runs carries them, whichever module logs it. A redaction
processor removes configured secret values, URL passwords and secret-looking keys from every
event.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from ecl.core.redaction import redact_text

__all__ = ["Redactor", "bind_step", "bind_workflow", "configure_logging", "get_logger"]

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_SECRET_KEYS = re.compile(r"(api[_-]?key|authorization|password|secret|token$)", re.I)
REDACTED = "**********"


class Redactor:
    """Replaces secret values anywhere in an event, and values of secret-looking keys."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            # A URL quoted in a message (a connection error, say) keeps its user, not its password.
            return redact_text(value)
        if isinstance(value, dict):
            return {
                k: (REDACTED if isinstance(k, str) and _SECRET_KEYS.search(k) and v else self._scrub(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self._scrub(v) for v in value)
        if value is not None and not isinstance(value, int | float | bool):
            return self._scrub(str(value)) if self.secrets else value
        return value

    def _scrub_item(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and _SECRET_KEYS.search(key) and value:
            return REDACTED
        return self._scrub(value)

    def __call__(self, _logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        """The structlog processor."""
        for key in list(event):
            value = event[key]
            if _SECRET_KEYS.search(key) and value and key not in ("event", "tokens"):
                event[key] = REDACTED
            else:
                event[key] = self._scrub(value)
        return event


class _StdlibRedaction(logging.Filter):
    """The same redaction for libraries that log through :mod:`logging` (uvicorn, SQLAlchemy)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor._scrub(record.getMessage())
        record.args = None
        return True


def configure_logging(
    level: str = "info",
    fmt: str = "console",
    *,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Configure structlog (and the standard library's root logger) once, at the edge."""
    out = stream or sys.stderr
    numeric = _LEVELS.get(level.lower(), logging.INFO)
    redactor = Redactor(secrets)
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redactor,
    ]
    if fmt == "json":
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=out.isatty()))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=out, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_StdlibRedaction(redactor))


def get_logger(name: str | None = None) -> Any:
    """A structlog logger."""
    return structlog.get_logger(name)


@contextmanager
def bind_workflow(workflow_id: str) -> Iterator[None]:
    """Every log line inside carries ``workflow_id``."""
    with structlog.contextvars.bound_contextvars(workflow_id=workflow_id):
        yield


@contextmanager
def bind_step(step_id: str) -> Iterator[None]:
    """Every log line inside carries ``step_id``."""
    with structlog.contextvars.bound_contextvars(step_id=step_id):
        yield
