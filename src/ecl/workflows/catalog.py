"""The workflow catalog: every workflow and step an entry point can run, in one registry.

Built the same way by every entry point (``ecl run``, ``ecl definitions``, ``ecl server
start``, ``ecl dev``, the Restate endpoint, :func:`ecl.open_engine`), from:

1. the built-ins (Critique-Revise as a graph, ``critique-revise``, and as code,
   ``critique-revise-py``);
2. user modules (the ``modules`` setting, ``ECL_MODULES``, ``--module/-m``) and the
   ``ecl.workflows`` entry-point group of installed packages: each module's
   ``@ecl.workflow`` functions, ``@ecl.step`` functions, class-based steps and
   :class:`~ecl.workflows.WorkflowDefinition` objects, plus the definition files of a
   :class:`DefinitionFiles` it exports, and its ``prompts/`` folder;
3. the definitions folder (``definitions_path``), whose YAML/TOML may use any step above.

A workflow id declared twice (two modules, or a module and a file) is an error naming
both places; so is a module that fails to import. Graph definitions and code-first
workflows are the two implementations of one orchestrator protocol; the catalog's
:meth:`~WorkflowCatalog.orchestrator` dispatches a run to the right one.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Coroutine, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from pydantic import BaseModel

from ecl.artifacts.store import ArtifactStore
from ecl.core.durable import DurableContext
from ecl.core.errors import ConfigError, NotFoundError
from ecl.core.results import WorkflowResult
from ecl.llm.budget import BudgetPolicy
from ecl.llm.prices import PriceTable
from ecl.llm.provider import LlmProvider
from ecl.steps.function import StepFunction
from ecl.steps.prompts import PromptLibrary
from ecl.steps.registry import StepRegistry
from ecl.steps.step import Step
from ecl.workflows.code import CodeOrchestrator, CodeWorkflow
from ecl.workflows.definition import WorkflowDefinition
from ecl.workflows.loader import DefinitionRegistry, load_definitions
from ecl.workflows.orchestrator import WorkflowOrchestrator
from ecl.workflows.recorder import WorkflowRecorder

__all__ = [
    "WORKFLOWS_GROUP",
    "CatalogOrchestrator",
    "DefinitionFiles",
    "Orchestrator",
    "WorkflowCatalog",
    "WorkflowEntry",
    "describe",
]

WORKFLOWS_GROUP = "ecl.workflows"
"""The entry-point group installed packages use to offer workflows and steps."""

WorkflowEntry = WorkflowDefinition | CodeWorkflow[Any, Any]
"""What :meth:`WorkflowCatalog.get` returns: both have ``id``, ``name``, ``description``,
``input_model`` and ``describe()``."""


def describe(entry: WorkflowEntry) -> dict[str, Any]:
    """JSON description of either form: ``id``, ``name``, ``description``, ``kind``
    (``graph`` or ``code``), ``steps``, ``transitions`` and the rest of a graph's fields."""
    if isinstance(entry, CodeWorkflow):
        return entry.describe()
    return {**entry.model_dump(mode="json", by_alias=True), "kind": "graph"}


class Orchestrator(Protocol):
    """What an engine runs: one workflow run on a durable context."""

    async def run(
        self,
        ctx: DurableContext,
        definition_id: str,
        input: dict[str, Any],
        *,
        recorder: WorkflowRecorder | None = None,
    ) -> WorkflowResult:
        """Execute (or replay) one workflow."""
        ...


@dataclass(frozen=True)
class DefinitionFiles:
    """Export one from a module to ship YAML/TOML definitions with it (a file or a folder).

    They are loaded after the module's steps are registered, so they may use them::

        definitions = ecl.DefinitionFiles(Path(__file__).parent / "definitions")
    """

    path: Path


class WorkflowCatalog:
    """Steps, graph definitions and code-first workflows by id, each with its source."""

    def __init__(self, steps: StepRegistry | None = None) -> None:
        self.steps = steps or StepRegistry()
        self.definitions = DefinitionRegistry(self.steps)
        self.code: dict[str, CodeWorkflow[Any, Any]] = {}
        self.prompt_dirs: list[Path] = []
        """Prompt folders of loaded modules (after the configured override folder)."""
        self._sources: dict[str, str] = {}

    @classmethod
    def builtin(cls) -> WorkflowCatalog:
        """The built-in steps and workflows only."""
        from ecl.workflows.builtin import builtin_definitions, builtin_steps, builtin_workflows

        catalog = cls(builtin_steps())
        for defn in builtin_definitions():
            catalog.add(defn, source="ecl (built-in)")
        for wf in builtin_workflows():
            catalog.add(wf, source="ecl (built-in)")
        return catalog

    @classmethod
    def build(
        cls,
        *,
        modules: Iterable[str] = (),
        entry_points: bool = True,
        folder: Path | None = None,
        workflows: Iterable[Any] = (),
    ) -> WorkflowCatalog:
        """Built-ins + ``workflows`` (objects) + ``modules`` + entry points + ``folder``."""
        catalog = cls.builtin()
        for obj in workflows:
            catalog.add_object(obj, source="open_engine(workflows=...)")
        for name in modules:
            catalog.load_module(name)
        if entry_points:
            catalog.load_entry_points()
        if folder is not None:
            catalog.load_folder(folder)
        return catalog

    # ------------------------------------------------------------------ adding

    def _claim(self, workflow_id: str, source: str) -> None:
        known = self._sources.get(workflow_id)
        if known is not None and known != source and not known.startswith("ecl (built-in)"):
            raise ConfigError(
                f"workflow id {workflow_id!r} is declared twice: in {known} and in {source}",
                key="modules",
                value=workflow_id,
                source=source,
            )
        self._sources[workflow_id] = source

    def add(self, entry: WorkflowEntry, *, source: str = "code") -> None:
        """Add a definition or a code-first workflow (a user's may replace a built-in id)."""
        if self.code.get(entry.id) is entry:
            return  # the same workflow reached twice (given, and its module an entry point)
        self._claim(entry.id, source)
        if isinstance(entry, CodeWorkflow):
            self.definitions.remove(entry.id)
            self.code[entry.id] = entry
        else:
            self.code.pop(entry.id, None)
            self.definitions.add(entry)

    def add_step(self, step: StepFunction[Any, Any] | Step[Any, Any]) -> None:
        """Register a step (a ``@ecl.step`` handle or a class-based step instance); the
        ``prompts/`` folder beside its module is searched for its templates."""
        impl = step.step if isinstance(step, StepFunction) else step
        self.steps.register(impl)
        fn = getattr(impl, "fn", None)
        self._add_prompts_of(sys.modules.get(fn.__module__ if fn is not None else type(impl).__module__))

    def add_object(self, obj: Any, *, source: str) -> None:
        """Add whatever a module or an entry point offers (see the module docs)."""
        if isinstance(obj, ModuleType):
            self._add_module(obj)
        elif isinstance(obj, CodeWorkflow | WorkflowDefinition):
            self._add_steps_of(obj)
            self.add(obj, source=source)
        elif isinstance(obj, StepFunction | Step):
            self.add_step(obj)
        elif isinstance(obj, DefinitionFiles):
            self.load_folder(obj.path, source=source)
        elif isinstance(obj, list | tuple):
            for item in obj:
                self.add_object(item, source=source)
        else:
            raise ConfigError(
                f"{source}: {type(obj).__name__} is not a workflow, a step, a definition or a module",
                key="modules",
                value=repr(obj)[:80],
                source=source,
            )

    def _add_steps_of(self, wf: CodeWorkflow[Any, Any] | WorkflowDefinition) -> None:
        if isinstance(wf, CodeWorkflow):
            for value in getattr(wf.fn, "__globals__", {}).values():
                if isinstance(value, StepFunction) and value.name not in self.steps:
                    self.add_step(value)
            self._add_prompts_of(sys.modules.get(wf.fn.__module__))

    def _add_prompts_of(self, module: ModuleType | None) -> None:
        """The ``prompts/`` folder beside a module, if it has one."""
        if module is None or not getattr(module, "__file__", None):
            return
        prompts = Path(str(module.__file__)).parent / "prompts"
        if prompts.is_dir() and prompts not in self.prompt_dirs:
            self.prompt_dirs.append(prompts)

    def _add_module(self, module: ModuleType) -> None:
        source = f"module {module.__name__}"
        members = list(vars(module).values())
        files: list[DefinitionFiles] = []
        for value in members:
            if isinstance(value, StepFunction):
                self.add_step(value)
            elif (
                inspect.isclass(value)
                and issubclass(value, Step)
                and value.__module__ == module.__name__
                and not inspect.isabstract(value)
                and isinstance(getattr(value, "id", None), str)
            ):
                self.add_step(value())
        for value in members:
            if isinstance(value, WorkflowDefinition) or (
                isinstance(value, CodeWorkflow) and value.fn.__module__ == module.__name__
            ):
                self.add(value, source=source)
            elif isinstance(value, DefinitionFiles):
                files.append(value)
        for found in files:
            self.load_folder(found.path, source=source)
        self._add_prompts_of(module)

    def load_module(self, name: str) -> None:
        """Import ``name`` and add what it declares; an import failure is one line naming both."""
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # any failure of the user's module: report it, never a traceback
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ConfigError(
                f"module {name!r} failed to import: {type(exc).__name__}" + (f": {detail}" if detail else ""),
                key="modules",
                value=name,
                source="modules",
            ) from exc
        self._add_module(module)

    def load_entry_points(self) -> None:
        """Add what installed packages offer in the ``ecl.workflows`` entry-point group."""
        for ep in entry_points(group=WORKFLOWS_GROUP):
            source = f"entry point {ep.name} ({ep.value})"
            try:
                obj = ep.load()
            except Exception as exc:
                raise ConfigError(
                    f"{source} failed to load: {type(exc).__name__}: {exc}".splitlines()[0],
                    key=WORKFLOWS_GROUP,
                    value=ep.value,
                    source=source,
                ) from exc
            self.add_object(obj, source=source)

    def load_folder(self, folder: Path, *, source: str | None = None) -> list[str]:
        """Add every definition file in ``folder`` (or the one file); returns their ids."""
        loaded = load_definitions(folder, self.steps)
        for defn in loaded:
            self.add(defn, source=source or f"definitions folder {folder}")
        return [defn.id for defn in loaded]

    # ------------------------------------------------------------------ looking up

    def get(self, workflow_id: str) -> WorkflowEntry:
        """The definition or code-first workflow, or :class:`NotFoundError`."""
        found = self.code.get(workflow_id)
        if found is not None:
            return found
        if workflow_id in self.definitions:
            return self.definitions.get(workflow_id)
        known = ", ".join(self.ids()) or "none"
        raise NotFoundError(f"unknown definition {workflow_id!r} (known: {known})", kind="definition", id=workflow_id)

    def ids(self) -> list[str]:
        """Every workflow id, sorted."""
        return sorted({*self.code, *(d.id for d in self.definitions.list())})

    def list(self) -> list[WorkflowEntry]:
        """Every workflow, by id."""
        return [self.get(i) for i in self.ids()]

    def source_of(self, workflow_id: str) -> str:
        """Where a workflow was declared (``module mypkg.flows``, a file, the built-ins)."""
        return self._sources.get(workflow_id, "unknown")

    def validate_file(self, path: Path) -> WorkflowDefinition:
        """Check one definition file against the catalog's steps, without adding it."""
        return self.definitions.validate_file(path)

    def input_model(self, workflow_id: str) -> type[BaseModel] | None:
        """The workflow's input model (``None``: not known for this definition)."""
        model: type[BaseModel] | None = getattr(self.get(workflow_id), "input_model", None)
        return model

    def __contains__(self, workflow_id: object) -> bool:
        return workflow_id in self.code or workflow_id in self.definitions

    def __iter__(self) -> Iterator[WorkflowEntry]:
        return iter(self.list())

    # ------------------------------------------------------------------ running

    def orchestrator(
        self,
        llm: LlmProvider,
        *,
        artifacts: ArtifactStore | None = None,
        prompts: PromptLibrary | None = None,
        prices: PriceTable | None = None,
        budget: BudgetPolicy | None = None,
    ) -> CatalogOrchestrator:
        """What the engines run: dispatches each run to the graph or the code orchestrator."""
        return CatalogOrchestrator(self, llm, artifacts=artifacts, prompts=prompts, prices=prices, budget=budget)


class CatalogOrchestrator:
    """Runs any workflow of a catalog: graph definitions and code-first workflows alike."""

    def __init__(
        self,
        catalog: WorkflowCatalog,
        llm: LlmProvider,
        *,
        artifacts: ArtifactStore | None = None,
        prompts: PromptLibrary | None = None,
        prices: PriceTable | None = None,
        budget: BudgetPolicy | None = None,
    ) -> None:
        self.catalog = catalog
        self.llm = llm
        self.graph = WorkflowOrchestrator(
            catalog.definitions,
            catalog.steps,
            llm,
            artifacts=artifacts,
            prompts=prompts,
            prices=prices,
            budget=budget,
        )
        self.code = CodeOrchestrator(catalog.code, self.graph.executor, budget=budget)

    def run(
        self,
        ctx: DurableContext,
        definition_id: str,
        input: dict[str, Any],
        *,
        recorder: WorkflowRecorder | None = None,
    ) -> Coroutine[Any, Any, WorkflowResult]:
        """Execute (or replay) one workflow of either form: the form's own run, to await
        (not a coroutine around it, which every running workflow would hold and every
        resumption of it, each step's commit, would pass through)."""
        runner: Orchestrator = self.code if definition_id in self.catalog.code else self.graph
        return runner.run(ctx, definition_id, input, recorder=recorder)
