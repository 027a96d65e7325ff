"""Step metadata and token accounting."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NO_TOKENS", "StepMetadata", "TokenUsage", "built", "share_fields_set"]

M = TypeVar("M", bound=BaseModel)

_EVERY_FIELD: dict[type[BaseModel], set[str]] = {}


def share_fields_set(model: M) -> M:
    """``model``, whose set of explicitly set field names (pydantic's ``model_fields_set``)
    is made one set shared by every instance of its class that set every field.

    pydantic gives each instance a set of its own: 728 bytes once it holds five names or
    more, more than the rest of a :class:`StepMetadata`; a run keeps one per step (in its
    result too), and ten thousand concurrent runs hold tens of thousands. Only a set naming
    every field is shared: assigning a field later adds a name it holds already, so the
    shared set never changes. Any other set is left as it is."""
    names = model.__pydantic_fields_set__
    cls = type(model)
    every = _EVERY_FIELD.get(cls)
    if every is None:
        every = _EVERY_FIELD[cls] = set(cls.model_fields)
    if len(names) == len(every) and names == every:
        object.__setattr__(model, "__pydantic_fields_set__", every)
    return model


_BUILDABLE: dict[type[BaseModel], tuple[str, ...]] = {}
_set = object.__setattr__


def _buildable(cls: type[BaseModel]) -> tuple[str, ...]:
    """``cls``'s field names, once it is known that validating changes nothing of values
    already of their fields' types: no validator, private attribute or extra field."""
    decorators = cls.__pydantic_decorators__
    if (
        decorators.validators
        or decorators.field_validators
        or decorators.root_validators
        or decorators.model_validators
        or cls.__private_attributes__
        or cls.model_config.get("extra") == "allow"
    ):
        raise TypeError(f"{cls.__name__} validates more than field types: build it with {cls.__name__}(...)")
    names = _BUILDABLE[cls] = tuple(cls.model_fields)
    _EVERY_FIELD.setdefault(cls, set(names))
    return names


def built(cls: type[M], /, **values: Any) -> M:
    """``cls(**values)`` for values that ECL made itself, each already of its field's type
    (a timestamp it took, a count it kept, a model instance, a validated output's JSON):
    the same instance, without validating them again, its fields set shared as
    :func:`share_fields_set` does. Every field must be given, in the class's field order
    (the order of ``__dict__``, which ``repr`` and iteration follow): ``TypeError`` otherwise.

    A step builds four such objects (its trace events, metadata and execution); pydantic's
    validation of them was a tenth of the executor's CPU per step. Users' data is never
    built this way: step inputs and outputs are validated by their models."""
    names = _BUILDABLE.get(cls) or _buildable(cls)
    if tuple(values) != names:
        raise TypeError(f"{cls.__name__}: every field must be given, in the order {names}, got {tuple(values)}")
    model = cls.__new__(cls)
    _set(model, "__dict__", values)  # a fresh dict (the keywords) of its own
    _set(model, "__pydantic_fields_set__", _EVERY_FIELD[cls])
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


class TokenUsage(BaseModel):
    """Tokens of one or more LLM calls, prompt-cache tokens included."""

    model_config = ConfigDict(frozen=True)

    input: int = 0
    output: int = 0
    cache_creation: int = 0
    cache_read: int = 0

    @property
    def total(self) -> int:
        """Every token billed, cache tokens included."""
        return self.input + self.output + self.cache_creation + self.cache_read

    def __add__(self, other: TokenUsage) -> TokenUsage:
        # Immutable: adding nothing (a step that made no LLM call) is the same usage, not a new one.
        if not (other.input or other.output or other.cache_creation or other.cache_read):
            return self
        return TokenUsage(
            input=self.input + other.input,
            output=self.output + other.output,
            cache_creation=self.cache_creation + other.cache_creation,
            cache_read=self.cache_read + other.cache_read,
        )


NO_TOKENS = TokenUsage()
"""No tokens: what a step attempt and a run start from (frozen, so one object serves all;
thousands of concurrent runs each held their own)."""


class StepMetadata(BaseModel):
    """What happened when a step ran: when, which attempt, how many tokens."""

    step_id: str
    started_at: datetime
    completed_at: datetime | None = None
    attempt: int = 1
    llm_tokens_used: TokenUsage | None = None
    llm_calls: int = 0
    cost_usd: Decimal = Decimal(0)
    """What every LLM call of the step cost (all attempts, failed ones included), exactly."""
    spent_tokens: int = 0
    """Every token of every attempt's LLM calls (what a token budget counts)."""
    llm_models: list[str] = Field(default_factory=list)
    """The model that answered each LLM call of the completed attempt, in order (a fallback
    model when the first could not answer); journaled with the step's result."""

    @property
    def duration_ms(self) -> float | None:
        """Wall time of the step in milliseconds, once it completed."""
        if self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds() * 1000.0
