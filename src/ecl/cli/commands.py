"""The list of command-group registrars; each module adds itself here."""

from __future__ import annotations

from collections.abc import Callable

import typer

__all__ = ["REGISTRARS"]

REGISTRARS: list[Callable[[typer.Typer], None]] = []

from ecl.cli import analyze as _analyze  # noqa: E402
from ecl.cli import completions as _completions  # noqa: E402
from ecl.cli import config as _config  # noqa: E402
from ecl.cli import definitions as _definitions  # noqa: E402
from ecl.cli import dev as _dev  # noqa: E402
from ecl.cli import migrate as _migrate  # noqa: E402
from ecl.cli import run as _run  # noqa: E402
from ecl.cli import server as _server  # noqa: E402
from ecl.cli import status as _status  # noqa: E402

REGISTRARS += [
    _run.register,
    _status.register,
    _definitions.register,
    _migrate.register,
    _config.register,
    _completions.register,
    _server.register,
    _dev.register,
    _analyze.register,
]
