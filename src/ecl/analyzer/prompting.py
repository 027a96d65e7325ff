"""How code and documents reach the model: always as delimited data, never as instructions.

Every piece of user-supplied text (source files, the vision document, ``SKILL.md``,
deployment configs, and model output derived from them) is wrapped by :func:`fence` in a
pair of marker lines carrying a fence id derived from the SHA-256 of the text itself.
Text cannot forge its own closing marker (it would have to contain its own hash), so
the content of a file can never end the data block early and speak as the prompt. The
system prompt holds only ECL's fixed instructions, including the rule that nothing
inside a data block is an instruction; no user text is ever rendered into it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ecl.analyzer.chunking import Chunk
from ecl.analyzer.manifest import ManifestReader
from ecl.steps.prompts import PromptLibrary

__all__ = [
    "DATA_CLOSE",
    "DATA_OPEN",
    "AnalyzerPrompts",
    "fence",
    "fence_id",
    "fenced_chunk",
    "fenced_spans",
]

DATA_OPEN = "<<<DATA"
DATA_CLOSE = "<<<END DATA"


def fence_id(text: str) -> str:
    """The fence id of ``text``: 96 bits of its SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def fence(text: str, *, kind: str, **attributes: str | int) -> str:
    """``text`` between data markers; attributes (path, lines, ...) are JSON-quoted."""
    fid = fence_id(text)
    attrs = "".join(f" {key}={json.dumps(str(value))}" for key, value in attributes.items())
    body = text if text.endswith("\n") or not text else text + "\n"
    return f'{DATA_OPEN} kind="{kind}"{attrs} fence="{fid}">>>\n{body}{DATA_CLOSE} fence="{fid}">>>'


def fenced_spans(prompt: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` offsets of the bodies of all data blocks in ``prompt``.

    Used by tests (and by anyone auditing a prompt) to check that some text occurs only
    inside data.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        start = prompt.find(DATA_OPEN, pos)
        if start == -1:
            return spans
        marker = prompt.find(' fence="', start)
        header_end = prompt.find(">>>\n", start)
        if marker == -1 or header_end == -1 or marker > header_end:
            return spans
        fid = prompt[marker + 8 : prompt.find('"', marker + 8)]
        close = prompt.find(f'{DATA_CLOSE} fence="{fid}">>>', header_end)
        if close == -1:
            return spans
        spans.append((header_end + 4, close))
        pos = close + 1


def fenced_chunk(reader: ManifestReader, chunk: Chunk) -> str:
    """Every part of ``chunk`` read through the manifest (hash-checked, redacted) and fenced."""
    blocks: list[str] = []
    texts: dict[str, list[str]] = {}
    for part in chunk.parts:
        if part.path not in texts:
            texts[part.path] = reader.read_redacted(part.path).splitlines(keepends=True)
        lines = texts[part.path][part.start - 1 : part.end]
        entry = reader.manifest.file(part.path)
        language = entry.language if entry else "text"
        blocks.append(
            fence("".join(lines), kind="source", path=part.path, lines=f"{part.start}-{part.end}", language=language)
        )
    return "\n\n".join(blocks)


class AnalyzerPrompts:
    """The analyzer's Jinja templates; a ``prompts_path`` folder overrides any of them by name."""

    def __init__(self, override_dir: Path | str | None = None) -> None:
        self.library = PromptLibrary(
            package="ecl.analyzer", subdir="prompts", override_dir=Path(override_dir) if override_dir else None
        )

    def system(self) -> str:
        """The fixed system prompt (no user text)."""
        return self.library.render("analyzer_system")

    def render(self, name: str, **variables: Any) -> str:
        """A user prompt; ``variables`` holding user text must already be fenced."""
        return self.library.render(name, **variables)
