"""Every ``ecl`` command as a subprocess: formats, watch mode, completions, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecl.testing import FakeAnthropicServer
from tests.e2e.helpers import ECL, PASS, REVISE, START_TIMEOUT, Ecl, is_critique, responder

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as fake:
        fake.responder = responder([PASS])
        yield fake


@pytest.fixture(scope="module")
def ecl(tmp_path_factory: pytest.TempPathFactory, server: FakeAnthropicServer) -> Ecl:
    return Ecl(tmp_path_factory.mktemp("cli"), server.url)


@pytest.fixture(scope="module")
def finished(ecl: Ecl) -> str:
    """One completed workflow (mock LLM) shared by the read-only commands."""
    done = ecl.run("run", "critique-revise", "--topic", "Rust", "--llm", "mock", "--id", "done-1")
    assert done.returncode == 0, done.stderr
    return "done-1"


COMMANDS = {
    "run", "resume", "analyze", "status", "list", "logs", "cancel", "signal", "migrate", "completions", "man", "dev",
    "definitions list", "definitions show", "definitions validate", "config show", "server start", "server openapi",
}  # fmt: skip
"""Every command, each driven as a subprocess by a test in this folder."""


def _commands() -> set[str]:
    import typer.main

    from ecl.cli.app import build_app

    found: set[str] = set()
    root = typer.main.get_command(build_app())
    for name, command in getattr(root, "commands", {}).items():
        subs = getattr(command, "commands", None)
        found |= {f"{name} {sub}" for sub in subs} if subs else {name}
    return found


def test_help_lists_every_command_and_the_readme_shows_each() -> None:
    assert _commands() == COMMANDS, "a command was added or removed: test it and list it in the README"
    out = subprocess.run([ECL, "--help"], capture_output=True, text=True, check=True).stdout
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for command in COMMANDS:
        assert command.split()[0] in out, command
        assert f"`ecl {command}" in readme, f"README lacks `ecl {command}`"
        assert f"`ecl {command}" in readme.split("| example |", 1)[1], f"README has no example of ecl {command}"


def test_a_command_starts_without_what_it_does_not_use(ecl: Ecl, finished: str) -> None:
    """Building the app and checking a migrated database import neither Restate's SDK, the
    web server, Alembic nor the analyzer: each would add to every command's start (``ecl dev``,
    ``ecl server start``, migrations and ``ecl analyze`` import them when they run)."""
    script = (
        "import sys\n"
        "from ecl.cli.app import build_app\n"
        "from ecl.store.database import check_schema\n"
        "build_app()\n"
        "check_schema(sys.argv[1])\n"
        "print(sorted(m for m in ('restate', 'uvicorn', 'hypercorn', 'alembic', 'ecl.analyzer') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{ecl.db}"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_server_openapi_writes_the_document(ecl: Ecl, tmp_path: Path) -> None:
    target = tmp_path / "openapi.yaml"
    done = ecl.run("server", "openapi", "--output", str(target))
    assert done.returncode == 0, done.stderr
    assert "/workflows/{workflow_id}/signal" in target.read_text()
    assert ecl.run("server", "openapi").stdout.startswith("openapi:")


def test_run_table_prints_text_and_summary(ecl: Ecl) -> None:
    done = ecl.run("run", "critique-revise", "--topic", "Durable execution", "--llm", "mock")
    assert done.returncode == 0, done.stderr
    assert "Durable execution" in done.stdout
    for label in ("workflow", "state", "completed", "revisions", "tokens"):
        assert label in done.stdout
    assert "→ generate" in done.stderr  # progress


def test_run_json_through_claude_api(ecl: Ecl, server: FakeAnthropicServer) -> None:
    before = server.count()
    doc = ecl.json("run", "critique-revise", "--topic", "Rust", "--llm", "anthropic")
    assert doc["state"] == "completed"
    assert set(doc) >= {"workflow_id", "state", "outputs"}
    assert doc["outputs"]["final"]["artifact_id"]
    assert server.count() - before == 2


def test_run_quiet_and_input_file(ecl: Ecl, tmp_path: Path) -> None:
    data = tmp_path / "input.json"
    data.write_text(json.dumps({"topic": "from a file"}))
    done = ecl.run("run", "critique-revise", "--input-file", str(data), "--llm", "mock", "--format", "quiet")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip()) == 36


def test_run_detach_then_resume(ecl: Ecl) -> None:
    done = ecl.run("run", "critique-revise", "--topic", "later", "--id", "det-1", "--detach", "--llm", "mock")
    assert done.returncode == 0, done.stderr
    assert ecl.json("status", "det-1")["workflow"]["state"] == "pending"
    assert ecl.json("resume", "det-1", "--llm", "mock")["state"] == "completed"


def test_status_formats(ecl: Ecl, finished: str) -> None:
    table = ecl.run("status", finished)
    assert table.returncode == 0
    assert "completed" in table.stdout
    assert "generate" in table.stdout
    doc = ecl.json("status", finished)
    assert doc["workflow"]["state"] == "completed"
    assert [s["step_id"] for s in doc["steps"]] == ["generate", "critique", "final"]
    assert ecl.run("status", finished, "--format", "quiet").stdout.strip() == "completed"


def test_status_watch_ends_with_the_workflow(ecl: Ecl, server: FakeAnthropicServer) -> None:
    hold = server.hold_next(is_critique)
    runner = ecl.start("run", "critique-revise", "--topic", "Rust", "--id", "watch-1", "--llm", "anthropic")
    hold.wait_arrived(START_TIMEOUT)
    watcher = ecl.start("status", "watch-1", "--watch", "--interval", "0.2")
    assert watcher.stdout is not None
    first_line = watcher.stdout.readline()  # the first refresh, while critique is held
    assert "running" in first_line
    hold.release()
    out, err = watcher.communicate(timeout=START_TIMEOUT)
    runner.communicate(timeout=START_TIMEOUT)
    assert watcher.returncode == 0, err
    assert "completed" in out


def test_failed_workflow_exit_code(ecl: Ecl, server: FakeAnthropicServer) -> None:
    server.responder = responder([REVISE])
    try:
        done = ecl.run("run", "critique-revise", "--topic", "never good", "--id", "fail-1", "--llm", "anthropic")
    finally:
        server.responder = responder([PASS])
    assert done.returncode == 10
    assert "MaxRevisionsExceeded" in done.stdout
    assert ecl.run("status", "fail-1").returncode == 10


def test_list_formats_and_filters(ecl: Ecl, finished: str) -> None:
    assert finished in ecl.run("list", "--limit", "100").stdout
    doc = ecl.json("list", "--state", "completed", "--limit", "100")
    assert all(w["state"] == "completed" for w in doc["items"])
    quiet = ecl.run("list", "--definition", "critique-revise", "--format", "quiet", "--limit", "100")
    assert finished in quiet.stdout.split()
    page = ecl.json("list", "--limit", "1")
    assert page["next_cursor"]
    nxt = ecl.json("list", "--limit", "1", "--cursor", page["next_cursor"])
    assert nxt["items"][0]["id"] != page["items"][0]["id"]


def test_logs(ecl: Ecl, finished: str) -> None:
    out = ecl.run("logs", finished).stdout
    assert "generate attempt 1 started" in out
    assert "llm mock/mock-model ok" in out
    only = ecl.run("logs", finished, "--step", "critique").stdout
    assert "generate" not in only
    assert "critique" in only
    events = ecl.json("logs", finished)
    # The run's first state change, then its first step (state changes are events of the run).
    assert [(e["kind"], e["text"]) for e in events[:2]] == [
        ("state", "running"),
        ("step_started", "generate attempt 1 started"),
    ]
    follow = ecl.run("logs", finished, "--follow", "--format", "quiet")
    assert follow.returncode == 0


def test_cancel_and_signal(ecl: Ecl) -> None:
    ecl.run("run", "critique-revise", "--topic", "x", "--id", "c-1", "--detach", "--llm", "mock")
    assert ecl.run("cancel", "c-1").returncode == 0
    status = ecl.run("status", "c-1", "--format", "json")
    assert status.returncode == 11  # cancelled
    assert json.loads(status.stdout)["workflow"]["state"] == "cancelled"
    assert ecl.json("cancel", "c-1")["state"] == "cancelled"
    signalled = ecl.run("signal", "c-1", "approve")
    assert signalled.returncode == 6  # conflict: it has ended
    assert "takes no signals" in signalled.stderr


def test_definitions_commands(ecl: Ecl, tmp_path: Path) -> None:
    assert "critique-revise" in ecl.run("definitions", "list").stdout
    assert ecl.json("definitions", "list")[1]["id"] == "critique-revise"
    assert ecl.run("definitions", "list", "--format", "quiet").stdout.split() == [
        "codebase-migration",  # ECL's own ecl.workflows entry point
        "critique-revise",
        "critique-revise-py",
    ]
    assert ecl.json("definitions", "show", "critique-revise-py")["kind"] == "code"
    shown = ecl.run("definitions", "show", "critique-revise")
    assert "revision loop" in shown.stdout
    assert ecl.json("definitions", "show", "critique-revise")["transitions"][0]["max_iterations"] == 3
    example = Path(__file__).parents[2] / "examples/definitions/critique-revise.yaml"
    assert ecl.run("definitions", "validate", str(example)).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(example.read_text().replace("step_id: critique", "step_id: critique\n    step: missing"))
    invalid = ecl.run("definitions", "validate", str(bad))
    assert invalid.returncode == 2
    assert "critique" in invalid.stderr
    assert "missing" in invalid.stderr


def test_migrate_twice(ecl: Ecl, server_url: str) -> None:
    """On an empty SQLite file and an empty PostgreSQL database."""
    url = server_url
    first = ecl.run("migrate", "--database-url", url)
    assert first.returncode == 0
    assert "applied" in first.stdout
    second = ecl.run("migrate", "--database-url", url)
    assert "nothing to do" in second.stdout
    assert ecl.json("migrate", "--database-url", url)["applied"] == []


def test_config_show(ecl: Ecl) -> None:
    table = ecl.run("config", "show")
    assert table.returncode == 0
    assert "database.url" in table.stdout
    assert "sk-test-not-a-real-key" not in table.stdout + table.stderr
    assert "**********" in table.stdout
    doc = ecl.json("config", "show")
    assert doc["llm"]["api_key"] == "**********"
    bare = subprocess.run(
        [ECL, "config", "show", "--format", "json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ecl.tmp / "bare")},
        cwd=ecl.tmp,
        check=False,
    )
    assert bare.returncode == 0, bare.stderr
    assert json.loads(bare.stdout)["llm"]["api_key"] is None


def test_completions_load_in_bash_and_man_page(ecl: Ecl) -> None:
    script = ecl.run("completions", "bash").stdout
    check = subprocess.run(["bash", "-c", f"{script}\ncomplete -p ecl"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    assert "_ecl_completion" in check.stdout
    assert "complete --command ecl" in ecl.run("completions", "fish").stdout
    assert ecl.run("completions", "zsh").returncode == 0
    assert ecl.run("completions", "tcsh").returncode == 4
    man = ecl.run("man").stdout
    assert man.startswith(".TH")
    assert "ecl run" in man


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["status", "no-such-workflow"], 3, "not found"),
        (["run", "no-such-definition", "--llm", "mock"], 3, "unknown definition"),
        (["list", "--state", "finished"], 4, "unknown state"),
        (["list", "--format", "yaml"], 4, "unknown format"),
        (["run", "critique-revise", "--input", "{not json", "--llm", "mock"], 4, "not valid JSON"),
        (["run", "critique-revise", "--input", "[1]", "--llm", "mock"], 4, "must be a JSON object"),
        (["run", "critique-revise", "--input", '{"topic": ""}', "--llm", "mock"], 4, "input.topic: String should"),
        (["run", "critique-revise", "--input", '{"tpoic": "x"}', "--llm", "mock"], 4, "input.tpoic: Extra inputs"),
        (["run", "critique-revise", "--topic", "x", "--input", '{"rounds": 2}', "--llm", "mock"], 4, "input.rounds"),
        (["run", "critique-revise-py", "--input", '{"topic": 5}', "--llm", "mock"], 4, "input.topic: Input should"),
        (["run", "critique-revise", "--topic", "x", "--llm", "gpt"], 4, "unknown LLM provider"),
        (["run", "critique-revise", "--topic", "x", "--engine", "k8s"], 4, "unknown engine"),
        (["signal", "done-1", "maybe"], 4, "approve, revise or budget"),
        (["config", "show", "--config", "/nonexistent.toml"], 5, "no such file"),
    ],
)
def test_errors_are_one_line_with_distinct_codes(
    ecl: Ecl, finished: str, args: list[str], code: int, message: str
) -> None:
    done = ecl.run(*args)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") <= 1


def test_unreachable_database_and_debug_traceback(ecl: Ecl) -> None:
    done = ecl.run("list", ECL_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 7
    assert "database" in done.stderr
    assert "Traceback" not in done.stderr
    debug = ecl.run("--debug", "status", "nope")
    assert "Traceback" in debug.stderr


def test_bad_config_value_at_start_up(ecl: Ecl) -> None:
    done = ecl.run("list", ECL_API_PORT="http")
    assert done.returncode == 5
    assert "api.port = 'http' (from env ECL_API_PORT)" in done.stderr
