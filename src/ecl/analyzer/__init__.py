"""The codebase-migration analyzer: ECL's seven-step built-in workflow and its building blocks.

The building blocks work without any engine: :mod:`~ecl.analyzer.source` (folders and
archives, read safely), :mod:`~ecl.analyzer.ignore` (``.gitignore`` and skip lists),
:mod:`~ecl.analyzer.secrets` (redaction), :mod:`~ecl.analyzer.intake` (limits and the
manifest), :mod:`~ecl.analyzer.manifest` (hash-checked reads), :mod:`~ecl.analyzer.chunking`
(token-budget chunks) and :mod:`~ecl.analyzer.prompting` (data fences and templates).
"""

from ecl.analyzer.chunking import Chunk, ChunkPart, estimate_tokens, plan_chunks
from ecl.analyzer.intake import InputDocument, IntakeLimits, build_manifest, read_input_document, scan_codebase
from ecl.analyzer.manifest import CodebaseChanged, Manifest, ManifestFile, ManifestReader
from ecl.analyzer.prompting import AnalyzerPrompts, fence, fenced_chunk, fenced_spans
from ecl.analyzer.secrets import redact
from ecl.analyzer.source import open_source

__all__ = [
    "AnalyzerPrompts",
    "Chunk",
    "ChunkPart",
    "CodebaseChanged",
    "InputDocument",
    "IntakeLimits",
    "Manifest",
    "ManifestFile",
    "ManifestReader",
    "build_manifest",
    "estimate_tokens",
    "fence",
    "fenced_chunk",
    "fenced_spans",
    "open_source",
    "plan_chunks",
    "read_input_document",
    "redact",
    "scan_codebase",
]
