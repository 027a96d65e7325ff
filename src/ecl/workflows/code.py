"""Code-first workflows: an async function decorated with ``@ecl.workflow``.

::

    @ecl.workflow("summarise")
    async def summarise(ctx: ecl.WorkflowContext, text: str) -> str:
        return await summary(ctx, text)          # an @ecl.step: one journaled step

The function's parameters after the context form the workflow's input model (validated
when the workflow is submitted, and again when it runs); its return value, converted to
JSON through its return annotation, is the result's ``output``. Control flow is plain
Python (``for``, ``if``, ``asyncio.gather``); everything durable goes through the
:class:`~ecl.workflows.context.WorkflowContext`, whose journal names are those of the graph
form (``step:<name>``, ``step:<name>:<n>``), so the engines, records, CLI and API treat
both forms alike.

:class:`CodeOrchestrator` runs these functions on an engine's durable context; it and the
graph's :class:`~ecl.workflows.WorkflowOrchestrator` are the two implementations of the
orchestrator protocol that :class:`~ecl.workflows.catalog.WorkflowCatalog` dispatches to.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, get_type_hints, overload

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model

from ecl.core.durable import DurableContext
from ecl.core.errors import DefinitionError, InputValidationError, NotFoundError, RuntimeFailure, StepError, UserError
from ecl.core.records import StateChange
from ecl.core.results import WorkflowResult
from ecl.core.state import WorkflowState
from ecl.llm.budget import BudgetPolicy, parse_budget
from ecl.observability.logging import LazyLogger
from ecl.steps.executor import StepExecutor
from ecl.steps.function import StepFunction, signature_model
from ecl.steps.validation import field_errors
from ecl.workflows.budget import BUDGET_FIELDS, RunBudget, resolve_limits
from ecl.workflows.context import WorkflowContext
from ecl.workflows.recorder import NullWorkflowRecorder, WorkflowRecorder

__all__ = ["CodeOrchestrator", "CodeWorkflow", "workflow"]

P = ParamSpec("P")
R = TypeVar("R")

_ID = re.compile(r"^[a-z][a-z0-9_.-]{0,127}$")


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


class CodeWorkflow(Generic[P, R]):
    """A workflow written as an async function (what ``@ecl.workflow`` returns).

    Calling it runs the function directly (for tests with an in-memory context).
    """

    kind = "code"

    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        *,
        id: str,
        name: str | None,
        description: str | None,
        budget_usd: Decimal | float | str | None = None,
        budget_tokens: int | None = None,
        max_concurrent_workflows: int | None = None,
    ):
        if not inspect.iscoroutinefunction(fn):
            raise DefinitionError(f"@ecl.workflow {fn.__qualname__}: a workflow must be an async function")
        if not _ID.match(id):
            raise DefinitionError(
                f"@ecl.workflow {fn.__qualname__}: id {id!r} must match {_ID.pattern} (lowercase, digits, _ . -)",
                definition_id=id,
            )
        doc = inspect.getdoc(fn) or ""
        self.fn = fn
        self.id = id
        self.name = name or doc.split("\n", 1)[0] or id
        self.description = description if description is not None else doc
        try:
            usd, tokens = parse_budget({"budget_usd": budget_usd, "budget_tokens": budget_tokens})
        except UserError as err:
            raise DefinitionError(f"@ecl.workflow {fn.__qualname__}: {err.message}", definition_id=id) from None
        self.budget_usd: Decimal | None = usd
        """Spending limit of each run in USD (``input.budget_usd`` overrides; default: ``budget.usd``)."""
        self.budget_tokens: int | None = tokens
        """Token limit of each run (``input.budget_tokens`` overrides; default: ``budget.tokens``)."""
        if max_concurrent_workflows is not None and (
            isinstance(max_concurrent_workflows, bool)
            or not isinstance(max_concurrent_workflows, int)
            or max_concurrent_workflows < 1
        ):
            raise DefinitionError(
                f"@ecl.workflow {fn.__qualname__}: max_concurrent_workflows={max_concurrent_workflows!r} "
                "must be a whole number >= 1",
                definition_id=id,
            )
        self.max_concurrent_workflows = max_concurrent_workflows
        """Most runs of this workflow at once on one embedded engine (``None``: no limit)."""
        self.parameters: type[BaseModel] = signature_model(fn, f"{_pascal(id)}Parameters")
        """The function's own parameters (after the context)."""
        # Every workflow takes its budget in the input, as a graph's does (checked by the run,
        # naming the value); the function receives them only when it declares them.
        extra: dict[str, Any] = {
            f: (Any, Field(default=None, exclude=True)) for f in BUDGET_FIELDS if f not in self.parameters.model_fields
        }
        self.input_model: type[BaseModel] = create_model(f"{_pascal(id)}Input", __base__=self.parameters, **extra)
        self.input_model.__doc__ = f"The input of workflow {id}."
        annotation = get_type_hints(fn).get("return", Any)
        self._output: TypeAdapter[Any] = TypeAdapter(annotation)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__module__ = fn.__module__

    def __call__(self, ctx: WorkflowContext, /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        """Call the function itself (no input validation, no result conversion)."""
        result: Awaitable[R] = self.fn(ctx, *args, **kwargs)
        return result

    def steps(self) -> list[str]:
        """Names of the steps the function refers to (for listings; found by name, best effort)."""
        scope = getattr(self.fn, "__globals__", {})
        found: list[str] = []
        for key in self.fn.__code__.co_names:  # in order of first mention
            value = scope.get(key)
            if isinstance(value, StepFunction) and value.name not in found:
                found.append(value.name)
        return found

    def validate_input(self, data: dict[str, Any]) -> BaseModel:
        """The validated input model, or :class:`InputValidationError` naming each bad field."""
        try:
            return self.input_model.model_validate(data)
        except ValidationError as exc:
            errors = field_errors(exc)
            names = "; ".join(f"{e['field']} = {e['value']!r}: {e['message']}" for e in errors)
            raise InputValidationError(f"workflow {self.id}: invalid input: {names}", errors=errors) from None

    def output_json(self, value: Any) -> Any:
        """The return value as JSON (through the return annotation), or a one-line error."""
        try:
            # Validated first: a value that does not match the return annotation is an error
            # here, not a serialisation warning.
            data = self._output.dump_python(self._output.validate_python(value), mode="json")
            json.dumps(data, allow_nan=False)
        except ValidationError as exc:
            first = "; ".join(f"{e['msg']}" for e in exc.errors())
            raise StepError(
                f"workflow {self.id} returned a value that does not match its return annotation "
                f"({type(value).__name__}): {first}",
                retryable=False,
            ) from None
        except Exception as exc:  # pydantic's serialisation errors have no common base
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StepError(
                f"workflow {self.id} returned a value that is not JSON ({type(value).__name__}): {first}",
                retryable=False,
            ) from None
        return data

    def describe(self) -> dict[str, Any]:
        """JSON description for listings (``ecl definitions``, ``GET /definitions``)."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "module": self.fn.__module__,
            "steps": [{"step_id": s} for s in self.steps()],
            "transitions": [],
            "input_schema": self.input_model.model_json_schema(),
        }


@overload
def workflow(id: Callable[Concatenate[WorkflowContext, P], Awaitable[R]], /) -> CodeWorkflow[P, R]: ...


@overload
def workflow(
    id: str | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    budget_usd: Decimal | float | str | None = None,
    budget_tokens: int | None = None,
    max_concurrent_workflows: int | None = None,
) -> Callable[[Callable[Concatenate[WorkflowContext, P], Awaitable[R]]], CodeWorkflow[P, R]]: ...


def workflow(
    id: str | Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    budget_usd: Decimal | float | str | None = None,
    budget_tokens: int | None = None,
    max_concurrent_workflows: int | None = None,
) -> Any:
    """Make an async function a durable workflow, registered under ``id``.

    ``id`` defaults to the function's name with ``_`` as ``-``; ``name`` to the docstring's
    first line; ``description`` to the docstring. ``budget_usd`` / ``budget_tokens`` limit
    each run's LLM spend (the input's ``budget_usd`` / ``budget_tokens`` override them; the
    configured ``budget.*`` applies when neither is set), as a graph's ``options`` do.
    ``max_concurrent_workflows`` caps the runs of this workflow at once on one embedded
    engine (the others wait their turn, in order).
    """

    def wrap(fn: Callable[..., Awaitable[Any]]) -> CodeWorkflow[Any, Any]:
        wid = id if isinstance(id, str) and id else fn.__name__.replace("_", "-")
        return CodeWorkflow(
            fn,
            id=wid,
            name=name,
            description=description,
            budget_usd=budget_usd,
            budget_tokens=budget_tokens,
            max_concurrent_workflows=max_concurrent_workflows,
        )

    if callable(id):
        return wrap(id)

    return wrap


class CodeOrchestrator:
    """Runs code-first workflows on an engine's durable context (the orchestrator protocol)."""

    def __init__(
        self,
        workflows: Mapping[str, CodeWorkflow[Any, Any]] | Iterable[CodeWorkflow[Any, Any]],
        executor: StepExecutor,
        *,
        budget: BudgetPolicy | None = None,
    ) -> None:
        # A mapping is kept as is (the catalog's own), so workflows added later are seen.
        self.workflows = workflows if isinstance(workflows, Mapping) else {wf.id: wf for wf in workflows}
        self.executor = executor
        self.budget = budget or BudgetPolicy()

    def get(self, definition_id: str) -> CodeWorkflow[Any, Any]:
        """The workflow, or :class:`NotFoundError`."""
        try:
            return self.workflows[definition_id]
        except KeyError:
            raise NotFoundError(f"unknown workflow {definition_id!r}", kind="definition", id=definition_id) from None

    async def run(
        self,
        ctx: DurableContext,
        definition_id: str,
        input: dict[str, Any],
        *,
        recorder: WorkflowRecorder | None = None,
    ) -> WorkflowResult:
        """Execute (or, on replay, re-trace) one run of a code-first workflow.

        A step failure, an invalid input, an exception of the workflow's own code or a
        return value that is not JSON end the run as ``failed`` with ``error``; engine
        signals, cancellation and :class:`~ecl.core.NonDeterminismError` propagate.
        """
        wf = self.get(definition_id)
        rec: WorkflowRecorder = recorder or NullWorkflowRecorder()
        started = time.perf_counter()
        wctx = WorkflowContext(ctx, self.executor, rec, RunBudget(ctx, rec, self.budget))
        wid = ctx.workflow_id
        await rec.workflow_state(StateChange(wid, WorkflowState.RUNNING))
        try:
            model = wf.validate_input(input)
            wctx.budget.limits = resolve_limits(input, self.budget, usd=wf.budget_usd, tokens=wf.budget_tokens)
            args = {field: getattr(model, field) for field in wf.parameters.model_fields}
            call = wf.fn(wctx, **args)
            del model, args  # the function has its arguments: not held across the whole run here too
            value = await call
            output = wf.output_json(value)
        except (StepError, UserError) as err:
            error = err.to_dict()
        except RuntimeFailure:
            raise
        except Exception as exc:
            if exc is wctx.machinery_error:
                raise  # the engine underneath failed (a lost lease, the database): not the code's fault
            error = StepError(f"workflow {definition_id} raised {type(exc).__name__}: {exc}", retryable=False).to_dict()
        else:
            result = WorkflowResult.of_run(
                wctx,
                workflow_id=wid,
                definition_id=definition_id,
                state=WorkflowState.COMPLETED,
                started=started,
                output=output,
            )
            await rec.workflow_state(
                StateChange(wid, WorkflowState.COMPLETED, output=result.outputs, revision_count=wctx.revisions)
            )
            # A logger made here, not held across the run by each of thousands of concurrent runs.
            log = LazyLogger("ecl.workflows", workflow_id=wid, definition_id=definition_id)
            log.info("workflow completed", revisions=wctx.revisions, tokens=wctx.tokens.total, cost_usd=str(wctx.cost))
            return result
        log = LazyLogger("ecl.workflows", workflow_id=wid, definition_id=definition_id)
        log.warning("workflow failed", error=error.get("message"), step_id=error.get("step_id"))
        result = WorkflowResult.of_run(
            wctx, workflow_id=wid, definition_id=definition_id, state=WorkflowState.FAILED, started=started, error=error
        )
        await rec.workflow_state(
            StateChange(wid, WorkflowState.FAILED, error=result.error, revision_count=wctx.revisions)
        )
        return result
