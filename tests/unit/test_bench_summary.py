"""bench/summary.py: the table of `make bench` is made from the figures of one run, each
beside its baseline, and says honestly whether a target was met."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).parents[2] / "bench" / "summary.py"


def _summary() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_summary", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _figures() -> dict[str, Any]:
    concurrent = {"wall_s": 0.8, "ideal_s": 0.6, "ratio_to_ideal": 1.33, "max_rss_mb": 90.0}
    return {
        "measured_at": "2026-11-28 00:00 UTC",
        "machine": "2 cores (test)",
        "run": [
            {
                "engine": "embedded",
                "overhead_3_steps": {"ms_per_step_median": 0.2},
                "overhead_100_steps": {"ms_per_step_median": 0.1},
                "framework_code_3_steps": {"ms_per_step_median": 0.25},
                "framework_graph_3_steps": {"ms_per_step_median": 0.5},
                "concurrent_1000": concurrent,
                "framework_code_concurrent_1000": {**concurrent, "wall_s": 0.9, "ratio_to_ideal": 1.5},
            },
            {"engine": "restate"},
        ],
        "api": {
            "fastapi+sqlite baseline": {"per_s": 800, "p50_ms": 40, "p99_ms": 70},
            "ecl server (sqlite)": {"per_s": 500, "p50_ms": 90, "p99_ms": 140},
        },
        "restate_raw": {
            "steps_3": {
                "raw_sdk": {"ms_per_workflow_median": 8.0, "ratio_to_raw_sdk": 1.0},
                "ecl_engine": {"ms_per_workflow_median": 12.0, "ratio_to_raw_sdk": 1.5},
            },
            "concurrent_1000": {
                "ideal_s": 0.6,
                "raw_sdk": {"wall_s": 9.0, "ratio_to_ideal": 15.0, "ratio_to_raw_sdk": 1.0},
                "ecl_engine": {"wall_s": 6.0, "ratio_to_ideal": 10.0, "ratio_to_raw_sdk": 0.67},
            },
        },
    }


def test_rows_put_each_figure_beside_its_baseline_and_judge_the_target() -> None:
    summary = _summary()
    rows = {row.figure: row for row in summary.rows(_figures())}
    code3 = rows["ms per durable step, 3-step workflows, whole framework (code-first)"]
    assert (code3.ecl, code3.baseline, code3.ratio, code3.met) == ("0.250 ms", "0.200 ms (engine alone)", "1.25x", True)
    assert rows["ms per durable step, 3-step workflows, whole framework (graph)"].met is False
    framework_1k = rows["1,000 concurrent 3-step workflows x 200 ms, whole framework (code-first)"]
    assert framework_1k.met is False and "1.50x ideal" in framework_1k.ecl
    assert rows["API submissions per second (500 at 50 in flight, workflows running)"].ratio == "0.62"
    assert rows["API submit latency p50 / p99"].met is True
    assert rows["Restate: ms per 3-step workflow (ECL engine, submit to result)"].met is False
    restate_1k = rows["Restate: 1,000 concurrent 3-step workflows x 200 ms (ECL engine)"]
    assert (restate_1k.ecl, restate_1k.ratio, restate_1k.met) == ("6.0 s (10.0x ideal)", "0.67x the raw SDK", False)
    assert "9.0 s raw Restate SDK (15.0x ideal)" in restate_1k.baseline
    # figures a run did not produce make no rows (no made-up values)
    assert not any("100-step" in figure for figure in rows)


def test_the_floor_stands_beside_the_engine_alone_when_it_was_measured() -> None:
    summary = _summary()
    figures = _figures()
    embedded = figures["run"][0]
    embedded["floor_3_steps"] = {"ms_per_step_median": 0.22}
    embedded["floor_concurrent_1000"] = {"wall_s": 0.84, "ratio_to_ideal": 1.4}
    rows = {row.figure: row for row in summary.rows(figures)}
    code3 = rows["ms per durable step, 3-step workflows, whole framework (code-first)"]
    assert code3.baseline == "0.200 ms (engine alone); 0.220 ms (the floor)"
    assert code3.ratio == "1.25x"  # still against the engine alone
    framework_1k = rows["1,000 concurrent 3-step workflows x 200 ms, whole framework (code-first)"]
    assert framework_1k.baseline == "0.80 s engine alone (1.33x, 90 MB); 0.84 s the floor (1.40x); ideal 0.6 s"
    figures["instructions"] = {
        "engine": {"instructions_per_step": 270_000},
        "floor": {"instructions_per_step": 515_000},
        "code": {"instructions_per_step": 918_400},
    }
    counted = {row.figure: row for row in summary.rows(figures)}
    code = counted["instructions per durable step, 100-step workflows, whole framework (code-first; callgrind)"]
    assert (code.ecl, code.ratio, code.met) == ("918k", "3.40x", None)
    assert code.baseline == "270k (engine alone); 515k (the floor)"
    assert not any("(graph; callgrind)" in figure for figure in counted)  # not counted: no row
    # a run without the floor (an older one, or --no-framework) names none
    plain = {row.figure: row for row in summary.rows(_figures())}
    assert "floor" not in plain["ms per durable step, 3-step workflows, whole framework (code-first)"].baseline


def test_the_table_is_written_between_the_readme_markers(tmp_path: Path) -> None:
    summary = _summary()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{summary.BEGIN}\nold table\n{summary.END}\nafter\n")
    text = summary.table(summary.rows(_figures()), _figures())
    summary.write_readme(readme, text)
    written = readme.read_text()
    assert "old table" not in written
    assert written.startswith("# x\n\nbefore\n") and written.endswith(f"{summary.END}\nafter\n")
    assert "Measured 2026-11-28 00:00 UTC on 2 cores (test)" in written
    assert "| **no** |" in written and "| yes |" in written


def test_a_readme_without_the_markers_is_refused(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no block here\n")
    with pytest.raises(SystemExit, match="bench:begin"):
        _summary().write_readme(readme, "table\n")
    assert readme.read_text() == "no block here\n"
