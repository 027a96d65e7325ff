"""The package's own tests, written as a user writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

import ecl
from ecl.config import load_settings
from ecl.llm import build_provider
from ecl.testing import FakeAnthropicServer, InMemoryDurableContext, run_workflow
from release_notes.flows import release_notes, summarise


def shout(request: ecl.CompletionRequest) -> str:
    """A fake model: the change, upper-cased."""
    return request.messages[-1].content.rsplit("Change: ", 1)[1].upper()


async def test_release_notes_in_memory() -> None:
    llm = ecl.MockLlmProvider(responder=shout)
    result = await run_workflow(release_notes, {"changes": ["fix login", "add dark mode"]}, llm=llm)
    assert result.state == "completed", result.error
    assert result.output == "# Release notes\n\n- FIX LOGIN\n- ADD DARK MODE"
    assert len(llm.requests) == 2


async def test_a_replay_repeats_no_step() -> None:
    llm = ecl.MockLlmProvider(responder=shout)
    ctx = InMemoryDurableContext("notes-1")
    first = await run_workflow(release_notes, {"changes": ["a", "b", "c"]}, llm=llm, ctx=ctx)
    again = await run_workflow(release_notes, {"changes": ["a", "b", "c"]}, llm=llm, ctx=ctx.replay())
    assert again.output == first.output
    assert len(llm.requests) == 3
    assert ctx.executed == ["step:summarise", "step:summarise:1", "step:summarise:2", "step:compose"]


async def test_the_yaml_workflow_uses_the_custom_step() -> None:
    llm = ecl.MockLlmProvider(responder=shout)
    result = await run_workflow("quick-note", {"change": "faster start"}, llm=llm, modules=["release_notes.flows"])
    assert result.state == "completed", result.error
    assert result.outputs["summarise"] == {"change": "faster start", "line": "FASTER START"}


async def test_an_empty_list_fails_with_a_clear_error() -> None:
    result = await run_workflow(release_notes, {"changes": []})
    assert result.state == "failed"
    assert result.error is not None
    assert result.error["message"] == "release-notes: changes must not be empty"


async def test_a_step_calls_the_model_with_its_own_prompt() -> None:
    llm = ecl.MockLlmProvider(["Fixed the login."])
    note = await run_workflow(ecl.workflow("one")(_one), {"change": "login bug"}, llm=llm)
    assert note.output == {"change": "login bug", "line": "Fixed the login."}
    assert "Summarise this change" in llm.requests[0].messages[-1].content


async def _one(ctx: ecl.WorkflowContext, change: str) -> dict[str, str]:
    return (await summarise(ctx, change)).model_dump()


async def test_durably_on_an_engine_against_the_fake_anthropic_server(tmp_path: Path) -> None:
    with FakeAnthropicServer() as fake:
        fake.responder = lambda request: "Did a thing."
        settings = load_settings(
            environ={
                "ECL_LLM_BASE_URL": fake.url,
                "ECL_CLAUDE_API_KEY": "sk-test",
                "ECL_ARTIFACT_PATH": str(tmp_path / "artifacts"),
            },
            cwd=tmp_path,
        )
        url = f"sqlite:///{tmp_path / 'notes.db'}"
        async with ecl.open_engine(database_url=url, workflows=[release_notes], settings=settings) as engine:
            result = await engine.run("release-notes", {"changes": ["x", "y"]}, workflow_id="notes-1")
            assert result.output == "# Release notes\n\n- Did a thing.\n- Did a thing."
            with pytest.raises(ecl.EclError, match="changes"):
                await engine.run("release-notes", {"changes": "not a list"})
        assert len(fake.requests) == 2


async def test_the_canned_provider_is_found_by_name() -> None:
    """The package's ``ecl.providers`` entry point, as ECL builds it (retries and breaker around it)."""
    llm = build_provider("canned", model="canned-v1")
    reply = await llm.complete(ecl.CompletionRequest.of("Summarise.\n\nChange: fix login"))
    assert (llm.name, reply.content, reply.model) == ("canned", "Noted: fix login.", "canned-v1")
