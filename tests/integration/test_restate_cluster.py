"""Scale-out proof: a 3-node Restate cluster, two ECL endpoint processes, PostgreSQL records.

Three ``restate-server`` nodes on loopback (replicated metadata and log, every node in every
role); two ``ecl server start --engine restate`` processes behind a round-robin TCP balancer
whose address is the one deployment registered with Restate (as replicas behind a load
balancer are in production); the fake Anthropic server as the LLM; PostgreSQL for records.

:data:`WORKFLOWS` Critique-Revise workflows run in two halves. In each half a quarter of the
workflows have their critique request held at the fake server (in flight) while the rest
complete; then, with those requests in flight, the first half's end SIGKILLs one Restate
node (not the one submissions and registrations go through), the second half's end the
endpoint process running the most of the held critiques; then the held requests are let go.
So each kill cuts LLM steps short, wherever the timing of the machine falls.

"No completed step's LLM call repeated" is checked from the order of events: ``ctx.run``
returns only once Restate has journaled the step, so a workflow sends its critique request
only after its generate step is journaled, and starts its final step only after its critique
step is. A generate request after the first critique request, or a critique request after
the final step started, would be a journaled step run again. A request cut short by a kill
or by the failover that follows (never journaled) may be sent again, before those points.
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
    The critique requests of the workflows in :attr:`gates` wait until their gate opens."""

    def __init__(self) -> None:
        self.gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()

    def hold(self, wids: set[str]) -> None:
        """Hold these workflows' critique requests until :meth:`release`."""
        with self._lock:
            self.gates.update({wid: threading.Event() for wid in wids})

    def release(self, wids: set[str] | None = None) -> None:
        """Let them (or every held request) be answered."""
        with self._lock:
            for wid, gate in self.gates.items():
                if wids is None or wid in wids:
                    gate.set()

    def held(self) -> set[str]:
        """The workflows whose critique request is held now."""
        with self._lock:
            return {wid for wid, n in self._held.items() if n > 0}

    def __call__(self, request: ReceivedRequest) -> str:
        wid, kind = _key(request)
        if kind != "critique":
            return f"draft for {wid}"
        with self._lock:
            gate = self.gates.get(wid)
            self._held[wid] += 1
        try:
            if gate is not None:
                gate.wait(START_TIMEOUT)
        finally:
            with self._lock:
                self._held[wid] -= 1
        return PASS


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
                env=ecl.env(**env, ECL_RESTATE__ENDPOINT_PORT=str(self.port), ECL_LOG_LEVEL="info"),
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
    kills: list[set[str]] = []
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

        def both_registered() -> bool:  # each endpoint registers the balancer's address once up
            return all("registered with restate" in e.log.read_text(errors="replace") for e in endpoints)

        _wait(lambda: all(e.serving() for e in endpoints) and registered() and both_registered(), "endpoints", alive)
        ready = time.monotonic()

        ids = [f"cluster-{i:03d}" for i in range(WORKFLOWS)]
        halves = [ids[: WORKFLOWS // 2], ids[WORKFLOWS // 2 :]]
        held_by_half = [{wid for wid in half if int(wid[-3:]) % 4 == 0} for half in halves]

        async def submit(batch: list[str]) -> None:
            db = create_engine(url, pool_size=10)
            engine = RestateEngine(entry.ingress_url, entry.admin_url, WorkflowRepository(db))
            try:
                for chunk in range(0, len(batch), 50):
                    await asyncio.gather(
                        *(engine.submit("critique-revise", {"topic": wid}, wid) for wid in batch[chunk : chunk + 50])
                    )
            finally:
                await engine.close()
                await db.dispose()

        def completed() -> int:
            return int(_rows(url, "SELECT count(*) FROM workflows WHERE state = 'completed'")[0][0])

        def run_half(n: int) -> None:
            """Submit half ``n``; wait until its held critiques are in flight and everything
            else submitted so far completed."""
            llm.hold(held_by_half[n])
            asyncio.run(submit(halves[n]))
            others = sum(len(h) for h in halves[: n + 1]) - len(held_by_half[n])
            _wait(
                lambda: llm.held() >= held_by_half[n] and completed() >= others,
                f"half {n}: critiques held, the rest completed",
                alive,
            )

        run_half(0)
        cluster.kill(victim_node)
        kills.append(llm.held())
        llm.release(held_by_half[0])
        run_half(1)

        def running(endpoint: Endpoint) -> set[str]:
            text = endpoint.log.read_text(errors="replace")
            started = set(re.findall(r"step attempt .*step_id=critique workflow_id=(cluster-\d{3})", text))
            return started & held_by_half[1]

        victim = max(endpoints, key=lambda e: len(running(e)))
        cut_short = running(victim)
        victim.killed = True
        victim.proc.kill()
        victim.proc.wait(30)
        kills.append(llm.held())
        llm.release()
        submitted = time.monotonic()
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
        # A request whose body never arrived whole (its sender cut off while sending it: an
        # endpoint killed, or a step aborted by a failover) has no JSON: cut short and never
        # answered, it is not a step's call and is left out.
        received = [r for r in fake.requests if r.json]
        counts = Counter(_key(r) for r in received)
        assert {kind for (_wid, kind) in counts} == {"generate", "critique"}, counts
        sent: dict[tuple[str, str], list[float]] = {}
        for request in received:
            sent.setdefault(_key(request), []).append(request.time)
        finals = _rows(
            url, "SELECT workflow_id, min(started_at) FROM step_executions WHERE step_id = 'final' GROUP BY 1"
        )
        final_started = {str(wid): started.timestamp() for wid, started in finals}
        for wid in ids:
            generates, critiques = sent[(wid, "generate")], sent[(wid, "critique")]
            assert max(generates) < min(critiques), (wid, "generate after its step was journaled", generates, critiques)
            assert max(critiques) < final_started[wid], (wid, "critique after its step was journaled", critiques)

        # Each kill came with LLM steps in flight; the endpoint killed was running some of them;
        # both endpoints ran workflows to the end.
        assert kills[0] >= held_by_half[0], kills
        assert kills[1] >= held_by_half[1], kills
        assert cut_short, "the killed endpoint ran none of the held critiques"
        for endpoint in endpoints:
            assert "workflow completed" in endpoint.log.read_text(errors="replace"), endpoint.log
        repeated = sum(n - 1 for n in counts.values())
        print(
            f"\ncluster: {WORKFLOWS} workflows; formed {formed - began:.1f}s, endpoints {ready - formed:.1f}s, "
            f"run to the last kill {submitted - ready:.1f}s, then completed {done - submitted:.1f}s; "
            f"in flight at kills {[len(h) for h in kills]}, cut short on the endpoint {len(cut_short)}, "
            f"LLM requests repeated {repeated}; balancer {balancer.served}",
            file=sys.stderr,
        )
    finally:
        llm.release()
        for endpoint in endpoints:
            endpoint.stop()
        cluster.stop()
        if balancer is not None:
            balancer.close()
        fake.stop()
