"""On Restate too, a resumed workflow continues its trace: SIGKILL the ECL endpoint while a
step's LLM call is in flight, start it again; Restate retries the invocation, which replays
the completed step and runs the rest.

Every process — ``ecl run --detach`` (the submission), the killed endpoint, the new one —
exports over OTLP/HTTP (the standard ``OTEL_*`` variables) to a receiver in the test. The
submission's trace context travels in the invocation's request, so the new endpoint's run is
a child of the submission, in the same trace, and the replayed step has no second span.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from ecl.engines.restate.server import RestateServer, free_port
from ecl.testing import FakeAnthropicServer
from tests.e2e.helpers import (
    PASS,
    START_TIMEOUT,
    Ecl,
    is_critique,
    is_generate,
    kill,
    responder,
    stop,
    wait_until,
)
from tests.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.restate


def test_an_endpoint_killed_mid_step_resumes_the_workflow_in_the_same_trace(
    tmp_path: Path, otlp_receiver: OtlpReceiver
) -> None:
    server = RestateServer(data_dir=tmp_path / "restate-data")
    endpoint: subprocess.Popen[str] | None = None
    with FakeAnthropicServer(responder=responder([PASS])) as fake:
        ecl = Ecl(tmp_path, fake.url)
        assert ecl.run("migrate").returncode == 0
        port = free_port()
        env = {
            "ECL_RESTATE__INGRESS_URL": server.ingress_url,
            "ECL_RESTATE__ADMIN_URL": server.admin_url,
            "ECL_RESTATE__ENDPOINT_PORT": str(port),
            "ECL_OBSERVABILITY__TRACING": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }

        def start_endpoint() -> subprocess.Popen[str]:
            proc = ecl.start("server", "start", "--engine", "restate", "--llm", "anthropic", **env)

            def registered() -> bool:
                deployments = httpx.get(f"{server.admin_url}/deployments", timeout=5).json()
                return any(str(port) in d.get("uri", "") for d in deployments.get("deployments", []))

            wait_until(registered, proc, "the ECL endpoint's registration")
            return proc

        try:
            server.start(timeout=START_TIMEOUT)
            endpoint = start_endpoint()
            hold = fake.hold_next(lambda r: is_critique(r) and "draft 0" in r.text)
            submitted = ecl.run(
                "run", "critique-revise", "--topic", "Rust", "--id", "rs-1", "--engine", "restate", "--detach", **env
            )
            assert submitted.returncode == 0, submitted.stderr
            hold.wait_arrived(START_TIMEOUT)
            otlp_receiver.wait_for(["step generate"], START_TIMEOUT)
            kill(endpoint)  # SIGKILL, the critique's LLM call in flight
            hold.release()
            first = otlp_receiver.received()
            endpoint = start_endpoint()
            done = ecl.json("run", "critique-revise", "--topic", "Rust", "--id", "rs-1", "--engine", "restate", **env)
            assert done["state"] == "completed"
            otlp_receiver.wait_for(["step final"], START_TIMEOUT)
        finally:
            if endpoint is not None:
                stop(endpoint)
            server.stop()
        assert fake.count(is_generate) == 1

    ((trace_context,),) = ecl.query("SELECT trace_context FROM workflows WHERE id = 'rs-1'")
    _version, trace_id, submit_id, _flags = trace_context.split("-")
    spans = otlp_receiver.received()
    (submit,) = [s for s in spans if s.name == "submit rs-1"]  # exported by `ecl run --detach`
    assert (submit.trace_id, submit.span_id) == (trace_id, submit_id)
    ours = [s for s in spans if s.trace_id == trace_id]
    # The killed endpoint's run span never ended; the new endpoint's is the submission's child.
    runs = [s for s in ours if s.name == "workflow rs-1"]
    assert runs and all(r.parent_span_id == submit_id for r in runs)
    resumed_steps = sorted(s.name for s in ours if s.name.startswith("step ") and s not in first)
    assert resumed_steps == ["step critique", "step final"]  # generate was replayed, not run
    assert [s.name for s in ours].count("step generate") == 1
    steps = [s for s in spans if s.name.startswith("step ")]
    assert {s.trace_id for s in steps} == {trace_id}
