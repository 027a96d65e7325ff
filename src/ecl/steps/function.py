"""Steps written as typed async functions: ``@ecl.step``.

The function's parameters after the :class:`~ecl.steps.StepContext` form the step's
pydantic input model, its return annotation the output model (a ``BaseModel`` as is; any
other type is held in a one-field model, ``{"result": value}``), as pydantic-ai builds a
tool's schema from its signature. The docstring's first line describes the step.

::

    @ecl.step
    async def summarise(ctx: ecl.StepContext, text: str, words: int = 50) -> str:
        reply = await ctx.llm.complete(ecl.CompletionRequest.of(f"Summarise in {words} words: {text}"))
        return reply.content

Called with a workflow's context (``await summarise(ctx, text)``) the call is one journaled
step: validated input, the retry policy, a ``step_executions`` row, LLM-call records. Called
with a :class:`StepContext` (from another step, or a unit test) the function just runs.
The same object registers as a step that YAML/TOML definitions use by its name.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model

from ecl.core.errors import DefinitionError
from ecl.core.policy import RetryPolicy
from ecl.core.results import Failed, NeedsRevision, StepResult, Success
from ecl.steps.context import StepContext
from ecl.steps.step import Step

__all__ = ["FunctionStep", "StepCaller", "StepFunction", "signature_model", "step"]

P = ParamSpec("P")
R = TypeVar("R")

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,127}$")
RESULT_FIELD = "result"
"""The field that holds a step's return value when its return type is not a model."""


class StepCaller(Protocol):
    """What a step handle needs of a workflow's context (``WorkflowContext`` implements it)."""

    def call_step(
        self, step: Step[Any, Any], input: dict[str, Any], *, iteration: int | None
    ) -> Awaitable[dict[str, Any]]:
        """Run ``step`` on ``input`` as one journaled call; the awaitable gives its JSON output.

        The journal name is chosen when this is called (not when awaited), so the order of
        calls, not of completions, fixes it."""
        ...


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def signature_model(fn: Callable[..., Any], model_name: str, *, skip_first: bool = True) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters (after the context), unknown fields rejected.

    Every parameter needs an annotation; ``*args``/``**kwargs`` are not allowed (a journaled
    input is a fixed set of named fields).
    """
    hints = get_type_hints(fn)
    params = list(inspect.signature(fn).parameters.values())
    if skip_first:
        if not params:
            raise DefinitionError(f"{fn.__qualname__}: the first parameter must be the context")
        params = params[1:]
    fields: dict[str, Any] = {}
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise DefinitionError(f"{fn.__qualname__}: *{param.name} is not allowed; name every input")
        if param.name not in hints:
            raise DefinitionError(f"{fn.__qualname__}: parameter {param.name!r} needs a type annotation")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)
    model: type[BaseModel] = create_model(
        model_name, __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False), **fields
    )
    model.__doc__ = f"The input of {fn.__qualname__}."
    return model


def _output_model(fn: Callable[..., Any], name: str) -> tuple[type[BaseModel], bool]:
    """The output model and whether it wraps the return value in ``{"result": ...}``."""
    annotation = get_type_hints(fn).get("return", Any)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    fields: dict[str, Any] = {RESULT_FIELD: (annotation, ...)}
    model: type[BaseModel] = create_model(f"{_pascal(name)}Output", **fields)
    return model, True


class FunctionStep(Step[BaseModel, BaseModel]):
    """The :class:`Step` of a decorated async function (what a ``StepRegistry`` holds)."""

    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        *,
        name: str,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        fallback: Sequence[str] = (),
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise DefinitionError(f"@ecl.step {fn.__qualname__}: a step must be an async function")
        if not _NAME.match(name):
            raise DefinitionError(
                f"@ecl.step {fn.__qualname__}: name {name!r} must match {_NAME.pattern} (lowercase, digits, _ . -)"
            )
        self.fn = fn
        self.id = name
        self.description = (inspect.getdoc(fn) or "").split("\n", 1)[0]
        self.input_model = signature_model(fn, f"{_pascal(name)}Input")
        self.output_model, self.boxed = _output_model(fn, name)
        if retry is not None:
            self.retry_policy = retry
        if timeout is not None:
            if not timeout > 0 or timeout == float("inf"):
                raise DefinitionError(
                    f"@ecl.step {fn.__qualname__}: timeout={timeout!r} must be a positive number of seconds"
                )
            self.timeout = float(timeout)
        if isinstance(fallback, str):
            raise DefinitionError(f"@ecl.step {fn.__qualname__}: fallback must be a list of model names")
        self.fallback = tuple(fallback)
        self._fields = tuple(self.input_model.model_fields)

    async def execute(self, ctx: StepContext, input: BaseModel) -> StepResult[BaseModel]:
        """Call the function with the validated fields; its return value is the output."""
        return self.result(await self.fn(ctx, **self.arguments(input)))

    def arguments(self, input: BaseModel) -> dict[str, Any]:
        """The function's keyword arguments: the validated input's fields."""
        return {name: getattr(input, name) for name in self._fields}

    def result(self, value: Any) -> StepResult[BaseModel]:
        """The step result of the function's return value."""
        if isinstance(value, Failed):
            return value
        if isinstance(value, Success | NeedsRevision):
            # A step may ask for a revision (or succeed explicitly) like a class step does.
            output = self.box(value.output)
            return NeedsRevision(output, value.feedback) if isinstance(value, NeedsRevision) else Success(output)
        return Success(self.box(value))

    def box(self, value: Any) -> Any:
        """The output model's data for a return value."""
        return {RESULT_FIELD: value} if self.boxed else value


class StepFunction(Generic[P, R]):
    """The handle ``@ecl.step`` returns: call it from a workflow (journaled) or a step (direct)."""

    def __init__(self, impl: Step[Any, Any], fn: Callable[..., Awaitable[Any]] | None, iteration: int | None = None):
        self.step = impl
        """The :class:`Step` implementation, registered under :attr:`name`."""
        self.fn = fn
        """The decorated function (``None`` for a wrapped class-based step)."""
        self._iteration = iteration
        self._signature = inspect.signature(fn) if fn is not None else None
        # Positional-only calls of a plain signature skip ``Signature.bind`` (the common case,
        # on the hot path): what it would bind is the leading parameters, in order.
        self._positional: tuple[str, ...] | None = None
        self._required = 0
        if self._signature is not None:
            params = list(self._signature.parameters.values())[1:]
            if all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params):
                self._positional = tuple(p.name for p in params)
                self._required = sum(1 for p in params if p.default is p.empty)
        self._adapter: TypeAdapter[Any] | None = None
        if isinstance(impl, FunctionStep) and impl.boxed:
            self._adapter = TypeAdapter(impl.output_model.model_fields[RESULT_FIELD].annotation or Any)
        if fn is not None:
            self.__doc__ = fn.__doc__
            self.__name__ = fn.__name__
            self.__qualname__ = fn.__qualname__
            self.__module__ = fn.__module__

    @property
    def name(self) -> str:
        """The step's id: its journal name is ``step:<name>`` and YAML uses it."""
        return self.step.id

    def iteration(self, n: int) -> StepFunction[P, R]:
        """The same step, journaled as ``step:<name>:<n>`` (``step:<name>`` when ``n`` is 0).

        By default the n-th call of a step in a run is iteration n (first call: 0); give it
        explicitly to match a graph's names, e.g. the revision number of a revise step.
        """
        if n < 0:
            raise ValueError(f"iteration must be >= 0, got {n}")
        return StepFunction(self.step, self.fn, n)

    def _input(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._signature is None:
            # A class-based step: one model instance, a mapping, or keyword fields.
            if len(args) == 1 and not kwargs:
                value = args[0]
                return value.model_dump() if isinstance(value, BaseModel) else dict(value)
            if args:
                raise TypeError(f"step {self.name}: pass its input as keywords or one {self.step.input_model.__name__}")
            return kwargs
        positional = self._positional
        if positional is not None and not kwargs and self._required <= len(args) <= len(positional):
            return dict(zip(positional, args, strict=False))
        try:
            bound = self._signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"step {self.name}: {exc}") from None
        data = dict(bound.arguments)
        data.pop(next(iter(self._signature.parameters)))
        return data

    def __call__(self, ctx: StepCaller | StepContext, /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        """Run the step (see the module docs)."""
        if isinstance(ctx, StepContext):
            return self._direct(ctx, args, kwargs)
        call_step = getattr(ctx, "call_step", None)
        if call_step is None:
            raise TypeError(
                f"step {self.name} needs the workflow's context (ecl.WorkflowContext) or a StepContext "
                f"as its first argument, got {type(ctx).__name__}"
            )
        # Taken now, synchronously: the journal position is fixed when the call is made,
        # so steps started together (asyncio.gather) replay in the same order.
        pending = call_step(self.step, self._input(args, kwargs), iteration=self._iteration)
        return self._journaled(pending)

    async def _journaled(self, pending: Awaitable[dict[str, Any]]) -> R:
        output = await pending
        return self.unbox(output)

    async def _direct(self, ctx: StepContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        if self.fn is not None:
            value: R = await self.fn(ctx, *args, **kwargs)
            return value
        model = self.step.input_model.model_validate(self._input(args, kwargs))
        result = await self.step.execute(ctx, model)
        if isinstance(result, Failed):
            raise result.error
        return self.unbox(self.step.output_model.model_validate(result.output).model_dump(mode="json"))

    def unbox(self, output: dict[str, Any]) -> R:
        """The caller's value of a step's JSON output (the model, or the plain return value)."""
        if self._adapter is not None:
            value: R = self._adapter.validate_python(output[RESULT_FIELD])
            return value
        model: R = self.step.output_model.model_validate(output)  # type: ignore[assignment]
        return model


@overload
def step(fn: Callable[Concatenate[StepContext, P], Awaitable[R]], /) -> StepFunction[P, R]: ...


@overload
def step(fn: Step[Any, Any], /) -> StepFunction[..., Any]: ...


@overload
def step(
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    fallback: Sequence[str] = (),
) -> Callable[[Callable[Concatenate[StepContext, P], Awaitable[R]]], StepFunction[P, R]]: ...


def step(
    fn: Callable[..., Awaitable[Any]] | Step[Any, Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    fallback: Sequence[str] = (),
) -> Any:
    """Make an async function (or a class-based step instance) a durable step.

    ``name`` defaults to the function's name (``_`` kept); ``retry`` is the step's
    :class:`~ecl.core.RetryPolicy` (default: 3 attempts with backoff, for retryable
    :class:`~ecl.core.StepError` s such as a transient LLM failure or invalid model output);
    ``timeout`` is how many seconds one attempt may run before it fails with
    :class:`~ecl.core.StepTimeoutError` (retried by ``retry``; default: no limit);
    ``fallback`` names the models its LLM requests fall back to (default: ``llm.fallback``).
    """

    def wrap(target: Callable[..., Awaitable[Any]] | Step[Any, Any]) -> StepFunction[Any, Any]:
        if isinstance(target, Step):
            if name is not None or retry is not None or timeout is not None or fallback:
                raise TypeError("ecl.step(instance) takes no options: set them on the Step class")
            return StepFunction(target, None)
        if isinstance(target, StepFunction):
            raise TypeError(f"{target.name} is already a step")
        impl = FunctionStep(target, name=name or target.__name__, retry=retry, timeout=timeout, fallback=fallback)
        return StepFunction(impl, target)

    if fn is None:
        return wrap
    return wrap(fn)
