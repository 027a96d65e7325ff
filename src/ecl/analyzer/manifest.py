"""The manifest of an analysed codebase, and reading files through it.

Intake records every file it keeps (path, language, size, line count, SHA-256). Later
steps read file contents only through :class:`ManifestReader`, which checks each file's
hash against the manifest: a file edited after intake fails the step with
:class:`CodebaseChanged` instead of letting a resumed run mix two versions of the code.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr

from ecl.analyzer.secrets import redact
from ecl.analyzer.source import CodebaseSource, FolderSource, SourceKind, TarSource, ZipSource
from ecl.core.errors import StepError, StepIoError

__all__ = [
    "CodebaseChanged",
    "Manifest",
    "ManifestFile",
    "ManifestReader",
    "SkippedPath",
    "language_of",
    "reopen_source",
    "sha256_hex",
]

_LANGUAGES: dict[str, str] = {
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".py": "python", ".pyi": "python", ".rs": "rust", ".go": "go", ".java": "java", ".kt": "kotlin",
    ".kts": "kotlin", ".scala": "scala", ".rb": "ruby", ".php": "php", ".cs": "csharp", ".fs": "fsharp",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp",
    ".m": "objective-c", ".swift": "swift", ".dart": "dart", ".ex": "elixir", ".exs": "elixir",
    ".erl": "erlang", ".hs": "haskell", ".ml": "ocaml", ".clj": "clojure", ".lua": "lua", ".r": "r",
    ".jl": "julia", ".zig": "zig", ".nim": "nim", ".sh": "shell", ".bash": "shell", ".zsh": "shell",
    ".ps1": "powershell", ".sql": "sql", ".html": "html", ".htm": "html", ".css": "css", ".scss": "scss",
    ".vue": "vue", ".svelte": "svelte", ".md": "markdown", ".rst": "rst", ".txt": "text",
    ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".xml": "xml", ".ini": "ini",
    ".cfg": "ini", ".proto": "protobuf", ".graphql": "graphql", ".tf": "terraform",
}  # fmt: skip
_NAMED: dict[str, str] = {
    "dockerfile": "dockerfile",
    "makefile": "make",
    "justfile": "make",
    "rakefile": "ruby",
    "gemfile": "ruby",
    ".gitignore": "gitignore",
}


def language_of(path: str) -> str:
    """The language of a file, from its name (``text`` when unknown)."""
    pure = PurePosixPath(path)
    named = _NAMED.get(pure.name.lower())
    if named:
        return named
    return _LANGUAGES.get(pure.suffix.lower(), "text")


class ManifestFile(BaseModel):
    """One file kept by intake."""

    path: str
    language: str
    size: int
    lines: int
    sha256: str
    redactions: int = 0
    """Secrets found in it (replaced before any LLM call)."""


class SkippedPath(BaseModel):
    """A file or folder intake left out, and why (``gitignore``, ``vendored``, ``secret``, ...)."""

    path: str
    reason: str


class Manifest(BaseModel):
    """Every file of one codebase that the analysis may read."""

    source: str
    """The resolved path of the folder or archive."""
    kind: SourceKind
    files: list[ManifestFile]
    skipped: list[SkippedPath] = Field(default_factory=list)
    """The first skipped paths (a folder counts once); ``skipped_counts`` has the totals."""
    skipped_counts: dict[str, int] = Field(default_factory=dict)
    _index: dict[str, ManifestFile] | None = PrivateAttr(default=None)

    @property
    def total_bytes(self) -> int:
        """Bytes of all kept files."""
        return sum(f.size for f in self.files)

    @property
    def total_lines(self) -> int:
        """Lines of all kept files."""
        return sum(f.lines for f in self.files)

    def languages(self) -> dict[str, int]:
        """Files per language, most first."""
        return dict(Counter(f.language for f in self.files).most_common())

    def file(self, path: str) -> ManifestFile | None:
        """The entry of ``path``, if intake kept it."""
        if self._index is None:
            self._index = {f.path: f for f in self.files}
        return self._index.get(path)

    def summary(self) -> dict[str, Any]:
        """Counts for people: files, bytes, lines, languages, skipped by reason, redactions."""
        return {
            "source": self.source,
            "kind": self.kind,
            "files": len(self.files),
            "bytes": self.total_bytes,
            "lines": self.total_lines,
            "languages": self.languages(),
            "skipped": dict(sorted(self.skipped_counts.items())),
            "redactions": sum(f.redactions for f in self.files),
        }


class CodebaseChanged(StepError):
    """A file's content no longer matches the manifest: the codebase changed after intake."""

    fields = ("step_id", "retryable", "path")
    code = "CODEBASE_CHANGED"

    def __init__(self, message: str, *, path: str = "", step_id: str | None = None) -> None:
        super().__init__(message, step_id=step_id, retryable=False)
        self.path = path


def sha256_hex(content: bytes) -> str:
    """The SHA-256 of ``content`` as hex."""
    return hashlib.sha256(content).hexdigest()


def reopen_source(manifest: Manifest) -> CodebaseSource:
    """The source a manifest was built from, opened again."""
    path = Path(manifest.source)
    if manifest.kind == "folder":
        if not path.is_dir():
            raise CodebaseChanged(f"the codebase folder {manifest.source} is gone", path=manifest.source)
        return FolderSource(path)
    if not path.is_file():
        raise CodebaseChanged(f"the codebase archive {manifest.source} is gone", path=manifest.source)
    return ZipSource(path) if manifest.kind == "zip" else TarSource(path)


class ManifestReader:
    """Reads the manifest's files, checking each against its recorded hash."""

    def __init__(self, manifest: Manifest, source: CodebaseSource | None = None) -> None:
        self.manifest = manifest
        self._source = source
        self._owned = source is None

    def _open(self) -> CodebaseSource:
        if self._source is None:
            self._source = reopen_source(self.manifest)
        return self._source

    def read_text(self, path: str) -> str:
        """The file's text as intake saw it (secrets not yet redacted)."""
        entry = self.manifest.file(path)
        if entry is None:
            raise StepIoError(f"{path} is not in the codebase manifest", retryable=False)
        try:
            content = self._open().read(path, entry.size + 1)
        except StepIoError as exc:
            raise CodebaseChanged(f"{path} changed after intake: {exc}", path=path) from exc
        digest = sha256_hex(content)
        if digest != entry.sha256:
            raise CodebaseChanged(
                f"{path} changed after intake (sha256 {entry.sha256[:12]}… now {digest[:12]}…); "
                "start a new analysis of the current code",
                path=path,
            )
        return content.decode("utf-8")

    def read_redacted(self, path: str) -> str:
        """The file's text with secrets replaced: what may be sent to an LLM."""
        return redact(self.read_text(path))[0]

    def close(self) -> None:
        """Close the source if this reader opened it."""
        if self._owned and self._source is not None:
            self._source.close()
            self._source = None

    def __enter__(self) -> ManifestReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
