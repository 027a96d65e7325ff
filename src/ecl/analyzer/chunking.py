"""Splitting a codebase into chunks that fit a token budget, for the map step of the analysis.

Chunks follow the code's own structure: a module (the files of one folder) stays in one
chunk when it fits; a module too big for one chunk is split between files; only a single
file bigger than the budget is split, and then between lines, never inside one. Tokens
are estimated at four characters each (close enough for budgeting code; the real counts
come back in every LLM call's usage). A chunk refers to line ranges of manifest files,
so the plan is small enough to journal, and the text is read (hash-checked) when the
chunk's step runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from itertools import groupby
from pathlib import PurePosixPath

from pydantic import BaseModel

from ecl.analyzer.manifest import Manifest, ManifestFile

__all__ = ["CHARS_PER_TOKEN", "Chunk", "ChunkPart", "estimate_tokens", "plan_chunks"]

CHARS_PER_TOKEN = 4
PART_OVERHEAD_TOKENS = 24
"""The delimiters and header around one file part in a prompt."""


def estimate_tokens(chars: int) -> int:
    """Estimated tokens of ``chars`` characters of code."""
    return math.ceil(chars / CHARS_PER_TOKEN)


class ChunkPart(BaseModel):
    """Lines ``start``..``end`` (1-based, inclusive) of one manifest file."""

    path: str
    start: int
    end: int
    tokens: int


class Chunk(BaseModel):
    """One unit of the map step: parts of files that together fit the budget."""

    index: int
    parts: list[ChunkPart]
    tokens: int

    @property
    def paths(self) -> list[str]:
        """The files the chunk covers (each once)."""
        return list(dict.fromkeys(p.path for p in self.parts))

    def label(self) -> str:
        """A short description for progress lines and prompts."""
        paths = self.paths
        if len(paths) == 1:
            part = self.parts[0]
            whole = len(self.parts) == 1 and part.start == 1
            return paths[0] if whole else f"{paths[0]}:{part.start}-{part.end}"
        return f"{paths[0]} and {len(paths) - 1} more"


def _module(path: str) -> str:
    return str(PurePosixPath(path).parent)


def _file_tokens(entry: ManifestFile) -> int:
    return estimate_tokens(entry.size) + PART_OVERHEAD_TOKENS


def _split_file(entry: ManifestFile, budget: int, line_lengths: Callable[[str], list[int]]) -> Iterator[ChunkPart]:
    """Consecutive line ranges of one big file, each within ``budget`` unless one line alone is bigger."""
    start, chars = 1, 0
    lengths = line_lengths(entry.path)
    for number, length in enumerate(lengths, start=1):
        if number > start and estimate_tokens(chars + length) + PART_OVERHEAD_TOKENS > budget:
            yield ChunkPart(
                path=entry.path, start=start, end=number - 1, tokens=estimate_tokens(chars) + PART_OVERHEAD_TOKENS
            )
            start, chars = number, 0
        chars += length
    if start <= len(lengths):
        yield ChunkPart(
            path=entry.path, start=start, end=len(lengths), tokens=estimate_tokens(chars) + PART_OVERHEAD_TOKENS
        )


def plan_chunks(manifest: Manifest, budget: int, line_lengths: Callable[[str], list[int]]) -> list[Chunk]:
    """The chunks of ``manifest`` for a per-chunk budget of ``budget`` tokens.

    ``line_lengths(path)`` gives the length (in characters, newline included) of each line
    of a file; it is called only for files bigger than the budget.
    """
    chunks: list[Chunk] = []
    current: list[ChunkPart] = []
    used = 0

    def flush() -> None:
        nonlocal current, used
        if current:
            chunks.append(Chunk(index=len(chunks), parts=current, tokens=used))
        current, used = [], 0

    def add(part: ChunkPart) -> None:
        nonlocal used
        if current and used + part.tokens > budget:
            flush()
        current.append(part)
        used += part.tokens

    files = sorted(manifest.files, key=lambda f: (_module(f.path), f.path))
    for _module_name, group in groupby(files, key=lambda f: _module(f.path)):
        members = list(group)
        module_tokens = sum(_file_tokens(f) for f in members)
        if current and used + module_tokens > budget and module_tokens <= budget:
            flush()  # the module fits in a chunk of its own: keep it whole
        for entry in members:
            tokens = _file_tokens(entry)
            if tokens <= budget:
                add(ChunkPart(path=entry.path, start=1, end=max(entry.lines, 1), tokens=tokens))
                continue
            flush()
            for part in _split_file(entry, budget, line_lengths):
                add(part)
            flush()
    flush()
    return chunks
