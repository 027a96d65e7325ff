"""The step abstraction: typed input, typed output, one ``execute``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

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

    Subclasses set the class variables and implement :meth:`execute`. Input and output
    are pydantic models, validated before and after every attempt; ``validate_input`` and
    ``validate_output`` add checks that need more than field types (raise
    :class:`~ecl.core.StepValidationError`). A step must be idempotent apart from its LLM
    calls: a step in flight during a crash runs again.
    """

    id: ClassVar[str]
    name: ClassVar[str]
    input_model: ClassVar[type[BaseModel]]
    output_model: ClassVar[type[BaseModel]]
    max_revisions: ClassVar[int] = 3
    retry_policy: ClassVar[RetryPolicy] = RetryPolicy()

    @abstractmethod
    async def execute(self, ctx: StepContext, input: In) -> StepResult[Out]:
        """Do the work."""

    async def validate_input(self, input: In) -> None:
        """Extra input checks (default: none)."""
        return

    async def validate_output(self, output: Out, input: In) -> None:
        """Extra output checks (default: none)."""
        return
