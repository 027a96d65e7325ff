"""The artifact store interface and an artifact's metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

__all__ = ["Artifact", "ArtifactStore"]


class Artifact(BaseModel):
    """Metadata of one stored artifact (its content lives in the store)."""

    id: str
    workflow_id: str
    step_id: str
    name: str
    content_type: str
    size: int
    sha256: str | None = None
    created_at: datetime


class ArtifactStore(Protocol):
    """Where steps keep large results: content in the store, metadata in the database.

    Every method that takes ids from outside raises :class:`ecl.core.errors.NotFoundError`
    (kind ``artifact``) for an unknown id and for any id that would leave the store.
    """

    async def store(self, workflow_id: str, step_id: str, name: str, content: bytes, content_type: str) -> Artifact:
        """Store content atomically; storing the same name from the same step again replaces it."""
        ...

    async def get(self, workflow_id: str, artifact_id: str) -> Artifact:
        """Metadata of one artifact."""
        ...

    async def list(self, workflow_id: str) -> list[Artifact]:
        """A workflow's artifacts, oldest first."""
        ...

    async def retrieve(self, workflow_id: str, artifact_id: str) -> bytes:
        """The whole content (for small artifacts; use :meth:`open` for large ones)."""
        ...

    def open(self, workflow_id: str, artifact_id: str, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """The content in chunks, never all in memory."""
        ...

    async def delete(self, workflow_id: str, artifact_id: str) -> bool:
        """Remove content and metadata; whether it existed."""
        ...
