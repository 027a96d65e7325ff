"""``POST /workflows`` with the codebase-migration input: server-side paths only under
``analyzer.allowed_roots`` (no ``..``, no symbolic link out), and a run to the end."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import Ecl, kill
from tests.e2e.test_api import KEY, Server

pytestmark = pytest.mark.e2e

SAMPLE = Path(__file__).parents[2] / "examples" / "codebases" / "redis-clone-js"


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("roots")
    allowed, private = base / "allowed", base / "private"
    shutil.copytree(SAMPLE, allowed / "redis")
    shutil.copytree(SAMPLE, private / "redis")
    (allowed / "sneaky").symlink_to(private, target_is_directory=True)
    return {"allowed": allowed, "private": private}


class SlowStartServer(Server):
    """The API server, given minutes to start on a busy machine, and stopped if it does not."""

    def start(self) -> Server:
        self.proc = self.ecl.start("server", "start", "--port", str(self.port), **self.env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.communicate()[1])
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        kill(self.proc)
        raise TimeoutError("server did not start")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, roots: dict[str, Path]) -> Iterator[httpx.Client]:
    ecl = Ecl(tmp_path_factory.mktemp("analyzer-api"), "http://127.0.0.1:9")
    assert ecl.run("migrate").returncode == 0
    server = SlowStartServer(
        ecl, ECL_API_KEY=KEY, ECL_LLM_PROVIDER="mock", ECL_ANALYZER__ALLOWED_ROOTS=str(roots["allowed"])
    ).start()
    try:
        with server.client() as client:
            yield client
    finally:
        server.stop()


def submit(api: httpx.Client, workflow_id: str, **input: Any) -> httpx.Response:
    body = {"definition_id": "codebase-migration", "workflow_id": workflow_id, "input": {"target": "rust", **input}}
    return api.post("/workflows", json=body)


def test_paths_outside_the_allowed_roots_are_refused(api: httpx.Client, roots: dict[str, Path]) -> None:
    allowed, private = roots["allowed"], roots["private"]
    cases = {
        "outside": {"code_path": str(private / "redis")},
        "dotdot": {"code_path": f"{allowed}/../private/redis"},
        "symlink": {"code_path": str(allowed / "sneaky" / "redis")},
        "relative": {"code_path": "redis"},
        "skill": {"code_path": str(allowed / "redis"), "skill": "/etc/passwd"},
    }
    for name, input in cases.items():
        response = submit(api, f"refused-{name}", **input)
        assert response.status_code == 400, (name, response.text)
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        bad = input.get("skill") or input["code_path"]
        assert bad in error["message"] and "is not allowed" in error["message"], error
        assert api.get(f"/workflows/refused-{name}").status_code == 404  # nothing stored


def test_a_path_under_an_allowed_root_runs_to_the_end(api: httpx.Client, roots: dict[str, Path]) -> None:
    response = submit(api, "allowed-1", code_path=str(roots["allowed"] / "redis"), skip_assessment=True)
    assert response.status_code == 201, response.text
    deadline = time.monotonic() + 120
    state = ""
    while time.monotonic() < deadline:
        state = api.get("/workflows/allowed-1").json()["state"]
        if state in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.2)
    assert state == "completed"
    names = {a["name"] for a in api.get("/workflows/allowed-1/artifacts").json()}
    assert {"manifest.json", "grade-report.md", "architecture.md", "plan.md", "deliverables.zip"} <= names
