"""``POST /workflows`` costs the database one statement: the insert, in the writer's group
commit; the answer is built from the row written, not read back. Counted with SQLAlchemy's
``before_cursor_execute`` on every engine (the API's and the embedded engine's writer, whose
driver-level statements fire it too), on a SQLite file and on real PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event

from ecl.api.app import create_app
from ecl.config import load_settings
from ecl.engines.embedded import EmbeddedEngine
from ecl.store.database import upgrade

# Bookkeeping of the group commit itself, once per transaction whatever it holds (like its
# BEGIN and COMMIT, which are no cursor executions): on PostgreSQL the transaction id read
# before COMMIT, so that a COMMIT whose answer is lost is neither lost nor applied twice.
_PER_TRANSACTION = ("pg_current_xact_id_if_assigned",)


async def test_a_submission_is_one_database_statement(
    server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(server_url)
    settings = load_settings(
        environ={
            "ECL_DATABASE_URL": server_url,
            "ECL_ARTIFACT_PATH": str(tmp_path / "artifacts"),
            "ECL_EMBEDDED__HEARTBEAT_SECONDS": "600",  # no lease renewal during the count
            "ECL_EMBEDDED__LEASE_SECONDS": "3600",
        }
    )
    # The run of the submitted workflow is not the submission: it does not start here.
    monkeypatch.setattr(EmbeddedEngine, "_spawn", lambda *_args, **_kwargs: None)
    app = create_app(settings, llm="mock", worker=False)
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if not any(marker in statement for marker in _PER_TRANSACTION):
            seen.append(" ".join(statement.split())[:120])

    body = {"definition_id": "critique-revise", "input": {"topic": "round trips"}, "workflow_id": "rt-1"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ecl") as client:
            assert (await client.get("/health/live")).status_code == 200
            event.listen(Engine, "before_cursor_execute", count)
            try:
                created = await client.post("/workflows", json=body)
                first = list(seen)
                seen.clear()
                again = await client.post("/workflows", json=body)
                second = list(seen)
                seen.clear()
                clash = await client.post("/workflows", json={**body, "input": {"topic": "other"}})
                third = list(seen)
            finally:
                event.remove(Engine, "before_cursor_execute", count)
            stored = (await client.get("/workflows/rt-1")).json()
    assert created.status_code == 201, created.text
    assert len(first) == 1, first
    assert first[0].upper().startswith("INSERT INTO WORKFLOWS"), first
    # A resubmission: the same insert finds the row, which is read in the same transaction.
    assert again.status_code == 200, again.text
    assert len(second) == 2, second
    assert clash.status_code == 409, clash.text
    assert len(third) == 2, third
    # What the submission answered is what is stored.
    answer = created.json()
    assert answer == again.json()
    assert {k: answer[k] for k in ("id", "definition_id", "input", "state", "created_at")} == {
        k: stored[k] for k in ("id", "definition_id", "input", "state", "created_at")
    }
    assert answer["state"] == "running"
