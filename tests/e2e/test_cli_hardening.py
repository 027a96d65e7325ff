"""Hostile and broken input to the ``ecl`` executable: secrets stay hidden, hostile files are
refused fast, every failure is one line with its documented exit code, and read-only
commands create nothing. Also the repository's own hygiene (architecture, licence, version).
"""

from __future__ import annotations

import re
import socket
import subprocess
import tomllib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from tests.db_fixtures import fresh_pg
from tests.e2e.helpers import Ecl

pytestmark = pytest.mark.e2e

REPO = Path(__file__).parents[2]
EXAMPLE = REPO / "examples/definitions/critique-revise.yaml"
PASSWORD = "pw-Zq81-s3cret"


@pytest.fixture
def ecl(tmp_path: Path) -> Ecl:
    return Ecl(tmp_path, "http://127.0.0.1:9")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """Exit ``code``, ``error: ...`` (plus at most a hint line), no traceback, every needle."""
    stderr = done.stderr
    assert done.returncode == code, stderr
    assert stderr.startswith("error: "), stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), stderr
    for needle in needles:
        assert needle in stderr, stderr


# ------------------------------------------------------------------ item 5: secrets


@pytest.mark.timeout(300)  # several `ecl` processes; generous for a busy machine
def test_url_passwords_are_hidden_everywhere_and_production_refuses_weak_api_keys(ecl: Ecl) -> None:
    env = {
        "ECL_DATABASE_URL": f"postgresql://ecl:{PASSWORD}@127.0.0.1:1/ecl",
        "ECL_LLM_BASE_URL": f"http://proxy:{PASSWORD}@127.0.0.1:9/v1?api_key={PASSWORD}",
        "ECL_LOG_LEVEL": "debug",
    }
    table = ecl.run("config", "show", **env)
    assert table.returncode == 0, table.stderr
    doc = ecl.json("config", "show", **env)
    for shown in (table.stdout + table.stderr, str(doc)):
        assert PASSWORD not in shown
    assert doc["database"]["url"] == "postgresql://ecl:**********@127.0.0.1:1/ecl"
    assert doc["llm"]["base_url"] == "http://proxy:**********@127.0.0.1:9/v1?api_key=**********"
    assert "postgresql://ecl:****" in table.stdout  # the table shows the URL, not its password

    # Errors and logs: an unreachable database, and a URL SQLAlchemy cannot parse.
    unreachable = ecl.run("list", **env)
    assert_one_line_error(unreachable, 7, "127.0.0.1")
    bad_port = ecl.run("list", **{**env, "ECL_DATABASE_URL": f"postgresql://ecl:{PASSWORD}@db:port/ecl"})
    assert_one_line_error(bad_port, 5, "database.url", "ecl:**********@db:port")
    for done in (unreachable, bad_port):
        assert PASSWORD not in done.stdout + done.stderr

    # Production: a short or blank API key is refused before anything starts, and not echoed.
    for weak in ("s3cret-key", " " * 24):
        refused = ecl.run("server", "start", "--port", str(free_port()), ECL_ENV="production", ECL_API_KEY=weak)
        assert_one_line_error(refused, 5, "api.api_key", "16 characters")
        if weak.strip():
            assert weak not in refused.stderr
    strong = ecl.run("config", "show", "--format", "json", ECL_ENV="production", ECL_API_KEY="k" * 16)
    assert strong.returncode == 0, strong.stderr
    assert "k" * 16 not in strong.stdout


# ------------------------------------------------------------------ item 6: YAML bombs


def _laughs(levels: int) -> str:
    """A "billion laughs" document: each level is nine aliases of the one before."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(300)  # several `ecl` processes; generous for a busy machine
def test_hostile_definition_files_are_refused_by_validate_and_at_server_start(ecl: Ecl, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    bomb = hostile / "bomb.yaml"
    # Five levels (59,049 leaves) keeps this test harmless where aliases are still expanded.
    bomb.write_text("id: bomb\nname: Bomb\n" + _laughs(5))
    cases = {
        bomb: "aliases",
        tmp_path / "deep.yaml": "nested deeper than",
        tmp_path / "block.yaml": "nested deeper than",
        tmp_path / "deep.toml": "nested deeper than",
        tmp_path / "huge.yaml": "larger than",
    }
    (tmp_path / "deep.yaml").write_text("id: deep\nsteps: " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "block.yaml").write_text("id: block\nsteps:\n" + "- " * 5000 + "x\n")
    (tmp_path / "deep.toml").write_text('id = "deep"\nsteps = ' + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "huge.yaml").write_text("id: huge\n" + "# padding\n" * 200_000)
    for path, needle in cases.items():
        done = ecl.run("definitions", "validate", str(path), timeout=60)
        assert_one_line_error(done, 2, str(path), needle)

    # An anchor used once, without an alias, is still an ordinary document.
    anchored = tmp_path / "anchored.yaml"
    anchored.write_text(EXAMPLE.read_text().replace("id: critique-revise", "id: &me critique-revise", 1))
    assert ecl.run("definitions", "validate", str(anchored)).returncode == 0

    # The same loader guards the server: a definitions folder holding the bomb stops it at once.
    port = free_port()
    started = ecl.run("server", "start", "--port", str(port), ECL_DEFINITIONS_PATH=str(hostile), timeout=60)
    assert_one_line_error(started, 2, "bomb.yaml", "aliases")


# ------------------------------------------------------------------ item 7: one-line errors


def _binary(path: Path) -> str:
    path.write_bytes(b"\xff\xfe\x00\x01binary\x80\x81")
    return str(path)


def _file_in_the_way(tmp: Path) -> Path:
    blocker = tmp / "afile"
    blocker.write_text("not a folder")
    return blocker


def _latin1(tmp: Path) -> str:
    path = tmp / "latin1.yaml"
    path.write_bytes("id: caf\u00e9\nname: x\n".encode("latin-1"))
    return str(path)


def _deep(tmp: Path) -> str:
    path = tmp / "deep.yaml"
    path.write_text("[" * 100_000 + "]" * 100_000)
    return str(path)


def _corrupt(tmp: Path) -> str:
    path = tmp / "corrupt.db"
    path.write_bytes(b"this is not a SQLite database\x00" * 200)
    return f"sqlite:///{path}"


Case = tuple[list[str], dict[str, str], int, str]
BROKEN: dict[str, Callable[[Path, Callable[[], str]], Case]] = {
    "binary --input-file": lambda t, _pg: (
        ["run", "critique-revise", "--input-file", _binary(t / "in.json"), "--llm", "mock"],
        {},
        4,
        "in.json",
    ),
    "binary --config": lambda t, _pg: (["config", "show", "--config", _binary(t / "c.toml")], {}, 5, "UTF-8"),
    "binary definition": lambda t, _pg: (["definitions", "validate", _binary(t / "b.yaml")], {}, 2, "UTF-8"),
    "latin-1 definition": lambda t, _pg: (["definitions", "validate", _latin1(t)], {}, 2, "UTF-8"),
    "100k-deep YAML": lambda t, _pg: (["definitions", "validate", _deep(t)], {}, 2, "nested deeper than"),
    "non-numeric port in database.url": lambda _t, _pg: (
        ["list"],
        {"ECL_DATABASE_URL": "postgresql://u@localhost:fivefour/db"},
        5,
        "database.url",
    ),
    "SQLite parent is a file (run)": lambda t, _pg: (
        ["run", "critique-revise", "--topic", "x", "--llm", "mock"],
        {"ECL_DATABASE_URL": f"sqlite:///{_file_in_the_way(t)}/ecl.db"},
        5,
        "is a file",
    ),
    "SQLite parent is a file (migrate)": lambda t, _pg: (
        ["migrate"],
        {"ECL_DATABASE_URL": f"sqlite:///{_file_in_the_way(t)}/sub/ecl.db"},
        5,
        "is a file",
    ),
    "server start --port 70000": lambda _t, _pg: (["server", "start", "--port", "70000"], {}, 4, "--port 70000"),
    "server start, database unreachable": lambda _t, _pg: (
        ["server", "start", "--port", str(free_port())],
        {"ECL_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
        7,
        "cannot reach the database",
    ),
    "server start, database not migrated": lambda _t, pg: (
        ["server", "start", "--port", str(free_port())],
        {"ECL_DATABASE_URL": pg()},
        7,
        "ecl migrate",
    ),
    "server start, database corrupt": lambda t, _pg: (
        ["server", "start", "--port", str(free_port())],
        {"ECL_DATABASE_URL": _corrupt(t)},
        7,
        "not a database",
    ),
}
"""Broken input and start-up failures: ``(args, env, exit code, text the error names)``."""


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_inputs_and_start_up_failures_are_one_line_errors(
    ecl: Ecl, tmp_path: Path, request: pytest.FixtureRequest, name: str
) -> None:
    args, env, code, needle = BROKEN[name](tmp_path, lambda: fresh_pg(request.getfixturevalue("pg_url")))
    done = ecl.run(*args, timeout=100, **env)
    assert_one_line_error(done, code, needle)
    if name == "100k-deep YAML":  # --debug still shows the traceback
        assert "Traceback" in ecl.run("--debug", *args).stderr


@pytest.mark.timeout(300)  # several `ecl` processes; generous for a busy machine
def test_port_in_use_and_read_only_commands_without_a_database(ecl: Ecl, tmp_path: Path) -> None:
    # A port in use: refused before the server does anything.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = str(holder.getsockname()[1])
        done = ecl.run("server", "start", "--port", taken, ECL_LLM_PROVIDER="mock", timeout=100)
        assert_one_line_error(done, 5, f"--port {taken}", "in use")
        # The Restate endpoint too, from the flag or from its setting.
        done = ecl.run("server", "start", "--engine", "restate", "--port", taken, timeout=100)
        assert_one_line_error(done, 5, f"--port {taken}", "in use")
        done = ecl.run("server", "start", "--engine", "restate", ECL_RESTATE__ENDPOINT_PORT=taken, timeout=100)
        assert_one_line_error(done, 5, f"restate.endpoint_port = {taken}", "in use")

    # Read-only commands on a SQLite path that does not exist create nothing.
    missing = tmp_path / "nowhere" / "deeper" / "ecl.db"
    for args in (["list"], ["status", "wf-1"], ["logs", "wf-1"]):
        done = ecl.run(*args, ECL_DATABASE_URL=f"sqlite:///{missing}")
        assert_one_line_error(done, 7, str(missing))
        assert not (tmp_path / "nowhere").exists()


# ------------------------------------------------------------------ item 13: hygiene


def test_architecture_document_licence_and_version(ecl: Ecl) -> None:
    readme = (REPO / "README.md").read_text()
    docs = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    for doc in docs:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            resolved = (doc.parent / target).resolve()
            assert resolved.is_relative_to(REPO), f"{doc.name} links outside the repository: {target}"
    for linked in ("docs/architecture.md", "LICENSE"):
        assert f"]({linked})" in readme
        assert (REPO / linked).is_file()
    architecture = (REPO / "docs/architecture.md").read_text()
    for topic in ("## Layers", "## Data flow", "embedded", "Restate", "import-linter"):
        assert topic in architecture

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    licence = (REPO / "LICENSE").read_text()
    assert "Apache License" in licence
    assert "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence

    version = ecl.run("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"ecl {metadata.version(project['name'])}"
