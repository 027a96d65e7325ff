"""Workflow definitions: steps, their dependencies and inputs, transitions, options.

A step's ``input`` maps each field of its input model to a reference or a literal. A
reference is a string starting with ``$``:

- ``$input.topic``: the workflow input;
- ``$steps.generate.draft``: an output field of an upstream step;
- ``$state.current_draft``: durable workflow state (the revision loop keeps the current
  draft in ``current_draft`` and the revision count in ``revision_count``);
- ``$loop.feedback`` / ``$loop.iteration``: inside a revision loop only (the validator's
  feedback and the revision number, 1-based).

Anything else is a literal (numbers, booleans, lists, mappings, strings); a string that
really starts with ``$`` is written with two: ``$$5`` is the literal ``"$5"``. The ``$``
marks references unambiguously, so a literal such as ``"input.txt"`` stays a literal.

Transitions:

- ``sequential``: ``to`` runs after ``from`` (the same as ``to`` listing ``from`` in
  ``depends_on``);
- ``conditional``: ``to`` runs after ``from`` only when ``condition`` (see
  :mod:`ecl.workflows.expression`) holds; otherwise ``to`` and everything downstream of it
  is skipped;
- ``revision_loop``: when ``validator`` asks for a revision (its result is
  ``NeedsRevision``), ``reviser`` runs with the feedback and ``validator`` runs again, at
  most ``max_iterations`` (1..100) times. The reviser runs only inside its loop. A cycle
  between the reviser and the validator is the loop itself and is allowed; any other
  cycle is rejected. A definition has at most one revision loop.

:func:`validate_definition` checks a definition against a :class:`~ecl.steps.StepRegistry`
when it is loaded; every problem is a :class:`~ecl.core.DefinitionError` whose
``step_id`` names the step at fault.
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from ecl.core.errors import DefinitionError
from ecl.steps.registry import StepRegistry
from ecl.workflows.expression import ExpressionError, parse_expression

__all__ = [
    "MAX_LOOP_ITERATIONS",
    "Conditional",
    "RevisionLoop",
    "Sequential",
    "StepDefinition",
    "Transition",
    "WorkflowDefinition",
    "WorkflowOptions",
    "derive_input_model",
    "is_reference",
    "literal_value",
    "references_of",
    "validate_definition",
]

MAX_LOOP_ITERATIONS = 100
"""The largest ``max_iterations`` a revision loop may declare."""

_INPUT_ROOTS = ("input", "steps", "state", "loop")
_INPUT_MODEL = "_ecl_input_model"  # where validate_definition keeps the derived model (not a field)
_CONDITION_ROOTS = ("input", "steps", "state")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StepDefinition(_Model):
    """One step of a workflow."""

    step_id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    """Unique within the definition; part of journal names (compatibility data)."""
    step: str | None = None
    """Registry key of the implementation (default: ``step_id``)."""
    depends_on: list[str] = Field(default_factory=list)
    """Steps that must have completed first."""
    revision_source: str | None = None
    """The validator that may ask this step for a revision (must match a revision loop)."""
    input: dict[str, Any] = Field(default_factory=dict)
    """Input field -> ``$`` reference or literal."""
    timeout: float | None = Field(default=None, gt=0, le=86_400, allow_inf_nan=False)
    """Seconds one attempt of this step may run before it fails with ``STEP_TIMEOUT``
    (retried by the step's retry policy); overrides the implementation's own ``timeout``."""
    fallback: list[str] | None = None
    """Models this step's LLM requests fall back to, in order (overrides ``options.fallback``)."""

    @property
    def implementation(self) -> str:
        """The registry key."""
        return self.step or self.step_id


class Sequential(_Model):
    """``to`` runs after ``from``."""

    kind: Literal["sequential"] = "sequential"
    from_: str = Field(alias="from")
    to: str


class Conditional(_Model):
    """``to`` runs after ``from`` when ``condition`` is true; otherwise it is skipped."""

    kind: Literal["conditional"] = "conditional"
    from_: str = Field(alias="from")
    to: str
    condition: str


class RevisionLoop(_Model):
    """Bounded feedback loop between a validator and a reviser."""

    kind: Literal["revision_loop"] = "revision_loop"
    reviser: str
    validator: str
    max_iterations: int | None = None
    """At most this many revisions (1..100). Required: a loop without a bound is rejected."""
    draft: str = "$steps.generate.draft"
    """Reference to the first draft (stored in the durable state ``current_draft``)."""
    revised_field: str = "revised_draft"
    """The reviser's output field holding the new draft."""


Transition = Annotated[Sequential | Conditional | RevisionLoop, Field(discriminator="kind")]
"""One of :class:`Sequential`, :class:`Conditional`, :class:`RevisionLoop` (by ``kind``)."""


class WorkflowOptions(_Model):
    """Options of a definition (the workflow input may override them)."""

    require_approval: bool = False
    """Wait for human approval once every step has run (``input.require_approval``
    overrides). A human ``revise`` goes through the revision loop; without one, only
    ``approve`` can be carried out."""
    budget_usd: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Spending limit of each run in USD (``input.budget_usd`` overrides; default: ``budget.usd``)."""
    budget_tokens: int | None = Field(default=None, ge=0)
    """Token limit of each run (``input.budget_tokens`` overrides; default: ``budget.tokens``)."""
    fallback: list[str] = Field(default_factory=list)
    """Models every step's LLM requests fall back to, in order (default: ``llm.fallback``)."""
    max_concurrent_workflows: int | None = Field(default=None, ge=1, le=1_000_000)
    """Most runs of this definition at once on one embedded engine; the others wait their
    turn, in order (``None``: no limit)."""


class WorkflowDefinition(_Model):
    """A named graph of steps."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,127}$")
    name: str
    description: str = ""
    version: int = 1
    steps: list[StepDefinition]
    transitions: list[Transition] = Field(default_factory=list)
    options: WorkflowOptions = Field(default_factory=WorkflowOptions)
    final_output: str | None = None
    """Reference to the workflow's final text (for display), e.g. ``$steps.final.text``."""

    @property
    def input_model(self) -> type[BaseModel]:
        """The model the workflow input must satisfy, checked at submission (see
        :func:`derive_input_model`). Derived when the definition is validated against its
        step registry; before that, from the references alone (their types unknown)."""
        found: type[BaseModel] | None = self.__dict__.get(_INPUT_MODEL)
        return found if found is not None else derive_input_model(self, None)

    def step(self, step_id: str) -> StepDefinition:
        """The step definition with this id."""
        for step in self.steps:
            if step.step_id == step_id:
                return step
        raise DefinitionError(f"definition {self.id}: no step {step_id!r}", definition_id=self.id, step_id=step_id)

    @property
    def loops(self) -> list[RevisionLoop]:
        """The revision loops."""
        return [t for t in self.transitions if isinstance(t, RevisionLoop)]

    @property
    def loop_only(self) -> set[str]:
        """Reviser steps: they run only inside their loop."""
        return {loop.reviser for loop in self.loops}

    def dependencies(self) -> dict[str, set[str]]:
        """Each step's direct prerequisites: ``depends_on`` plus sequential and conditional
        edges, minus a validator's edge to its own reviser (that cycle is the loop)."""
        deps = {s.step_id: set(s.depends_on) for s in self.steps}
        for t in self.transitions:
            if isinstance(t, Sequential | Conditional) and t.to in deps:
                deps[t.to].add(t.from_)
        for loop in self.loops:
            if loop.validator in deps:
                deps[loop.validator].discard(loop.reviser)
        return deps

    def conditions(self) -> dict[str, list[str]]:
        """Conditions each step needs to hold (from conditional transitions), all of them."""
        found: dict[str, list[str]] = {}
        for t in self.transitions:
            if isinstance(t, Conditional):
                found.setdefault(t.to, []).append(t.condition)
        return found


def is_reference(value: Any) -> bool:
    """True for a ``$`` reference (``$$`` escapes a literal ``$``)."""
    return isinstance(value, str) and value.startswith("$") and not value.startswith("$$")


def literal_value(value: Any) -> Any:
    """A literal as the step sees it (``$$x`` -> ``$x``)."""
    if isinstance(value, str) and value.startswith("$$"):
        return value[1:]
    return value


def references_of(value: Any) -> list[str]:
    """The references (without ``$``) inside an input mapping value."""
    if is_reference(value):
        return [str(value)[1:]]
    if isinstance(value, dict):
        return [r for v in value.values() for r in references_of(v)]
    if isinstance(value, list):
        return [r for v in value for r in references_of(v)]
    return []


def _offer(found: dict[str, tuple[Any, FieldInfo]], name: str, annotation: Any, info: FieldInfo) -> None:
    """Keep the strictest declaration of an input field: a required one over an optional
    one, a typed one over ``Any``; otherwise the first."""
    if name not in found:
        found[name] = (annotation, info)
        return
    old_annotation, old = found[name]
    if (info.is_required() and not old.is_required()) or (old_annotation is Any and annotation is not Any):
        found[name] = (annotation, info)


def derive_input_model(defn: WorkflowDefinition, steps: StepRegistry | None) -> type[BaseModel]:
    """The input model of a graph definition, derived from its ``$input.x`` references.

    A field that a step input takes whole (``field: $input.x``) has the type, constraints
    and default of that step's input field (the strictest when several steps take it: a
    required one wins); any other use (a condition, a deeper path, inside a literal) makes
    an optional field of any type. ``require_approval`` (read by the orchestrator) is an
    optional boolean; ``budget_usd`` and ``budget_tokens`` (the run's budget) are optional.
    Unknown fields are refused, so a misspelt one is named at submission instead of failing
    the run later.
    """
    found: dict[str, tuple[Any, FieldInfo]] = {}

    def anything(ref: str) -> None:
        root, _, rest = ref.partition(".")
        if root == "input" and rest:
            _offer(found, rest.split(".", 1)[0], Any, FieldInfo(default=None))

    for step in defn.steps:
        known = steps is not None and step.implementation in steps
        model = steps.get(step.implementation).input_model if steps is not None and known else None
        for field, value in step.input.items():
            if is_reference(value) and model is not None and field in model.model_fields:
                root, _, rest = str(value)[1:].partition(".")
                if root == "input" and rest and "." not in rest:
                    consumer = model.model_fields[field]
                    _offer(found, rest, consumer.annotation, copy.copy(consumer))
                    continue
            for ref in references_of(value):
                anything(ref)
    for t in defn.transitions:
        if isinstance(t, Conditional):
            try:
                for ref in parse_expression(t.condition).references:
                    anything(ref)
            except ExpressionError:
                pass  # validate_definition names it
        elif isinstance(t, RevisionLoop) and is_reference(t.draft):
            anything(t.draft[1:])
    if "require_approval" not in found:
        found["require_approval"] = (bool | None, FieldInfo(default=None))
    # Read by the orchestrator too (ecl.llm.budget.parse_budget checks them, naming the value).
    for budget in ("budget_usd", "budget_tokens"):
        found.setdefault(budget, (Any, FieldInfo(default=None)))
    name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", defn.id)) + "Input"
    fields: dict[str, Any] = dict(found)
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def _error(defn: WorkflowDefinition, step_id: str | None, message: str) -> DefinitionError:
    where = f"step {step_id!r}: " if step_id else ""
    return DefinitionError(f"definition {defn.id}: {where}{message}", definition_id=defn.id, step_id=step_id)


def _upstream(deps: dict[str, set[str]], step_id: str) -> set[str]:
    seen: set[str] = set()
    stack = list(deps.get(step_id, ()))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(deps.get(current, ()))
    return seen


def _check_names(defn: WorkflowDefinition, steps: StepRegistry) -> list[str]:
    ids: list[str] = []
    for step in defn.steps:
        if step.step_id in ids:
            raise _error(defn, step.step_id, "is defined twice")
        ids.append(step.step_id)
    if not ids:
        raise _error(defn, None, "has no steps")
    for step in defn.steps:
        if step.implementation not in steps:
            known = ", ".join(steps.ids()) or "none"
            raise _error(defn, step.step_id, f"unknown step implementation {step.implementation!r} (known: {known})")
        for dep in step.depends_on:
            if dep not in ids:
                raise _error(defn, step.step_id, f"depends on unknown step {dep!r}")
            if dep == step.step_id:
                raise _error(defn, step.step_id, "depends on itself")
        if step.revision_source is not None and step.revision_source not in ids:
            raise _error(defn, step.step_id, f"revision_source {step.revision_source!r} is not a step")
    return ids


def _check_transitions(defn: WorkflowDefinition, ids: list[str]) -> None:
    for t in defn.transitions:
        if isinstance(t, Sequential | Conditional):
            for end in (t.to, t.from_):
                if end not in ids:
                    raise _error(defn, end, f"{t.kind} transition names an unknown step")
            if t.from_ == t.to:
                raise _error(defn, t.to, f"{t.kind} transition from a step to itself")
            if isinstance(t, Conditional):
                try:
                    parse_expression(t.condition)
                except ExpressionError as exc:
                    raise _error(defn, t.to, exc.message) from None
            continue
        for end in (t.reviser, t.validator):
            if end not in ids:
                raise _error(defn, end, "revision loop names an unknown step")
        if t.reviser == t.validator:
            raise _error(defn, t.reviser, "a revision loop needs two different steps (reviser, validator)")
        if t.max_iterations is None:
            raise _error(
                defn,
                t.reviser,
                f"revision loop has no bound: set max_iterations (1..{MAX_LOOP_ITERATIONS})",
            )
        if not 1 <= t.max_iterations <= MAX_LOOP_ITERATIONS:
            raise _error(
                defn,
                t.reviser,
                f"revision loop needs a bound: max_iterations must be 1..{MAX_LOOP_ITERATIONS}, got {t.max_iterations}",
            )
    loops = defn.loops
    if len(loops) > 1:
        raise _error(defn, loops[1].reviser, "a definition may declare at most one revision loop")
    loop = loops[0] if loops else None
    for step in defn.steps:
        if step.revision_source is None:
            continue
        if loop is None or loop.reviser != step.step_id or loop.validator != step.revision_source:
            raise _error(
                defn,
                step.step_id,
                f"revision_source {step.revision_source!r} needs a revision_loop with "
                f"reviser {step.step_id!r} and validator {step.revision_source!r}",
            )


def _check_cycles(defn: WorkflowDefinition, ids: list[str], deps: dict[str, set[str]]) -> None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(deps[node]):
            if state.get(dep) == 1:
                cycle = " -> ".join([*path[path.index(dep) :], dep]) if dep in path else dep
                raise _error(defn, node, f"dependency cycle outside a revision loop: {cycle}")
            if state.get(dep) is None:
                visit(dep, [*path, dep])
        state[node] = 2

    for step_id in ids:
        if state.get(step_id) is None:
            visit(step_id, [step_id])


def _check_reference(
    defn: WorkflowDefinition,
    step_id: str,
    ref: str,
    *,
    roots: tuple[str, ...],
    upstream: set[str],
    what: str,
) -> None:
    root, _, rest = ref.partition(".")
    if root not in roots:
        allowed = ", ".join(f"${r}." for r in roots)
        raise _error(defn, step_id, f"{what} ${ref} must start with one of {allowed}")
    if root != "loop" and not rest:
        raise _error(defn, step_id, f"{what} ${ref} names no field")
    if root == "steps":
        source = rest.split(".", 1)[0]
        if source not in {s.step_id for s in defn.steps}:
            raise _error(defn, step_id, f"{what} ${ref} refers to unknown step {source!r}")
        if source in defn.loop_only:
            raise _error(defn, step_id, f"{what} ${ref} reads reviser {source!r}; use $state.current_draft")
        if source not in upstream:
            raise _error(defn, step_id, f"{what} ${ref} needs {source!r} but it is not an upstream dependency")


def validate_definition(defn: WorkflowDefinition, steps: StepRegistry) -> WorkflowDefinition:
    """Reject unknown steps, cycles, missing inputs and unbounded loops (naming the step).

    Returns ``defn`` (its fields unchanged; its :attr:`~WorkflowDefinition.input_model` derived) when it is valid.
    """
    ids = _check_names(defn, steps)
    _check_transitions(defn, ids)
    deps = defn.dependencies()
    _check_cycles(defn, ids, deps)

    loop = defn.loops[0] if defn.loops else None
    upstream = {step_id: _upstream(deps, step_id) for step_id in ids}
    if loop is not None:
        # The reviser runs inside the loop, after its validator: it sees what the validator sees.
        validator_view = upstream[loop.validator] | {loop.validator}
        outside = sorted(deps[loop.reviser] - validator_view)
        if outside:
            raise _error(
                defn,
                loop.reviser,
                f"depends on {outside[0]!r}, which is not upstream of its validator {loop.validator!r}",
            )
        upstream[loop.reviser] = validator_view
        for step_id in ids:
            if step_id != loop.validator and loop.reviser in deps[step_id]:
                raise _error(
                    defn,
                    step_id,
                    f"depends on reviser {loop.reviser!r}, which runs only inside its loop; "
                    f"depend on the validator {loop.validator!r} instead",
                )
        if not is_reference(loop.draft):
            raise _error(defn, loop.validator, f"revision loop draft must be a $ reference, got {loop.draft!r}")
        _check_reference(
            defn,
            loop.validator,
            loop.draft[1:],
            roots=("input", "steps", "state"),
            upstream=upstream[loop.validator],
            what="revision loop draft",
        )
        reviser_impl = steps.get(defn.step(loop.reviser).implementation)
        if loop.revised_field not in reviser_impl.output_model.model_fields:
            raise _error(
                defn,
                loop.reviser,
                f"revised_field {loop.revised_field!r} is not a field of its output "
                f"({', '.join(reviser_impl.output_model.model_fields)})",
            )

    loop_steps = {loop.reviser, loop.validator} if loop is not None else set()
    for step in defn.steps:
        impl = steps.get(step.implementation)
        fields = impl.input_model.model_fields
        required = {name for name, field in fields.items() if field.is_required()}
        missing = sorted(required - set(step.input))
        if missing:
            raise _error(defn, step.step_id, f"missing input(s): {', '.join(missing)}")
        unknown = sorted(set(step.input) - set(fields))
        if unknown:
            raise _error(defn, step.step_id, f"unknown input field(s): {', '.join(unknown)}")
        for ref in references_of(step.input):
            if ref.partition(".")[0] == "loop" and step.step_id not in loop_steps:
                raise _error(defn, step.step_id, f"input ${ref} is only available inside a revision loop")
            _check_reference(defn, step.step_id, ref, roots=_INPUT_ROOTS, upstream=upstream[step.step_id], what="input")

    for target, conditions in defn.conditions().items():
        for condition in conditions:
            for ref in parse_expression(condition).references:
                _check_reference(
                    defn, target, ref, roots=_CONDITION_ROOTS, upstream=upstream[target], what="condition reference"
                )
    # A cache beside the fields (not one of them): it follows from the definition and the
    # registry, and must not take part in equality or serialisation.
    defn.__dict__[_INPUT_MODEL] = derive_input_model(defn, steps)
    return defn
