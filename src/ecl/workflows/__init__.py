"""Workflow definitions, the orchestrator and the built-in workflows.

- :class:`WorkflowDefinition` (steps, transitions, options), validated against a
  :class:`~ecl.steps.StepRegistry` by :func:`validate_definition`;
- conditions in a small safe expression language (:func:`parse_expression`);
- definitions from YAML/TOML files (:func:`load_definition_file`, :func:`load_definitions`)
  and the :class:`DefinitionRegistry` (built-ins plus a definitions folder);
- :class:`WorkflowOrchestrator`, which runs a definition on a
  :class:`~ecl.core.DurableContext`;
- code-first workflows (:func:`workflow`, :class:`WorkflowContext`, :class:`CodeOrchestrator`);
- the :class:`WorkflowCatalog` every entry point builds (built-ins, user modules, entry
  points, a definitions folder) and its :class:`CatalogOrchestrator`;
- the built-in Critique-Revise workflow, as a graph and as code (:func:`builtin_definitions`,
  :func:`builtin_steps`, :func:`builtin_workflows`).
"""

from ecl.workflows.builtin import (
    builtin_definitions,
    builtin_step_list,
    builtin_steps,
    builtin_workflows,
    critique_revise_definition,
    parse_critique,
)
from ecl.workflows.catalog import (
    WORKFLOWS_GROUP,
    CatalogOrchestrator,
    DefinitionFiles,
    Orchestrator,
    WorkflowCatalog,
    WorkflowEntry,
    describe,
)
from ecl.workflows.code import CodeOrchestrator, CodeWorkflow, workflow
from ecl.workflows.context import WorkflowContext
from ecl.workflows.definition import (
    MAX_LOOP_ITERATIONS,
    Conditional,
    RevisionLoop,
    Sequential,
    StepDefinition,
    Transition,
    WorkflowDefinition,
    WorkflowOptions,
    validate_definition,
)
from ecl.workflows.expression import Expression, ExpressionError, parse_expression, unparse
from ecl.workflows.loader import DefinitionRegistry, load_definition_file, load_definitions, parse_definition
from ecl.workflows.orchestrator import (
    APPROVAL_PROMISE,
    BUDGET_PROMISE,
    STATE_DRAFT,
    STATE_REVISIONS,
    WorkflowOrchestrator,
    budget_journal_name,
    journal_name,
    promise_name,
)
from ecl.workflows.recorder import NullWorkflowRecorder, WorkflowRecorder

__all__ = [
    "APPROVAL_PROMISE",
    "BUDGET_PROMISE",
    "MAX_LOOP_ITERATIONS",
    "STATE_DRAFT",
    "STATE_REVISIONS",
    "WORKFLOWS_GROUP",
    "CatalogOrchestrator",
    "CodeOrchestrator",
    "CodeWorkflow",
    "Conditional",
    "DefinitionFiles",
    "DefinitionRegistry",
    "Expression",
    "ExpressionError",
    "NullWorkflowRecorder",
    "Orchestrator",
    "RevisionLoop",
    "Sequential",
    "StepDefinition",
    "Transition",
    "WorkflowCatalog",
    "WorkflowContext",
    "WorkflowDefinition",
    "WorkflowEntry",
    "WorkflowOptions",
    "WorkflowOrchestrator",
    "WorkflowRecorder",
    "budget_journal_name",
    "builtin_definitions",
    "builtin_step_list",
    "builtin_steps",
    "builtin_workflows",
    "critique_revise_definition",
    "describe",
    "journal_name",
    "load_definition_file",
    "load_definitions",
    "parse_critique",
    "parse_definition",
    "parse_expression",
    "promise_name",
    "unparse",
    "validate_definition",
    "workflow",
]
