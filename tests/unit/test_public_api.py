"""``import ecl`` is the front door: a small, pinned list of names (as httpx pins its own)."""

from __future__ import annotations

import ecl

EXPECTED = [
    "CompletionRequest",
    "DefinitionFiles",
    "DurableContext",
    "EclError",
    "LlmError",
    "MaxRevisionsExceeded",
    "MockLlmProvider",
    "NeedsRevision",
    "RetryPolicy",
    "Step",
    "StepContext",
    "StepError",
    "StepValidationError",
    "Success",
    "WorkflowContext",
    "WorkflowResult",
    "open_engine",
    "step",
    "workflow",
]


def test_the_public_names_are_pinned() -> None:
    assert ecl.__all__ == EXPECTED


def test_every_public_name_exists_and_has_a_docstring() -> None:
    for name in ecl.__all__:
        value = getattr(ecl, name)
        assert (getattr(value, "__doc__", None) or "").strip(), name


def test_nothing_else_is_public() -> None:
    assert dir(ecl) == sorted(EXPECTED)
    assert sorted(ecl._HOME) == sorted(EXPECTED)
