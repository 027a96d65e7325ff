"""``ecl completions`` and ``ecl man``: generated from the same command definitions."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated, Any

import typer

from ecl.core.errors import InputValidationError

__all__ = ["register"]

_SHELLS = ("bash", "zsh", "fish")


def _man_page(command: Any, name: str) -> str:
    ctx = type_of_context(command)(command, info_name=name)
    lines = [
        f'.TH "{name.upper()}" 1 "" "ECL" "ECL manual"',
        ".SH NAME",
        f"{name} \\- durable AI workflows",
        ".SH SYNOPSIS",
        f".B {name}",
        "[OPTIONS] COMMAND [ARGS]...",
        ".SH DESCRIPTION",
        (command.help or "").replace("-", "\\-"),
    ]

    def walk(cmd: Any, prefix: str) -> None:
        if hasattr(cmd, "list_commands"):
            for sub_name in sorted(cmd.list_commands(ctx)):
                sub = cmd.get_command(ctx, sub_name)
                if sub is not None and not sub.hidden:
                    walk(sub, f"{prefix} {sub_name}")
            return
        sub_ctx = type_of_context(cmd)(cmd, info_name=prefix)
        lines.append(f'.SS "{prefix}"')
        lines.append((cmd.help or "").replace("-", "\\-"))
        for param in cmd.get_params(sub_ctx):
            record = param.get_help_record(sub_ctx)
            if record:
                lines.append(".TP")
                lines.append(f".B {record[0]}".replace("-", "\\-"))
                lines.append(record[1].replace("-", "\\-"))

    lines.append(".SH COMMANDS")
    walk(command, name)
    lines += [
        ".SH EXIT STATUS",
        "0 success; 1 error; 2 usage; 3 not found; 4 invalid input;",
        "5 configuration; 6 conflict; 7 database; 8 engine; 10 workflow failed;",
        "11 workflow cancelled; 130 interrupted (the workflow is resumable).",
    ]
    return "\n".join(lines) + "\n"


def type_of_context(command: Any) -> Any:
    """The Context class of the click flavour ``command`` belongs to (Typer vendors click)."""
    return command.context_class


def register(app: typer.Typer) -> None:
    """Add ``completions`` and ``man``."""

    @app.command("completions")
    def completions(shell: Annotated[str, typer.Argument(help="bash, zsh or fish.")]) -> None:
        """Print the shell completion script (e.g. ``ecl completions bash > ~/.ecl.bash``)."""
        if shell not in _SHELLS:
            raise InputValidationError(
                f"unknown shell {shell!r}; expected one of: {', '.join(_SHELLS)}",
                errors=[{"field": "shell", "message": "unsupported", "value": shell}],
            )
        env = dict(os.environ, _ECL_COMPLETE=f"source_{shell}")
        script = subprocess.run([sys.argv[0]], env=env, capture_output=True, text=True, check=False).stdout
        typer.echo(script)

    @app.command("man")
    def man() -> None:
        """Print the man page (roff), e.g. ``ecl man > ecl.1 && man ./ecl.1``."""
        from ecl.cli.app import build_app

        command = typer.main.get_command(build_app())
        typer.echo(_man_page(command, "ecl"))
