"""The log-context binders (:mod:`ecl.observability.logging`): scopes restore exactly, a
workflow's scope drops what its starter had bound, a rate-limit wait is logged with the
context of the call that waits, and the database writer logs at process level."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Column, MetaData, String, Table

from ecl.engines.embedded.writer import DatabaseWriter, Insert
from ecl.llm.ratelimit import RateLimitBoard
from ecl.observability import bind_attempt, bind_step, bind_workflow, configure_logging
from ecl.store.database import create_sync_engine


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_binding_is_entered_once() -> None:
    """A binding lets its fields go once bound (thousands of running steps each hold one):
    entering it again is an error, not a scope that binds nothing."""
    scope = bind_step("s0")
    with scope:
        assert structlog.contextvars.get_contextvars()["step_id"] == "s0"
    assert "step_id" not in structlog.contextvars.get_contextvars()
    with pytest.raises(RuntimeError, match="entered once"), scope:
        pass


def test_a_workflow_scope_drops_the_starters_bindings_and_restores_them() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    log = structlog.get_logger("t")
    with structlog.contextvars.bound_contextvars(request_id="req-1", workflow_id="wf-outer"), bind_step("s0"):
        bind_attempt(2)
        with bind_workflow("wf-1"):
            log.info("run")
            with bind_step("generate", iteration=1):
                log.info("before the first attempt")
                bind_attempt(1)
                log.info("attempt")
            log.info("between steps")
        log.info("starter again")
    log.info("outside")
    run, before, attempt, between, starter, outside = _lines(stream)
    assert {k: run.get(k) for k in ("workflow_id", "request_id", "step_id", "attempt")} == {
        "workflow_id": "wf-1",
        "request_id": None,
        "step_id": None,
        "attempt": None,
    }
    assert (before["step_id"], before["iteration"], "attempt" in before) == ("generate", 1, False)
    assert (attempt["workflow_id"], attempt["step_id"], attempt["attempt"]) == ("wf-1", "generate", 1)
    assert "step_id" not in between and "attempt" not in between and "iteration" not in between
    assert (starter["request_id"], starter["workflow_id"], starter["step_id"], starter["attempt"]) == (
        "req-1",
        "wf-outer",
        "s0",
        2,
    )
    assert not {"request_id", "workflow_id", "step_id", "attempt"} & outside.keys()


async def test_a_rate_limit_wait_is_logged_with_the_waiting_step() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    board = RateLimitBoard(clock=lambda: now[0], sleep=sleep)
    board.retry_after("anthropic", "m", 5.0)
    with bind_workflow("wf-1"), bind_step("critique"):
        bind_attempt(2)
        await board.acquire("anthropic", "m", 10)
    (line,) = _lines(stream)
    assert line["event"] == "llm call waits for the rate limit"
    assert (line["workflow_id"], line["step_id"], line["attempt"]) == ("wf-1", "critique", 2)


async def test_the_writers_lines_are_the_process_s_and_a_failed_background_write_names_its_workflow(
    tmp_path: Path,
) -> None:
    """Inline (SQLite) the batch is committed by a loop callback: it must not log in the
    context of whichever step happened to queue the first write."""
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    db = create_sync_engine(f"sqlite:///{tmp_path / 'w.db'}")
    meta = MetaData()
    rows = Table("rows", meta, Column("id", String, primary_key=True), Column("workflow_id", String))
    meta.create_all(db)
    writer = DatabaseWriter(db, lambda _conn, _ids: {}, inline=True)
    try:
        with bind_workflow("wf-a"), bind_step("generate"):
            bind_attempt(1)
            await writer.submit(Insert(rows, {"id": "r1", "workflow_id": "wf-a"}))
            writer.post(Insert(rows, {"id": "r1", "workflow_id": "wf-b"}))  # a duplicate: fails alone
            await writer.submit(Insert(rows, {"id": "r2", "workflow_id": "wf-a"}))
    finally:
        writer.close()
    (line,) = _lines(stream)
    assert line["event"] == "background database write failed"
    assert line["workflow_id"] == "wf-b"
    assert "step_id" not in line and "attempt" not in line


def test_the_plain_console_lines_are_structlogs_own() -> None:
    """Without colours the console renderer is ECL's shortcut: every line it renders is the
    one structlog's ConsoleRenderer writes (exceptions and stacks are left to structlog)."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from ecl.observability.logging import _PlainConsoleRenderer

    theirs = structlog.dev.ConsoleRenderer(colors=False)
    ours = _PlainConsoleRenderer()
    events: list[dict[str, Any]] = [
        {
            "event": "request",
            "level": "info",
            "timestamp": "2026-11-28T04:00:00.123Z",
            "method": "POST",
            "path": "/workflows",
            "status": 201,
            "ms": 3.2,
            "request_id": "abc",
            "workflow_id": None,
        },
        {
            "event": "x y",
            "level": "warning",
            "logger": "ecl.api",
            "a b": "has space",
            "q": "it's",
            "d": {"k": 1},
            "n": Decimal("1.5"),
            "t": datetime(2020, 1, 1, tzinfo=UTC),
        },
        {"event": "a" * 40, "level": "critical"},
        {"event": 12, "level": "debug", "timestamp": 5, "logger_name": "n"},
        {"level": "info"},
        {"event": "", "x": ""},
        {
            "event": "e",
            "level": "info",
            "eq": "a=b",
            "nl": "a\nb",
            "tab": "\t",
            "empty": "",
            "b": b"bytes",
            "f": 1.0,
            "logger": "",
            "logger_name": "z",
        },
        {"event": "e", "level": "a-level-longer-than-the-known-ones"},
        {"event": "failed", "level": "error", "exception": "Traceback ...\nValueError: x", "k": 1},
        {"event": "here", "level": "info", "stack": "Stack (most recent call last):\n  ..."},
    ]
    for event in events:
        assert ours(None, "info", dict(event)) == theirs(None, "info", dict(event))
    stream = io.StringIO()  # not a terminal: the shortcut is the renderer configured
    configure_logging("info", "console", stream=stream)
    assert isinstance(structlog.get_config()["processors"][-1], _PlainConsoleRenderer)
