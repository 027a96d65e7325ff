"""The whole framework per durable step: a user's workflow of no-op steps, as users write it.

Beside the engine-only figure of ``bench/run.py`` (an orchestrator that calls ``ctx.run``
directly), this measures what a user's workflow costs: ``@ecl.step`` functions called from
an ``@ecl.workflow`` (code-first) or wired by a definition (graph), through the catalog, the
step executor (input/output validation, retry policy, tracing) and the recorder, so a
``step_executions`` row is written for every step and the workflow row is updated, on the
embedded engine and a SQLite file.

    uv run python bench/run.py               # prints these figures beside the engine-only ones
    uv run python bench/run.py --concurrent 1000 10000   # and concurrent ones, both forms
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import statistics
import time
from typing import Any

import ecl
from ecl.engines.embedded import EmbeddedEngine, EmbeddedOptions
from ecl.store.database import create_sync_engine
from ecl.store.models import Base
from ecl.workflows import WorkflowCatalog, parse_definition


@ecl.step
async def noop(ctx: ecl.StepContext, i: int) -> int:
    """Returns its input: nothing but the framework's own work."""
    return i


@ecl.workflow("bench-code")
async def bench_code(ctx: ecl.WorkflowContext, steps: int) -> int:
    """``steps`` sequential no-op steps, written as code."""
    total = 0
    for i in range(steps):
        total += await noop(ctx, i)
    return total


@ecl.step
async def wait(ctx: ecl.StepContext, i: int, delay: float) -> int:
    """Waits ``delay`` seconds (a fake LLM call) and returns its input."""
    await asyncio.sleep(delay)
    return i


@ecl.workflow("bench-code-wait")
async def bench_code_wait(ctx: ecl.WorkflowContext, delay: float) -> int:
    """Three sequential steps that each wait ``delay`` seconds, written as code."""
    total = 0
    for i in range(3):
        total += await wait(ctx, i, delay)
    return total


def wait_definition(catalog: WorkflowCatalog, delay: float) -> Any:
    """Three sequential steps that each wait ``delay`` seconds, as a definition."""
    raw = {
        "id": "bench-graph-wait",
        "name": "3 waiting steps",
        "steps": [
            {
                "step_id": f"s{i}",
                "step": "wait",
                "input": {"i": i, "delay": delay},
                **({"depends_on": [f"s{i - 1}"]} if i else {}),
            }
            for i in range(3)
        ],
    }
    return parse_definition(raw, catalog.steps)


def graph_definition(catalog: WorkflowCatalog, steps: int) -> Any:
    """``steps`` sequential no-op steps, as a definition."""
    raw = {
        "id": f"bench-graph-{steps}",
        "name": f"{steps} no-op steps",
        "steps": [
            {"step_id": f"s{i}", "step": "noop", "input": {"i": i}, **({"depends_on": [f"s{i - 1}"]} if i else {})}
            for i in range(steps)
        ],
    }
    return parse_definition(raw, catalog.steps)


def _engine(url: str, catalog: WorkflowCatalog, args: argparse.Namespace) -> EmbeddedEngine:
    orchestrator = catalog.orchestrator(ecl.MockLlmProvider(["unused"]))
    return EmbeddedEngine(
        create_sync_engine(url, sqlite_synchronous=args.synchronous),
        dict(Base.metadata.tables),
        orchestrator,
        known_definitions=catalog.get,
        options=EmbeddedOptions(heartbeat_seconds=5.0),
    )


async def framework_overhead(
    url: str, form: str, steps: int, workflows: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Sequential workflows of ``steps`` no-op steps in ``form`` (``code`` or ``graph``):
    ms per durable step through the whole framework (workflow creation included)."""
    catalog = WorkflowCatalog.build(entry_points=False, workflows=[bench_code, noop])
    if form == "graph":
        catalog.add(graph_definition(catalog, steps))
        definition_id, data = f"bench-graph-{steps}", {}
    else:
        definition_id, data = "bench-code", {"steps": steps}
    engine = await _engine(url, catalog, args).start()
    for _ in range(3):  # warm up
        await engine.result(await engine.submit(definition_id, data))
    samples = []
    start_all, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(workflows):
        t0 = time.perf_counter()
        result = await engine.result(await engine.submit(definition_id, data))
        samples.append((time.perf_counter() - t0) * 1000 / steps)
        assert result.state == "completed", result.error
    wall, cpu = time.perf_counter() - start_all, time.process_time() - cpu_start
    await engine.close()
    return {
        "form": form,
        "steps_per_workflow": steps,
        "workflows": workflows,
        "ms_per_step_median": round(statistics.median(samples), 4),
        "ms_per_step_mean": round(wall * 1000 / (steps * workflows), 4),
        "cpu_ms_per_step": round(cpu * 1000 / (steps * workflows), 4),
    }


async def framework_concurrent(url: str, form: str, count: int, args: argparse.Namespace) -> dict[str, Any]:
    """``count`` concurrent 3-step workflows in ``form`` whose steps each wait ``args.delay`` s,
    through the whole framework (records written): wall clock against the ideal, peak RSS."""
    delay = args.delay
    catalog = WorkflowCatalog.build(entry_points=False, workflows=[bench_code_wait, wait])
    if form == "graph":
        catalog.add(wait_definition(catalog, delay))
        definition_id, data = "bench-graph-wait", {}
    else:
        definition_id, data = "bench-code-wait", {"delay": delay}
    engine = await _engine(url, catalog, args).start()
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, cpu0 = time.perf_counter(), time.process_time()
    ids = await asyncio.gather(*(engine.submit(definition_id, data) for _ in range(count)))
    results = await asyncio.gather(*(engine.result(wid) for wid in ids))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert all(r.state == "completed" for r in results), {r.state for r in results}
    batches, items = engine.writer.batches, engine.writer.items
    await engine.close()
    ideal = 3 * delay
    return {
        "form": form,
        "workflows": count,
        "ideal_s": round(ideal, 3),
        "wall_s": round(wall, 3),
        "ratio_to_ideal": round(wall / ideal, 2) if ideal else None,
        "cpu_s": round(cpu, 3),
        "max_rss_mb": round(rss / 1024, 1),
        "max_rss_before_run_mb": round(rss_before / 1024, 1),
        "commits": batches,
        "writes_per_commit": round(items / max(batches, 1), 1),
    }
