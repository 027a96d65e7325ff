"""The ECL error family.

Every error ECL raises on purpose derives from :class:`EclError`. Errors carry their
facts as fields (never only inside a formatted message), pickle, and round-trip through
JSON with :meth:`EclError.to_dict` and :func:`error_from_dict`, so the same error can be
journaled, sent over HTTP and raised again on the other side.

::

    EclError
    ├── UserError                    a caller's mistake: fix the input and try again
    │   ├── ConfigError              bad configuration value (key, value, source)
    │   ├── InputValidationError     bad input (field-level errors)
    │   ├── DefinitionError          invalid workflow definition (names the step)
    │   ├── NotFoundError            unknown workflow / definition / artifact
    │   ├── ConflictError            same id, different request
    │   └── IllegalTransitionError   e.g. completed -> running
    ├── StepError                    a step failed at run time
    │   ├── LlmError                 provider failure (kind, status_code, retryable, retry_after)
    │   ├── StepValidationError      a step's input or output failed validation
    │   ├── StepIoError              file / network trouble inside a step
    │   ├── StepTimeoutError         the step exceeded its time limit
    │   ├── MaxRevisionsExceeded     a revision loop hit its bound (attempts)
    │   └── BudgetExceeded           an LLM call would cross the workflow's budget (budget, spent, call)
    └── RuntimeFailure               the machinery failed
        ├── DatabaseError            the database is unreachable, locked, not migrated
        ├── NonDeterminismError      replayed code diverged from its journal
        ├── JournalLimitError        a step result too large to journal
        ├── LeaseError               another process owns the workflow
        ├── ArtifactCorrupted        stored content no longer matches its size or sha256
        └── EngineError              the durable engine (embedded or Restate) failed

Control-flow signals of the engines (:class:`EngineSignal`) derive from ``BaseException``
so that a user's ``except Exception`` never swallows them.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Literal

__all__ = [
    "ArtifactCorrupted",
    "BudgetExceeded",
    "ConfigError",
    "ConflictError",
    "DatabaseError",
    "DefinitionError",
    "EclError",
    "EngineError",
    "EngineSignal",
    "FieldError",
    "IllegalTransitionError",
    "InputValidationError",
    "JournalLimitError",
    "LeaseError",
    "LlmError",
    "LlmErrorKind",
    "MaxRevisionsExceeded",
    "NonDeterminismError",
    "NotFoundError",
    "RuntimeFailure",
    "StepError",
    "StepIoError",
    "StepTimeoutError",
    "StepValidationError",
    "UserError",
    "WorkflowCancelled",
    "WorkflowSuspended",
    "error_from_dict",
]

FieldError = dict[str, Any]
"""One field-level problem: ``{"field": "a.b", "message": "...", "value": ...}``."""

LlmErrorKind = Literal["rate_limited", "overloaded", "server", "auth", "bad_request", "timeout", "connection"]

_REGISTRY: dict[str, type[EclError]] = {}


class EclError(Exception):
    """Base of every ECL error.

    Subclasses list their extra fields in ``fields``; each must be a keyword argument
    of the constructor and an attribute of the instance, with a JSON-compatible value.
    """

    fields: ClassVar[tuple[str, ...]] = ()
    code: ClassVar[str] = "ECL_ERROR"
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.fields)
        return f"{type(self).__name__}({self.message!r}{', ' if parts else ''}{parts})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.message))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible form: ``{"type": ..., "message": ..., <fields>}``."""
        data: dict[str, Any] = {"type": type(self).__name__, "message": self.message}
        for name in self.fields:
            data[name] = getattr(self, name)
        return data

    def __reduce__(self) -> tuple[Any, ...]:
        return (error_from_dict, (self.to_dict(),))


_REGISTRY["EclError"] = EclError


def error_from_dict(data: dict[str, Any]) -> EclError:
    """Rebuild an error from :meth:`EclError.to_dict` output.

    An unknown ``type`` (written by a newer ECL, say) gives a plain :class:`EclError`
    that keeps the message, rather than failing.
    """
    cls = _REGISTRY.get(str(data.get("type")), EclError)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {name: data[name] for name in cls.fields if name in data and name in accepted}
    error = cls(str(data.get("message", "")), **kwargs)
    for name in cls.fields:  # fields the constructor fixes (e.g. retryable=False) still round-trip
        if name in data and name not in accepted:
            setattr(error, name, data[name])
    return error


# ---------------------------------------------------------------- user errors


class UserError(EclError):
    """A caller's mistake; retrying the same request will fail the same way."""

    code = "BAD_REQUEST"


class ConfigError(UserError):
    """A configuration value is invalid; names the key, the value and its source."""

    fields = ("key", "value", "source")
    code = "CONFIG_ERROR"

    def __init__(self, message: str, *, key: str = "", value: Any = None, source: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.value = value
        self.source = source


class InputValidationError(UserError):
    """Input failed validation; ``errors`` lists every bad field."""

    fields = ("errors",)
    code = "VALIDATION_ERROR"

    def __init__(self, message: str, *, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.errors: list[FieldError] = list(errors or [])


class DefinitionError(UserError):
    """A workflow definition is invalid; ``step_id`` names the offending step."""

    fields = ("definition_id", "step_id")
    code = "INVALID_DEFINITION"

    def __init__(self, message: str, *, definition_id: str | None = None, step_id: str | None = None) -> None:
        super().__init__(message)
        self.definition_id = definition_id
        self.step_id = step_id


class NotFoundError(UserError):
    """Something asked for by id does not exist."""

    fields = ("kind", "id")
    code = "NOT_FOUND"

    def __init__(self, message: str, *, kind: str = "", id: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.id = id


class ConflictError(UserError):
    """The request conflicts with what is stored (same id, different body)."""

    fields = ("id",)
    code = "CONFLICT"

    def __init__(self, message: str, *, id: str = "") -> None:
        super().__init__(message)
        self.id = id


class IllegalTransitionError(UserError):
    """A workflow state change that the state machine forbids."""

    fields = ("workflow_id", "from_state", "to_state")
    code = "ILLEGAL_TRANSITION"

    def __init__(self, message: str, *, workflow_id: str = "", from_state: str = "", to_state: str = "") -> None:
        super().__init__(message)
        self.workflow_id = workflow_id
        self.from_state = from_state
        self.to_state = to_state


# ---------------------------------------------------------------- step errors


class StepError(EclError):
    """A step failed while running. ``retryable`` says whether trying again may help."""

    fields: ClassVar[tuple[str, ...]] = ("step_id", "retryable")
    code = "STEP_FAILED"

    def __init__(self, message: str, *, step_id: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.step_id = step_id
        self.retryable = retryable


class LlmError(StepError):
    """An LLM provider failed; ``kind`` classifies it for retry decisions."""

    fields = ("step_id", "retryable", "kind", "status_code", "retry_after", "attempts")
    code = "LLM_ERROR"

    def __init__(
        self,
        message: str,
        *,
        kind: LlmErrorKind = "server",
        status_code: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        attempts: int = 1,
        step_id: str | None = None,
    ) -> None:
        super().__init__(message, step_id=step_id, retryable=retryable)
        self.kind: LlmErrorKind = kind
        self.status_code = status_code
        self.retry_after = retry_after
        self.attempts = attempts


class StepValidationError(StepError):
    """A step's input or output failed validation; ``errors`` names the fields."""

    fields = ("step_id", "retryable", "errors")
    code = "STEP_VALIDATION_ERROR"

    def __init__(
        self,
        message: str,
        *,
        errors: list[FieldError] | None = None,
        step_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, step_id=step_id, retryable=retryable)
        self.errors: list[FieldError] = list(errors or [])


class StepIoError(StepError):
    """File or network trouble inside a step."""

    code = "STEP_IO_ERROR"

    def __init__(self, message: str, *, step_id: str | None = None, retryable: bool = True) -> None:
        super().__init__(message, step_id=step_id, retryable=retryable)


class StepTimeoutError(StepError):
    """The step exceeded its time limit."""

    fields = ("step_id", "retryable", "timeout_seconds")
    code = "STEP_TIMEOUT"

    def __init__(
        self,
        message: str,
        *,
        timeout_seconds: float | None = None,
        step_id: str | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message, step_id=step_id, retryable=retryable)
        self.timeout_seconds = timeout_seconds


class MaxRevisionsExceeded(StepError):
    """A bounded revision loop ran out of iterations; terminal, never retried."""

    fields = ("step_id", "retryable", "attempts")
    code = "MAX_REVISIONS_EXCEEDED"

    def __init__(self, message: str, *, attempts: int, step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id, retryable=False)
        self.attempts = attempts


class BudgetExceeded(StepError):
    """An LLM call was not sent: its worst case (input tokens + ``max_tokens``) would cross the
    workflow's budget. Amounts are USD as decimal strings (exact); ``call`` describes the
    refused call (model, estimated input tokens, max_tokens, worst-case cost and tokens)."""

    fields = ("step_id", "retryable", "budget_usd", "budget_tokens", "spent_usd", "spent_tokens", "call")
    code = "BUDGET_EXCEEDED"

    def __init__(
        self,
        message: str,
        *,
        budget_usd: str | None = None,
        budget_tokens: int | None = None,
        spent_usd: str = "0",
        spent_tokens: int = 0,
        call: dict[str, Any] | None = None,
        step_id: str | None = None,
    ) -> None:
        super().__init__(message, step_id=step_id, retryable=False)
        self.budget_usd = budget_usd
        self.budget_tokens = budget_tokens
        self.spent_usd = spent_usd
        self.spent_tokens = spent_tokens
        self.call = call or {}


# ---------------------------------------------------------------- runtime failures


class RuntimeFailure(EclError):
    """ECL's own machinery failed (database, engine, journal)."""

    code = "RUNTIME_FAILURE"


class DatabaseError(RuntimeFailure):
    """The database is unreachable, locked, or not at the expected schema."""

    fields = ("hint",)
    code = "DATABASE_ERROR"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class NonDeterminismError(RuntimeFailure):
    """Replayed orchestrator code asked for something other than what the journal holds."""

    fields = ("workflow_id", "position", "expected", "actual")
    code = "NON_DETERMINISM"

    def __init__(
        self,
        message: str,
        *,
        workflow_id: str = "",
        position: int = 0,
        expected: str = "",
        actual: str = "",
    ) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id
        self.position = position
        self.expected = expected
        self.actual = actual


class JournalLimitError(RuntimeFailure):
    """A value is too large to journal; large results belong in artifacts."""

    fields = ("name", "size", "limit")
    code = "JOURNAL_LIMIT"

    def __init__(self, message: str, *, name: str = "", size: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.name = name
        self.size = size
        self.limit = limit


class LeaseError(RuntimeFailure):
    """Another live process owns the workflow."""

    fields = ("workflow_id", "owner")
    code = "LEASE_HELD"

    def __init__(self, message: str, *, workflow_id: str = "", owner: str = "") -> None:
        super().__init__(message)
        self.workflow_id = workflow_id
        self.owner = owner


class ArtifactCorrupted(RuntimeFailure):
    """An artifact's content differs from what was stored (size or sha256): never served."""

    fields = ("artifact_id", "reason")
    code = "ARTIFACT_CORRUPTED"

    def __init__(self, message: str, *, artifact_id: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.artifact_id = artifact_id
        self.reason = reason


class EngineError(RuntimeFailure):
    """The durable engine failed or is unreachable."""

    fields = ("engine",)
    code = "ENGINE_ERROR"

    def __init__(self, message: str, *, engine: str = "") -> None:
        super().__init__(message)
        self.engine = engine


# ---------------------------------------------------------------- engine signals


class EngineSignal(BaseException):
    """Control flow of an engine. Derives from BaseException so ``except Exception``
    in user code cannot swallow it."""


class WorkflowSuspended(EngineSignal):
    """The workflow waits (a promise, a long sleep) and gives its worker back."""


class WorkflowCancelled(EngineSignal):
    """The workflow was cancelled; unwinds the orchestrator."""

    def __init__(self, workflow_id: str = "") -> None:
        super().__init__(workflow_id)
        self.workflow_id = workflow_id
