"""Step 0 of the analyzer without the workflow around it: check a codebase, build its manifest.

:func:`build_manifest` walks a folder or archive once, honouring ``.gitignore`` and the
fixed skip lists of :mod:`ecl.analyzer.ignore`, reads every kept file once (to hash it,
count its lines and look for secrets) and enforces the limits of :class:`IntakeLimits`.
Every refusal is an :class:`~ecl.core.errors.InputValidationError` whose one-line message
names the setting and the value at fault. :func:`read_input_document` does the same for
the single files of the input (vision, deployment configs, ``SKILL.md``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ecl.analyzer.ignore import IgnoreRules, parse_gitignore, skip_reason
from ecl.analyzer.manifest import Manifest, ManifestFile, SkippedPath, language_of, sha256_hex
from ecl.analyzer.secrets import redact
from ecl.analyzer.source import CodebaseSource, Node, open_source
from ecl.core.errors import InputValidationError, StepIoError

__all__ = ["InputDocument", "IntakeLimits", "build_manifest", "read_input_document", "scan_codebase"]

_MAX_LISTED_SKIPS = 500
"""Skipped paths listed one by one in the manifest; beyond this only the counts grow."""
_BINARY_SNIFF = 8192


@dataclass(frozen=True)
class IntakeLimits:
    """How much of a codebase intake accepts (the ``analyzer.*`` settings)."""

    max_files: int = 10_000
    max_file_bytes: int = 1024 * 1024
    max_total_bytes: int = 100 * 1024 * 1024


def _limit_error(setting: str, limit: int, message: str, value: str) -> InputValidationError:
    return InputValidationError(
        f"{message}, over analyzer.{setting} = {limit}",
        errors=[{"field": f"analyzer.{setting}", "message": message, "value": value}],
    )


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


class _Walk:
    """One pass over a source, collecting kept files and skips."""

    def __init__(self, source: CodebaseSource, limits: IntakeLimits) -> None:
        self.source = source
        self.limits = limits
        self.files: list[ManifestFile] = []
        self.skipped: list[SkippedPath] = []
        self.counts: Counter[str] = Counter()
        self.total = 0

    def skip(self, path: str, reason: str) -> None:
        self.counts[reason] += 1
        if len(self.skipped) < _MAX_LISTED_SKIPS:
            self.skipped.append(SkippedPath(path=path, reason=reason))

    def run(self) -> None:
        # Iterative, so a deeply nested tree cannot exhaust the stack.
        pending: list[tuple[str, IgnoreRules]] = [("", IgnoreRules())]
        while pending:
            folder, rules = pending.pop()
            nodes = self.source.children(folder)
            rules = self._with_gitignore(folder, nodes, rules)
            subfolders: list[tuple[str, IgnoreRules]] = []
            for node in nodes:
                rel = _join(folder, node.name)
                if node.kind == "symlink":
                    self.skip(rel, "symlink")
                elif node.kind == "other":
                    self.skip(rel, "special")
                elif node.kind == "dir":
                    reason = skip_reason(node.name, is_dir=True)
                    if reason is None and rules.ignored(rel, is_dir=True):
                        reason = "gitignore"
                    if reason is not None:
                        self.skip(rel + "/", reason)
                    else:
                        subfolders.append((rel, rules))
                else:
                    self._file(rel, node, rules)
            pending.extend(reversed(subfolders))  # keeps the walk in path order

    def _with_gitignore(self, folder: str, nodes: list[Node], rules: IgnoreRules) -> IgnoreRules:
        if not any(n.name == ".gitignore" and n.kind == "file" for n in nodes):
            return rules
        try:
            text = self.source.read(_join(folder, ".gitignore"), self.limits.max_file_bytes)
        except StepIoError:
            return rules  # an unreadable .gitignore is reported when the file itself is read
        return rules.extended(parse_gitignore(text.decode("utf-8", errors="replace"), folder))

    def _file(self, rel: str, node: Node, rules: IgnoreRules) -> None:
        reason = skip_reason(node.name, is_dir=False)
        if reason is None and rules.ignored(rel, is_dir=False):
            reason = "gitignore"
        if reason is not None:
            self.skip(rel, reason)
            return
        limit = self.limits.max_file_bytes
        if node.size > limit:
            raise _limit_error("max_file_bytes", limit, f"{rel} is {node.size} bytes", rel)
        try:
            content = self.source.read(rel, limit + 1)
        except StepIoError as exc:
            raise InputValidationError(
                f"cannot read {rel} in the codebase: {exc}",
                errors=[{"field": "code_path", "message": str(exc), "value": rel}],
            ) from exc
        if len(content) > limit:  # an archive header may understate the size
            raise _limit_error("max_file_bytes", limit, f"{rel} is over {limit} bytes", rel)
        if b"\0" in content[:_BINARY_SNIFF]:
            self.skip(rel, "binary")
            return
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            self.skip(rel, "binary")
            return
        if len(self.files) >= self.limits.max_files:
            raise _limit_error(
                "max_files", self.limits.max_files, f"the codebase has more than {self.limits.max_files} files", rel
            )
        self.total += len(content)
        if self.total > self.limits.max_total_bytes:
            raise _limit_error(
                "max_total_bytes",
                self.limits.max_total_bytes,
                f"the codebase's files total at least {self.total} bytes (reached at {rel})",
                rel,
            )
        self.files.append(
            ManifestFile(
                path=rel,
                language=language_of(rel),
                size=len(content),
                lines=text.count("\n") + (0 if not text or text.endswith("\n") else 1),
                sha256=sha256_hex(content),
                redactions=len(redact(text)[1]),
            )
        )


def scan_codebase(source: CodebaseSource, limits: IntakeLimits) -> Manifest:
    """The manifest of an opened source; raises when it breaks a limit or has nothing to analyze."""
    walk = _Walk(source, limits)
    walk.run()
    if not walk.files:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(walk.counts.items()))
        raise InputValidationError(
            f"code_path {str(source.path)!r} has no source files to analyze"
            + (f" (skipped: {skipped})" if skipped else " (it is empty)"),
            errors=[{"field": "code_path", "message": "no source files", "value": str(source.path)}],
        )
    return Manifest(
        source=str(source.path.resolve()),
        kind=source.kind,
        files=walk.files,
        skipped=walk.skipped,
        skipped_counts=dict(walk.counts),
    )


def build_manifest(path: Path, limits: IntakeLimits) -> Manifest:
    """Open the folder or archive at ``path`` and build its manifest."""
    with open_source(path) as source:
        return scan_codebase(source, limits)


@dataclass(frozen=True)
class InputDocument:
    """A single-file input (vision, deployment config, ``SKILL.md``), read and redacted."""

    field: str
    path: str
    text: str
    sha256: str
    redactions: int


def read_input_document(path: Path, field: str, limits: IntakeLimits) -> InputDocument:
    """Read one input file: it must exist, be a readable UTF-8 text file within the size limit."""
    shown = str(path)

    def bad(message: str) -> InputValidationError:
        return InputValidationError(
            f"{field} {shown!r} {message}", errors=[{"field": field, "message": message, "value": shown}]
        )

    if not path.exists():
        raise bad("does not exist")
    if not path.is_file():
        raise bad("is not a file")
    if skip_reason(path.name, is_dir=False) == "secret":
        raise bad("looks like a secrets file (.env, key); ECL never reads those")
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise _limit_error("max_file_bytes", limits.max_file_bytes, f"{field} {shown} is {size} bytes", shown)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise bad(f"cannot be read: {exc.strerror}") from exc
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("is not UTF-8 text") from None
    redacted, found = redact(text)
    return InputDocument(field, shown, redacted, sha256_hex(content), len(found))
