"""What tracing costs per step: the whole framework, tracing off vs on.

The built-in Critique-Revise workflow (three steps — generate, critique, final — and two LLM
calls, the mock provider answering at once) on the embedded engine and a SQLite file, run
sequentially with tracing off (the no-op tracer: what every user gets by default), on (an SDK
tracer provider whose spans go to an in-memory exporter: the span work without a network),
and on with content capture (the prompt and reply also on the span and in the rows). The
modes take turns workflow by workflow, so a busy machine's noise falls on all of them alike;
the median of each mode's wall and CPU time per step is printed, and the overhead against off.

    uv run python bench/tracing.py                 # also part of `make bench`
    uv run python bench/tracing.py --workflows 1000

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ecl
from ecl.engines.embedded import EmbeddedEngine, EmbeddedOptions
from ecl.llm.mock import scripted_workflow_responder
from ecl.observability import configure_content, configure_tracing
from ecl.store.database import create_sync_engine, upgrade
from ecl.store.models import Base
from ecl.workflows import WorkflowCatalog

STEPS = 3  # generate, critique (pass), final
MODES = ("off", "on", "on+content")


def _configure(mode: str, exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
    configure_tracing(mode != "off", provider=provider)
    configure_content(mode == "on+content")
    exporter.clear()


async def _one(engine: EmbeddedEngine) -> tuple[float, float]:
    """One workflow: wall and CPU milliseconds per step."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = await engine.result(await engine.submit("critique-revise", {"topic": "tracing cost"}))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert result.state == "completed", result.error
    return wall * 1000 / STEPS, cpu * 1000 / STEPS


async def measure(workflows: int) -> dict[str, Any]:
    """Median ms per step of each mode, and the overhead of tracing against off."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    catalog = WorkflowCatalog.build(entry_points=False)
    wall: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    spans_per_workflow = 0
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'tracing.db'}"
        upgrade(url)
        orchestrator = catalog.orchestrator(ecl.MockLlmProvider(responder=scripted_workflow_responder))
        engine = EmbeddedEngine(
            create_sync_engine(url),
            dict(Base.metadata.tables),
            orchestrator,
            known_definitions=catalog.get,
            options=EmbeddedOptions(heartbeat_seconds=5.0),
        )
        await engine.start()
        try:
            for mode in MODES:  # warm up each path
                _configure(mode, exporter, provider)
                for _ in range(5):
                    await _one(engine)
            for _ in range(workflows):
                for mode in MODES:
                    _configure(mode, exporter, provider)
                    ms, cpu_ms = await _one(engine)
                    wall[mode].append(ms)
                    cpu[mode].append(cpu_ms)
                    if mode == "on":
                        spans_per_workflow = len(exporter.get_finished_spans())
        finally:
            configure_tracing(False)
            configure_content(False)
            await engine.close()
            provider.shutdown()
    figures: dict[str, Any] = {
        "workflows_per_mode": workflows,
        "steps_per_workflow": STEPS,
        "spans_per_workflow": spans_per_workflow,
    }
    base_wall, base_cpu = statistics.median(wall["off"]), statistics.median(cpu["off"])
    for mode in MODES:
        ms, cpu_ms = statistics.median(wall[mode]), statistics.median(cpu[mode])
        figures[f"ms_per_step_{mode}"] = round(ms, 4)
        figures[f"cpu_ms_per_step_{mode}"] = round(cpu_ms, 4)
        if mode != "off":
            figures[f"overhead_ms_per_step_{mode}"] = round(ms - base_wall, 4)
            figures[f"overhead_cpu_ms_per_step_{mode}"] = round(cpu_ms - base_cpu, 4)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=300, help="workflows per mode")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    figures = asyncio.run(measure(args.workflows))
    print(json.dumps({"tracing": figures}, indent=2))


if __name__ == "__main__":
    main()
