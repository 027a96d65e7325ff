"""Scale-out proof: a 3-node Restate cluster, two ECL endpoint processes, PostgreSQL records.

Three ``restate-server`` nodes on loopback (replicated metadata and log, every node in every
role); two ``ecl server start --engine restate`` processes behind a round-robin TCP balancer
whose address is the one deployment registered with Restate (as replicas behind a load
balancer are in production); the fake Anthropic server as the LLM; PostgreSQL for records.
:data:`WORKFLOWS` Critique-Revise workflows are submitted at once; mid-run one Restate node
(not the one submissions and registrations go through) and then one endpoint process are
killed with SIGKILL.

Each kill happens while LLM requests are in flight: new requests are held at the fake server
(a gate) until some are, then the process dies, then they are let go. "No completed step's
LLM call repeated" is checked from the order of events, not from counts: ``ctx.run`` returns
only once Restate has journaled the step, so a workflow sends its critique request only after
its generate step is journaled, and starts its final step only after its critique step is.
A generate request after the first critique request, or a critique request after the final
step started, would be a journaled step run again. A request cut short by a kill or by the
failover that follows (never journaled) may be sent again, before those points.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest

from ecl.engines.restate import RestateEngine, free_port
from ecl.engines.restate.cluster import RestateCluster
from ecl.store.database import create_engine, upgrade
from ecl.store.repositories import WorkflowRepository
from ecl.testing import FakeAnthropicServer, ReceivedRequest
from tests.db_fixtures import fresh_pg
from tests.e2e.helpers import ECL, PASS, START_TIMEOUT, Ecl, is_critique, is_generate
from tests.tcp_proxy import TcpBalancer

pytestmark = [pytest.mark.restate, pytest.mark.postgres]

WORKFLOWS = int(os.environ.get("ECL_TEST_CLUSTER_WORKFLOWS", "200"))
"""Workflows per run (CI runs the default)."""

_WID = re.compile(r"cluster-\d{3}")


def _key(request: ReceivedRequest) -> tuple[str, str]:
    found = _WID.search(request.text)
    kind = "critique" if is_critique(request) else "generate" if is_generate(request) else "other"
    return (found.group(0) if found else "?", kind)


class GatedLlm:
    """The fake LLM's responder: generate answers ``draft for <workflow>``, critique passes.
    While the gate is closed, requests wait (they are in flight: held)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()
        self.held: Counter[tuple[str, str]] = Counter()
        self.answered: set[tuple[str, str]] = set()

    def __call__(self, request: ReceivedRequest) -> str:
        key = _key(request)
        with self._lock:
            self.held[key] += 1
        self.gate.wait(START_TIMEOUT)
        with self._lock:
            self.held[key] -= 1
            self.answered.add(key)
        return PASS if key[1] == "critique" else f"draft for {key[0]}"

    def snapshot(self) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """(requests held now, requests answered so far)."""
        with self._lock:
            return {k for k, n in self.held.items() if n > 0}, set(self.answered)


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url.replace("postgresql+asyncpg://", "postgresql://")) as conn:
        return list(conn.execute(sql))


def _wait(ready: Callable[[], bool], what: str, alive: Callable[[], None], timeout: float = START_TIMEOUT) -> None:
    """Wait until ``ready()``; ``alive()`` raises when a process the wait depends on died."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while not ready():
        alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:g} s")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.5)


class Endpoint:
    """One ``ecl server start --engine restate`` process, its output in a file."""

    def __init__(self, ecl: Ecl, name: str, port: int, env: dict[str, str]) -> None:
        self.port = port
        self.killed = False
        self.log = ecl.tmp / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [ECL, "server", "start", "--engine", "restate", "--llm", "anthropic"],
                env=ecl.env(**env, ECL_RESTATE__ENDPOINT_PORT=str(self.port)),
                cwd=ecl.tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def check(self) -> None:
        if not self.killed and self.proc.poll() is not None:
            raise RuntimeError(f"endpoint exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")

    def serving(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def test_cluster_survives_node_and_endpoint_crash(tmp_path: Path, pg_url: str) -> None:
    began = time.monotonic()
    url = fresh_pg(pg_url)
    upgrade(url)
    llm = GatedLlm()
    fake = FakeAnthropicServer(responder=llm).start()
    ecl = Ecl(tmp_path, fake.url)
    cluster = RestateCluster(tmp_path / "restate", size=3)
    entry, victim_node = cluster.nodes[0], 2
    endpoints: list[Endpoint] = []
    balancer: TcpBalancer | None = None
    kills: list[set[tuple[str, str]]] = []
    try:
        cluster.start(timeout=START_TIMEOUT)
        formed = time.monotonic()

        def alive() -> None:
            for endpoint in endpoints:
                endpoint.check()
            for i, node in enumerate(cluster.nodes):
                if node.proc is not None and node.proc.poll() is not None and i != victim_node:
                    raise RuntimeError(f"restate node {node.name} exited: {node.log_path}")

        ports = [free_port(), free_port()]
        balancer = TcpBalancer([("127.0.0.1", p) for p in ports]).start()
        env = {
            "ECL_DATABASE_URL": url,
            "ECL_RESTATE__INGRESS_URL": entry.ingress_url,
            "ECL_RESTATE__ADMIN_URL": entry.admin_url,
            "ECL_RESTATE__ENDPOINT_URL": f"http://127.0.0.1:{balancer.port}",
        }
        for name, port in zip(("endpoint-a", "endpoint-b"), ports, strict=True):
            endpoints.append(Endpoint(ecl, name, port, env))

        def registered() -> bool:
            deployments = httpx.get(f"{entry.admin_url}/deployments", timeout=5).json()
            return any(str(balancer.port) in d.get("uri", "") for d in deployments.get("deployments", []))

        _wait(lambda: all(e.serving() for e in endpoints) and registered(), "endpoints serving, registered", alive)
        ready = time.monotonic()

        ids = [f"cluster-{i:03d}" for i in range(WORKFLOWS)]

        async def submit_all() -> None:
            db = create_engine(url, pool_size=10)
            engine = RestateEngine(entry.ingress_url, entry.admin_url, WorkflowRepository(db))
            try:
                for chunk in range(0, len(ids), 50):
                    await asyncio.gather(
                        *(engine.submit("critique-revise", {"topic": wid}, wid) for wid in ids[chunk : chunk + 50])
                    )
            finally:
                await engine.close()
                await db.dispose()

        asyncio.run(submit_all())
        submitted = time.monotonic()

        def completed() -> int:
            return int(_rows(url, "SELECT count(*) FROM workflows WHERE state = 'completed'")[0][0])

        def kill_mid_step(kill: Callable[[], None]) -> None:
            """Hold new LLM requests until some are in flight, kill, let them go."""
            llm.gate.clear()
            try:
                _wait(lambda: bool(llm.snapshot()[0]), "an LLM request in flight", alive)
                kill()
                kills.append(llm.snapshot()[0])
            finally:
                llm.gate.set()

        _wait(lambda: completed() >= WORKFLOWS // 4, "a quarter completed", alive)
        kill_mid_step(lambda: cluster.kill(victim_node))
        node_killed_at = completed()
        _wait(lambda: completed() >= WORKFLOWS // 2, "half completed", alive)
        served_before = list(balancer.served)

        def kill_endpoint() -> None:
            endpoints[0].killed = True
            endpoints[0].proc.kill()
            endpoints[0].proc.wait(30)

        kill_mid_step(kill_endpoint)
        endpoint_killed_at = completed()
        _wait(lambda: completed() >= WORKFLOWS, "every workflow completed", alive)
        done = time.monotonic()

        # Every workflow completed exactly once, with its own draft; nothing else is in the table.
        rows = _rows(url, "SELECT id, state, output FROM workflows ORDER BY id")
        assert [r[0] for r in rows] == ids
        assert {r[1] for r in rows} == {"completed"}
        for wid, _state, output in rows:
            assert output["outputs"]["final"]["text"] == f"draft for {wid}", wid
        final_steps = _rows(
            url,
            "SELECT DISTINCT workflow_id FROM step_executions WHERE step_id = 'final' AND state = 'completed'",
        )
        assert len(final_steps) == WORKFLOWS

        # No completed step's LLM call repeated. A step is journaled before the workflow goes on:
        # generate before its critique request is sent, critique before the final step starts.
        # So a generate request after the first critique request, or a critique request after
        # the final step started, would be a journaled step run again. Requests cut short by a
        # kill or a failover (never journaled) may be sent again, before those points.
        counts = Counter(_key(r) for r in fake.requests)
        assert {kind for (_wid, kind) in counts} == {"generate", "critique"}, counts
        sent: dict[tuple[str, str], list[float]] = {}
        for request in fake.requests:
            sent.setdefault(_key(request), []).append(request.time)
        finals = _rows(
            url, "SELECT workflow_id, min(started_at) FROM step_executions WHERE step_id = 'final' GROUP BY 1"
        )
        final_started = {str(wid): started.timestamp() for wid, started in finals}
        for wid in ids:
            generates, critiques = sent[(wid, "generate")], sent[(wid, "critique")]
            assert max(generates) < min(critiques), (wid, "generate after its step was journaled", generates, critiques)
            assert max(critiques) < final_started[wid], (wid, "critique after its step was journaled", critiques)

        # Both endpoints took invocations, and each kill cut LLM steps short mid-flight.
        assert all(n > 0 for n in served_before), served_before
        assert all(kills), kills
        assert node_killed_at < WORKFLOWS and endpoint_killed_at < WORKFLOWS
        repeated = sum(n - 1 for n in counts.values())
        print(
            f"\ncluster: {WORKFLOWS} workflows; formed {formed - began:.1f}s, endpoints {ready - formed:.1f}s, "
            f"submitted {submitted - ready:.1f}s, completed {done - submitted:.1f}s; held at kills "
            f"{[len(h) for h in kills]}, LLM requests repeated {repeated}; balancer {balancer.served}",
            file=sys.stderr,
        )
    finally:
        llm.gate.set()
        for endpoint in endpoints:
            endpoint.stop()
        cluster.stop()
        if balancer is not None:
            balancer.close()
        fake.stop()
