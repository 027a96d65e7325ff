"""User modules through the ``ecl`` executable: ``-m``, ``ECL_MODULES`` and their errors."""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from tests.e2e.helpers import Ecl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # several ecl processes each; a busy machine

GOOD = """
import ecl


@ecl.step
async def count(ctx: ecl.StepContext, text: str) -> int:
    return len(text.split())


@ecl.workflow("counting")
async def counting(ctx: ecl.WorkflowContext, text: str) -> int:
    return await count(ctx, text)


@ecl.workflow("bad-step-input")
async def bad_step_input(ctx: ecl.WorkflowContext) -> int:
    return await count(ctx, text=["not", "a", "string"])


@ecl.workflow("not-json")
async def not_json(ctx: ecl.WorkflowContext) -> object:
    return object()
"""

CLASH = """
import ecl


@ecl.workflow("counting")
async def other(ctx: ecl.WorkflowContext) -> None:
    return None
"""


class Patient(Ecl):
    """Generous subprocess limits: the machine may be busy."""

    def run(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        return super().run(*args, timeout=timeout, **env)


@pytest.fixture(scope="module")
def ecl(tmp_path_factory: pytest.TempPathFactory) -> Ecl:
    runner = Patient(tmp_path_factory.mktemp("modules"), "http://127.0.0.1:9")
    (runner.tmp / "good.py").write_text(textwrap.dedent(GOOD))
    (runner.tmp / "clash.py").write_text(textwrap.dedent(CLASH))
    (runner.tmp / "boom.py").write_text("raise RuntimeError('boom at import')\n")
    return runner


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_module_from_the_current_folder_runs_with_m_and_ecl_modules(ecl: Ecl) -> None:
    done = ecl.run("run", "counting", "-m", "good", "--input", '{"text": "a b c"}', "--llm", "mock", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == 3
    listed = ecl.run("definitions", "list", "--format", "quiet", ECL_MODULES="good")
    assert {"counting", "not-json", "critique-revise"} <= set(listed.stdout.split()), listed.stderr


def test_a_module_that_does_not_import_is_one_line_and_exit_5(ecl: Ecl) -> None:
    missing = ecl.run("definitions", "list", "-m", "nowhere")
    assert missing.returncode == 5
    expected = "error: module 'nowhere' failed to import: ModuleNotFoundError: No module named 'nowhere'"
    assert one_line_error(missing.stderr) == expected
    broken = ecl.run("run", "counting", "-m", "boom", "--input", "{}", "--llm", "mock")
    assert broken.returncode == 5
    assert one_line_error(broken.stderr) == "error: module 'boom' failed to import: RuntimeError: boom at import"


def test_a_workflow_id_in_two_modules_is_one_line_and_exit_5(ecl: Ecl) -> None:
    done = ecl.run("definitions", "list", "-m", "good", "-m", "clash")
    assert done.returncode == 5
    assert one_line_error(done.stderr) == (
        "error: workflow id 'counting' is declared twice: in module good and in module clash"
    )


def test_a_step_input_that_does_not_validate_fails_the_run_naming_the_field(ecl: Ecl) -> None:
    done = ecl.run("run", "bad-step-input", "-m", "good", "--input", "{}", "--llm", "mock", "--format", "json")
    assert done.returncode == 10
    error = json.loads(done.stdout)["error"]
    assert error["type"] == "StepValidationError"
    assert error["message"] == "step count: invalid input: text (Input should be a valid string)"


def test_a_workflow_returning_a_non_json_value_fails_with_one_line(ecl: Ecl) -> None:
    done = ecl.run("run", "not-json", "-m", "good", "--input", "{}", "--llm", "mock", "--format", "json")
    assert done.returncode == 10
    message = json.loads(done.stdout)["error"]["message"]
    assert message.startswith("workflow not-json returned a value that is not JSON (object): ")
    assert "\n" not in message


def test_an_invalid_workflow_input_is_refused_at_submission_naming_the_field(ecl: Ecl) -> None:
    done = ecl.run("run", "counting", "-m", "good", "--input", '{"text": 5}', "--llm", "mock")
    assert done.returncode == 4
    assert "text" in one_line_error(done.stderr)
