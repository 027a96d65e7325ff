"""Prompt templates: Jinja2, shipped as package data, overridable from a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from ecl.core.errors import InputValidationError

__all__ = ["PromptLibrary"]


class PromptLibrary:
    """Renders ``<name>.j2`` templates: the override folder, then ``search_dirs``, then the package's own."""

    def __init__(
        self,
        package: str = "ecl.workflows",
        subdir: str = "prompts",
        override_dir: Path | None = None,
        search_dirs: list[Path] | None = None,
    ) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        # Prompt folders of user modules: after the override folder, before ECL's own.
        loaders.extend(jinja2.FileSystemLoader(str(d)) for d in search_dirs or [])
        loaders.append(jinja2.PackageLoader(package, subdir))
        self.override_dir = override_dir
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # noqa: S701 - prompts are plain text, not HTML
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, name: str, **variables: Any) -> str:
        """Render ``name`` (with or without the ``.j2`` suffix)."""
        template_name = name if name.endswith(".j2") else f"{name}.j2"
        try:
            template = self._env.get_template(template_name)
        except jinja2.TemplateNotFound:
            raise InputValidationError(
                f"unknown prompt template {template_name!r}",
                errors=[{"field": "prompt", "message": "not found", "value": template_name}],
            ) from None
        try:
            return template.render(**variables).strip()
        except jinja2.UndefinedError as exc:
            raise InputValidationError(
                f"prompt template {template_name!r}: {exc.message}",
                errors=[{"field": "prompt", "message": str(exc.message), "value": template_name}],
            ) from exc
