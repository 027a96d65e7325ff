"""Every benchmark of ``make bench`` in one run, then one table of the figures issue 15 sets
targets for, each beside its baseline from the same run, as a ratio, with the target and
whether this run met it.

    uv run python bench/summary.py                    # run them all, print the table
    uv run python bench/summary.py --readme README.md # and write the table into the README
    uv run python bench/summary.py --from FIGURES.json   # the table of an earlier run's figures

Each benchmark runs as a process of its own (its output is shown as it goes); the figures
of all of them are kept in ``--figures`` (default ``bench-figures.json`` in the temp
folder) so a table can be made again without measuring. Asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# name, script and arguments; "json": its standard output is JSON figures (else shown only)
RUNS: list[tuple[str, list[str], bool]] = [
    # (Restate's 1,000 concurrent: restate_raw.py's, beside the raw SDK's, not run.py's)
    ("run", ["run.py", "--engine", "both", "--concurrent", "1000", "10000", "--restate-concurrent"], True),
    ("restate_raw", ["restate_raw.py", "--workflows", "100", "--concurrent", "1000"], True),
    ("api", ["api.py", "--json"], True),
    ("tracing", ["tracing.py"], True),
    ("instructions", ["instructions.py"], True),
    ("dashboard", ["dashboard.py"], False),
    ("prompt_cache", ["prompt_cache.py"], False),
]


def measure(only: set[str] | None) -> dict[str, Any]:
    """Run each benchmark; its JSON figures by name (and how long it took)."""
    figures: dict[str, Any] = {}
    for name, argv, is_json in RUNS:
        if only is not None and name not in only:
            continue
        command = [sys.executable, str(HERE / argv[0]), *argv[1:]]
        print(f"\n== bench/{' '.join(argv)}", flush=True)
        started = time.monotonic()
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            print(f"bench/{argv[0]} failed (exit {done.returncode}); its figures are missing", file=sys.stderr)
            continue
        if is_json:
            figures[name] = json.loads(done.stdout)
        figures[f"{name}_seconds"] = round(time.monotonic() - started, 1)
    return figures


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure of ECL, its baseline, and its target."""

    figure: str
    ecl: str
    baseline: str
    ratio: str
    target: str
    met: bool | None


def _get(figures: dict[str, Any], *path: str | int) -> Any:
    found: Any = figures
    for key in path:
        present = (
            key in found
            if isinstance(found, dict)
            else isinstance(found, list) and isinstance(key, int) and key < len(found)
        )
        if not present:
            return None
        found = found[key]
    return found


def _engine(figures: dict[str, Any], name: str) -> dict[str, Any]:
    for found in figures.get("run") or []:
        if found.get("engine") == name:
            return dict(found)
    return {}


def rows(figures: dict[str, Any]) -> list[Row]:
    """The table's rows, from whatever figures are there (a missing benchmark: no rows)."""
    out: list[Row] = []
    embedded = _engine(figures, "embedded")
    for steps, target in ((3, 0.30), (100, 0.15)):
        base = _get(embedded, f"overhead_{steps}_steps", "ms_per_step_median")
        floor = _get(embedded, f"floor_{steps}_steps", "ms_per_step_median")
        floor_part = "" if floor is None else f"; {floor:.3f} ms (the floor)"
        for form, label in (("code", "code-first"), ("graph", "graph")):
            ms = _get(embedded, f"framework_{form}_{steps}_steps", "ms_per_step_median")
            if ms is None or base is None:
                continue
            out.append(
                Row(
                    f"ms per durable step, {steps}-step workflows, whole framework ({label})",
                    f"{ms:.3f} ms",
                    f"{base:.3f} ms (engine alone){floor_part}",
                    f"{ms / base:.2f}x",
                    f"≤ {target:.2f} ms",
                    ms <= target,
                )
            )
    for count, ratio_target, rss_target in ((1000, 1.3, None), (10000, 3.0, 250.0)):
        base = _get(embedded, f"concurrent_{count}")
        floor = _get(embedded, f"floor_concurrent_{count}")
        floor_part = "" if not floor else f"; {floor['wall_s']:.2f} s the floor ({floor['ratio_to_ideal']:.2f}x)"
        for form, label in (("code", "code-first"), ("graph", "graph")):
            found = _get(embedded, f"framework_{form}_concurrent_{count}")
            if not found or not base:
                continue
            ratio, rss = found["ratio_to_ideal"], found["max_rss_mb"]
            met = ratio <= ratio_target and (rss_target is None or rss <= rss_target)
            rss_part = f", {rss:.0f} MB" if rss_target else ""
            out.append(
                Row(
                    f"{count:,} concurrent 3-step workflows x 200 ms, whole framework ({label})",
                    f"{found['wall_s']:.2f} s ({ratio:.2f}x ideal{rss_part})",
                    f"{base['wall_s']:.2f} s engine alone ({base['ratio_to_ideal']:.2f}x, {base['max_rss_mb']:.0f} MB)"
                    f"{floor_part}; ideal {found['ideal_s']:g} s",
                    f"{found['wall_s'] / base['wall_s']:.2f}x engine alone",
                    f"≤ {ratio_target:g}x ideal" + (f", ≤ {rss_target:.0f} MB" if rss_target else ""),
                    met,
                )
            )
    api = figures.get("api") or {}
    ecl_api, bare = api.get("ecl server (sqlite)"), api.get("fastapi+sqlite baseline")
    if ecl_api and bare:
        out.append(
            Row(
                "API submissions per second (500 at 50 in flight, workflows running)",
                f"{ecl_api['per_s']}/s",
                f"{bare['per_s']}/s (bare FastAPI + SQLite)",
                f"{ecl_api['per_s'] / bare['per_s']:.2f}",
                "≥ 0.50 of the baseline",
                ecl_api["per_s"] / bare["per_s"] >= 0.5,
            )
        )
        out.append(
            Row(
                "API submit latency p50 / p99",
                f"{ecl_api['p50_ms']} / {ecl_api['p99_ms']} ms",
                f"{bare['p50_ms']} / {bare['p99_ms']} ms",
                f"{ecl_api['p99_ms'] / bare['p99_ms']:.2f} (p99)",
                "p99 ≤ 150 ms",
                ecl_api["p99_ms"] <= 150,
            )
        )
    raw = figures.get("restate_raw") or {}
    for steps in (3, 100):
        found = _get(raw, f"steps_{steps}")
        if not found:
            continue
        ecl, sdk = found["ecl_engine"], found["raw_sdk"]
        out.append(
            Row(
                f"Restate: ms per {steps}-step workflow (ECL engine, submit to result)",
                f"{ecl['ms_per_workflow_median']:.1f} ms",
                f"{sdk['ms_per_workflow_median']:.1f} ms (raw Restate SDK, {steps} ctx.run)",
                f"{ecl['ratio_to_raw_sdk']:.2f}x",
                "≤ 1.3x the raw SDK",
                ecl["ratio_to_raw_sdk"] <= 1.3,
            )
        )
    found = _get(raw, "concurrent_1000")
    if found:
        ecl, sdk = found["ecl_engine"], found["raw_sdk"]
        out.append(
            Row(
                "Restate: 1,000 concurrent 3-step workflows x 200 ms (ECL engine)",
                f"{ecl['wall_s']:.1f} s ({ecl['ratio_to_ideal']:.1f}x ideal)",
                f"{sdk['wall_s']:.1f} s raw Restate SDK ({sdk['ratio_to_ideal']:.1f}x ideal);"
                f" ideal {found['ideal_s']:g} s",
                f"{ecl['ratio_to_raw_sdk']:.2f}x the raw SDK",
                "≤ 5x ideal",
                ecl["ratio_to_ideal"] <= 5,
            )
        )
    counted = figures.get("instructions") or {}
    engine_count = _get(counted, "engine", "instructions_per_step")
    floor_count = _get(counted, "floor", "instructions_per_step")
    for form, label in (("code", "code-first"), ("graph", "graph")):
        count = _get(counted, form, "instructions_per_step")
        if count is None or engine_count is None:
            continue
        floor_part = "" if floor_count is None else f"; {floor_count / 1000:,.0f}k (the floor)"
        out.append(
            Row(
                f"instructions per durable step, 100-step workflows, whole framework ({label}; callgrind)",
                f"{count / 1000:,.0f}k",
                f"{engine_count / 1000:,.0f}k (engine alone){floor_part}",
                f"{count / engine_count:.2f}x",
                "",
                None,
            )
        )
    tracing = _get(figures, "tracing", "tracing")
    if tracing:
        on, off = tracing["ms_per_step_on"], tracing["ms_per_step_off"]
        out.append(
            Row(
                "Tracing on (OpenTelemetry spans) per step",
                f"{on:.3f} ms",
                f"{off:.3f} ms (off)",
                f"+{on - off:.3f} ms",
                "",
                None,
            )
        )
    return out


def table(found: list[Row], figures: dict[str, Any]) -> str:
    """The rows as Markdown, headed by when and where they were measured."""
    when = figures.get("measured_at", "?")
    where = figures.get("machine", "?")
    lines = [
        f"Measured {when} on {where} by one run of `make bench` (`bench/summary.py`); each figure",
        "beside its baseline from the same run.",
        "",
        "| figure | ECL | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in found:
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(f"| {row.figure} | {row.ecl} | {row.baseline} | {row.ratio} | {row.target} | {met} |")
    return "\n".join(lines) + "\n"


def write_readme(path: Path, text: str) -> None:
    """Put ``text`` between the bench markers of ``path`` (they must be there)."""
    readme = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(readme):
        sys.exit(f"bench: {path} has no {BEGIN} … {END} block to write the table into")
    path.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}{END}", readme, count=1))


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    with_model: Callable[[str], str] = lambda line: line.split(":", 1)[1].strip()  # noqa: E731
    try:
        models = [with_model(line) for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line]
        if models:
            cpu = models[0]
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, help="write the table into this file's bench block")
    parser.add_argument("--from", dest="source", type=Path, help="make the table from these saved figures")
    parser.add_argument(
        "--figures",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench-figures.json",
        help="where the run's figures are saved (default: %(default)s)",
    )
    parser.add_argument("--only", nargs="*", choices=[name for name, _, _ in RUNS], help="run only these")
    args = parser.parse_args()
    if args.source:
        figures = json.loads(args.source.read_text())
    else:
        figures = {
            "measured_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": _machine(),
            **measure(set(args.only) if args.only else None),
        }
        args.figures.write_text(json.dumps(figures, indent=2))
        print(f"\nfigures saved in {args.figures}")
    text = table(rows(figures), figures)
    print("\n" + text)
    if args.readme:
        write_readme(args.readme, text)
        print(f"table written into {args.readme}")


if __name__ == "__main__":
    main()
