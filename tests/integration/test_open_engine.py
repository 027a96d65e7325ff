"""``ecl.open_engine``: the one way to run workflows from a Python program."""

from __future__ import annotations

from pathlib import Path

import pytest

import ecl
from ecl.config import load_settings
from ecl.core import DatabaseError, InputValidationError, WorkflowState
from ecl.store.database import current_revision, head_revision, upgrade
from tests.db_fixtures import fresh_pg


@ecl.step
async def reverse(ctx: ecl.StepContext, text: str) -> str:
    """Reverse the text after asking the LLM (so the call is recorded)."""
    reply = await ctx.llm.complete(ecl.CompletionRequest.of(f"Reverse: {text}"))
    return reply.content[::-1]


@ecl.workflow("reverse-twice")
async def reverse_twice(ctx: ecl.WorkflowContext, text: str) -> str:
    """Reverse, then reverse again."""
    return await reverse(ctx, await reverse(ctx, text))


async def test_a_sqlite_file_is_migrated_on_first_use_and_runs_are_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'app.db'}"
    llm = ecl.MockLlmProvider(responder=lambda request: request.messages[-1].content.removeprefix("Reverse: "))
    settings = load_settings(environ={"ECL_ARTIFACT_PATH": str(tmp_path / "artifacts")}, cwd=tmp_path)
    async with ecl.open_engine(database_url=url, workflows=[reverse_twice], llm=llm, settings=settings) as engine:
        assert current_revision(url) == head_revision()
        result = await engine.run("reverse-twice", {"text": "abc"}, workflow_id="r-1")
        assert result.state is WorkflowState.COMPLETED, result.error
        assert result.output == "abc"
        assert [s.step_id for s in result.steps] == ["reverse", "reverse"]
        with pytest.raises(InputValidationError, match="text"):
            await engine.run("reverse-twice", {"txt": "abc"})
        assert "critique-revise" in engine.workflows
    assert len(llm.requests) == 2
    # A second program on the same file: the same id returns the stored result, no LLM call.
    async with ecl.open_engine(database_url=url, workflows=[reverse_twice], llm=llm, settings=settings) as engine:
        again = await engine.run("reverse-twice", {"text": "abc"}, workflow_id="r-1")
    assert again.output == "abc"
    assert len(llm.requests) == 2


@pytest.mark.postgres
async def test_an_out_of_date_postgresql_schema_is_refused_with_the_migrate_hint(pg_url: str, tmp_path: Path) -> None:
    pg_url = fresh_pg(pg_url)
    settings = load_settings(environ={"ECL_ARTIFACT_PATH": str(tmp_path / "artifacts")}, cwd=tmp_path)
    with pytest.raises(DatabaseError) as info:
        async with ecl.open_engine(database_url=pg_url, llm="mock", settings=settings):
            pass
    assert info.value.hint == "run: ecl migrate"
    assert "no ECL schema" in str(info.value)
    upgrade(pg_url, "0001")
    with pytest.raises(DatabaseError) as info:
        async with ecl.open_engine(database_url=pg_url, llm="mock", settings=settings):
            pass
    assert str(info.value) == f"the database is at revision 0001, behind this ECL (head {head_revision()})"
    assert info.value.hint == "run: ecl migrate"
    assert current_revision(pg_url) == "0001"  # never migrated behind the operator's back
