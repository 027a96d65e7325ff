"""The step abstraction: typed input, typed output, one ``execute``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_args, get_origin

from pydantic import BaseModel

from ecl.core.policy import RetryPolicy
from ecl.core.results import StepResult

if TYPE_CHECKING:
    from ecl.steps.context import StepContext

__all__ = ["In", "Out", "Step"]

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)


class Step(ABC, Generic[In, Out]):
    """One unit of work of a workflow, usually one or a few LLM calls.

    Subclasses set ``id`` and implement :meth:`execute`; ``input_model`` and
    ``output_model`` come from the type arguments (``class Generate(Step[GenerateIn,
    GenerateOut])``), so they are not repeated. Input and output are pydantic models,
    validated before and after every attempt; ``validate_input`` and ``validate_output`` add
    checks that need more than field types (raise :class:`~ecl.core.StepValidationError`).
    A step must be idempotent apart from its LLM calls: a step in flight during a crash
    runs again. (For a plain async function, use :func:`ecl.step`.)
    """

    id: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    retry_policy: RetryPolicy = RetryPolicy()
    timeout: float | None = None
    """Seconds one attempt may run (monotonic clock) before it fails with
    :class:`~ecl.core.StepTimeoutError`, which the step's ``retry_policy`` retries like any
    retryable failure; ``None``: no limit. A graph step's ``timeout`` overrides it."""
    fallback: tuple[str, ...] = ()
    """Models this step's LLM requests fall back to, in order, when the model cannot answer
    (open circuit, retries spent on a retryable failure); empty: ``llm.fallback``. A graph
    step's or definition's ``fallback`` overrides it."""
    prompt_cache: bool = True
    """Let this step's requests use the provider's prompt cache where they mark a system
    prompt or a repeated prefix (``CompletionRequest.cache_system``, ``Message.cache_prefix``);
    ``False`` sends them unmarked."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Step:
                args = get_args(base)
                if len(args) == 2 and all(isinstance(a, type) and issubclass(a, BaseModel) for a in args):
                    # An explicit class attribute still wins (a subclass may narrow it).
                    if "input_model" not in cls.__dict__:
                        cls.input_model = args[0]
                    if "output_model" not in cls.__dict__:
                        cls.output_model = args[1]

    @abstractmethod
    async def execute(self, ctx: StepContext, input: In) -> StepResult[Out]:
        """Do the work."""

    async def validate_input(self, input: In) -> None:
        """Extra input checks (default: none)."""
        return

    async def validate_output(self, output: Out, input: In) -> None:
        """Extra output checks (default: none)."""
        return
