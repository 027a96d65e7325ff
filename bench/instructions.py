"""Instructions per durable step, counted by valgrind's callgrind: a figure that does not
move with the host's speed.

The milliseconds of ``bench/run.py`` rise and fall by 2-3 times from hour to hour on a shared
2-core host, so a change that saves 3% cannot be seen in them. The number of instructions
a step executes hardly moves: each form (the engine alone, the floor, the whole framework
code-first and graph; see ``bench/run.py``) runs its 100-step workflows twice under
callgrind, ``--few`` and ``--many`` of them, and the difference of the two counts divided by
the difference of their steps is what one more step costs (start-up, imports and migrations
cancel out). About two minutes per form. Counts CPU instructions in this process only: the
kernel's side of SQLite's writes (syscalls) is not in them.

    uv run python bench/instructions.py                 # every form, JSON figures
    uv run python bench/instructions.py --forms engine code

Needs ``valgrind`` (Debian: ``apt-get install valgrind``); without it, says so and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

FORMS = ("engine", "floor", "code", "graph")
STEPS = 100
_COLLECTED = re.compile(r"Collected : (\d+)")


def child(form: str, workflows: int) -> None:
    """Run ``workflows`` sequential 100-step workflows of ``form`` (under callgrind)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import run  # a sibling script (bench/ is a folder of scripts, not a package)

    run.quiet_process()
    args = argparse.Namespace(synchronous="NORMAL", delay=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'instructions.db'}"
        run.upgrade(url)
        if form in ("engine", "floor"):
            asyncio.run(run.step_overhead(url, STEPS, workflows, args, floor=form == "floor"))
        else:
            asyncio.run(run._load("framework.py").framework_overhead(url, form, STEPS, workflows, args))


def _count(valgrind: str, form: str, workflows: int) -> int:
    """Instructions of one whole child process (its start-up included)."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            valgrind,
            "--tool=callgrind",
            f"--callgrind-out-file={Path(tmp) / 'callgrind.out'}",
            sys.executable,
            __file__,
            "--child",
            form,
            str(workflows),
        ]
        # The same hash seed in every run: dict and set layouts (and so the work) repeat.
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONHASHSEED": "0"}
        )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"bench: {form} under callgrind failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def measure(valgrind: str, forms: list[str], few: int, many: int) -> dict[str, Any]:
    """Instructions per step of each form, and each beside the engine alone's."""
    figures: dict[str, Any] = {"steps_per_workflow": STEPS, "workflows": [few, many]}
    with ThreadPoolExecutor(max_workers=2) as pool:  # the two runs of a form side by side
        for form in forms:
            counts = list(pool.map(lambda n, form=form: _count(valgrind, form, n), (few, many)))
            per_step = (counts[1] - counts[0]) / ((many - few) * STEPS)
            figures[form] = {"instructions_per_step": round(per_step)}
            print(f"{form}: {per_step:,.0f} instructions per step", file=sys.stderr, flush=True)
    engine = figures.get("engine")
    for form in forms:
        if engine is not None and form != "engine":
            ratio = figures[form]["instructions_per_step"] / engine["instructions_per_step"]
            figures[form]["ratio_to_engine_only"] = round(ratio, 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--forms", nargs="*", choices=FORMS, default=list(FORMS), help="which forms to count")
    parser.add_argument("--few", type=int, default=5, help="workflows in the first run (default: %(default)s)")
    parser.add_argument("--many", type=int, default=25, help="workflows in the second run (default: %(default)s)")
    parser.add_argument("--child", nargs=2, metavar=("FORM", "WORKFLOWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    if args.many <= args.few or args.few < 1:
        parser.error(f"--many ({args.many}) must be larger than --few ({args.few}), and --few at least 1")
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("bench: valgrind is not installed (Debian: apt-get install valgrind); nothing counted", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(measure(valgrind, args.forms, args.few, args.many), indent=2))


if __name__ == "__main__":
    main()
