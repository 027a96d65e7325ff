"""``max_concurrent_workflows`` per definition on the embedded engine (issue 13, item 4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

import ecl
from ecl.config import load_settings
from ecl.core import DefinitionError, WorkflowState
from ecl.workflows import WorkflowDefinition

pytestmark = pytest.mark.timeout(300)

running: dict[str, int] = {}
peak: dict[str, int] = {}


@ecl.step
async def hold(ctx: ecl.StepContext, group: str, seconds: float) -> str:
    """Counts how many runs of ``group`` are inside at once."""
    running[group] = running.get(group, 0) + 1
    peak[group] = max(peak.get(group, 0), running[group])
    try:
        await asyncio.sleep(seconds)
    finally:
        running[group] -= 1
    return group


@ecl.workflow("limited", max_concurrent_workflows=2)
async def limited(ctx: ecl.WorkflowContext, n: int) -> str:
    """At most two at once."""
    return await hold(ctx, "limited", 0.3)


@ecl.workflow("free")
async def free(ctx: ecl.WorkflowContext, n: int) -> str:
    """No limit."""
    return await hold(ctx, "free", 0.3)


GRAPH = WorkflowDefinition.model_validate(
    {
        "id": "one-at-a-time",
        "name": "One at a time",
        "options": {"max_concurrent_workflows": 1},
        "steps": [{"step_id": "hold", "input": {"group": "graph", "seconds": 0.2}}],
    }
)


async def test_a_definition_runs_at_most_max_concurrent_workflows_at_once(tmp_path: Path) -> None:
    running.clear()
    peak.clear()
    events: list[dict[str, object]] = []
    settings = load_settings(environ={"ECL_ARTIFACT_PATH": str(tmp_path / "artifacts")}, cwd=tmp_path)
    async with ecl.open_engine(
        database_url=f"sqlite:///{tmp_path / 'ecl.db'}",
        workflows=[limited, free, hold, GRAPH],
        llm=ecl.MockLlmProvider(["unused"]),
        settings=settings,
    ) as engine:
        engine.engine._listener = events.append  # see the queued events
        ids = [await engine.submit("limited", {"n": n}) for n in range(6)]
        ids += [await engine.submit("free", {"n": n}) for n in range(6)]
        ids += [await engine.submit("one-at-a-time", {}) for _ in range(3)]
        results = await asyncio.gather(*(engine.result(wid) for wid in ids))
    assert all(r.state is WorkflowState.COMPLETED for r in results), [r.error for r in results]
    assert peak["limited"] == 2
    assert peak["graph"] == 1
    assert peak["free"] == 6  # other definitions are not held back
    queued = [e for e in events if e.get("event") == "workflow_queued"]
    assert {e["definition_id"] for e in queued} == {"limited", "one-at-a-time"}


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_a_bad_limit_is_a_one_line_definition_error(bad: object) -> None:
    with pytest.raises(DefinitionError, match="max_concurrent_workflows") as info:

        @ecl.workflow("bad", max_concurrent_workflows=bad)  # type: ignore[arg-type]
        async def bad_flow(ctx: ecl.WorkflowContext) -> str:
            return ""

    assert "\n" not in str(info.value)
    with pytest.raises(ValidationError, match="max_concurrent_workflows"):
        WorkflowDefinition.model_validate(
            {"id": "x", "name": "x", "options": {"max_concurrent_workflows": 0}, "steps": [{"step_id": "hold"}]}
        )
