"""Where a codebase's files come from: a local folder, a ``.zip`` or a ``.tar(.gz)`` archive.

Archives are never extracted: members are listed and read in memory, so nothing is
written outside the artifact store. Every member name is checked before use; a name
that is absolute or climbs out with ``..`` (zip slip) rejects the whole archive.
Symbolic links are never followed, in folders or archives: intake reports them as
skipped, and reading a folder's file refuses any path whose parts are links.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from ecl.core.errors import InputValidationError, StepIoError

__all__ = [
    "ARCHIVE_SUFFIXES",
    "CodebaseSource",
    "FolderSource",
    "Node",
    "NodeKind",
    "SourceKind",
    "TarSource",
    "ZipSource",
    "open_source",
]

SourceKind = Literal["folder", "zip", "tar"]
NodeKind = Literal["file", "dir", "symlink", "other"]
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class Node:
    """One entry of a folder: its name, kind and (for files) size in bytes."""

    name: str
    kind: NodeKind
    size: int = 0


def _bad_input(field: str, message: str, value: str) -> InputValidationError:
    return InputValidationError(message, errors=[{"field": field, "message": message, "value": value}])


class CodebaseSource(ABC):
    """A read-only tree of files addressed by ``/``-separated paths relative to its root."""

    kind: SourceKind

    def __init__(self, path: Path) -> None:
        self.path = path

    @abstractmethod
    def children(self, folder: str) -> list[Node]:
        """The entries of ``folder`` (``""`` is the root), sorted by name."""

    @abstractmethod
    def read(self, path: str, limit: int) -> bytes:
        """Up to ``limit`` bytes of the file at ``path``; raises :class:`StepIoError` if unreadable."""

    def close(self) -> None:  # noqa: B027 - most sources hold nothing open
        """Release open handles."""

    def __enter__(self) -> CodebaseSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FolderSource(CodebaseSource):
    """A local folder."""

    kind: SourceKind = "folder"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.root = path.resolve()

    def _local(self, rel: str) -> Path:
        parts = PurePosixPath(rel).parts if rel else ()
        if any(part in ("..", "") or "\\" in part for part in parts) or PurePosixPath(rel).is_absolute():
            raise StepIoError(f"path {rel!r} leaves the codebase", retryable=False)
        return self.root.joinpath(*parts)

    def children(self, folder: str) -> list[Node]:
        """Entries of a folder, symbolic links reported as such and never followed."""
        nodes: list[Node] = []
        try:
            with os.scandir(self._local(folder)) as it:
                for entry in it:
                    if entry.is_symlink():
                        nodes.append(Node(entry.name, "symlink"))
                    elif entry.is_dir(follow_symlinks=False):
                        nodes.append(Node(entry.name, "dir"))
                    elif entry.is_file(follow_symlinks=False):
                        nodes.append(Node(entry.name, "file", entry.stat(follow_symlinks=False).st_size))
                    else:
                        nodes.append(Node(entry.name, "other"))
        except OSError as exc:
            where = folder or "."
            message = f"cannot read folder {where!r} of the codebase: {exc.strerror}"
            raise _bad_input("code_path", message, where) from exc
        nodes.sort(key=lambda n: n.name)
        return nodes

    def read(self, path: str, limit: int) -> bytes:
        """Read without following links: every parent folder and the file itself must be real."""
        local = self._local(path)
        current = self.root
        for part in PurePosixPath(path).parts[:-1]:
            current = current / part
            try:
                if stat.S_ISLNK(os.lstat(current).st_mode):
                    raise StepIoError(f"{path}: a parent folder is a symbolic link", retryable=False)
            except FileNotFoundError:
                raise StepIoError(f"{path}: no such file in the codebase", retryable=False) from None
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(local, flags)
        except OSError as exc:
            raise StepIoError(f"cannot read {path}: {exc.strerror}", retryable=False) from exc
        with os.fdopen(fd, "rb") as fh:
            try:
                return fh.read(limit)
            except OSError as exc:
                raise StepIoError(f"cannot read {path}: {exc.strerror}", retryable=False) from exc


def _check_member(archive: Path, name: str) -> str:
    """A member name as a safe relative path, or an error for zip-slip style names."""
    clean = name.replace("\\", "/")
    pure = PurePosixPath(clean)
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":") or ".." in pure.parts:
        raise _bad_input(
            "code_path",
            f"archive {archive.name} has an entry {name!r} that escapes the archive (absolute or '..'); refusing it",
            name,
        )
    return "/".join(part for part in pure.parts if part not in (".", ""))


class _ArchiveSource(CodebaseSource):
    """Members indexed into a tree once, read in memory."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._tree: dict[str, dict[str, Node]] = {"": {}}

    def _add(self, rel: str, kind: NodeKind, size: int) -> None:
        if not rel:
            return
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            parent, name = "/".join(parts[: depth - 1]), parts[depth - 1]
            folder = "/".join(parts[:depth])
            self._tree.setdefault(parent, {}).setdefault(name, Node(name, "dir"))
            self._tree.setdefault(folder, {})
        parent = "/".join(parts[:-1])
        self._tree.setdefault(parent, {})[parts[-1]] = Node(parts[-1], kind, size)
        if kind == "dir":
            self._tree.setdefault(rel, {})

    def children(self, folder: str) -> list[Node]:
        """Entries of a folder of the archive."""
        return sorted(self._tree.get(folder, {}).values(), key=lambda n: n.name)


class ZipSource(_ArchiveSource):
    """A ``.zip`` archive."""

    kind: SourceKind = "zip"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise _bad_input("code_path", f"{path} is not a readable .zip archive: {exc}", str(path)) from exc
        self._members: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            rel = _check_member(path, info.filename)
            mode = info.external_attr >> 16
            if info.is_dir():
                self._add(rel, "dir", 0)
            elif stat.S_ISLNK(mode):
                self._add(rel, "symlink", 0)
            else:
                self._members[rel] = info
                self._add(rel, "file", info.file_size)

    def read(self, path: str, limit: int) -> bytes:
        """A member's bytes, never more than ``limit`` whatever its header claims."""
        info = self._members.get(path)
        if info is None:
            raise StepIoError(f"{path}: no such file in {self.path.name}", retryable=False)
        try:
            with self._zip.open(info) as fh:
                return fh.read(limit)
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
            raise StepIoError(f"cannot read {path} from {self.path.name}: {exc}", retryable=False) from exc

    def close(self) -> None:
        """Close the archive."""
        self._zip.close()


class TarSource(_ArchiveSource):
    """A ``.tar``, ``.tar.gz`` or ``.tgz`` archive."""

    kind: SourceKind = "tar"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self._tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed by close()
            members = self._tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise _bad_input("code_path", f"{path} is not a readable tar archive: {exc}", str(path)) from exc
        self._members: dict[str, tarfile.TarInfo] = {}
        for member in members:
            rel = _check_member(path, member.name)
            if member.isdir():
                self._add(rel, "dir", 0)
            elif member.issym() or member.islnk():
                self._add(rel, "symlink", 0)
            elif member.isreg():
                self._members[rel] = member
                self._add(rel, "file", member.size)
            else:
                self._add(rel, "other", 0)

    def read(self, path: str, limit: int) -> bytes:
        """A member's bytes (at most ``limit``)."""
        member = self._members.get(path)
        if member is None:
            raise StepIoError(f"{path}: no such file in {self.path.name}", retryable=False)
        try:
            fh = self._tar.extractfile(member)
            if fh is None:
                raise StepIoError(f"{path}: not a regular file in {self.path.name}", retryable=False)
            with fh:
                return fh.read(limit)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise StepIoError(f"cannot read {path} from {self.path.name}: {exc}", retryable=False) from exc

    def close(self) -> None:
        """Close the archive."""
        self._tar.close()


def open_source(path: Path, *, field: str = "code_path") -> CodebaseSource:
    """The source at ``path``: a folder, a ``.zip`` or a tar archive; a one-line error otherwise."""
    shown = str(path)
    if not path.exists():
        raise _bad_input(field, f"{field} {shown!r} does not exist", shown)
    # The path the user named may itself be a link (a checkout under /tmp, say): it is
    # resolved once here; nothing inside the codebase is ever followed.
    path = path.resolve()
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise _bad_input(field, f"{field} {shown!r} is not readable", shown)
        return FolderSource(path)
    name = path.name.lower()
    if path.is_file() and name.endswith(".zip"):
        return ZipSource(path)
    if path.is_file() and name.endswith((".tar.gz", ".tgz", ".tar")):
        return TarSource(path)
    raise _bad_input(
        field,
        f"{field} {shown!r} is a file, not a folder or a .zip / .tar.gz archive",
        shown,
    )
