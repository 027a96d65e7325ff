"""Artifact storage: large step results kept outside the journal."""

from ecl.artifacts.local import LocalArtifactStore
from ecl.artifacts.store import Artifact, ArtifactStore

__all__ = ["Artifact", "ArtifactStore", "LocalArtifactStore"]
