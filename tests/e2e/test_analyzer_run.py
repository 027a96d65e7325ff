"""The codebase-migration analyzer end to end: ``ecl analyze`` as a subprocess, Claude as the
fake Anthropic server over real HTTP (through the official SDK), scripted per step.

Proves that every step runs with its real inputs (canaries), that the code reaches the
model only inside data fences, that the read_file tool and the revision round work, that
every deliverable is written, and that a SIGKILL during the chunk fan-out followed by
``ecl resume`` never pays for a completed chunk twice.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecl.analyzer.models import Adherence, ProjectPlan
from ecl.analyzer.prompting import fenced_spans
from ecl.testing import FakeAnthropicServer, ReceivedRequest
from ecl.testing.anthropic_server import Reply
from tests.e2e.helpers import Ecl, kill

pytestmark = pytest.mark.e2e

SAMPLE = Path(__file__).parents[2] / "examples" / "codebases" / "redis-clone-js"
CANARY = "CANARY-d41c-resp-only"
PLANTED = "PLANTED-INSTRUCTION-7f3a"
SKILL_MARK = "SKILL-MARKER-use-thiserror"
IMPL_MARK = "IMPL-MARKER-tokio-listener"
GRADE_MARK = "GRADE-REPORT-MARKER"
REVISION_ASK = "Spell out the RESP framing buffer for pipelined commands."

PLAN = ProjectPlan.model_validate(
    {
        "title": "mini-redis in Rust",
        "summary": "Two phases.",
        "phases": [
            {
                "name": "Protocol core",
                "goal": "RESP parsing and the keyspace",
                "stages": [{"name": "RESP", "goal": "frames", "tasks": ["parser"], "acceptance_criteria": ["tests"]}],
            },
            {
                "name": "Server",
                "goal": "TCP server",
                "stages": [{"name": "Listener", "goal": "tokio", "tasks": ["accept"], "acceptance_criteria": ["e2e"]}],
            },
        ],
    }
)
ADHERENCE = Adherence.model_validate(
    {
        "score": 0.4,
        "summary": "Phase 2 is partial.",
        "stages": [
            {"phase": "Protocol core", "stage": "RESP", "status": "done", "evidence": "src/resp.rs:1"},
            {"phase": "Server", "stage": "Listener", "status": "partial", "evidence": "src/main.rs:3"},
        ],
        "revision_requests": [{"phase": 2, "request": REVISION_ASK}],
    }
)


def kind(r: ReceivedRequest) -> str:
    """Which step a request belongs to, by its prompt."""
    text = r.text
    first = next((m for m in r.json.get("messages", []) if m.get("role") == "user"), {})
    content = first.get("content")
    if isinstance(content, list):  # content blocks (a prompt-cache breakpoint): the first one's text
        content = next((b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"), "")
    opening = content if isinstance(content, str) else ""
    for prefix, name in (
        ("Summarise chunk", "chunk"),
        ("Write the implementation **grade report**", "grade"),
        ("Write the **current component breakdown**", "components"),
        ("Write the **recommended refactor breakdown**", "refactor"),
        ("Design the **ideal architecture**", "architecture"),
        ("Turn the architecture below into a **phased project plan**", "plan"),
        ("Write the **implementation spec**", "spec"),
        ("Write the **standards analysis**", "standards"),
        ("Check the new implementation against the plan", "adherence"),
        ("Write the **final write-up**", "writeup"),
        ("Turn the write-up below into a short presentation", "slides"),
    ):
        if opening.startswith(prefix):
            return name
    raise AssertionError(f"unrecognised request: {text[:200]!r}")


def respond(r: ReceivedRequest) -> str | Reply:
    step = kind(r)
    if step == "chunk":
        number = re.search(r"Summarise chunk (\d+) of", r.text)
        return f"Summary of chunk {number.group(1) if number else '?'}: a RESP server module."
    if step == "grade":
        return f"# Grade report\n\n{GRADE_MARK}\n\n- error handling: D (src/commands.js:43 INCR returns NaN)"
    if step == "architecture":
        tool_results = [
            b for m in r.json["messages"] if isinstance(m.get("content"), list) for b in m["content"]
            if b.get("type") == "tool_result"
        ]  # fmt: skip
        if not tool_results:
            return Reply(
                text="", tool_calls=[{"id": "toolu_1", "name": "read_file", "input": {"path": "src/store.js"}}]
            )
        return "# Architecture\n\nA framing codec, a command router, a keyspace with an expiry wheel."
    if step == "plan":
        return "Here is the plan:\n```json\n" + PLAN.model_dump_json() + "\n```"
    if step == "spec":
        revised = REVISION_ASK in r.text
        number = re.search(r"for phase (\d+) of", r.text)
        return f"# Spec phase {number.group(1) if number else '?'}{' (REVISED)' if revised else ''}\n\nDo it."
    if step == "adherence":
        return ADHERENCE.model_dump_json()
    if step == "slides":
        return "---\nmarp: true\n---\n\n# Migration\n\n- grade D\n\n---\n\n# Plan\n\n- two phases\n"
    return f"# {step}\n\nText of {step}."


@pytest.fixture
def server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as fake:
        fake.responder = respond
        yield fake


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    code = tmp_path / "redis-clone-js"
    shutil.copytree(SAMPLE, code)
    resp = code / "src" / "resp.js"
    resp.write_text(resp.read_text() + f"\n// {CANARY}\n")
    skill = tmp_path / "SKILL.md"
    skill.write_text(f"# Rust conventions\n\n- {SKILL_MARK}: errors with thiserror\n")
    vision = tmp_path / "vision.md"
    vision.write_text("A drop-in Redis subset for our edge caches.\n")
    impl = tmp_path / "impl"
    (impl / "src").mkdir(parents=True)
    (impl / "src" / "main.rs").write_text(f"// {IMPL_MARK}\nfn main() {{}}\n")
    return {"code": code, "skill": skill, "vision": vision, "impl": impl}


def chunk_env() -> dict[str, str]:
    return {"ECL_ANALYZER__CHUNK_TOKENS": "700", "ECL_ANALYZER__CONCURRENCY": "2"}


def test_every_step_runs_with_its_inputs_and_every_deliverable_is_written(
    tmp_path: Path, server: FakeAnthropicServer, inputs: dict[str, Path]
) -> None:
    ecl = Ecl(tmp_path, server.url)
    out = tmp_path / "analysis"
    done = ecl.run(
        "analyze", str(inputs["code"]), "--target", "rust", "--use", "an edge cache",
        "--vision", str(inputs["vision"]), "--skill", str(inputs["skill"]),
        "--implementation", str(inputs["impl"]), "--out", str(out), "--llm", "anthropic", "--id", "an-e2e",
        timeout=240, **chunk_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    requests = list(server.requests)
    kinds = [kind(r) for r in requests]
    chunks = kinds.count("chunk")
    assert chunks > 3
    assert f"✓ {chunks}/{chunks} chunks" in done.stderr
    for step in ("grade", "components", "refactor", "plan", "standards", "adherence", "writeup", "slides"):
        assert kinds.count(step) == 1, (step, kinds)
    assert kinds.count("architecture") == 2  # one read_file round trip
    assert kinds.count("spec") == 3  # two phases, then phase 2 again in the revision round

    # Each step's requests carry its real inputs.
    with_canary = [r for r in requests if CANARY in r.text]
    assert len(with_canary) == 1
    assert kind(with_canary[0]) == "chunk"
    assert 'path="src/resp.js"' in with_canary[0].text
    architecture = [r for r in requests if kind(r) == "architecture"]
    assert GRADE_MARK in architecture[0].text
    assert "class Store" in architecture[1].text  # the file read_file returned
    assert SKILL_MARK in next(r for r in requests if kind(r) == "plan").text
    for step in ("standards", "adherence"):
        assert IMPL_MARK in next(r for r in requests if kind(r) == step).text
    revised = [r for r in requests if kind(r) == "spec" and REVISION_ASK in r.text]
    assert len(revised) == 1
    assert "for phase 2 of 2" in revised[0].text

    # The planted instruction reaches the model only inside data fences, never the system prompt.
    planted = [r for r in requests if PLANTED in r.text]
    assert planted
    for r in planted:
        assert PLANTED not in str(r.json.get("system", ""))
        for message in r.json["messages"]:
            content = message["content"] if isinstance(message["content"], str) else ""
            spans = fenced_spans(content)
            for match in re.finditer(PLANTED, content):
                assert any(s <= match.start() < e for s, e in spans), content[max(0, match.start() - 300) :]

    # Every deliverable exists and is non-empty; the zip holds them all.
    expected = {
        "index.md", "writeup.md", "slides.md", "slides.html", "grade-report.md", "components.md", "refactor.md",
        "architecture.md", "plan.md", "specs/phase-1.md", "specs/phase-2.md", "standards.md", "adherence.md",
        "manifest.json", "deliverables.zip",
    }  # fmt: skip
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert expected <= written
    assert sum(1 for name in written if name.startswith("summaries/")) == chunks
    for name in written:
        assert (out / name).stat().st_size > 0, name
    assert "(REVISED)" in (out / "specs" / "phase-2.md").read_text()
    assert "(REVISED)" not in (out / "specs" / "phase-1.md").read_text()
    assert "<section>" in (out / "slides.html").read_text()
    assert "<script" not in (out / "slides.html").read_text()
    with zipfile.ZipFile(out / "deliverables.zip") as zf:
        assert expected - {"deliverables.zip"} <= set(zf.namelist())
    manifest = json.loads((out / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} >= {"src/resp.js", "src/store.js"}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"])
    index = (out / "index.md").read_text()
    for name in expected - {"index.md"}:
        assert f"]({name})" in index, name

    # The run is recorded like any other: status, revisions, one llm_calls row per request.
    status = ecl.json("status", "an-e2e")
    assert status["workflow"]["state"] == "completed"
    assert status["workflow"]["definition_id"] == "codebase-migration"
    assert status["state"]["revision_count"] == 1
    assert {a["name"] for a in status["artifacts"]} >= {"manifest.json", "grade-report.md", "deliverables.zip"}
    calls = ecl.query("SELECT count(*) FROM llm_calls WHERE workflow_id = 'an-e2e'")
    assert calls == [(len(requests),)]

    # Prompt caching: every request marks its (shared) system prompt; the architecture step marks
    # its documents, which every round trip of its read_file loop sends again, so the second
    # round reads them from the cache (the fake server's cache accounting).
    for r in requests:
        system = r.json.get("system")
        assert isinstance(system, list) and system[-1].get("cache_control") == {"type": "ephemeral"}, kind(r)
    documents = architecture[0].json["messages"][0]["content"]
    assert isinstance(documents, list) and documents[0].get("cache_control") == {"type": "ephemeral"}
    assert GRADE_MARK in documents[0]["text"]
    reads = ecl.query(
        "SELECT c.cache_creation_tokens, c.cache_read_tokens FROM llm_calls c "
        "JOIN step_executions s ON c.step_execution_id = s.id "
        "WHERE c.workflow_id = 'an-e2e' AND s.step_id = 'architecture' ORDER BY c.created_at"
    )
    assert len(reads) == 2
    assert reads[0][0] >= len(documents[0]["text"]) // 4 and reads[0][1] == 0  # written once
    assert reads[1][1] >= len(documents[0]["text"]) // 4 and reads[1][0] == 0  # then read
    total_read = ecl.query("SELECT SUM(cache_read_tokens) FROM llm_calls WHERE workflow_id = 'an-e2e'")[0][0]
    assert total_read > reads[1][1]  # the chunk and document requests read the system prompt too


def is_chunk(number: int) -> object:
    return lambda r: kind(r) == "chunk" and f"Summarise chunk {number} of" in r.text


def test_sigkill_during_the_fan_out_then_resume_repeats_no_completed_chunk(
    tmp_path: Path, server: FakeAnthropicServer, inputs: dict[str, Path]
) -> None:
    ecl = Ecl(tmp_path, server.url)
    hold = server.hold_next(lambda r: kind(r) == "chunk" and "Summarise chunk 4 of" in r.text)
    proc = ecl.start(
        "analyze", str(inputs["code"]), "--target", "rust", "--skip-assessment", "--llm", "anthropic",
        "--id", "an-crash", **chunk_env(),
    )  # fmt: skip
    try:
        hold.wait_arrived(120)
        # Chunks 1..3 were asked for before chunk 4 (concurrency 2, first in first out); wait
        # until at least two of them are recorded as completed, then kill mid fan-out.
        ecl.wait_for(
            "SELECT count(*) FROM step_executions WHERE step_id = 'summarize-chunk' AND state = 'completed' "
            "HAVING count(*) >= 2",
            timeout=60,
        )
    finally:
        kill(proc)
        hold.release()
    completed = {
        row[0]
        for row in ecl.query(
            "SELECT iteration FROM step_executions WHERE step_id = 'summarize-chunk' AND state = 'completed'"
        )
    }
    assert len(completed) >= 2
    before = [kind(r) for r in server.requests]
    assert "grade" not in before  # the kill came during the fan-out

    out = tmp_path / "resumed"
    done = ecl.run("resume", "an-crash", "--format", "json", timeout=240)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "completed"
    chunk_numbers = [
        int(m.group(1)) for r in server.requests if kind(r) == "chunk"
        for m in [re.search(r"Summarise chunk (\d+) of", r.text)] if m
    ]  # fmt: skip
    for iteration in completed:
        assert chunk_numbers.count(iteration + 1) == 1, (iteration, chunk_numbers)
    total = max(chunk_numbers)
    assert set(chunk_numbers) == set(range(1, total + 1))
    for step in ("grade", "components", "refactor", "plan", "writeup", "slides"):
        assert [kind(r) for r in server.requests].count(step) == 1, step
    del out


def _chunk_numbers(requests: list[ReceivedRequest]) -> list[str]:
    return [
        m.group(1)
        for r in requests
        if kind(r) == "chunk"
        for m in [re.search(r"Summarise chunk (\d+) of", r.text)]
        if m
    ]


def test_a_token_budget_refuses_the_call_that_would_cross_it_before_it_is_sent(
    tmp_path: Path, server: FakeAnthropicServer, inputs: dict[str, Path]
) -> None:
    ecl = Ecl(tmp_path, server.url)
    budget = 12_000  # two chunk requests' worst case (~1,000 input + 4,096 output tokens each) and a little
    done = ecl.run(
        "analyze", str(inputs["code"]), "--target", "rust", "--skip-assessment", "--llm", "anthropic",
        "--budget-tokens", str(budget), "--format", "json",
        timeout=240, ECL_BUDGET__ON_EXCEEDED="fail", **chunk_env(),
    )  # fmt: skip
    assert done.returncode == 10, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["type"] == "BudgetExceeded" and error["step_id"] == "summarize-chunk"
    assert error["budget_tokens"] == budget
    # The refused call would have crossed the budget, counting what was spent and what was on its way.
    assert error["spent_tokens"] + error["call"]["worst_case_tokens"] > budget
    sent = list(server.requests)
    assert sent and all(kind(r) == "chunk" for r in sent)
    # Every request that reached the server is a recorded call (one still on its way when the
    # run failed stays pending); the refused one never went out.
    recorded = ecl.query("SELECT input_tokens + output_tokens, outcome FROM llm_calls")
    assert len(recorded) == len(sent)
    assert sum(tokens for tokens, outcome in recorded if outcome == "ok") <= budget


def test_a_budget_wait_is_topped_up_with_a_signal_and_no_chunk_is_paid_twice(
    tmp_path: Path, server: FakeAnthropicServer, inputs: dict[str, Path]
) -> None:
    ecl = Ecl(tmp_path, server.url)
    wid = "analysis-budget"
    proc = ecl.start(
        "analyze", str(inputs["code"]), "--target", "rust", "--skip-assessment", "--llm", "anthropic",
        "--budget-tokens", "12000", "--id", wid, **chunk_env(),
    )  # fmt: skip
    try:
        ecl.wait_for("SELECT 1 FROM workflows WHERE id = ? AND state = 'waiting_for_budget'", wid, timeout=240)
        before = server.count()
        assert 0 < before < len(_chunk_numbers(list(server.requests))) + 1
        signalled = ecl.run("signal", wid, "budget", "--add-tokens", "10000000", timeout=240)
        assert signalled.returncode == 0, signalled.stderr
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            kill(proc)
    assert proc.returncode == 0, err
    said = [line for line in err.splitlines() if "over budget" in line]
    assert len(said) == 1 and "would cross the budget of 12000 tokens" in said[0], err
    assert f"ecl signal {wid} budget" in said[0]
    numbers = _chunk_numbers(list(server.requests))
    assert len(numbers) == len(set(numbers)) > 3  # every chunk summarised exactly once
    assert "completed" in out
