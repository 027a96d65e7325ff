"""Driving the real ``ecl`` executable against a fake Anthropic server.

Every process started here is registered, so a test that fails half-way still has it
stopped (and its pipes closed) by the ``_reap_processes`` fixture in ``tests/conftest.py``.
Waits for a server to come up are generous (:data:`START_TIMEOUT`; the suite must pass on
a machine busy with other work) and stop as soon as the process dies.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ecl.testing import ReceivedRequest

ECL = str(Path(sys.executable).with_name("ecl"))

START_TIMEOUT = float(os.environ.get("ECL_TEST_START_TIMEOUT", "300"))
"""Seconds a spawned server may take to come up. Long, because a busy machine can make a
start that takes 2 s alone take a minute; a process that dies ends the wait at once."""

_spawned: list[subprocess.Popen[str]] = []
_kept: list[subprocess.Popen[str]] = []

PASS = json.dumps({"critique": "good", "decision": "pass", "feedback": None})
REVISE = json.dumps({"critique": "thin", "decision": "revise", "feedback": "add an example"})


def is_generate(r: ReceivedRequest) -> bool:
    return "Write a short, accurate piece" in r.text


def is_critique(r: ReceivedRequest) -> bool:
    return '"decision"' in r.text


def is_revise(r: ReceivedRequest) -> bool:
    return "Revise the draft below" in r.text


def responder(critiques: list[str]) -> Callable[[ReceivedRequest], str]:
    """Generate → 'draft 0', revise → 'draft N', critiques in order (last repeats)."""
    seen = {"critique": 0, "revise": 0}

    def respond(request: ReceivedRequest) -> str:
        if is_critique(request):
            reply = critiques[min(seen["critique"], len(critiques) - 1)]
            seen["critique"] += 1
            return reply
        if is_revise(request):
            seen["revise"] += 1
            return f"draft {seen['revise']}"
        return "draft 0"

    return respond


@dataclass
class Ecl:
    """Runs ``ecl`` with its own database, artifacts folder and LLM endpoint."""

    tmp: Path
    llm_url: str

    @property
    def db(self) -> Path:
        return self.tmp / "ecl.db"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ECL_", "ANTHROPIC_"))}
        env.update(
            {
                "ECL_DATABASE_URL": f"sqlite:///{self.db}",
                "ECL_ARTIFACT_PATH": str(self.tmp / "artifacts"),
                "ECL_LLM_BASE_URL": self.llm_url,
                "ECL_CLAUDE_API_KEY": "sk-test-not-a-real-key",
                "ECL_LLM__RETRY__INITIAL_DELAY": "0.01",
                "ECL_EMBEDDED__LEASE_SECONDS": "3",
                "ECL_EMBEDDED__HEARTBEAT_SECONDS": "0.5",
                "XDG_CONFIG_HOME": str(self.tmp / "xdg"),
                "HOME": str(self.tmp / "home"),
                "COLUMNS": "200",
                # Long-running commands log requests at info; their pipes are read only at the
                # end, so a chatty server could fill one and block. Tests that want the logs
                # ask for them.
                "ECL_LOG_LEVEL": "warning",
            }
        )
        env.update(extra)
        return {k: v for k, v in env.items() if v != ""}  # "" unsets a default above

    def run(self, *args: str, timeout: float = START_TIMEOUT, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ECL, *args],
            env=self.env(**env),
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [ECL, *args],
            env=self.env(**env),
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _spawned.append(proc)
        return proc

    def json(self, *args: str, **env: str) -> Any:
        done = self.run(*args, "--format", "json", **env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return list(conn.execute(sql, params))

    def wait_for(self, sql: str, *params: Any, timeout: float = START_TIMEOUT) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.db.exists():
                try:
                    rows = self.query(sql, *params)
                except sqlite3.OperationalError:
                    rows = []
                if rows:
                    return rows
            time.sleep(0.05)
        raise TimeoutError(f"nothing for {sql!r}")


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL and reap."""
    proc.kill()
    proc.communicate(timeout=60)


def stop(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """SIGTERM, then SIGKILL if it does not end in ``timeout`` s; reaped, pipes closed. Its stderr."""
    if proc.poll() is None:
        proc.terminate()
    try:
        _out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate(timeout=60)
    except ValueError:  # its pipes were already read to the end and closed
        proc.wait(timeout)
        err = ""
    return err or ""


def wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[str],
    what: str,
    timeout: float = START_TIMEOUT,
) -> None:
    """Wait until ``ready()`` while ``proc`` lives. If it exits, or the deadline passes, the
    process is stopped and the error carries its stderr (nothing is left running)."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{what}: the process exited with {proc.returncode}: {stop(proc)[-4000:]}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not ready after {timeout:g} s")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)
    except BaseException:
        err = stop(proc)
        if err:
            print(f"stderr of the stopped process:\n{err[-4000:]}", file=sys.stderr)
        raise


def answers(url: str) -> Callable[[], bool]:
    """A readiness probe: ``url`` answers 200."""

    def probe() -> bool:
        try:
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def keep(proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
    """Hand ``proc`` to a module fixture that stops it itself: a test that first asks for the
    fixture (``request.getfixturevalue``) starts it after its mark, and must not reap it."""
    _spawned.remove(proc)
    _kept.append(proc)
    return proc


def reap(since: int = 0, *, kept: bool = False) -> list[subprocess.Popen[str]]:
    """Stop every process started after the first ``since`` (and the kept ones if ``kept``);
    returns those that were still running."""
    running: list[subprocess.Popen[str]] = []
    while len(_spawned) > since:
        proc = _spawned.pop()
        if proc.poll() is None:
            running.append(proc)
        stop(proc, timeout=30)
    while kept and _kept:
        stop(_kept.pop(), timeout=30)
    return running


def spawned() -> int:
    """How many processes have been started (a mark for :func:`reap`)."""
    return len(_spawned)
