"""The local artifact store on a real database: atomic writes, streaming, limits, containment."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ecl.artifacts import LocalArtifactStore
from ecl.core import NotFoundError, StepIoError
from ecl.core.errors import ArtifactCorrupted
from ecl.store import ArtifactRepository, WorkflowRepository, create_engine, upgrade


@pytest.fixture
async def engine(server_url: str) -> AsyncIterator[AsyncEngine]:
    upgrade(server_url)
    engine = create_engine(server_url)
    await WorkflowRepository(engine).create("wf-1", "critique-revise", {})
    yield engine
    await engine.dispose()


@pytest.fixture
def store(engine: AsyncEngine, tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "base", ArtifactRepository(engine), max_bytes=1024 * 1024)


async def test_store_get_list_retrieve_delete(store: LocalArtifactStore) -> None:
    art = await store.store("wf-1", "final", "final.md", b"# Hello", "text/markdown")
    assert (art.size, art.content_type, art.name) == (7, "text/markdown", "final.md")
    assert (store.base / "wf-1" / "final" / art.id).read_bytes() == b"# Hello"
    assert await store.get("wf-1", art.id) == art
    assert [a.id for a in await store.list("wf-1")] == [art.id]
    assert await store.retrieve("wf-1", art.id) == b"# Hello"
    assert not list((store.base / "wf-1" / "final").glob(".tmp-*"))
    assert await store.delete("wf-1", art.id)
    assert not await store.delete("wf-1", art.id)
    with pytest.raises(NotFoundError) as err:
        await store.get("wf-1", art.id)
    assert err.value.kind == "artifact"


async def test_storing_the_same_name_again_replaces_it(store: LocalArtifactStore) -> None:
    first = await store.store("wf-1", "final", "final.md", b"one", "text/plain")
    second = await store.store("wf-1", "final", "final.md", b"two!", "text/plain")
    assert first.id == second.id
    assert [(a.id, a.size) for a in await store.list("wf-1")] == [(first.id, 4)]
    assert await store.retrieve("wf-1", first.id) == b"two!"


async def test_large_content_streams_in_chunks(store: LocalArtifactStore) -> None:
    content = os.urandom(700_000)
    art = await store.store("wf-1", "s", "big.bin", content, "application/octet-stream")
    chunks = [c async for c in store.open("wf-1", art.id, chunk_size=65536)]
    assert len(chunks) == 11
    assert max(len(c) for c in chunks) == 65536
    assert b"".join(chunks) == content


async def test_over_the_size_limit_is_refused_and_nothing_is_stored(store: LocalArtifactStore) -> None:
    with pytest.raises(StepIoError, match=r"artifacts.max_bytes=1048576"):
        await store.store("wf-1", "s", "huge.bin", b"x" * (1024 * 1024 + 1), "application/octet-stream")
    assert await store.list("wf-1") == []


@pytest.mark.parametrize(
    "artifact_id", ["..", "../secret", "%2e%2e", "/etc/passwd", "a\\..\\b", "a\0b", ".hidden", "", "x" * 200]
)
async def test_ids_that_could_escape_are_not_found(store: LocalArtifactStore, artifact_id: str) -> None:
    for call in (store.get("wf-1", artifact_id), store.retrieve("wf-1", artifact_id)):
        with pytest.raises(NotFoundError):
            await call
    with pytest.raises(NotFoundError):
        await store.get(artifact_id, "abc")


async def test_a_symlink_out_of_the_base_folder_is_not_found(store: LocalArtifactStore, tmp_path: Path) -> None:
    art = await store.store("wf-1", "final", "final.md", b"inside", "text/plain")
    outside = tmp_path / "outside.txt"
    outside.write_text("outside")
    path = store.base / "wf-1" / "final" / art.id
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(NotFoundError):
        await store.retrieve("wf-1", art.id)


async def test_content_missing_on_disk_is_not_found(store: LocalArtifactStore) -> None:
    art = await store.store("wf-1", "final", "final.md", b"gone", "text/plain")
    (store.base / "wf-1" / "final" / art.id).unlink()
    with pytest.raises(NotFoundError):
        await store.retrieve("wf-1", art.id)


async def test_a_hard_link_planted_in_the_folder_is_not_found(store: LocalArtifactStore, tmp_path: Path) -> None:
    art = await store.store("wf-1", "final", "final.md", b"inside", "text/plain")
    planted = tmp_path / "planted.txt"
    planted.write_bytes(b"inside")  # the recorded size and sha256: only the link is wrong
    path = store.base / "wf-1" / "final" / art.id
    path.unlink()
    os.link(planted, path)
    with pytest.raises(NotFoundError):
        await store.retrieve("wf-1", art.id)


@pytest.mark.parametrize("changed", [b"INSIDE", b"in", b"inside and more"])
async def test_content_that_differs_from_its_record_is_never_served(store: LocalArtifactStore, changed: bytes) -> None:
    art = await store.store("wf-1", "final", "final.md", b"inside", "text/plain")
    (store.base / "wf-1" / "final" / art.id).write_bytes(changed)
    chunks = store.open("wf-1", art.id)
    with pytest.raises(ArtifactCorrupted) as caught:
        await anext(chunks)  # refused before the first byte
    assert caught.value.artifact_id == art.id
    with pytest.raises(ArtifactCorrupted):
        await store.retrieve("wf-1", art.id)


async def test_a_file_changed_while_it_is_read_fails_instead_of_serving_other_bytes(
    store: LocalArtifactStore,
) -> None:
    content = os.urandom(256 * 1024)
    art = await store.store("wf-1", "final", "big.bin", content, "application/octet-stream")
    path = store.base / "wf-1" / "final" / art.id
    received = b""

    async def read_while_it_changes() -> None:
        nonlocal received
        async for chunk in store.open("wf-1", art.id, chunk_size=65536):
            if not received:
                with path.open("r+b") as handle:  # rewritten in place, behind the reader's back
                    handle.seek(200 * 1024)
                    handle.write(b"x" * 1024)
            received += chunk

    with pytest.raises(ArtifactCorrupted):
        await read_while_it_changes()
    assert len(received) <= len(content)
