"""The HTTP API's submit path against a bare FastAPI + SQLite endpoint, in the same run.

    uv run python bench/api.py                         # 500 submissions, 50 in flight
    uv run python bench/api.py --workers 2             # ecl server start --workers 2
    uv run python bench/api.py --pg-url postgresql://postgres@127.0.0.1:5432/postgres

Starts ``ecl server start`` as a real subprocess (mock LLM, embedded engine, a fresh SQLite
file in a temp folder; with ``--pg-url`` also a fresh PostgreSQL database, created beside
the one named and dropped at the end), and the bare FastAPI app of bench/api_baseline.py
under uvicorn the same way (it logs nothing per request; ECL writes its request log line).
Each gets the same load from one httpx client (HTTP/1.1, keep-alive): warm-up requests,
then ``--submissions`` POSTs with ``--in-flight`` at a time; ``--rounds`` times,
alternated, the best round of each printed (the machine may be shared). The ECL server is
also the worker: the submitted Critique-Revise workflows run in it while the submissions go
on. Prints submissions per second, p50 and p99 of each, and ECL's ratio to the baseline.
Asserts nothing; every process started is stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

HERE = Path(__file__).resolve().parent
ECL = str(Path(sys.executable).with_name("ecl"))
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """A server process and where it listens."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: TextIO


def start(name: str, argv: list[str], env: dict[str, str], port: int, tmp: Path) -> Served:
    log = (tmp / f"{name}.log").open("w")
    proc = subprocess.Popen(argv, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    served = Served(name, proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                log.flush()
                text = (tmp / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}: {text}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{served.url}/health/live", timeout=2).status_code == 200:
                    return served
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not answer in {START_TIMEOUT:g} s")
            time.sleep(0.1)
    except BaseException:
        stop(served)
        raise


def stop(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.terminate()
        try:
            served.proc.wait(60)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait(60)
    served.log.close()


async def load(url: str, total: int, in_flight: int, warmup: int) -> dict[str, Any]:
    """``total`` submissions by ``in_flight`` concurrent senders; latencies in ms.

    Each sender is its own client on one keep-alive connection: one shared pool of 50
    connections costs httpx more CPU than the bare endpoint costs the server, so the client
    would be what is measured."""
    run = uuid.uuid4().hex[:8]
    clients = [
        httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=1), timeout=120, http2=False)
        for _ in range(in_flight)
    ]
    latencies: list[float] = []

    async def one(client: httpx.AsyncClient, i: int) -> None:
        body = {"definition_id": "critique-revise", "input": {"topic": f"bench topic {i}"}}
        body["workflow_id"] = f"bench-{run}-{i}"
        t0 = time.perf_counter()
        response = await client.post("/workflows", json=body)
        latencies.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 201:
            raise RuntimeError(f"submission {i}: {response.status_code} {response.text[:300]}")

    async def sender(client: httpx.AsyncClient, numbers: Iterator[int]) -> None:
        for i in numbers:
            await one(client, i)

    try:
        warm = iter(range(-warmup, 0))  # opens every connection before the clock starts
        await asyncio.gather(*(sender(c, warm) for c in clients))
        latencies.clear()
        numbers = iter(range(total))
        t0 = time.perf_counter()
        await asyncio.gather(*(sender(c, numbers) for c in clients))
        wall = time.perf_counter() - t0
    finally:
        for client in clients:
            await client.aclose()
    latencies.sort()
    return {
        "submissions": total,
        "per_s": round(total / wall, 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
        "wall_s": round(wall, 2),
    }


def drained(url: str, total: int, timeout: float = 300.0) -> float | None:
    """Seconds until every submitted workflow has ended (``None``: not within ``timeout``)."""
    t0 = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.perf_counter() - t0 < timeout:
            running = 0
            for state in ("pending", "running"):
                page = client.get("/workflows", params={"state": state, "limit": 1}).json()
                running += len(page["items"])
            if not running:
                return time.perf_counter() - t0
            time.sleep(0.2)
    return None


def ecl_env(tmp: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECL_")}
    env.update(
        {
            "ECL_DATABASE_URL": database_url,
            "ECL_ARTIFACT_PATH": str(tmp / "artifacts"),
            "XDG_CONFIG_HOME": str(tmp / "xdg"),
        }
    )
    return env


def bench_ecl(tmp: Path, label: str, database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    argv = [ECL, "server", "start", "--port", str(port), "--llm", "mock"]
    if args.workers > 1:
        argv += ["--workers", str(args.workers)]
    env = ecl_env(tmp, database_url)
    if args.start_delay is not None:
        env["ECL_EMBEDDED__MAX_START_DELAY_SECONDS"] = str(args.start_delay)
    subprocess.run([ECL, "migrate"], env=env, cwd=tmp, check=True, capture_output=True)
    served = start(label, argv, env, port, tmp)
    try:
        figures = asyncio.run(load(served.url, args.submissions, args.in_flight, args.warmup))
        figures["all_workflows_ended_after_s"] = drained(served.url, args.submissions)
        return figures
    finally:
        stop(served)


def bench_baseline(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "api_baseline:app"]
    argv += ["--port", str(port), "--log-level", "warning"]
    env = {**os.environ, "BENCH_DB": str(tmp / "baseline.db")}
    served = start("baseline", argv, env, port, tmp)
    try:
        return asyncio.run(load(served.url, args.submissions, args.in_flight, args.warmup))
    finally:
        stop(served)


def fresh_pg_database(admin_url: str) -> tuple[str, str]:
    import psycopg

    name = f"ecl_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    return name, f"{base}/{name}"


def drop_pg_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2, help="alternated runs of each; the best is printed")
    parser.add_argument("--workers", type=int, default=1, help="ecl server start --workers N")
    parser.add_argument(
        "--start-delay", type=float, help="embedded.max_start_delay_seconds of the ECL server (default: its own)"
    )
    parser.add_argument("--pg-url", help="also ECL on PostgreSQL (a fresh database beside this one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    rows: dict[str, dict[str, Any]] = {}

    def keep(label: str, figures: dict[str, Any]) -> None:
        if label not in rows or figures["per_s"] > rows[label]["per_s"]:
            rows[label] = figures

    with tempfile.TemporaryDirectory() as tmp_name:
        for round_ in range(args.rounds):  # alternated, the best of each kept: the machine is shared
            tmp = Path(tmp_name) / f"round-{round_}"
            tmp.mkdir()
            keep("fastapi+sqlite baseline", bench_baseline(tmp, args))
            keep("ecl server (sqlite)", bench_ecl(tmp, "ecl-sqlite", f"sqlite:///{tmp / 'ecl.db'}", args))
            if args.pg_url:
                name, url = fresh_pg_database(args.pg_url)
                try:
                    keep("ecl server (postgresql)", bench_ecl(tmp, "ecl-pg", url, args))
                finally:
                    drop_pg_database(args.pg_url, name)
    base = rows["fastapi+sqlite baseline"]["per_s"]
    for figures in rows.values():
        figures["ratio_to_baseline"] = round(figures["per_s"] / base, 2)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"API submit path: {args.submissions} submissions, {args.in_flight} in flight, "
        f"ecl --workers {args.workers}, best of {args.rounds} alternated rounds (workflows run in the server meanwhile)"
    )
    print(f"{'':28} {'subs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}  workflows ended after")
    for label, f in rows.items():
        ended = f.get("all_workflows_ended_after_s")
        tail = "" if "all_workflows_ended_after_s" not in f else ("timeout" if ended is None else f"+{ended:.1f} s")
        print(f"{label:28} {f['per_s']:>8} {f['p50_ms']:>8} {f['p99_ms']:>8} {f['ratio_to_baseline']:>6}  {tail}")


if __name__ == "__main__":
    main()
