"""The README's Python program, run exactly as printed, against the fake Anthropic server."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ecl.testing import FakeAnthropicServer
from tests.e2e.helpers import Ecl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

README = Path(__file__).parents[2] / "README.md"
HAIKU = "Cold water, clear stones,\nthe river keeps its own time,\nmoss on the old mill."


def readme_program() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- readme-program -->\n```python\n(.*?)```", text, re.S)
    assert found, "the README lost its program"
    return found.group(1)


def test_the_readme_program_is_at_most_15_lines() -> None:
    assert len(readme_program().splitlines()) <= 15


def test_the_readme_program_runs_durably_and_records_its_step(tmp_path: Path) -> None:
    program = tmp_path / "haiku.py"
    program.write_text(readme_program(), encoding="utf-8")
    with FakeAnthropicServer() as fake:
        fake.responder = lambda request: (
            "Cold water, clear stones,\nthe river keeps its own time,\nmoss on the old mill."
        )
        env = Ecl(tmp_path, fake.url).env(ECL_DATABASE_URL="")  # the program names its own database
        done = subprocess.run(
            [sys.executable, str(program)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == HAIKU + "\n"
        assert len(fake.requests) == 1
        assert "Write a haiku about rivers." in fake.requests[0].text
    with sqlite3.connect(tmp_path / "haiku.db") as conn:
        assert list(conn.execute("SELECT definition_id, state FROM workflows")) == [("haiku", "completed")]
        assert list(conn.execute("SELECT step_id, state FROM step_executions")) == [("haiku", "completed")]
        assert list(conn.execute("SELECT count(*) FROM llm_calls")) == [(1,)]
        assert list(conn.execute("SELECT name FROM journal_entries")) == [("step:haiku",)]
