"""Restate engine benchmark: durable-step overhead and concurrent workflows on a real Restate.

    uv run python bench/run.py --engine both       # both engines side by side (calls run() below)
    uv run python bench/restate_bench.py           # this engine alone
    uv run python bench/restate_bench.py --workflows 50 --concurrent 100 1000

A fresh ``restate-server`` (from ``make setup``) on free ports and a temp data folder; the ECL
endpoint in its own process (hypercorn, HTTP/2 cleartext), as in production. Each step is one
journaled ``ctx.run``; the workflow row, its final record and Restate's attach are included
("via engine"), and a plain synchronous ingress call is measured too ("raw"), so the cost of
ECL's bookkeeping shows apart from Restate's. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import structlog

from ecl.core import DurableContext, WorkflowResult, WorkflowState
from ecl.engines.restate import (
    SERVICE_NAME,
    EndpointThread,
    RestateEngine,
    RestateServer,
    endpoint_app,
    free_port,
    register_deployment,
)
from ecl.engines.restate.endpoint import endpoint_recorder
from ecl.store.database import create_engine, create_sync_engine, upgrade
from ecl.store.recorder import SqlRecorder
from ecl.store.repositories import WorkflowRepository


class BenchOrchestrator:
    """``input.steps`` sequential durable steps; each waits ``input.delay`` seconds (a fake LLM call)."""

    async def run(self, ctx: DurableContext, definition_id: str, input: dict[str, Any], *, recorder: Any) -> Any:
        delay = float(input.get("delay", 0.0))

        async def step(i: int) -> int:
            if delay:
                await asyncio.sleep(delay)
            return i

        total = 0
        for i in range(int(input["steps"])):
            total += await ctx.run(f"step:s{i}", lambda i=i: step(i))
        return WorkflowResult(
            workflow_id=ctx.workflow_id,
            definition_id=definition_id,
            state=WorkflowState.COMPLETED,
            outputs={"total": total},
        )


def serve(port: int, url: str, synchronous: str) -> None:
    """The endpoint process: serve until SIGTERM."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    recorders: list[SqlRecorder] = []

    def app() -> Any:
        recorders.append(endpoint_recorder(url, sqlite_synchronous=synchronous))
        return endpoint_app(BenchOrchestrator(), recorders[-1])

    async def cleanup() -> None:
        for recorder in recorders:
            await recorder.close()

    endpoint = EndpointThread(app, port=port, cleanup=cleanup).start()
    stop.wait()
    endpoint.stop()


def _sequential_figures(samples: list[float], wall: float, steps: int, workflows: int) -> dict[str, Any]:
    return {
        "ms_per_step_median": round(statistics.median(samples), 4),
        "ms_per_step_mean": round(wall * 1000 / (steps * workflows), 4),
    }


async def step_overhead(engine: RestateEngine, steps: int, workflows: int) -> dict[str, Any]:
    """Sequential workflows of no-op steps: ms per durable step, workflow creation included."""
    body = {"steps": steps}
    for _ in range(3):  # warm up
        await engine.run("bench", body)
    samples: list[float] = []
    start = time.perf_counter()
    for _ in range(workflows):
        t0 = time.perf_counter()
        result = await engine.run("bench", body)
        samples.append((time.perf_counter() - t0) * 1000 / steps)
        assert result.outputs["total"] == sum(range(steps)), result
    via_engine = _sequential_figures(samples, time.perf_counter() - start, steps, workflows)

    raw: list[float] = []
    async with httpx.AsyncClient(timeout=120) as client:
        start = time.perf_counter()
        for n in range(workflows):
            t0 = time.perf_counter()
            url = f"{engine.ingress}/{SERVICE_NAME}/raw-{steps}-{n}-{time.monotonic_ns()}/run"
            response = await client.post(url, json={"definition_id": "bench", "input": body})
            raw.append((time.perf_counter() - t0) * 1000 / steps)
            assert response.status_code == 200, response.text
        raw_figures = _sequential_figures(raw, time.perf_counter() - start, steps, workflows)
    return {
        "steps_per_workflow": steps,
        "workflows": workflows,
        **via_engine,
        "raw_ingress_ms_per_step_median": raw_figures["ms_per_step_median"],
        "raw_ingress_ms_per_step_mean": raw_figures["ms_per_step_mean"],
    }


async def concurrent(engine: RestateEngine, count: int, delay: float) -> dict[str, Any]:
    """``count`` concurrent 3-step workflows whose steps each wait ``delay`` s."""
    t0 = time.perf_counter()
    ids = await asyncio.gather(*(engine.submit("bench", {"steps": 3, "delay": delay, "n": i}) for i in range(count)))
    results = await asyncio.gather(*(engine.result(wid) for wid in ids))
    wall = time.perf_counter() - t0
    assert all(r.state is WorkflowState.COMPLETED for r in results)
    ideal = 3 * delay
    return {
        "workflows": count,
        "ideal_s": round(ideal, 3),
        "wall_s": round(wall, 3),
        "ratio_to_ideal": round(wall / ideal, 2) if ideal else None,
    }


async def _measure(args: argparse.Namespace, server: RestateServer, url: str) -> dict[str, Any]:
    db = create_engine(url, pool_size=20)
    writer = create_sync_engine(url)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    engine = RestateEngine(
        server.ingress_url, server.admin_url, WorkflowRepository(db), poll_seconds=0.05, writer=writer
    )
    engine._http = httpx.AsyncClient(timeout=httpx.Timeout(600, connect=5), limits=limits)
    figures: dict[str, Any] = {}
    try:
        runs = [("overhead_3_steps", 3, args.workflows), ("overhead_100_steps", 100, max(5, args.workflows // 20))]
        for label, steps, workflows in runs:
            figures[label] = await step_overhead(engine, steps, workflows)
        for count in args.concurrent:
            figures[f"concurrent_{count}"] = await concurrent(engine, count, args.delay)
    finally:
        await engine.close()
        await db.dispose()
        writer.dispose()
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start a server and an endpoint process, measure, stop both; the figures as a dict."""
    figures: dict[str, Any] = {"engine": "restate", "transport": "HTTP/2 cleartext (hypercorn)"}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ecl.db'}"
        upgrade(url)
        server = RestateServer(data_dir=Path(tmp) / "restate").start()
        version = httpx.get(f"{server.admin_url}/version", timeout=5).json().get("version")
        figures["restate_server"] = version
        port = free_port()
        endpoint = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), "--db", url, "--synchronous", args.synchronous],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        try:
            asyncio.run(register_deployment(server.admin_url, f"http://127.0.0.1:{port}", attempts=150))
            figures.update(asyncio.run(_measure(args, server, url)))
        finally:
            endpoint.send_signal(signal.SIGTERM)
            try:
                endpoint.wait(20)
            except subprocess.TimeoutExpired:
                endpoint.kill()
                endpoint.wait(5)
            server.stop()
    return figures


def main() -> None:
    """Run this engine's benchmark alone (or serve the endpoint, for :func:`run`)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=200, help="sequential workflows for the overhead runs")
    parser.add_argument("--concurrent", type=int, nargs="*", default=[1000], help="concurrent workflow counts")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds each step waits on the fake LLM")
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.db, args.synchronous)
        return
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
