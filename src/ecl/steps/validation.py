"""Turning pydantic validation failures into field-level step errors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from ecl.core.errors import StepValidationError
from ecl.core.rules import field_errors

__all__ = ["field_errors", "validate_model"]


def validate_model(
    model: type[BaseModel],
    data: Any,
    *,
    step_id: str,
    where: Literal["input", "output"],
    retryable: bool = False,
) -> BaseModel:
    """Validate ``data`` against ``model``; the error names every bad field."""
    if isinstance(data, BaseModel):
        # Re-validate: a step may have built its output with model_construct.
        data = data.model_dump(mode="json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        names = ", ".join(f"{e['field']} ({e['message']})" for e in errors)
        raise StepValidationError(
            f"step {step_id}: invalid {where}: {names}",
            errors=errors,
            step_id=step_id,
            retryable=retryable,
        ) from None
