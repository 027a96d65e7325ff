"""ECL on one Restate node against a 3-node Restate cluster, on this machine.

    uv run python bench/cluster.py
    uv run python bench/cluster.py --workflows 500 --in-flight 100 --sequential 100
    uv run python bench/cluster.py --pg postgresql://postgres@127.0.0.1:5432/postgres

For each layout: fresh ``restate-server`` process(es) on loopback (the cluster as
:class:`~ecl.engines.restate.cluster.RestateCluster` starts it: every role on every node,
replicated metadata and log, replication 2, 4 partitions), one ECL endpoint process
(``bench/restate_bench.py``'s orchestrator: 3 sequential no-op ``ctx.run`` steps; records
in a fresh PostgreSQL database made from ``--pg``) registered with it, and
:class:`~ecl.engines.restate.RestateEngine` submitting and attaching (on the cluster,
through every node's ingress in turn). The layouts alternate for ``--rounds`` rounds, so a
machine busy with other work weighs on both alike; the ratios are of the rounds' medians.
Measured:

* ``sequential``: one workflow at a time, ms per workflow (latency);
* ``throughput``: ``--workflows`` workflows with at most ``--in-flight`` at once, workflows/s;
* the Restate processes' CPU seconds and peak memory (from ``/proc``) over the throughput run.

Prints figures; asserts nothing.
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
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import structlog

from ecl.core import WorkflowState
from ecl.engines.restate import RestateEngine, RestateServer, free_port, register_deployment
from ecl.engines.restate.cluster import RestateCluster
from ecl.store.database import create_engine, upgrade
from ecl.store.repositories import WorkflowRepository

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _measure(
    endpoints: list[tuple[str, str]], url: str, pids: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    db = create_engine(url, pool_size=20)
    repo = WorkflowRepository(db)
    engines = [RestateEngine(ingress, admin, repo, poll_seconds=0.05) for ingress, admin in endpoints]
    body = {"steps": 3}
    try:
        for engine in engines:  # warm up every node
            for _ in range(3):
                await engine.result(await engine.submit("bench", body))
        samples: list[float] = []
        for n in range(args.sequential):
            engine = engines[n % len(engines)]
            t0 = time.perf_counter()
            result = await engine.result(await engine.submit("bench", body))
            samples.append((time.perf_counter() - t0) * 1000)
            assert result.state is WorkflowState.COMPLETED, result

        limit = asyncio.Semaphore(args.in_flight)

        async def one(n: int) -> None:
            engine = engines[n % len(engines)]
            async with limit:
                result = await engine.result(await engine.submit("bench", body))
            assert result.state is WorkflowState.COMPLETED, result

        cpu0 = sum(_cpu_seconds(p) for p in pids)
        t0 = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(args.workflows)))
        wall = time.perf_counter() - t0
        cpu = sum(_cpu_seconds(p) for p in pids) - cpu0
    finally:
        for engine in engines:
            await engine.close()
        await db.dispose()
    return {
        "sequential_ms_per_workflow_median": round(statistics.median(samples), 2),
        "throughput_workflows": args.workflows,
        "throughput_in_flight": args.in_flight,
        "throughput_wall_s": round(wall, 2),
        "throughput_workflows_per_s": round(args.workflows / wall, 1),
        "restate_cpu_s": round(cpu, 2),
        "restate_peak_rss_mib_per_node": round(max(_rss_mib(p) for p in pids), 1),
    }


@contextlib.contextmanager
def _database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database (migrated) for one layout; dropped at the end."""
    name = f"ecl_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _endpoint(url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    bench = Path(__file__).with_name("restate_bench.py")
    proc = subprocess.Popen(
        [sys.executable, str(bench), "--serve", str(port), "--db", url, "--synchronous", "NORMAL"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return proc, port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def one_node(args: argparse.Namespace) -> dict[str, Any]:
    """The figures on a single ``restate-server`` (4 partitions, as the cluster has)."""
    with tempfile.TemporaryDirectory() as tmp, _database(args.pg) as url:
        server = RestateServer(data_dir=Path(tmp) / "restate", partitions=4).start()
        proc, port = _endpoint(url)
        try:
            assert server.proc is not None
            asyncio.run(register_deployment(server.admin_url, f"http://127.0.0.1:{port}", attempts=150))
            return asyncio.run(_measure([(server.ingress_url, server.admin_url)], url, [server.proc.pid], args))
        finally:
            _stop(proc)
            server.stop()


def three_nodes(args: argparse.Namespace) -> dict[str, Any]:
    """The figures on a 3-node cluster on loopback."""
    with tempfile.TemporaryDirectory() as tmp, _database(args.pg) as url:
        cluster = RestateCluster(Path(tmp) / "restate", size=3).start()
        proc, port = _endpoint(url)
        try:
            first = cluster.nodes[0]
            asyncio.run(register_deployment(first.admin_url, f"http://127.0.0.1:{port}", attempts=150))
            endpoints = [(n.ingress_url, n.admin_url) for n in cluster.nodes]
            pids = [n.proc.pid for n in cluster.nodes if n.proc is not None]
            return asyncio.run(_measure(endpoints, url, pids, args))
        finally:
            _stop(proc)
            cluster.stop()


def main() -> None:
    """Measure both layouts, one after the other, and print them with their ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=500, help="workflows in the throughput run")
    parser.add_argument("--in-flight", type=int, default=100, help="at most this many at once")
    parser.add_argument("--sequential", type=int, default=100, help="workflows in the latency run")
    parser.add_argument("--rounds", type=int, default=2, help="rounds the two layouts alternate in")
    parser.add_argument(
        "--pg",
        default=os.environ.get("ECL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL database to create the bench's databases from",
    )
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    load = os.getloadavg()[0]
    runs: dict[str, list[dict[str, Any]]] = {"one_node": [], "three_nodes": []}
    for _ in range(args.rounds):
        runs["one_node"].append(one_node(args))
        runs["three_nodes"].append(three_nodes(args))

    def median(layout: str, key: str) -> float:
        return round(float(statistics.median(run[key] for run in runs[layout])), 2)

    keys = ("sequential_ms_per_workflow_median", "throughput_workflows_per_s", "restate_cpu_s")
    figures: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPUs, load average before the run {load:.1f}",
        **runs,
        "median": {layout: {key: median(layout, key) for key in keys} for layout in runs},
        "three_over_one": {
            "sequential_latency": round(median("three_nodes", keys[0]) / median("one_node", keys[0]), 2),
            "throughput": round(median("three_nodes", keys[1]) / median("one_node", keys[1]), 2),
            "restate_cpu": round(median("three_nodes", keys[2]) / median("one_node", keys[2]), 2),
        },
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
