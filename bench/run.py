"""ECL benchmarks: durable-step overhead (engine only, and the whole framework: decorated
steps, records written, code-first and graph) and many concurrent workflows.

Beside both, "the floor": the engine alone plus the least work every step must do by
DESIGN.md (input and output validated, a ``step_executions`` row written), so the whole
framework's figures can be read as the floor plus what it still adds.

    uv run python bench/run.py                   # embedded engine, default sizes
    uv run python bench/run.py --concurrent 10000
    uv run python bench/run.py --engine both --concurrent 1000 10000   # as `make bench` does

Prints figures; asserts nothing. Each run uses a fresh SQLite file in a temp folder.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel

from ecl.cli.runtime import tune_gc
from ecl.core import DurableContext, WorkflowResult, WorkflowState
from ecl.core.records import StepFinished, StepStarted
from ecl.engines.embedded import EmbeddedEngine, EmbeddedOptions
from ecl.store.database import create_sync_engine, upgrade
from ecl.store.models import Base


class StepInput(BaseModel):
    """The floor's step input."""

    i: int
    delay: float


class StepOutput(BaseModel):
    """The floor's step output."""

    result: int


class StepsOrchestrator:
    """``steps`` sequential durable steps; each waits ``delay`` seconds (a fake LLM call).

    ``floor``: each step also does the least DESIGN.md's data flow asks of every step, and
    nothing more: its input and output validated by pydantic models and dumped to JSON, and
    its ``step_executions`` row written through the engine's own recorder (``running`` when
    it starts, ``completed`` with its output). No logging, metrics, spans, retry policy,
    budget, traces or step metadata: what the whole framework adds beyond this floor is what
    it could still shed; the floor itself is not the framework's to shed."""

    def __init__(self, steps: int, delay: float, *, floor: bool = False) -> None:
        self.steps = steps
        self.delay = delay
        self.floor = floor

    async def run(
        self, ctx: DurableContext, definition_id: str, input: dict[str, Any], *, recorder: Any
    ) -> WorkflowResult:
        delay = self.delay

        async def step(i: int) -> int:
            if delay:
                await asyncio.sleep(delay)
            return i

        async def recorded(i: int) -> int:
            model = StepInput.model_validate({"i": i, "delay": delay})
            execution_id = await recorder.step_started(
                StepStarted(ctx.workflow_id, f"s{i}", 1, input=model.model_dump(mode="json"))
            )
            if delay:
                await asyncio.sleep(delay)
            output = StepOutput.model_validate({"result": model.i})
            await recorder.step_finished(execution_id, StepFinished("completed", output=output.model_dump(mode="json")))
            return output.result

        run = recorded if self.floor else step
        total = 0
        for i in range(self.steps):
            total += await ctx.run(f"step:s{i}", lambda i=i: run(i))
        return WorkflowResult(
            workflow_id=ctx.workflow_id,
            definition_id=definition_id,
            state=WorkflowState.COMPLETED,
            outputs={"total": total},
        )


def _engine(url: str, orchestrator: StepsOrchestrator, args: argparse.Namespace) -> EmbeddedEngine:
    return EmbeddedEngine(
        create_sync_engine(url, sqlite_synchronous=args.synchronous),
        dict(Base.metadata.tables),
        orchestrator,
        options=EmbeddedOptions(heartbeat_seconds=5.0),
    )


async def step_overhead(
    url: str, steps: int, workflows: int, args: argparse.Namespace, *, floor: bool = False
) -> dict[str, Any]:
    """Sequential workflows of no-op steps: ms per durable step (workflow creation included)."""
    engine = await _engine(url, StepsOrchestrator(steps, 0.0, floor=floor), args).start()
    for _ in range(3):  # warm up
        await engine.result(await engine.submit("bench", {}))
    samples = []
    start_all, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(workflows):
        t0 = time.perf_counter()
        result = await engine.result(await engine.submit("bench", {}))
        samples.append((time.perf_counter() - t0) * 1000 / steps)
        assert result.outputs["total"] == sum(range(steps))
    wall, cpu = time.perf_counter() - start_all, time.process_time() - cpu_start
    await engine.close()
    return {
        "steps_per_workflow": steps,
        "workflows": workflows,
        "ms_per_step_median": round(statistics.median(samples), 4),
        "ms_per_step_mean": round(wall * 1000 / (steps * workflows), 4),
        "cpu_ms_per_step": round(cpu * 1000 / (steps * workflows), 4),
    }


async def concurrent(url: str, count: int, args: argparse.Namespace, *, floor: bool = False) -> dict[str, Any]:
    """``count`` concurrent 3-step workflows whose steps each wait ``delay`` s (run in a
    process of its own: the peak RSS is the run's)."""
    delay = args.delay
    engine = await _engine(url, StepsOrchestrator(3, delay, floor=floor), args).start()
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, cpu0 = time.perf_counter(), time.process_time()
    ids = await asyncio.gather(*(engine.submit("bench", {"n": i}) for i in range(count)))
    results = await asyncio.gather(*(engine.result(wid) for wid in ids))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert all(r.state is WorkflowState.COMPLETED for r in results)
    batches, items, fallbacks = engine.writer.batches, engine.writer.items, engine.writer.fallbacks
    await engine.close()
    ideal = 3 * delay
    return {
        "workflows": count,
        "ideal_s": round(ideal, 3),
        "wall_s": round(wall, 3),
        "ratio_to_ideal": round(wall / ideal, 2) if ideal else None,
        "cpu_s": round(cpu, 3),
        "max_rss_mb": round(max(rss_before, rss_after) / 1024, 1),
        "max_rss_before_run_mb": round(rss_before / 1024, 1),
        "commits": batches,
        "writes_per_commit": round(items / max(batches, 1), 1),
        "batches_retried_item_by_item": fallbacks,
    }


async def embedded(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "engine": "embedded",
        "sqlite_synchronous": args.synchronous,
        "gc_threshold": args.gc_threshold or f"python default {gc.get_threshold()[0]}",
    }
    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            ("overhead_3_steps", 3, args.workflows),
            ("overhead_100_steps", 100, max(5, args.workflows // 20)),
        ]
        for label, steps, workflows in runs:
            for floor in (False, True) if args.framework else (False,):
                key = f"floor_{steps}_steps" if floor else label
                url = f"sqlite:///{Path(tmp) / f'{key}.db'}"
                upgrade(url)
                found = figures[key] = await step_overhead(url, steps, workflows, args, floor=floor)
                if floor:
                    found.update(_beside(found, figures[label]))
        if args.framework:
            framework = _load("framework.py")
            for form in ("code", "graph"):
                for _label, steps, workflows in runs:
                    url = f"sqlite:///{Path(tmp) / f'framework_{form}_{steps}.db'}"
                    upgrade(url)
                    key = f"framework_{form}_{steps}_steps"
                    figures[key] = await framework.framework_overhead(url, form, steps, workflows, args)
                    figures[key].update(_beside(figures[key], figures[f"overhead_{steps}_steps"]))
    for count in args.concurrent:
        base = figures[f"concurrent_{count}"] = _child(args, "engine", count)
        for form in ("floor", "code", "graph") if args.framework else ():
            key = f"floor_concurrent_{count}" if form == "floor" else f"framework_{form}_concurrent_{count}"
            found = figures[key] = _child(args, form, count)
            found["wall_ratio_to_engine_only"] = round(found["wall_s"] / base["wall_s"], 2)
    return figures


def _child(args: argparse.Namespace, form: str, count: int) -> dict[str, Any]:
    """One concurrent run in a fresh process of its own, so its peak RSS is its own."""
    command = [sys.executable, __file__, "--child", form, str(count), "--delay", str(args.delay)]
    command += ["--synchronous", args.synchronous, "--gc-threshold", str(args.gc_threshold)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bench: the concurrent run {form} {count} failed:\n{done.stderr}")
    found: dict[str, Any] = json.loads(done.stdout)
    return found


async def child(args: argparse.Namespace) -> dict[str, Any]:
    """The concurrent run of ``--child FORM COUNT``: the engine alone or the whole framework."""
    form, count = args.child[0], int(args.child[1])
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'concurrent.db'}"
        upgrade(url)
        if form in ("engine", "floor"):
            return await concurrent(url, count, args, floor=form == "floor")
        found: dict[str, Any] = await _load("framework.py").framework_concurrent(url, form, count, args)
        return found


def _beside(framework: dict[str, Any], engine_only: dict[str, Any]) -> dict[str, Any]:
    """The whole framework's figures against the engine-only ones of the same step count:
    what it adds per step (the target: at most 0.3 ms) and the ratio, by wall clock (the
    median workflow) and by this process's CPU time (steadier while other jobs share the
    machine: the embedded engine on SQLite does all its work in this process)."""
    wall, base_wall = framework["ms_per_step_median"], engine_only["ms_per_step_median"]
    cpu, base_cpu = framework["cpu_ms_per_step"], engine_only["cpu_ms_per_step"]
    return {
        "added_ms_per_step_over_engine_only": round(wall - base_wall, 4),
        "ratio_to_engine_only": round(wall / base_wall, 2),
        "added_cpu_ms_per_step_over_engine_only": round(cpu - base_cpu, 4),
        "cpu_ratio_to_engine_only": round(cpu / base_cpu, 2),
    }


def _load(name: str) -> Any:
    """A sibling benchmark module (``bench/`` is a folder of scripts, not a package)."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        sys.exit(f"bench: {path} is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GC_THRESHOLD = 200_000
"""The garbage collector's first threshold, as ``ecl`` sets it by default."""


def quiet_process(gc_threshold: int = GC_THRESHOLD) -> None:
    """Set this benchmark process up as ``ecl`` runs: warnings only logged, the GC tuned."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    tune_gc(gc_threshold)


def main() -> None:
    """Parse arguments, run the benchmarks, print JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["embedded", "restate", "both"], default="embedded")
    parser.add_argument("--workflows", type=int, default=200, help="sequential workflows for the overhead runs")
    parser.add_argument("--concurrent", type=int, nargs="*", default=[1000], help="concurrent workflow counts")
    parser.add_argument(
        "--restate-concurrent",
        type=int,
        nargs="*",
        default=None,
        help="concurrent workflow counts on Restate (default: those of --concurrent up to 1,000)",
    )
    parser.add_argument("--delay", type=float, default=0.2, help="seconds each step waits on the fake LLM")
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    parser.add_argument(
        "--gc-threshold", type=int, default=GC_THRESHOLD, help="GC tuning, as `ecl` does it (0: Python's default)"
    )
    parser.add_argument(
        "--no-framework",
        dest="framework",
        action="store_false",
        help="skip the whole-framework figures (decorated steps, records written) and the floor's",
    )
    parser.add_argument("--child", nargs=2, metavar=("FORM", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    quiet_process(args.gc_threshold)
    if args.child:
        print(json.dumps(asyncio.run(child(args))))
        return

    results = []
    if args.engine in ("embedded", "both", "restate"):
        results.append(asyncio.run(embedded(args)))
    if args.engine in ("restate", "both"):
        path = Path(__file__).with_name("restate_bench.py")
        spec = importlib.util.spec_from_file_location("restate_bench", path)
        if spec is None or spec.loader is None:
            sys.exit(f"bench: {path} is missing")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        restate_args = argparse.Namespace(**vars(args))
        if args.restate_concurrent is not None:
            restate_args.concurrent = args.restate_concurrent
        else:
            restate_args.concurrent = [count for count in args.concurrent if count <= 1000]
        results.append(module.run(restate_args))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
