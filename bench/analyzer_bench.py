"""Analyzer benchmarks: intake and chunking of a big codebase, and the fan-out's overhead.

    uv run python bench/analyzer_bench.py                       # 5,000 files / 50 MB; 160 chunks
    uv run python bench/analyzer_bench.py --files 500 --chunks 32

1. Intake + chunking (no LLM): a synthetic JavaScript codebase of ``--files`` files and
   ``--megabytes`` MB; prints the time of each phase and the peak memory (tracemalloc).
2. Fan-out: the codebase-migration workflow through the whole framework (embedded engine,
   SQLite, the official anthropic SDK) against the fake Anthropic server answering every
   request after ``--latency`` seconds, with ``--concurrency`` chunks at once. The fan-out
   time is the span of the summarize-chunk steps in step_executions; the ideal is
   chunks x latency / concurrency; the overhead per chunk is the difference spread over
   the chunks' slots.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import tempfile
import time
import tracemalloc
from datetime import datetime
from pathlib import Path

import structlog

from ecl.analyzer import IntakeLimits, ManifestReader, build_manifest, plan_chunks
from ecl.analyzer.bundle import AnalysisInput, AnalyzerOptions, line_lengths
from ecl.cli.runtime import open_command_engine
from ecl.config import load_settings
from ecl.llm.mock import instance_of
from ecl.testing import FakeAnthropicServer
from ecl.testing.anthropic_server import Reply

LINE = "  const value = store.get(key) ?? compute(key, options); // keep the line realistic\n"


def synthetic_codebase(root: Path, files: int, total_bytes: int, per_folder: int = 50) -> None:
    """``files`` JavaScript files of equal size in folders of ``per_folder``."""
    size = max(len(LINE), total_bytes // files)
    body = LINE * (size // len(LINE))
    for i in range(files):
        folder = root / f"module{i // per_folder:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{i:05d}.js").write_text(f"// file {i}\n" + body)


def reply_for(prompt: str) -> str:
    """A schema-valid JSON answer where the prompt asks for one (the plan), else a line of text."""
    marker = "matching this JSON schema:"
    if marker in prompt:
        schema, _end = json.JSONDecoder().raw_decode(prompt[prompt.rfind(marker) + len(marker) :].lstrip())
        return json.dumps(instance_of(schema))
    return "A summary."


def bench_intake(files: int, megabytes: int, chunk_tokens: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "code"
        started = time.perf_counter()
        synthetic_codebase(root, files, megabytes * 1024 * 1024)
        print(f"generated {files} files / {megabytes} MB in {time.perf_counter() - started:.1f} s")
        limits = IntakeLimits(max_files=files + 1, max_file_bytes=16 * 1024 * 1024, max_total_bytes=10 * 1024**3)
        started = time.perf_counter()
        manifest = build_manifest(root, limits)
        intake_s = time.perf_counter() - started
        started = time.perf_counter()
        with ManifestReader(manifest) as reader:
            chunks = plan_chunks(manifest, chunk_tokens, line_lengths(reader))
        chunk_s = time.perf_counter() - started
        # Memory in a second pass: tracemalloc slows the code it watches several times over.
        tracemalloc.start()
        again = build_manifest(root, limits)
        with ManifestReader(again) as reader:
            plan_chunks(again, chunk_tokens, line_lengths(reader))
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        mb = manifest.total_bytes / 1024 / 1024
        print(
            f"intake: {len(manifest.files)} files, {mb:.1f} MB, {manifest.total_lines} lines "
            f"in {intake_s:.2f} s ({mb / intake_s:.1f} MB/s)"
        )
        print(f"chunking: {len(chunks)} chunks of <= {chunk_tokens} tokens in {chunk_s:.2f} s")
        print(f"peak memory (tracemalloc) during intake + chunking: {peak / 1024 / 1024:.1f} MB")
        print(f"manifest JSON: {len(manifest.model_dump_json()) / 1024:.0f} KB")


async def bench_fanout(chunks: int, latency: float, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, FakeAnthropicServer() as fake:
        fake.responder = lambda request: Reply(text=reply_for(request.text), delay=latency)
        root = Path(tmp) / "code"
        # One folder per chunk, each just under the chunk budget.
        for i in range(chunks):
            (root / f"m{i:04d}").mkdir(parents=True)
            (root / f"m{i:04d}" / "a.js").write_text(LINE * 30)
        settings = load_settings(
            environ={
                "ECL_DATABASE_URL": f"sqlite:///{tmp}/ecl.db",
                "ECL_ARTIFACT_PATH": f"{tmp}/artifacts",
                "ECL_LLM_BASE_URL": fake.url,
                "ECL_CLAUDE_API_KEY": "sk-bench",
            },
            cwd=Path(tmp),
        )
        options = AnalyzerOptions(chunk_tokens=700, concurrency=concurrency)
        data = AnalysisInput(code_path=str(root), target="rust", skip_assessment=True, options=options)
        async with open_command_engine(settings, llm="anthropic") as engine:
            started = time.perf_counter()
            wid = await engine.submit("codebase-migration", data.model_dump(mode="json"))
            result = await engine.resume(wid)
            whole = time.perf_counter() - started
        with sqlite3.connect(f"{tmp}/ecl.db") as db:
            rows = db.execute(
                "SELECT started_at, completed_at FROM step_executions WHERE step_id = 'summarize-chunk'"
            ).fetchall()
        spans = [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in rows]
        fanout = (max(b for _, b in spans) - min(a for a, _ in spans)).total_seconds()
        ideal = chunks * latency / concurrency
        overhead_ms = (fanout - ideal) * concurrency / chunks * 1000
        print(
            f"fan-out: {len(spans)} chunks, latency {latency * 1000:.0f} ms, concurrency {concurrency}: "
            f"{fanout:.2f} s (ideal {ideal:.2f} s, {fanout / ideal:.2f}x); overhead {overhead_ms:.1f} ms per chunk"
        )
        print(f"whole run ({result.state.value}, {len(fake.requests)} LLM requests): {whole:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--chunk-tokens", type=int, default=24_000)
    parser.add_argument("--chunks", type=int, default=160)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    bench_intake(args.files, args.megabytes, args.chunk_tokens)
    asyncio.run(bench_fanout(args.chunks, args.latency, args.concurrency))


if __name__ == "__main__":
    main()
