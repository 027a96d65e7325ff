"""The analyzer's input bundle: allowed roots for server-side paths, settings, the cost estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecl.analyzer import AnalyzerPrompts
from ecl.analyzer.bundle import (
    AnalysisInput,
    AnalyzerOptions,
    check_allowed_roots,
    estimate_cost,
    plan_for,
    run_intake,
)
from ecl.config import load_settings
from ecl.core.errors import InputValidationError

SAMPLE = Path(__file__).parents[2] / "examples" / "codebases" / "redis-clone-js"


def test_allowed_roots(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    (root / "code").mkdir(parents=True)
    (tmp_path / "private").mkdir()
    (root / "escape").symlink_to(tmp_path / "private", target_is_directory=True)
    ok = AnalysisInput(code_path=str(root / "code"), target="rust", skill=str(root / "SKILL.md"))
    check_allowed_roots(ok, [str(root)])
    refused = {
        "code_path": AnalysisInput(code_path=str(root / "code" / ".." / ".." / "private"), target="rust"),
        "code_path ": AnalysisInput(code_path=str(root / "escape"), target="rust"),
        "code_path  ": AnalysisInput(code_path="shared/code", target="rust"),
        "skill": AnalysisInput(code_path=str(root / "code"), target="rust", skill="/etc/passwd"),
        "deploy[1]": AnalysisInput(code_path=str(root / "code"), target="rust", deploy=[str(root / "a"), "/etc/x"]),
    }
    for field, data in refused.items():
        with pytest.raises(InputValidationError) as info:
            check_allowed_roots(data, [str(root)])
        assert str(info.value).startswith(f"{field.strip()} ")
        assert "is not allowed" in str(info.value)
        assert info.value.errors[0]["field"] == f"input.{field.strip()}"
    with pytest.raises(InputValidationError, match=r"analyzer\.allowed_roots is empty"):
        check_allowed_roots(ok, [])


def test_settings_reach_the_options(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"ECL_ANALYZER__ALLOWED_ROOTS": "/srv/code, /data", "ECL_ANALYZER__CHUNK_TOKENS": "900"}, cwd=tmp_path
    )
    assert settings.analyzer.allowed_roots == ["/srv/code", "/data"]
    options = AnalyzerOptions.from_settings(settings.analyzer)
    assert options.chunk_tokens == 900
    assert options.limits.max_files == settings.analyzer.max_files


def test_estimate_grows_with_the_code() -> None:
    data = AnalysisInput(code_path=str(SAMPLE), target="rust", options=AnalyzerOptions(chunk_tokens=800))
    intake = run_intake(data)
    chunks = plan_for(intake.manifest, data.options)
    assert len(chunks) > 3
    estimate = estimate_cost(chunks, AnalyzerPrompts(), assessment=False)
    assert estimate.chunks == len(chunks)
    assert estimate.map_tokens > intake.manifest.total_bytes // 4
    with_assessment = estimate_cost(chunks, AnalyzerPrompts(), assessment=True)
    assert with_assessment.total > estimate.total
