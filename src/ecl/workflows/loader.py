"""Loading definitions from YAML / TOML files and looking them up.

A definition file holds one definition (the fields of
:class:`~ecl.workflows.WorkflowDefinition`), as ``.yaml``/``.yml`` or ``.toml``; see
``examples/definitions/critique-revise.yaml``. A definitions folder is every such file
directly inside it. Every definition is validated when it is loaded.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ecl.core.errors import DefinitionError, NotFoundError
from ecl.steps.registry import StepRegistry
from ecl.steps.validation import field_errors
from ecl.workflows.definition import WorkflowDefinition, validate_definition

__all__ = ["DefinitionRegistry", "load_definition_file", "load_definitions", "parse_definition"]

_SUFFIXES = (".yaml", ".yml", ".toml")


def parse_definition(data: Any, steps: StepRegistry, *, source: str = "definition") -> WorkflowDefinition:
    """Validate raw data (from YAML/TOML) into a checked definition."""
    if not isinstance(data, dict):
        raise DefinitionError(f"{source}: a definition must be a mapping, got {type(data).__name__}")
    try:
        defn = WorkflowDefinition.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        first = errors[0]
        step_id = None
        loc = first["field"].split(".")
        if len(loc) >= 2 and loc[0] == "steps" and loc[1].isdigit():
            raw_steps = data.get("steps") or []
            index = int(loc[1])
            if index < len(raw_steps) and isinstance(raw_steps[index], dict):
                step_id = raw_steps[index].get("step_id")
        where = f"step {step_id!r}: " if step_id else ""
        problems = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise DefinitionError(f"{source}: {where}{problems}", definition_id=data.get("id"), step_id=step_id) from None
    try:
        return validate_definition(defn, steps)
    except DefinitionError as err:
        if source == "definition":
            raise
        raise DefinitionError(
            f"{source}: {err.message}", definition_id=err.definition_id, step_id=err.step_id
        ) from None


def load_definition_file(path: Path, steps: StepRegistry) -> WorkflowDefinition:
    """Read one ``.yaml``/``.yml``/``.toml`` definition file."""
    if path.suffix not in _SUFFIXES:
        raise DefinitionError(f"{path}: expected a .yaml, .yml or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise DefinitionError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    return parse_definition(data, steps, source=str(path))


def load_definitions(path: Path, steps: StepRegistry) -> list[WorkflowDefinition]:
    """Load one definition file, or every definition file directly inside a folder.

    Two files of one folder declaring the same id are rejected.
    """
    if path.is_dir():
        found: dict[str, Path] = {}
        loaded: list[WorkflowDefinition] = []
        for file in sorted(path.iterdir()):
            if file.suffix not in _SUFFIXES or not file.is_file():
                continue
            defn = load_definition_file(file, steps)
            if defn.id in found:
                raise DefinitionError(
                    f"{file}: definition id {defn.id!r} is already declared in {found[defn.id]}",
                    definition_id=defn.id,
                )
            found[defn.id] = file
            loaded.append(defn)
        return loaded
    if path.is_file():
        return [load_definition_file(path, steps)]
    raise DefinitionError(f"definitions path {path} does not exist")


class DefinitionRegistry:
    """Definitions by id: the built-ins plus those of a definitions folder."""

    def __init__(self, steps: StepRegistry, definitions: Iterable[WorkflowDefinition] = ()) -> None:
        self.steps = steps
        self._defs: dict[str, WorkflowDefinition] = {}
        for defn in definitions:
            self.add(defn)

    @classmethod
    def with_builtins(cls, *, folder: Path | None = None, steps: StepRegistry | None = None) -> DefinitionRegistry:
        """Built-in steps and definitions, plus every file in ``folder`` (a folder or a
        single file; a file may replace a built-in by declaring its id)."""
        from ecl.workflows.builtin import builtin_definitions, builtin_steps

        registry = cls(steps or builtin_steps(), builtin_definitions())
        if folder is not None:
            registry.load_folder(folder)
        return registry

    def add(self, defn: WorkflowDefinition) -> None:
        """Validate and add (replacing one with the same id)."""
        self._defs[defn.id] = validate_definition(defn, self.steps)

    def remove(self, definition_id: str) -> None:
        """Forget a definition (no error when it is unknown)."""
        self._defs.pop(definition_id, None)

    def load_folder(self, folder: Path) -> list[str]:
        """Load every definition file in ``folder`` (or the one file ``folder``); returns
        their ids. Nothing is added unless every file is valid."""
        loaded = load_definitions(folder, self.steps)
        for defn in loaded:
            self.add(defn)
        return [defn.id for defn in loaded]

    def validate_file(self, path: Path) -> WorkflowDefinition:
        """Check one file without adding it."""
        return load_definition_file(path, self.steps)

    def get(self, definition_id: str) -> WorkflowDefinition:
        """The definition, or :class:`NotFoundError`."""
        try:
            return self._defs[definition_id]
        except KeyError:
            known = ", ".join(sorted(self._defs)) or "none"
            raise NotFoundError(
                f"unknown definition {definition_id!r} (known: {known})",
                kind="definition",
                id=definition_id,
            ) from None

    def list(self) -> list[WorkflowDefinition]:
        """All definitions, by id."""
        return [self._defs[k] for k in sorted(self._defs)]

    def __contains__(self, definition_id: object) -> bool:
        return definition_id in self._defs
