"""The dashboard's pages over a database of many runs: server time per page.

    uv run python bench/dashboard.py               # 10,000 runs, 3 LLM calls each
    uv run python bench/dashboard.py --runs 50000 --database-url postgresql://...

Fills a fresh database (SQLite in a temp folder unless ``--database-url``) with finished runs,
then times requests to the app in process (ASGI, no network): the runs page (first page, a
filtered page, a page deep in the cursor chain, the live refresh's rows), the definitions
page and a run's page, beside the JSON API's list of the same page size (``GET /workflows``, the
baseline). Prints the median and p95 per page and how many rows a page holds. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import structlog

from ecl.api.app import create_app
from ecl.config import load_settings
from ecl.store.database import create_sync_engine, upgrade
from ecl.store.models import LlmCall, Workflow

STATES = ("completed", "completed", "completed", "failed", "cancelled")


def fill(url: str, runs: int, calls: int) -> None:
    """``runs`` finished workflows, ``calls`` LLM calls each, inserted in bulk."""
    db = create_sync_engine(url)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with db.begin() as conn:
        for first in range(0, runs, 2000):
            flows, llm = [], []
            for i in range(first, min(first + 2000, runs)):
                created = start + timedelta(seconds=i)
                wid = f"bench-{i:07d}"
                flows.append(
                    {
                        "id": wid,
                        "definition_id": "critique-revise" if i % 4 else "critique-revise-py",
                        "state": STATES[i % len(STATES)],
                        "input": {"topic": f"Topic number {i}"},
                        "input_hash": "",
                        "revision_count": i % 3,
                        "created_at": created,
                        "updated_at": created + timedelta(seconds=5),
                        "completed_at": created + timedelta(seconds=5),
                    }
                )
                llm += [
                    {
                        "id": uuid.uuid4().hex,
                        "workflow_id": wid,
                        "provider": "anthropic",
                        "model": "claude-sonnet-4-6",
                        "input_tokens": 400,
                        "output_tokens": 200,
                        "latency_ms": 900.0,
                        "outcome": "ok",
                        "created_at": created + timedelta(seconds=c),
                        "cost_usd": Decimal("0.0042"),
                    }
                    for c in range(calls)
                ]
            conn.execute(Workflow.__table__.insert(), flows)
            if llm:
                conn.execute(LlmCall.__table__.insert(), llm)
    db.dispose()


async def measure(url: str, tmp: Path, repeat: int) -> None:
    settings = load_settings(environ={"ECL_DATABASE_URL": url, "ECL_ARTIFACT_PATH": str(tmp / "artifacts")}, cwd=tmp)
    app = create_app(settings, llm="mock", worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            deep = ""
            for _ in range(50):  # page 51 of the chain of cursors
                page = await client.get("/ui", params={"cursor": deep} if deep else {})
                found = re.search(r'rel="next" href="/ui\?[^"]*cursor=([^"&]+)', page.text)
                deep = found.group(1) if found else ""
            pages = {
                "GET /workflows (JSON, baseline)": ("/workflows", {}),
                "runs, first page": ("/ui", {}),
                "runs, state=failed": ("/ui", {"state": "failed"}),
                "runs, page 51 (cursor)": ("/ui", {"cursor": deep}),
                "runs, 100 rows (limit=100)": ("/ui", {"limit": "100"}),
                "runs, live refresh rows": ("/ui", {"partial": "rows"}),
                "definitions": ("/ui/definitions", {}),
                "one run's page": ("/ui/runs/bench-0000042", {}),
            }
            print(f"{'page':<32} {'rows':>5} {'median ms':>10} {'p95 ms':>8}")
            for name, (path, params) in pages.items():
                times = []
                body = ""
                for _ in range(repeat):
                    began = time.perf_counter()
                    answer = await client.get(path, params=params)
                    times.append((time.perf_counter() - began) * 1000)
                    assert answer.status_code == 200, (name, answer.status_code)
                    body = answer.text
                rows = len(answer.json()["items"]) if path == "/workflows" else len(re.findall(r'<tr id="run-', body))
                times.sort()
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                print(f"{name:<32} {rows:>5} {statistics.median(times):>10.1f} {p95:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=3, help="LLM calls per run")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite in a temp folder)")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        url = args.database_url or f"sqlite:///{tmp / 'ecl.db'}"
        upgrade(url)
        began = time.perf_counter()
        fill(url, args.runs, args.calls)
        print(
            f"{args.runs:,} runs, {args.runs * args.calls:,} LLM calls inserted in {time.perf_counter() - began:.1f} s"
        )
        asyncio.run(measure(url, tmp, args.repeat))


if __name__ == "__main__":
    main()
