"""Options shared by several commands (one definition each, so help texts agree)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ecl.llm.registry import provider_names

__all__ = ["ConfigOpt", "EngineOpt", "FormatOpt", "LlmOpt", "ModulesOpt"]

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Config file (TOML).")]
"""``--config``: a TOML configuration file."""

FormatOpt = Annotated[str, typer.Option("--format", help="table, json or quiet.")]
"""``--format``: how a command prints its result."""

EngineOpt = Annotated[str | None, typer.Option(help="embedded (default) or restate.")]
"""``--engine``: the engine of this command (overrides the ``engine`` setting)."""

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
