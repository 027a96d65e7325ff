"""The baseline of bench/api.py: a bare FastAPI app whose endpoint inserts one row into SQLite.

Served by uvicorn in its own process, exactly as ``ecl server start`` serves ECL's API:

    BENCH_DB=/tmp/x/baseline.db uv run uvicorn --app-dir bench api_baseline:app --port 8001

The same database settings as ECL's (WAL, ``synchronous=NORMAL``); one connection, used on
the event loop (a SQLite commit takes tens of microseconds: less than a hop to a thread, and
no writers contending for the lock), one committed INSERT per request.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

_DB = os.environ.get("BENCH_DB", "baseline.db")


def _connection() -> sqlite3.Connection:
    conn = sqlite3.connect(_DB, timeout=5.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS workflows "
        "(id TEXT PRIMARY KEY, definition_id TEXT, input TEXT, state TEXT, created_at TEXT)"
    )
    conn.commit()
    return conn


_conn = _connection()


class SubmitIn(BaseModel):
    definition_id: str
    input: dict[str, Any] = {}


app = FastAPI()


@app.post("/workflows", status_code=201)
async def submit(body: SubmitIn) -> dict[str, Any]:
    wid = uuid.uuid4().hex
    now = datetime.now(UTC).isoformat()
    with _conn:  # one transaction, committed
        _conn.execute(
            "INSERT INTO workflows (id, definition_id, input, state, created_at) VALUES (?, ?, ?, ?, ?)",
            (wid, body.definition_id, json.dumps(body.input), "pending", now),
        )
    return {"id": wid, "definition_id": body.definition_id, "state": "pending", "created_at": now}


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}
