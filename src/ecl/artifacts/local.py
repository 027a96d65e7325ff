"""Artifacts on the local filesystem: ``{base}/{workflow_id}/{step_id}/{artifact_id}``.

Content is written to a temporary file in the target folder, flushed and renamed into
place, so a reader never sees half an artifact. Metadata goes to the ``artifacts`` table.
Ids that come from outside are checked against a strict pattern and the resolved path
must stay inside the base folder, so ``../``, encoded dots, absolute paths, backslashes,
NUL bytes, symlinks and extra hard links all read as "not found". Content is served only
when its size and sha256 match the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ecl.artifacts.store import Artifact
from ecl.core.errors import ArtifactCorrupted, NotFoundError, StepIoError
from ecl.store.outage import ride_out
from ecl.store.repositories import ArtifactRecord, ArtifactRepository

__all__ = ["LocalArtifactStore"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def _artifact_id(workflow_id: str, step_id: str, name: str) -> str:
    """Deterministic, so a step that runs again after a crash replaces rather than duplicates."""
    return hashlib.sha256(f"{workflow_id}\0{step_id}\0{name}".encode()).hexdigest()[:32]


def _public(record: ArtifactRecord) -> Artifact:
    return Artifact.model_validate(record.model_dump(exclude={"path"}))


class LocalArtifactStore:
    """An :class:`~ecl.artifacts.store.ArtifactStore` on a local folder."""

    def __init__(self, base: Path, repository: ArtifactRepository, *, max_bytes: int = 100 * 1024 * 1024) -> None:
        self.base = base
        self.repository = repository
        self.max_bytes = max_bytes

    def _not_found(self, artifact_id: str) -> NotFoundError:
        return NotFoundError(f"artifact {artifact_id!r} not found", kind="artifact", id=artifact_id[:128])

    def _path(self, workflow_id: str, step_id: str, artifact_id: str) -> Path:
        """The content's path; raises not-found for any id that could leave the base folder."""
        for part in (workflow_id, step_id, artifact_id):
            if not _SAFE_ID.match(part) or part in {".", ".."}:
                raise self._not_found(artifact_id)
        return self.base / workflow_id / step_id / artifact_id

    def _readable(self, record: ArtifactRecord) -> Path:
        path = self._path(record.workflow_id, record.step_id, record.id)
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise self._not_found(record.id) from None
        if path.is_symlink() or not real.is_relative_to(self.base.resolve()) or not real.is_file():
            raise self._not_found(record.id)
        return real

    async def store(self, workflow_id: str, step_id: str, name: str, content: bytes, content_type: str) -> Artifact:
        """Write the content atomically, then its metadata."""
        if len(content) > self.max_bytes:
            raise StepIoError(
                f"artifact {name!r} is {len(content)} bytes, over the limit artifacts.max_bytes={self.max_bytes}",
                step_id=step_id,
                retryable=False,
            )
        artifact_id = _artifact_id(workflow_id, step_id, name)
        path = self._path(workflow_id, step_id, artifact_id)
        try:
            await asyncio.to_thread(_write_atomically, path, content)
        except OSError as exc:
            raise StepIoError(f"cannot write artifact {name!r}: {exc.strerror}", step_id=step_id) from exc
        record = ArtifactRecord(
            id=artifact_id,
            workflow_id=workflow_id,
            step_id=step_id,
            name=name,
            content_type=content_type,
            path=str(path.relative_to(self.base)),
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            created_at=datetime.now(UTC),
        )

        async def save() -> None:
            await self.repository.delete(workflow_id, artifact_id)
            await self.repository.add(record)

        # A step's write, like the engine's own: it waits out a database outage rather
        # than failing the step (and the workflow) for a reason that is not the step's.
        await ride_out(save)
        return _public(record)

    async def _record(self, workflow_id: str, artifact_id: str) -> ArtifactRecord:
        if not _SAFE_ID.match(workflow_id) or not _SAFE_ID.match(artifact_id):
            raise self._not_found(artifact_id)
        record = await self.repository.find(workflow_id, artifact_id)
        if record is None:
            raise self._not_found(artifact_id)
        return record

    async def get(self, workflow_id: str, artifact_id: str) -> Artifact:
        """Metadata of one artifact."""
        return _public(await self._record(workflow_id, artifact_id))

    async def list(self, workflow_id: str) -> list[Artifact]:
        """A workflow's artifacts, oldest first."""
        return [_public(r) for r in await self.repository.list_for(workflow_id)]

    async def retrieve(self, workflow_id: str, artifact_id: str) -> bytes:
        """The whole content."""
        async with contextlib.aclosing(self.open(workflow_id, artifact_id)) as chunks:
            return b"".join([chunk async for chunk in chunks])

    async def open(self, workflow_id: str, artifact_id: str, chunk_size: int = 65536) -> AsyncGenerator[bytes, None]:
        """The content in chunks, exactly as stored: its size and sha256 are checked first.

        The file is opened once, without following a symlink, and refused when it has other
        hard links (a link planted in the folder could expose any file of the same disk);
        a file whose size or sha256 differs from its record raises
        :class:`~ecl.core.errors.ArtifactCorrupted` before the first chunk. A file changed
        while it is read raises the same error at the point the change is seen, never
        more bytes than the record's size are given, so a response never lies about its length.
        """
        record = await self._record(workflow_id, artifact_id)
        path = self._readable(record)
        handle = await asyncio.to_thread(self._open_checked, path, record)
        try:
            digest = hashlib.sha256()
            remaining = record.size
            while remaining > 0:
                chunk = await asyncio.to_thread(handle.read, min(chunk_size, remaining))
                if not chunk:
                    break
                digest.update(chunk)
                remaining -= len(chunk)
                yield chunk
            if remaining or (record.sha256 is not None and digest.hexdigest() != record.sha256):
                raise self._corrupted(record, "the file changed while it was read")
        finally:
            handle.close()

    def _corrupted(self, record: ArtifactRecord, reason: str) -> ArtifactCorrupted:
        return ArtifactCorrupted(
            f"artifact {record.id} of workflow {record.workflow_id} is corrupted: {reason}",
            artifact_id=record.id,
            reason=reason,
        )

    def _open_checked(self, path: Path, record: ArtifactRecord) -> BinaryIO:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise self._not_found(record.id) from None
        handle = os.fdopen(fd, "rb")
        try:
            info = os.fstat(fd)
            # The store writes every artifact by rename, so a second link was made by someone else.
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                raise self._not_found(record.id)
            if info.st_size != record.size:
                raise self._corrupted(record, f"{info.st_size} bytes on disk, {record.size} recorded")
            if record.sha256 is not None:
                digest = hashlib.sha256()
                while block := handle.read(1 << 20):
                    digest.update(block)
                if digest.hexdigest() != record.sha256:
                    raise self._corrupted(record, "its sha256 differs from the recorded one")
                handle.seek(0)
        except BaseException:
            handle.close()
            raise
        return handle

    async def delete(self, workflow_id: str, artifact_id: str) -> bool:
        """Remove content and metadata."""
        try:
            record = await self._record(workflow_id, artifact_id)
        except NotFoundError:
            return False
        path = self._path(record.workflow_id, record.step_id, record.id)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        return await self.repository.delete(workflow_id, artifact_id)


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
