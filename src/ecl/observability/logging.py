"""Structured logging with structlog.

Readable console output in development, JSON lines in production. The context of a run is
bound through contextvars, so every line logged while it runs carries it, whichever module
logs it (the LLM provider's retries, the breaker, the rate limiter):

- ``workflow_id``: bound by the engine around one run of one workflow (:func:`bind_workflow`);
- ``step_id`` and ``iteration``: bound by the step executor around one step (:func:`bind_step`);
- ``attempt``: the step's attempt, set by the executor as each attempt starts (:func:`bind_attempt`).

Contextvars belong to the asyncio task: steps run concurrently (``asyncio.gather`` wraps each
in a task with a copy of the context) each carry their own ``step_id``. A thread does not
inherit them: the embedded engine's database writer logs at process level (see
:mod:`ecl.engines.embedded.writer`). ``trace_id``: bound inside a run's span, on both
engines, when tracing is on (:func:`ecl.observability.tracing.workflow_span`).

A redaction processor removes configured secret values, URL passwords and secret-looking
keys from every event.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from ecl.core.redaction import redact_text

__all__ = [
    "LazyLogger",
    "Redactor",
    "bind_attempt",
    "bind_step",
    "bind_workflow",
    "configure_logging",
    "get_logger",
]

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


_NOTHING = object()


class _PlainConsoleRenderer(structlog.dev.ConsoleRenderer):
    """structlog's console renderer without colours, the same text written directly.

    structlog builds each line from column formatter objects, a ``StringIO`` per value: on the
    API's submit path the request log line cost about as much as FastAPI's parameter solving.
    A line with a stack or an exception to format goes to structlog's own code; a test pins
    that every other line is character for character what structlog writes."""

    def __init__(self) -> None:
        super().__init__(colors=False)
        self._level_width = self._longest_level if self._pad_level else 0

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        """The line, as :class:`structlog.dev.ConsoleRenderer` renders it without colours."""
        if "stack" in event_dict or "exception" in event_dict or "exc_info" in event_dict or "" in event_dict:
            return super().__call__(logger, name, event_dict)
        parts: list[str] = []
        pop = event_dict.pop
        if (value := pop(self._timestamp_key, _NOTHING)) is not _NOTHING:
            parts.append(str(value))
        if (value := pop("level", _NOTHING)) is not _NOTHING:
            level = str(value)
            parts.append(f"[{level.ljust(self._level_width)}]")
        if (value := pop(self._event_key, _NOTHING)) is not _NOTHING:
            parts.append(str(value).ljust(self._pad_event_to))
        for key in ("logger", "logger_name"):
            if (value := pop(key, _NOTHING)) is not _NOTHING:
                parts.append(f"[{value}]")
        keys = sorted(event_dict) if self._sort_keys else event_dict
        repr_ = self._repr
        parts += [f"{key}={repr_(event_dict[key])}" for key in keys]
        return " ".join(part for part in parts if part).rstrip(" ")


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
        colors = out.isatty()
        processors.append(structlog.dev.ConsoleRenderer(colors=True) if colors else _PlainConsoleRenderer())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=out, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_StdlibRedaction(redactor))


_assembled: dict[str | None, tuple[tuple[Any, ...], Any]] = {}
"""Each name's logger as structlog's configuration assembles it, with that configuration."""


def _assembled_logger(name: str | None) -> Any:
    """``structlog.get_logger(name).bind()``, assembled once per configuration (assembling
    one is most of the cost of a bind; a new configuration, e.g. a test's, is seen at once)."""
    config = structlog.get_config()
    wrapper, processors, factory, context = (
        config["wrapper_class"],
        config["processors"],
        config["logger_factory"],
        config["context_class"],
    )
    found = _assembled.get(name)
    if found is not None:
        key, logger = found
        if key[0] is wrapper and key[1] is processors and key[2] is factory and key[3] is context:
            return logger
    logger = structlog.get_logger(name).bind()
    _assembled[name] = ((wrapper, processors, factory, context), logger)
    return logger


_METHOD_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
"""The levels of the logging methods a :class:`LazyLogger` may skip binding for."""


def _enabled(logger: Any, level: int) -> bool:
    """Whether ``logger`` logs at ``level`` (any logger that cannot tell: yes)."""
    check = getattr(logger, "is_enabled_for", None)
    return True if check is None else bool(check(level))


class LazyLogger:
    """``structlog.get_logger(name).bind(**values)``, bound when first used: most runs of a
    step or a workflow log nothing, and binding costs more than the rest of setting up a step
    attempt (and, held across its awaits, memory at thousands of runs)."""

    __slots__ = ("_base", "_bound", "_name", "_values")

    def __init__(self, name: str, **values: Any) -> None:
        self._name = name
        self._values = values
        self._bound: Any = None
        self._base: Any = None
        """The assembled logger, kept from the first call that logged nothing (a step's
        second filtered line then skips looking it up again)."""

    def __getattr__(self, name: str) -> Any:
        if name in LazyLogger.__slots__:  # not set yet (a copy being made)
            raise AttributeError(name)
        return self._method(name)

    def _method(self, name: str) -> Any:
        if self._bound is None:
            base = self._base
            if base is None:
                base = self._base = _assembled_logger(self._name)
            level = _METHOD_LEVELS.get(name)
            if level is not None and not _enabled(base, level):
                return getattr(base, name)  # filtered out: nothing is logged, nothing to bind
            self._bound = base.bind(**self._values)
        return getattr(self._bound, name)

    # The usual levels as methods: found without ``__getattr__`` (whose way in, a failed
    # attribute lookup, costs more than the rest of a filtered call).

    def debug(self, *args: Any, **kw: Any) -> Any:
        """Log at debug level."""
        return self._method("debug")(*args, **kw)

    def info(self, *args: Any, **kw: Any) -> Any:
        """Log at info level."""
        return self._method("info")(*args, **kw)

    def warning(self, *args: Any, **kw: Any) -> Any:
        """Log at warning level."""
        return self._method("warning")(*args, **kw)

    def error(self, *args: Any, **kw: Any) -> Any:
        """Log at error level."""
        return self._method("error")(*args, **kw)

    def __repr__(self) -> str:
        return f"<logger {self._name} {self._values!r}>"


def get_logger(name: str | None = None) -> Any:
    """A structlog logger."""
    return structlog.get_logger(name)


_VARS: dict[str, contextvars.ContextVar[Any]] = {}
"""The ``ContextVar`` structlog binds each key in, found once (from the token of a bind
through structlog): a step binds and restores a few keys, and structlog's own way builds the
variable's name and looks it up for every key, each time."""


def _set(key: str, value: Any) -> contextvars.Token[Any]:
    """``structlog.contextvars.bind_contextvars(key=value)``: its token (which knows its variable)."""
    var = _VARS.get(key)
    if var is not None:
        return var.set(value)
    token = structlog.contextvars.bind_contextvars(**{key: value})[key]
    _VARS[key] = token.var
    return token


def _bind(fields: dict[str, Any]) -> tuple[contextvars.Token[Any], ...]:
    """``structlog.contextvars.bind_contextvars(**fields)``: its tokens."""
    return tuple([_set(key, value) for key, value in fields.items()])


class _Bound:
    """Binds fields to the log lines of the context while inside; restores them on the way out
    (by token, so nested and concurrent scopes are exact). A small object, not a generator:
    thousands of concurrent runs each hold a few across their awaits. Entered once: its
    fields are let go once bound (the tokens are all the way out needs)."""

    __slots__ = ("_fields", "_outer", "_tokens")

    def __init__(self, fields: dict[str, Any], *, outer: bool = False) -> None:
        self._fields: dict[str, Any] | None = fields
        self._outer = outer
        self._tokens: tuple[contextvars.Token[Any], ...] = ()

    def __enter__(self) -> None:
        fields = self._fields
        if fields is None:
            raise RuntimeError("a log-context binding is entered once")
        self._fields = None
        if self._outer:  # unbind whatever was bound outside
            fields = {**dict.fromkeys(structlog.contextvars.get_contextvars(), ...), **fields}
        self._tokens = _bind(fields)

    def __exit__(self, *exc: object) -> None:
        for token in reversed(self._tokens):
            token.var.reset(token)


def bind_workflow(workflow_id: str, **fields: Any) -> AbstractContextManager[None]:
    """Every log line inside carries ``workflow_id`` (and ``fields``) and nothing bound
    outside: a run's lines never carry the step, attempt or request of whoever started it.

    The run's span, inside, adds its ``trace_id`` when tracing is on. Restored on
    the way out (tokens, so nested and concurrent scopes are exact)."""
    return _Bound({"workflow_id": workflow_id, **fields}, outer=True)


def bind_step(step_id: str, **fields: Any) -> AbstractContextManager[None]:
    """Every log line inside carries ``step_id`` (and ``fields``); ``attempt`` is unset until
    :func:`bind_attempt` sets it, and restored with the rest on the way out."""
    return _Bound({"step_id": step_id, "attempt": ..., **fields})


def bind_attempt(attempt: int) -> None:
    """From here to the end of the enclosing :func:`bind_step`, lines carry ``attempt``."""
    _set("attempt", attempt)
