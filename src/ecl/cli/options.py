"""Options shared by several commands (one definition each, so help texts agree)."""

from __future__ import annotations

from typing import Annotated

import typer

from ecl.llm.registry import provider_names

__all__ = ["LlmOpt", "ModulesOpt"]

ModulesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--module",
        "-m",
        help="Import this module's workflows, steps and prompts (repeatable; adds to ECL_MODULES).",
    ),
]
"""``--module/-m``: user modules for this command (added to the ``modules`` setting)."""

LlmOpt = Annotated[str | None, typer.Option(help=f"LLM provider: {', '.join(provider_names())}.")]
"""``--llm``: a provider of the registry (the built-ins plus ``ecl.providers`` entry points)."""
