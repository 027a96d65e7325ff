"""How long an ``ecl`` command takes from the shell, beside what Python needs to start at all.

Each round runs every case once as a fresh process, in turn, so a busy machine's noise falls on
all of them alike; the median wall time of each case is printed, and its ratio to the
``import sqlalchemy, pydantic`` baseline (the least a command that reads ECL's database needs):

* ``python -c pass``: the interpreter alone;
* ``import sqlalchemy, pydantic``: the baseline;
* ``ecl --version``: the app built, nothing run;
* ``ecl status ID --format json``: a read-only command on a migrated SQLite database;
* ``ecl run critique-revise --llm mock``: the README's first command (a whole workflow, three
  steps on the embedded engine, in a fresh database each round).

    uv run python bench/cli_start.py
    uv run python bench/cli_start.py --rounds 20

Run it after ``make setup``, which compiles the environment to bytecode (without it, on a
machine that sets ``PYTHONDONTWRITEBYTECODE``, each command compiles its imports again).
Prints JSON; asserts nothing; not part of the README's table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_PYTHON = sys.executable
_ECL = str(Path(sys.executable).with_name("ecl"))


def _env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECL_", "ANTHROPIC_"))}
    env["ECL_DATABASE_URL"] = f"sqlite:///{folder / 'ecl.db'}"
    env["ECL_ARTIFACT_PATH"] = str(folder / "artifacts")
    return env


def _timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def main() -> None:
    """Parse arguments, time each case in alternated rounds, print JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="fresh processes per case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = _env(folder)
        run = [_ECL, "run", "critique-revise", "--topic", "Durable execution", "--llm", "mock", "--format", "quiet"]
        _timed([*run, "--id", "seeded"], env, folder)  # the database the status case reads
        cases: dict[str, Any] = {
            "python -c pass": lambda _: ([_PYTHON, "-c", "pass"], env),
            "import sqlalchemy, pydantic": lambda _: ([_PYTHON, "-c", "import sqlalchemy, pydantic"], env),
            "ecl --version": lambda _: ([_ECL, "--version"], env),
            "ecl status ID --format json": lambda _: ([_ECL, "status", "seeded", "--format", "json"], env),
            "ecl run critique-revise --llm mock": lambda n: (run, _env(folder / f"run-{n}")),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for n in range(args.rounds):
            for name, case in cases.items():
                command, case_env = case(n)
                times[name].append(_timed(command, case_env, folder))
    baseline = statistics.median(times["import sqlalchemy, pydantic"])
    figures = {
        name: {
            "ms_median": round(statistics.median(found) * 1000),
            "ms_min": round(min(found) * 1000),
            "ratio_to_baseline": round(statistics.median(found) / baseline, 2),
        }
        for name, found in times.items()
    }
    print(json.dumps({"rounds": args.rounds, "cases": figures}, indent=2))


if __name__ == "__main__":
    main()
