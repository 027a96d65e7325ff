"""Loading definitions from YAML / TOML files and looking them up.

A definition file holds one definition (the fields of
:class:`~ecl.workflows.WorkflowDefinition`), as ``.yaml``/``.yml`` or ``.toml``; see
``examples/definitions/critique-revise.yaml``. A definitions folder is every such file
directly inside it. Every definition is validated when it is loaded.

Definition files are read defensively, because a server loads them at start-up: at most
:data:`MAX_DEFINITION_BYTES`, UTF-8 only, nesting at most :data:`MAX_DEFINITION_DEPTH`
levels, and YAML without aliases (``*name``), which is how a "billion laughs" file expands a
few hundred bytes into gigabytes. Each of these is a one-line :class:`DefinitionError`.
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

MAX_DEFINITION_BYTES = 1024 * 1024
"""Largest definition file read (the seven-step built-in is under 4 KiB)."""
MAX_DEFINITION_DEPTH = 32
"""Deepest nesting of mappings and lists accepted in a definition file."""


class _BoundedYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases and nesting deeper than the limit.

    Both are checked while the document is composed, before anything is expanded, so a
    hostile file fails in milliseconds instead of exhausting memory or the stack.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner's cost per token grows with the flow depth ("[[[[..."), so this is
        # checked as each bracket is scanned, not only when the document is composed.
        super().fetch_flow_collection_start(TokenClass)
        if self.flow_level > MAX_DEFINITION_DEPTH:
            self._too_deep(self.get_mark())

    def add_indent(self, column: int) -> bool:
        added: bool = super().add_indent(column)
        if len(self.indents) > MAX_DEFINITION_DEPTH:
            self._too_deep(self.get_mark())
        return added

    def _too_deep(self, mark: yaml.Mark) -> None:
        raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEFINITION_DEPTH} levels", mark)

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a definition", mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEFINITION_DEPTH:
                self._too_deep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1


def _depth(data: Any) -> int:
    """Nesting depth of parsed data, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEFINITION_DEPTH:
                stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _parse_text(path: Path, text: str) -> Any:
    kind = path.suffix[1:].upper()
    try:
        # S506: the loader is a SafeLoader subclass.
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.load(text, Loader=_BoundedYamlLoader)  # noqa: S506
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise DefinitionError(f"{path}: not valid YAML: {exc.problem or exc.context}{where}") from None
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise DefinitionError(f"{path}: not valid {kind}: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise DefinitionError(f"{path}: not valid {kind}: nested deeper than {MAX_DEFINITION_DEPTH} levels") from None
    if _depth(data) > MAX_DEFINITION_DEPTH:
        raise DefinitionError(f"{path}: nested deeper than {MAX_DEFINITION_DEPTH} levels")
    return data


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
        with path.open("rb") as fh:
            raw = fh.read(MAX_DEFINITION_BYTES + 1)
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(raw) > MAX_DEFINITION_BYTES:
        raise DefinitionError(f"{path}: larger than {MAX_DEFINITION_BYTES} bytes; not a definition file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_definition(_parse_text(path, text), steps, source=str(path))


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
