"""The Critique-Revise workflow: generate → critique ⇄ revise (bounded) → final.

Generate writes a draft on a topic; Critique judges it and answers JSON
``{"critique": str, "decision": "pass" | "revise", "feedback": str | null}``; Revise
rewrites the draft with the feedback (the result must differ from its input); after at
most three revisions the run fails with ``MaxRevisionsExceeded``. Final stores the
approved text as an artifact (when an artifact store is configured).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from ecl.core.errors import EclError, StepValidationError
from ecl.core.results import NeedsRevision, StepResult, Success
from ecl.llm.provider import CompletionRequest
from ecl.steps.context import StepContext
from ecl.steps.registry import StepRegistry
from ecl.steps.step import Step
from ecl.steps.validation import field_errors
from ecl.workflows.definition import RevisionLoop, StepDefinition, WorkflowDefinition

__all__ = [
    "MAX_DRAFT",
    "CritiqueInput",
    "CritiqueOutput",
    "CritiqueStep",
    "FinalInput",
    "FinalOutput",
    "FinalStep",
    "GenerateInput",
    "GenerateOutput",
    "GenerateStep",
    "ReviseInput",
    "ReviseOutput",
    "ReviseStep",
    "builtin_definitions",
    "builtin_step_list",
    "builtin_steps",
    "builtin_workflows",
    "critique_revise_definition",
    "parse_critique",
]

MAX_DRAFT = 2000
"""The longest draft (characters) Generate and Revise may produce."""


class GenerateInput(BaseModel):
    """Generate's input."""

    topic: str = Field(min_length=1, max_length=500)


class GenerateOutput(BaseModel):
    """Generate's output."""

    draft: str = Field(min_length=1, max_length=MAX_DRAFT)


class CritiqueInput(BaseModel):
    """Critique's input."""

    draft: str = Field(min_length=1)


class CritiqueOutput(BaseModel):
    """Critique's output: the model's verdict."""

    critique: str
    decision: Literal["pass", "revise"]
    feedback: str | None = None


class ReviseInput(BaseModel):
    """Revise's input."""

    draft: str = Field(min_length=1)
    feedback: str = Field(min_length=1)
    attempt: int = Field(ge=1)


class ReviseOutput(BaseModel):
    """Revise's output."""

    revised_draft: str = Field(min_length=1, max_length=MAX_DRAFT)


class FinalInput(BaseModel):
    """Final's input."""

    text: str = Field(min_length=1)
    topic: str = ""


class FinalOutput(BaseModel):
    """Final's output."""

    text: str
    artifact_id: str | None = None


_FENCE = re.compile(r"^\s*```(?:json)?[ \t]*\n?(?P<body>.*?)\s*```\s*$", re.S | re.I)


def parse_critique(text: str, step_id: str = "critique") -> CritiqueOutput:
    """Parse the model's verdict; a reply inside a fenced code block is accepted."""
    match = _FENCE.match(text)
    body = match.group("body") if match else text.strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise StepValidationError(
            f"step {step_id}: the model did not answer with JSON ({exc.msg} at line {exc.lineno})",
            errors=[{"field": "(reply)", "message": "not JSON", "value": text[:200]}],
            step_id=step_id,
            retryable=True,
        ) from None
    try:
        verdict = CritiqueOutput.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        names = ", ".join(f"{e['field']} ({e['message']})" for e in errors)
        raise StepValidationError(
            f"step {step_id}: invalid critique JSON: {names}",
            errors=errors,
            step_id=step_id,
            retryable=True,
        ) from None
    if verdict.decision == "revise" and not (verdict.feedback or "").strip():
        raise StepValidationError(
            f"step {step_id}: decision is revise but feedback is empty",
            errors=[{"field": "feedback", "message": "required when decision is revise", "value": None}],
            step_id=step_id,
            retryable=True,
        )
    return verdict


_MARK = "\x00ecl-cache-mark\x00"


def _prefix_before(ctx: StepContext, template: str, variable: str) -> str:
    """The part of a prompt that comes before ``variable``: the same on every call (the
    critique instructions), so worth a prompt-cache breakpoint."""
    try:
        rendered = ctx.prompts.render(template, **{variable: _MARK})
    except EclError:
        return ""  # an overridden template that needs more variables: no breakpoint, no harm
    cut = rendered.find(_MARK)
    return rendered[:cut] if cut > 0 else ""


def _cached(request: CompletionRequest, *, prefix: str = "") -> CompletionRequest:
    """Mark the system prompt, and ``prefix`` of the last message when it starts with it."""
    messages = list(request.messages)
    if prefix and messages and messages[-1].content.startswith(prefix):
        messages[-1] = messages[-1].model_copy(update={"cache_prefix": len(prefix)})
    return request.model_copy(update={"cache_system": True, "messages": messages})


class GenerateStep(Step[GenerateInput, GenerateOutput]):
    """Topic → first draft."""

    id = "generate"

    async def execute(self, ctx: StepContext, input: GenerateInput) -> StepResult[GenerateOutput]:
        """One LLM call."""
        response = await ctx.llm.complete(
            _cached(
                CompletionRequest.of(
                    ctx.prompts.render("generate", topic=input.topic),
                    system=ctx.prompts.render("system"),
                )
            )
        )
        return Success(GenerateOutput.model_construct(draft=response.content.strip()))


class CritiqueStep(Step[CritiqueInput, CritiqueOutput]):
    """Draft → verdict; asks for a revision when the decision is ``revise``."""

    id = "critique"

    async def execute(self, ctx: StepContext, input: CritiqueInput) -> StepResult[CritiqueOutput]:
        """One LLM call, parsed as JSON."""
        response = await ctx.llm.complete(
            _cached(
                CompletionRequest.of(
                    ctx.prompts.render("critique", draft=input.draft),
                    system=ctx.prompts.render("system"),
                ),
                prefix=_prefix_before(ctx, "critique", "draft"),
            )
        )
        verdict = parse_critique(response.content, ctx.step_id)
        if verdict.decision == "revise":
            return NeedsRevision(verdict, verdict.feedback or "")
        return Success(verdict)


class ReviseStep(Step[ReviseInput, ReviseOutput]):
    """Draft + feedback → a different draft."""

    id = "revise"

    async def execute(self, ctx: StepContext, input: ReviseInput) -> StepResult[ReviseOutput]:
        """One LLM call."""
        response = await ctx.llm.complete(
            _cached(
                CompletionRequest.of(
                    ctx.prompts.render("revise", draft=input.draft, feedback=input.feedback, attempt=input.attempt),
                    system=ctx.prompts.render("system"),
                )
            )
        )
        return Success(ReviseOutput.model_construct(revised_draft=response.content.strip()))

    async def validate_output(self, output: ReviseOutput, input: ReviseInput) -> None:
        """A revision that changes nothing is not a revision."""
        if output.revised_draft.strip() == input.draft.strip():
            raise StepValidationError(
                "step revise: the revised draft is identical to the input draft",
                errors=[{"field": "revised_draft", "message": "unchanged", "value": None}],
                step_id="revise",
                retryable=True,
            )


class FinalStep(Step[FinalInput, FinalOutput]):
    """Keeps the approved text and stores it as an artifact."""

    id = "final"

    async def execute(self, ctx: StepContext, input: FinalInput) -> StepResult[FinalOutput]:
        """No LLM call."""
        artifact_id = None
        if ctx.artifacts is not None:
            artifact = await ctx.store_artifact("final.md", input.text.encode(), "text/markdown")
            artifact_id = artifact.id
        return Success(FinalOutput(text=input.text, artifact_id=artifact_id))


def critique_revise_definition() -> WorkflowDefinition:
    """The built-in ``critique-revise`` definition."""
    return WorkflowDefinition(
        id="critique-revise",
        name="Critique and Revise Loop",
        description="Generate a draft on a topic, critique it, revise it (at most 3 times).",
        steps=[
            StepDefinition(step_id="generate", input={"topic": "$input.topic"}),
            StepDefinition(step_id="critique", depends_on=["generate"], input={"draft": "$state.current_draft"}),
            StepDefinition(
                step_id="revise",
                depends_on=["critique"],
                revision_source="critique",
                input={
                    "draft": "$state.current_draft",
                    "feedback": "$loop.feedback",
                    "attempt": "$loop.iteration",
                },
            ),
            StepDefinition(
                step_id="final",
                depends_on=["critique"],
                input={"text": "$state.current_draft", "topic": "$input.topic"},
            ),
        ],
        transitions=[
            RevisionLoop(
                reviser="revise",
                validator="critique",
                max_iterations=3,
                draft="$steps.generate.draft",
                revised_field="revised_draft",
            )
        ],
        final_output="$steps.final.text",
    )


def builtin_step_list() -> list[Step[Any, Any]]:
    """Instances of the built-in steps."""
    return [GenerateStep(), CritiqueStep(), ReviseStep(), FinalStep()]


def builtin_steps() -> StepRegistry:
    """A registry of the built-in steps (``generate``, ``critique``, ``revise``, ``final``)."""
    return StepRegistry(builtin_step_list())


def builtin_workflows() -> list[Any]:
    """The built-in code-first workflows (``critique-revise-py``)."""
    from ecl.workflows.builtin.critique_revise_py import critique_revise_py

    return [critique_revise_py]


def builtin_definitions() -> list[WorkflowDefinition]:
    """The built-in definitions (``critique-revise``)."""
    return [critique_revise_definition()]
