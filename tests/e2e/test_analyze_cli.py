"""``ecl analyze`` as a subprocess: the dry run and every bad input, each a one-line error."""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

import pytest

from tests.e2e.helpers import Ecl

pytestmark = pytest.mark.e2e

SAMPLE = Path(__file__).parents[2] / "examples" / "codebases" / "redis-clone-js"


@pytest.fixture
def ecl(tmp_path: Path) -> Ecl:
    # No LLM server: nothing here may call one (a call would fail to connect).
    return Ecl(tmp_path, "http://127.0.0.1:9")


def test_dry_run_prints_manifest_chunks_and_tokens_without_llm(ecl: Ecl) -> None:
    done = ecl.run("analyze", str(SAMPLE), "--target", "rust", "--dry-run", "--format", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["manifest"]["files"] == len([p for p in SAMPLE.rglob("*") if p.is_file()])
    assert doc["manifest"]["languages"]["javascript"] == 10
    assert doc["manifest"]["redactions"] == 1  # the planted admin token in src/config.js
    assert doc["chunks"] == 1
    assert doc["estimated_input_tokens"]["chunk_summaries"] > doc["manifest"]["bytes"] // 4
    assert not ecl.db.exists()  # no run, no database

    small = ecl.run(
        "analyze", str(SAMPLE), "--target", "rust", "--dry-run", "--format", "json",
        ECL_ANALYZER__CHUNK_TOKENS="1000",
    )  # fmt: skip
    assert json.loads(small.stdout)["chunks"] > 3

    table = ecl.run("analyze", str(SAMPLE), "--target", "rust", "--dry-run")
    assert table.returncode == 0, table.stderr
    for label in ("dry run: no LLM called", "files", "chunks", "estimated input tokens", "javascript 10"):
        assert label in table.stdout


def write_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def run_in_process(
    args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """``ecl`` through its real entry point and error boundary, in this process (a subprocess
    costs seconds of imports each on a busy machine)."""
    from ecl.cli.app import main

    with monkeypatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.setattr(sys, "argv", ["ecl", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_a_bad_input_from_the_executable(ecl: Ecl, tmp_path: Path) -> None:
    done = ecl.run("analyze", str(tmp_path / "missing"), "--target", "rust", "--dry-run")
    assert done.returncode == 4
    assert done.stderr == f"error: code_path {str(tmp_path / 'missing')!r} does not exist\n"


def test_bad_inputs_are_one_line_errors_and_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("ECL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "a.png").write_bytes(b"\x89PNG\0")
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "a.js").write_text("x" * 5000)
    (tmp_path / "main.js").write_text("1\n")
    slip = write_zip(tmp_path / "slip.zip", {"a.js": "1\n", "../../escaped.js": "evil\n"})
    before = sorted(p.name for p in tmp_path.iterdir())
    cases: list[tuple[list[str], str, str, dict[str, str]]] = [
        ([str(tmp_path / "missing")], "code_path '", "does not exist", {}),
        ([str(tmp_path / "main.js")], "is a file, not a folder", "", {}),
        ([str(tmp_path / "empty")], "has no source files to analyze (it is empty)", "", {}),
        ([str(tmp_path / "bin")], "has no source files to analyze (skipped: 1 binary)", "", {}),
        (
            [str(tmp_path / "big")],
            "a.js is 5000 bytes, over analyzer.max_file_bytes = 1000",
            "",
            {"ECL_ANALYZER__MAX_FILE_BYTES": "1000"},
        ),
        ([str(SAMPLE)], "over analyzer.max_files = 3", "", {"ECL_ANALYZER__MAX_FILES": "3"}),
        ([str(slip)], "escapes the archive", "../../escaped.js", {}),
        ([str(SAMPLE), "--skill", str(tmp_path / "nope.md")], "skill '", "does not exist", {}),
        ([str(SAMPLE), "--implementation", str(tmp_path), "--skip-assessment"], "not both", "", {}),
        ([str(SAMPLE), "--wait-for-implementation", "--skip-assessment"], "--wait-for-implementation goes", "", {}),
    ]
    for args, expected, also, env in cases:
        code, err = run_in_process(["analyze", *args, "--target", "rust", "--dry-run"], env, monkeypatch, capsys)
        assert code == 4, (args, err)
        assert err.startswith("error: "), err
        assert err.count("\n") == 1, err
        assert expected in err and also in err, err
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path.parent / "escaped.js").exists()


def test_the_readme_command_completes_and_leaves_the_deliverables(ecl: Ecl, tmp_path: Path) -> None:
    """The issue's acceptance command, as is: no --implementation, so the CLI skips step 5
    (it says so) instead of waiting for a signal nobody sends."""
    out = tmp_path / "analysis"
    done = ecl.run("analyze", str(SAMPLE), "--target", "rust", "--llm", "mock", "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stderr
    assert "the quality assessment (step 5) is skipped" in done.stderr
    index = (out / "index.md").read_text()
    assert "Traceback" not in done.stderr
    linked = [p for p in out.rglob("*") if p.is_file() and p.name != "index.md"]
    assert linked, "no deliverables written"
    for deliverable in linked:
        assert deliverable.stat().st_size > 0, deliverable
    zips = [p for p in linked if p.suffix == ".zip"]
    assert zips
    assert zips[0].name in index


def test_budgets_show_in_the_dry_run_and_a_bad_one_is_a_one_line_error(ecl: Ecl) -> None:
    done = ecl.run(
        "analyze", str(SAMPLE), "--target", "rust", "--dry-run", "--format", "json",
        "--budget-tokens", "50000", "--budget-usd", "0.25",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["budget_tokens"] == 50000 and doc["budget_usd"] == "0.25"
    bad = ecl.run("analyze", str(SAMPLE), "--target", "rust", "--dry-run", "--budget-usd", "ten")
    assert bad.returncode == 4
    assert bad.stderr == "error: --budget-usd = 'ten': not a number of USD\n"
