"""What one durable step costs SQLite, and what its WAL checkpoints cost, on this machine.

    uv run python bench/sqlite_wal.py
    uv run python bench/sqlite_wal.py --commits 20000

Raw ``sqlite3`` on ECL's own schema (made by ``upgrade`` in a temp folder), with the pragmas
the embedded engine sets (WAL, ``synchronous`` as given, foreign keys on): each transaction
writes what one sequential step of the whole framework writes, a ``journal_entries`` row
(a payload the size of a step's journaled result) and a ``step_executions`` row, and commits.

* ``commit_us``: µs per transaction (CPU, and wall mean and median) for the journal entry
  alone (what the engine alone writes per step), with the step row beside it, and with the
  step row but SQLite's automatic checkpoint left out (``wal_autocheckpoint=0``, the WAL file
  then grows): the step row's share, and the checkpoints' (their fsync is wall time, not CPU).
* ``checkpoints``: wall time of the transactions over 0.5 ms (the ones that ran SQLite's
  automatic checkpoint, every 1,000 WAL pages), their number and their share of all the
  transactions' wall time.
* ``checkpoint_ms``: one checkpoint of about 1,000 WAL pages run by hand, with
  ``synchronous=NORMAL`` (it fsyncs the WAL, then the database) and with ``OFF`` (no fsync):
  how much of a checkpoint is the disk flushing the WAL.

Prints JSON; asserts nothing. The README's paragraph under the benchmark table quotes it.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ecl.core.ids import new_record_id
from ecl.store.database import upgrade

_JOURNAL = (
    "INSERT INTO journal_entries (workflow_id, seq, name, kind, status, payload, created_at)"
    " VALUES (?, ?, ?, 'run', 'ok', ?, ?)"
)
_STEP = (
    "INSERT INTO step_executions (id, workflow_id, step_id, attempt, iteration, state, input, output,"
    " error, started_at, completed_at, tokens_used) VALUES (?, ?, ?, 1, 0, 'completed', ?, ?, NULL, ?, ?, NULL)"
)
_NOW = "2026-11-28 10:00:00.000000"
_PAYLOAD = json.dumps({"step_id": "noop", "output": {"result": 0}, "metadata": {"pad": "x" * 480}})
"""About the size of a no-op step's journaled result (557 bytes): its output, metadata and traces."""


def _database(folder: Path, name: str, synchronous: str) -> tuple[sqlite3.Connection, str]:
    """A fresh database of ECL's schema with one workflow row: the connection and the row's id."""
    path = folder / f"{name}.db"
    upgrade(f"sqlite:///{path}")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    workflow_id = new_record_id()
    conn.execute(
        "INSERT INTO workflows (id, definition_id, state, input, input_hash, created_at, updated_at, revision_count)"
        " VALUES (?, 'bench', 'running', '{}', '', ?, ?, 0)",
        (workflow_id, _NOW, _NOW),
    )
    return conn, workflow_id


def _step(conn: sqlite3.Connection, workflow_id: str, seq: int, *, row: bool) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(_JOURNAL, (workflow_id, seq, f"step:s{seq % 100}", _PAYLOAD, _NOW))
    if row:
        conn.execute(_STEP, (new_record_id(), workflow_id, f"s{seq % 100}", '{"i": 0}', '{"result": 0}', _NOW, _NOW))
    conn.execute("COMMIT")


def _commits(folder: Path, name: str, commits: int, synchronous: str, *, row: bool, autocheckpoint: bool) -> Any:
    conn, workflow_id = _database(folder, name, synchronous)
    if not autocheckpoint:
        conn.execute("PRAGMA wal_autocheckpoint=0")
    walls = []
    cpu = time.process_time()
    for seq in range(commits):
        start = time.perf_counter()
        _step(conn, workflow_id, seq, row=row)
        walls.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    conn.close()
    slow = [w for w in walls if w > 0.0005]
    return {
        "cpu_us": round(cpu * 1e6 / commits, 1),
        "wall_us_mean": round(statistics.mean(walls) * 1e6, 1),
        "wall_us_median": round(statistics.median(walls) * 1e6, 1),
        "over_0_5_ms": len(slow),
        "over_0_5_ms_mean_ms": round(statistics.mean(slow) * 1e3, 2) if slow else None,
        "over_0_5_ms_share": round(sum(slow) / sum(walls), 2),
    }


def _checkpoint_ms(folder: Path, synchronous: str, rounds: int) -> float:
    """The median time of a hand-run checkpoint of about 1,000 WAL pages (170 steps' commits)."""
    conn, workflow_id = _database(folder, f"checkpoint-{synchronous}", synchronous)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    times, seq = [], 0
    for _ in range(rounds):
        for _ in range(170):
            _step(conn, workflow_id, seq, row=True)
            seq += 1
        start = time.perf_counter()
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        times.append(time.perf_counter() - start)
    conn.close()
    return round(statistics.median(times[2:]) * 1e3, 2)


def main() -> None:
    """Parse arguments, measure, print JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=10_000, help="transactions per measurement")
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        journal = _commits(folder, "journal", args.commits, args.synchronous, row=False, autocheckpoint=True)
        both = _commits(folder, "both", args.commits, args.synchronous, row=True, autocheckpoint=True)
        unchecked = _commits(folder, "unchecked", args.commits, args.synchronous, row=True, autocheckpoint=False)
        figures = {
            "sqlite": sqlite3.sqlite_version,
            "synchronous": args.synchronous,
            "commits": args.commits,
            "commit_us": {
                name: {key: found[key] for key in ("cpu_us", "wall_us_mean", "wall_us_median")}
                for name, found in (
                    ("journal_entry_alone", journal),
                    ("journal_entry_and_step_row", both),
                    ("journal_entry_and_step_row_no_autocheckpoint", unchecked),
                )
            },
            "checkpoints": {key: both[key] for key in ("over_0_5_ms", "over_0_5_ms_mean_ms", "over_0_5_ms_share")},
            "checkpoint_ms": {
                "synchronous_normal": _checkpoint_ms(folder, "NORMAL", 12),
                "synchronous_off": _checkpoint_ms(folder, "OFF", 12),
            },
        }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
