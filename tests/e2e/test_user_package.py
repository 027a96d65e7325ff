"""The example user package (examples/user-package) in a fresh venv beside ECL.

Installed with uv (from its cache; PyPI only when a wheel is missing), it must pass its own
tests and run through ``ecl run -m`` (also with its own LLM provider, an ``ecl.providers`` entry
point), the HTTP API (``ecl server start -m``), Restate (``ecl dev -m`` + ``ecl run --engine
restate``), and survive one SIGKILL on the embedded
engine without repeating a completed step (the fake LLM counts the requests).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecl.config.settings import DEFAULT_MODEL
from ecl.engines.restate.server import find_server_binary, free_port
from ecl.testing import FakeAnthropicServer, ReceivedRequest
from tests.e2e.helpers import Ecl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]  # a venv to build, servers to start

REPO = Path(__file__).parents[2]
PACKAGE = REPO / "examples" / "user-package"
MODULE = "release_notes.flows"


def _uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    assert Path(found).exists(), "uv is not installed (make setup installs it)"
    return found


def change_of(request: ReceivedRequest) -> str:
    """The change a summarise request is about (its prompt ends with ``Change: ...``)."""
    return request.text.rsplit("Change: ", 1)[-1].strip()


def summary(request: ReceivedRequest) -> str:
    return f"Did {change_of(request)}."


class Venv(Ecl):
    """:class:`Ecl` with the ``ecl`` of the fresh venv."""

    bin: Path

    def command(self, *args: str) -> list[str]:
        return [str(self.bin / "ecl"), *args]

    def run(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), env=self.env(**env), cwd=self.tmp, capture_output=True, text=True, timeout=timeout
        )

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            env=self.env(**env),
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as server:
        server.responder = summary
        yield server


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with ECL (editable, from this checkout) and the package with its test extra."""
    root = tmp_path_factory.mktemp("user-package")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([_uv(), "venv", "--quiet", "--python", python, str(root / "venv")], check=True, env=env)
    subprocess.run(
        [_uv(), "pip", "install", "--quiet", "--python", str(root / "venv" / "bin" / "python"), "-e", str(REPO),
         f"{PACKAGE}[test]"],
        check=True,
        env=env,
        timeout=600,
    )  # fmt: skip
    return root / "venv"


@pytest.fixture(scope="module")
def ecl(venv: Path, fake: FakeAnthropicServer, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    runner = Venv(tmp_path_factory.mktemp("user-package-run"), fake.url)
    runner.bin = venv / "bin"
    assert runner.run("migrate").returncode == 0
    return runner


def test_the_package_passes_its_own_tests(venv: Path) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith(("ECL_", "ANTHROPIC_", "VIRTUAL_ENV"))},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout


def test_ecl_run_with_the_module(ecl: Venv, fake: FakeAnthropicServer) -> None:
    listed = ecl.run("definitions", "list", "--format", "quiet")  # through the entry point, no -m
    assert {"release-notes", "quick-note"} <= set(listed.stdout.split()), listed.stderr
    data = json.dumps({"changes": ["login", "dark mode"], "title": "v2"})
    done = ecl.run("run", "release-notes", "-m", MODULE, "--input", data, "--llm", "anthropic", "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["state"] == "completed"
    assert result["output"] == "# v2\n\n- Did login.\n- Did dark mode."
    quick = ecl.run("run", "quick-note", "-m", MODULE, "--input", '{"change": "speed"}', "--format", "json")
    assert quick.returncode == 0, quick.stderr
    assert json.loads(quick.stdout)["outputs"]["summarise"] == {"change": "speed", "line": "Did speed."}


def test_the_package_provider_is_chosen_by_name_and_recorded(ecl: Venv, fake: FakeAnthropicServer) -> None:
    """``canned``, the package's ``ecl.providers`` entry point: listed, chosen, recorded."""
    helped = ecl.run("run", "--help")
    assert "LLM provider: anthropic, openai, mock, canned." in helped.stdout, helped.stdout + helped.stderr
    unknown = ecl.run("run", "quick-note", "--input", '{"change": "x"}', ECL_LLM_PROVIDER="nope")
    assert unknown.returncode == 5, unknown.stderr
    assert "llm.provider = 'nope': expected one of anthropic, openai, mock, canned" in unknown.stderr
    asked = fake.count()
    free = {"ECL_LLM__ALLOW_UNPRICED": "true"}  # no price in the table for a local provider's models
    data = json.dumps({"changes": ["login", "search"]})
    done = ecl.run("run", "release-notes", "--input", data, "--id", "canned-1", "--llm", "canned", "--format", "json",
                   ECL_LLM_MODEL="canned-v1", **free)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == "# Release notes\n\n- Noted: login.\n- Noted: search."
    # The setting (not the flag) selects it too.
    quick = ecl.run("run", "quick-note", "--input", '{"change": "speed"}', "--id", "canned-2", "--format", "json",
                    ECL_LLM_PROVIDER="canned", **free)  # fmt: skip
    assert quick.returncode == 0, quick.stderr
    assert json.loads(quick.stdout)["outputs"]["summarise"] == {"change": "speed", "line": "Noted: speed."}
    calls = ecl.query(
        "SELECT workflow_id, provider, model, outcome FROM llm_calls WHERE workflow_id LIKE 'canned-%' "
        "ORDER BY workflow_id"
    )
    assert calls == [
        ("canned-1", "canned", "canned-v1", "ok"),
        ("canned-1", "canned", "canned-v1", "ok"),
        ("canned-2", "canned", DEFAULT_MODEL, "ok"),
    ]
    assert fake.count() == asked  # nothing reached the Anthropic endpoint


def test_the_http_api_runs_the_package_workflows(ecl: Venv) -> None:
    port = free_port()
    server = ecl.start("server", "start", "-m", MODULE, "--port", str(port), "--llm", "anthropic")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                if httpx.get(f"{url}/health/live", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=url, timeout=30) as client:
            ids = {d["id"] for d in client.get("/definitions").json()}
            assert {"release-notes", "quick-note", "critique-revise"} <= ids
            bad = client.post("/workflows", json={"definition_id": "release-notes", "input": {"changes": "x"}})
            assert bad.status_code == 400, bad.text
            assert "changes" in bad.json()["error"]["message"]
            created = client.post("/workflows", json={"definition_id": "release-notes", "input": {"changes": ["api"]}})
            assert created.status_code == 201, created.text
            wid = created.json()["id"]
            body = _wait(client, wid)
            assert body["state"] == "completed", body
            assert body["output"]["output"] == "# Release notes\n\n- Did api."
    finally:
        server.terminate()
        server.communicate(timeout=60)


def _wait(client: httpx.Client, wid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/workflows/{wid}").json()
        if body["state"] in ("completed", "failed", "cancelled"):
            return body
        time.sleep(0.2)
    raise TimeoutError(wid)


@pytest.mark.restate
def test_restate_runs_the_package_workflows(ecl: Venv) -> None:
    ingress, admin_port, endpoint = free_port(), free_port(), free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    env = {
        "ECL_RESTATE__INGRESS_URL": f"http://127.0.0.1:{ingress}",
        "ECL_RESTATE__ADMIN_URL": admin,
        "ECL_RESTATE__ENDPOINT_PORT": str(endpoint),
        "ECL_RESTATE__SERVER_BIN": str(find_server_binary()),
        "ECL_RESTATE__DATA_DIR": str(ecl.tmp / "restate-data"),
    }
    dev = ecl.start("dev", "-m", MODULE, "--llm", "anthropic", **env)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert dev.poll() is None, dev.communicate()[1]
            try:
                deployments = httpx.get(f"{admin}/deployments", timeout=2).json()["deployments"]
            except httpx.HTTPError:
                deployments = []
            if any(f":{endpoint}" in d["uri"] for d in deployments):
                break
            assert time.monotonic() < deadline, "ecl dev did not register its endpoint"
            time.sleep(0.2)
        data = json.dumps({"changes": ["restate", "journals"]})
        done = ecl.run("run", "release-notes", "-m", MODULE, "--engine", "restate", "--input", data, "--id", "rs-1",
                       "--format", "json", **env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["state"] == "completed"
        assert result["output"] == "# Release notes\n\n- Did restate.\n- Did journals."
        steps = ecl.query("SELECT step_id, state FROM step_executions WHERE workflow_id = 'rs-1' ORDER BY step_id")
        assert steps == [("compose", "completed"), ("summarise", "completed"), ("summarise", "completed")]
    finally:
        dev.send_signal(signal.SIGINT)
        dev.communicate(timeout=60)


def test_sigkill_then_resume_repeats_no_completed_step(ecl: Venv, fake: FakeAnthropicServer) -> None:
    before = {c: fake.count(lambda r, c=c: change_of(r) == c) for c in ("k-one", "k-two", "k-three")}
    hold = fake.hold_next(lambda r: change_of(r) == "k-three")
    data = json.dumps({"changes": ["k-one", "k-two", "k-three"]})
    proc = ecl.start("run", "release-notes", "-m", MODULE, "--input", data, "--id", "kill-1", "--llm", "anthropic")
    try:
        hold.wait_arrived(120)
        # The other two summaries are journaled (completed) before the process dies.
        ecl.wait_for(
            "SELECT count(*) FROM journal_entries WHERE workflow_id = 'kill-1' AND name LIKE 'step:summarise%' "
            "HAVING count(*) = 2",
            timeout=120,
        )
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        hold.release()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    resumed = ecl.run("resume", "kill-1", "-m", MODULE, "--llm", "anthropic", "--format", "json", timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["output"] == "# Release notes\n\n- Did k-one.\n- Did k-two.\n- Did k-three."
    after = {c: fake.count(lambda r, c=c: change_of(r) == c) for c in before}
    assert after["k-one"] - before["k-one"] == 1  # completed before the kill: never asked again
    assert after["k-two"] - before["k-two"] == 1
    assert after["k-three"] - before["k-three"] == 2  # in flight at the kill: asked again (at least once)
