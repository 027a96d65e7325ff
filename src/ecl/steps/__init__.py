"""The step framework: Step, StepContext, StepExecutor, registry, prompts, validation."""

from ecl.core.policy import RetryPolicy
from ecl.steps.context import RecordingLlm, StepContext
from ecl.steps.execution import StepExecution, TraceEvent
from ecl.steps.executor import StepExecutor
from ecl.steps.prompts import PromptLibrary
from ecl.steps.recorder import NullRecorder, StepRecorder
from ecl.steps.registry import StepRegistry
from ecl.steps.step import Step
from ecl.steps.validation import field_errors, validate_model

__all__ = [
    "NullRecorder",
    "PromptLibrary",
    "RecordingLlm",
    "RetryPolicy",
    "Step",
    "StepContext",
    "StepExecution",
    "StepExecutor",
    "StepRecorder",
    "StepRegistry",
    "TraceEvent",
    "field_errors",
    "validate_model",
]
