"""The step framework: Step, ``@step`` functions, StepContext, StepExecutor, registry, prompts, validation."""

from ecl.core.policy import RetryPolicy
from ecl.steps.context import RecordingLlm, StepContext
from ecl.steps.execution import StepExecution, TraceEvent
from ecl.steps.executor import StepExecutor
from ecl.steps.function import FunctionStep, StepCaller, StepFunction, signature_model, step
from ecl.steps.prompts import PromptLibrary
from ecl.steps.recorder import NullRecorder, StepRecorder
from ecl.steps.registry import StepRegistry
from ecl.steps.step import Step
from ecl.steps.validation import field_errors, validate_model

__all__ = [
    "FunctionStep",
    "NullRecorder",
    "PromptLibrary",
    "RecordingLlm",
    "RetryPolicy",
    "Step",
    "StepCaller",
    "StepContext",
    "StepExecution",
    "StepExecutor",
    "StepFunction",
    "StepRecorder",
    "StepRegistry",
    "TraceEvent",
    "field_errors",
    "signature_model",
    "step",
    "validate_model",
]
