"""ECL on Restate beside a raw Restate Python SDK workflow: the same steps, server and run.

    uv run python bench/restate_raw.py
    uv run python bench/restate_raw.py --workflows 100 --rounds 4

One fresh ``restate-server`` (from ``make setup``); two endpoint processes, each served by
hypercorn over HTTP/2 cleartext with ECL's settings: ECL's ``EclWorkflow`` running
``bench/restate_bench.py``'s orchestrator (``steps`` sequential no-op ``ctx.run`` steps,
records in SQLite), and ``RawBench``, a plain ``restate.Workflow`` whose ``run`` handler
makes the same number of ``ctx.run`` steps and nothing else. Workflows run one after the
other; the three ways alternate in rounds so the machine's drift hits them alike:

* ``raw_sdk``: ``POST {ingress}/RawBench/{key}/run`` (synchronous call);
* ``ecl_ingress``: the same synchronous call to ``EclWorkflow`` (ECL's records included);
* ``ecl_engine``: :class:`~ecl.engines.restate.RestateEngine` ``run``, as ``ecl run --engine
  restate`` does (the workflow row written first on a writer thread, then one synchronous call).

Then ``--concurrent`` workflows of 3 steps that each wait 200 ms (a fake LLM call) started
at once each way, in ``--rounds-concurrent`` rounds (which way goes first alternates; the best
of each is kept): ``raw_sdk`` sends them all (``…/run/send``), then attaches to
each (``/restate/workflow/…/attach``), ``ecl_engine`` submits them and waits for their results as
``bench/restate_bench.py`` does; wall time against the ideal 0.6 s and against the raw SDK.

Prints ms per workflow and per step and the ratios to the raw SDK, and the CPU time each way
cost per workflow in the endpoint that served it, in the Restate server and in this (the
client's) process: steadier than wall time when other jobs share the machine. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import restate
import structlog
from hypercorn.asyncio import serve
from restate.server import install_shutdown_hook

from ecl.engines.restate import SERVICE_NAME, RestateEngine, RestateServer, free_port, register_deployment
from ecl.engines.restate.endpoint import hypercorn_config
from ecl.store.database import create_engine, create_sync_engine, upgrade
from ecl.store.repositories import WorkflowRepository

RAW_SERVICE = "RawBench"


def raw_service() -> restate.Workflow:
    """A workflow of ``steps`` sequential no-op ``ctx.run`` steps, straight on the SDK."""
    service = restate.Workflow(RAW_SERVICE)

    @service.main(name="run")
    async def run(ctx: restate.WorkflowContext, request: dict[str, Any]) -> dict[str, Any]:
        total, delay = 0, float(request.get("delay", 0.0))
        for i in range(int(request["steps"])):

            async def step(i: int = i) -> int:
                if delay:
                    await asyncio.sleep(delay)  # a fake LLM call, as ECL's bench workflow makes
                return i

            total += await ctx.run_typed(f"step:s{i}", step)
        return {"total": total}

    return service


def serve_raw(port: int) -> None:
    """The raw endpoint process: serve until SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        install_shutdown_hook(asyncio.get_running_loop(), stop.set, signal.SIGTERM)
        app = restate.app(services=[raw_service()])
        await serve(app, hypercorn_config("127.0.0.1", port), shutdown_trigger=stop.wait)

    asyncio.run(main())


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _timed(call: Callable[[], Awaitable[None]], count: int) -> list[float]:
    samples: list[float] = []
    for _ in range(count):
        t0 = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


class _Cpu:
    """CPU seconds spent by the endpoint serving a way, the Restate server and this process."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids  # "endpoint" (the way's), "server"
        self.spent: dict[str, float] = {"endpoint": 0.0, "server": 0.0, "client": 0.0}

    async def measure(self, call: Callable[[], Awaitable[list[float]]]) -> list[float]:
        before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        client = time.process_time()
        samples = await call()
        for name, pid in self.pids.items():
            self.spent[name] += cpu_seconds(pid) - before[name]
        self.spent["client"] += time.process_time() - client
        return samples


async def measure(
    server: RestateServer, url: str, steps: int, workflows: int, rounds: int, pids: dict[str, int]
) -> dict[str, Any]:
    """``workflows`` sequential workflows of ``steps`` steps each way, in ``rounds`` rounds
    (``pids``: the ECL and raw endpoints' and the server's process ids)."""
    db = create_engine(url, pool_size=5)
    writer = create_sync_engine(url)  # as the factory opens it for `ecl run`
    engine = RestateEngine(
        server.ingress_url, server.admin_url, WorkflowRepository(db), poll_seconds=0.05, writer=writer
    )
    body = {"steps": steps}
    expected = sum(range(steps))
    serial = iter(range(10**9))
    async with httpx.AsyncClient(timeout=120) as client:

        async def raw_sdk() -> None:
            response = await client.post(
                f"{server.ingress_url}/{RAW_SERVICE}/raw-{steps}-{next(serial)}/run", json=body
            )
            assert response.status_code == 200, response.text
            assert response.json()["total"] == expected, response.text

        async def ecl_ingress() -> None:
            key = f"ing-{steps}-{next(serial)}-{time.monotonic_ns()}"
            response = await client.post(
                f"{server.ingress_url}/{SERVICE_NAME}/{key}/run", json={"definition_id": "bench", "input": body}
            )
            assert response.status_code == 200, response.text

        async def ecl_engine() -> None:
            result = await engine.run("bench", body)
            assert result.outputs["total"] == expected, result

        ways = {"raw_sdk": raw_sdk, "ecl_ingress": ecl_ingress, "ecl_engine": ecl_engine}
        samples: dict[str, list[float]] = {name: [] for name in ways}
        cpu = {
            name: _Cpu({"endpoint": pids["raw" if name == "raw_sdk" else "ecl"], "server": pids["server"]})
            for name in ways
        }
        try:
            for call in ways.values():  # warm up
                await _timed(call, 3)
            per_round = max(1, workflows // rounds)
            for _ in range(rounds):
                for name, call in ways.items():
                    samples[name] += await cpu[name].measure(lambda call=call: _timed(call, per_round))
        finally:
            await engine.close()
            await db.dispose()
            writer.dispose()
    figures: dict[str, Any] = {"steps_per_workflow": steps, "workflows_each": len(samples["raw_sdk"])}
    raw_median = statistics.median(samples["raw_sdk"])
    raw_cpu = cpu["raw_sdk"].spent
    for name, values in samples.items():
        median = statistics.median(values)
        spent = cpu[name].spent
        total, raw_total = sum(spent.values()), sum(raw_cpu.values())
        figures[name] = {
            "ms_per_workflow_median": round(median, 2),
            "ms_per_workflow_mean": round(statistics.fmean(values), 2),
            "ms_per_step_median": round(median / steps, 3),
            "ratio_to_raw_sdk": round(median / raw_median, 2),
            "cpu_ms_per_workflow": {k: round(v * 1000 / len(values), 2) for k, v in spent.items()},
            "cpu_ratio_to_raw_sdk": round(total / raw_total, 2) if raw_total else None,
        }
    return figures


async def concurrent(server: RestateServer, url: str, count: int, delay: float, raw_first: bool) -> dict[str, float]:
    """``count`` concurrent 3-step workflows whose steps wait ``delay`` s on the raw SDK and
    through ECL's engine, one way after the other; the wall time of each way."""
    body = {"steps": 3, "delay": delay}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)

    async def raw_sdk() -> None:
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(600, connect=5), limits=limits, http1=False, http2=True
        ) as client:

            async def send(key: str) -> None:
                sent = await client.post(f"{server.ingress_url}/{RAW_SERVICE}/{key}/run/send", json=body)
                assert sent.status_code in (200, 202), sent.text

            async def attach(key: str) -> None:
                done = await client.get(f"{server.ingress_url}/restate/workflow/{RAW_SERVICE}/{key}/attach")
                assert done.status_code == 200, done.text
                assert done.json()["total"] == 3, done.text

            # All sent first, then waited for (as ECL's submit and result): no workflow waits
            # for a connection held by another's attach before it is even started.
            keys = [f"rawc-{count}-{n}-{time.monotonic_ns()}" for n in range(count)]
            await asyncio.gather(*(send(key) for key in keys))
            await asyncio.gather(*(attach(key) for key in keys))

    async def ecl_engine() -> None:
        db = create_engine(url, pool_size=20)
        writer = create_sync_engine(url)
        engine = RestateEngine(
            server.ingress_url, server.admin_url, WorkflowRepository(db), poll_seconds=0.05, writer=writer
        )
        engine._http = httpx.AsyncClient(timeout=httpx.Timeout(600, connect=5), limits=limits, http1=False, http2=True)
        try:
            ids = await asyncio.gather(*(engine.submit("bench", {**body, "n": n}) for n in range(count)))
            results = await asyncio.gather(*(engine.result(wid) for wid in ids))
            assert all(r.outputs.get("total") == 3 for r in results), {r.state for r in results}
        finally:
            await engine.close()
            await db.dispose()
            writer.dispose()

    ways = {"raw_sdk": raw_sdk, "ecl_engine": ecl_engine}
    walls: dict[str, float] = {}
    for name in sorted(ways, key=lambda name: (name == "raw_sdk") != raw_first):
        t0 = time.perf_counter()
        await ways[name]()
        walls[name] = time.perf_counter() - t0
    return walls


def concurrent_figures(server: RestateServer, url: str, count: int, delay: float, rounds: int) -> dict[str, Any]:
    """:func:`concurrent` ``rounds`` times, which way goes first alternating (the server's
    first burst is its slowest): the best wall time of each way, against the ideal and the raw SDK."""
    walls = [asyncio.run(concurrent(server, url, count, delay, raw_first=n % 2 == 0)) for n in range(rounds)]
    best = {name: min(found[name] for found in walls) for name in walls[0]}
    ideal = 3 * delay
    figures: dict[str, Any] = {"workflows": count, "ideal_s": round(ideal, 3), "rounds": rounds}
    for name, wall in best.items():
        figures[name] = {
            "wall_s": round(wall, 3),
            "ratio_to_ideal": round(wall / ideal, 2),
            "ratio_to_raw_sdk": round(wall / best["raw_sdk"], 2),
            "each_round_s": [round(found[name], 3) for found in walls],
        }
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server and both endpoints, measure, stop everything; the figures as a dict."""
    bench = Path(__file__).with_name("restate_bench.py")
    figures: dict[str, Any] = {"transport": "HTTP/2 cleartext (hypercorn), one endpoint process each"}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ecl.db'}"
        upgrade(url)
        server = RestateServer(data_dir=Path(tmp) / "restate").start()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            figures["restate_server"] = httpx.get(f"{server.admin_url}/version", timeout=5).json().get("version")
            figures["restate_sdk"] = _sdk_version()
            ecl_port, raw_port = free_port(), free_port()
            procs.append(_start([str(bench), "--serve", str(ecl_port), "--db", url, "--synchronous", "NORMAL"]))
            procs.append(_start([__file__, "--serve-raw", str(raw_port)]))
            for port in (ecl_port, raw_port):
                asyncio.run(register_deployment(server.admin_url, f"http://127.0.0.1:{port}", attempts=150))
            assert server.proc is not None
            pids = {"ecl": procs[0].pid, "raw": procs[1].pid, "server": server.proc.pid}
            for steps, workflows in ((3, args.workflows), (100, max(args.rounds, args.workflows // 10))):
                figures[f"steps_{steps}"] = asyncio.run(measure(server, url, steps, workflows, args.rounds, pids))
            if args.concurrent:
                found = concurrent_figures(server, url, args.concurrent, 0.2, args.rounds_concurrent)
                figures[f"concurrent_{args.concurrent}"] = found
        finally:
            for proc in procs:
                _stop(proc)
            server.stop()
    return figures


def _sdk_version() -> str:
    from importlib.metadata import version

    with contextlib.suppress(Exception):
        return version("restate-sdk")
    return "?"


def main() -> None:
    """Measure (or serve the raw endpoint, for :func:`run`)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=200, help="3-step workflows each way (100-step: a tenth)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds the ways alternate in")
    parser.add_argument(
        "--concurrent", type=int, default=0, help="also this many concurrent 3-step workflows each way (0: none)"
    )
    parser.add_argument("--rounds-concurrent", type=int, default=2, help="rounds of --concurrent (the best is kept)")
    parser.add_argument("--serve-raw", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # figures only
    if args.serve_raw:
        serve_raw(args.serve_raw)
        return
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
