"""The content-addressed media files and the media tables, against a real SQLite file."""

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgehs.errors import Codes, MatrixError
from edgehs.store.db import Database
from edgehs.store.media import MediaFiles, MediaRecord, MediaStore, StoredFile, ThumbnailRecord


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp"]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MediaStore]:
    db = Database(tmp_path / "media.db")
    await db.open()
    yield MediaStore(db, MediaFiles(tmp_path / "media"))
    await db.close()


async def test_stream_is_content_addressed_and_deduplicated(tmp_path: Path) -> None:
    files = MediaFiles(tmp_path / "media")
    data = b"hello " * 5000
    sha = hashlib.sha256(data).hexdigest()
    first = await files.write_stream(chunks(data[:100], data[100:]), limit=len(data))
    assert first == StoredFile(sha, len(data))
    path = tmp_path / "media" / sha[:2] / sha[2:4] / sha
    assert files.path(sha) == path
    assert path.read_bytes() == data
    second = await files.write_stream(chunks(data), limit=len(data))
    assert second == first
    assert stored_files(tmp_path / "media") == [path]
    assert list(files.tmp.iterdir()) == []


async def test_stream_over_limit_leaves_nothing(tmp_path: Path) -> None:
    files = MediaFiles(tmp_path / "media")
    with pytest.raises(MatrixError) as err:
        await files.write_stream(chunks(b"x" * 10, b"y" * 10), limit=15)
    assert (err.value.status, err.value.errcode) == (413, Codes.TOO_LARGE)
    assert stored_files(tmp_path / "media") == []
    assert list(files.tmp.iterdir()) == []


async def test_failing_stream_removes_temp_file(tmp_path: Path) -> None:
    files = MediaFiles(tmp_path / "media")

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await files.write_stream(broken(), limit=100)
    assert list(files.tmp.iterdir()) == []
    assert stored_files(tmp_path / "media") == []


async def test_write_bytes_and_stale_temp_cleanup(tmp_path: Path) -> None:
    (tmp_path / "media" / "tmp").mkdir(parents=True)
    (tmp_path / "media" / "tmp" / "left-by-power-cut.part").write_bytes(b"half")
    files = MediaFiles(tmp_path / "media")
    assert list(files.tmp.iterdir()) == []
    stored = await files.write_bytes(b"thumb")
    assert files.path(stored.sha256).read_bytes() == b"thumb"
    assert stored.size == 5


def test_path_refuses_non_digests(tmp_path: Path) -> None:
    files = MediaFiles(tmp_path / "media")
    with pytest.raises(ValueError):
        files.path("../../etc/passwd")


async def test_rows_round_trip(store: MediaStore) -> None:
    record = MediaRecord("abc", "@a:x", "image/png", "a.png", 3, "f" * 64, 1000, None)
    await store.insert_uploaded(record)
    assert await store.get("abc") == record
    assert await store.get("nope") is None


async def test_pending_reservations(store: MediaStore) -> None:
    assert await store.create_pending("m1", "@a:x", 1000, 5000, max_pending=2)
    assert await store.create_pending("m2", "@a:x", 1000, 5000, max_pending=2)
    assert not await store.create_pending("m3", "@a:x", 1000, 5000, max_pending=2)
    # Another user has their own allowance.
    assert await store.create_pending("m4", "@b:x", 1000, 5000, max_pending=2)
    # Once expired, the reservations are dropped and the user may create again.
    assert await store.create_pending("m5", "@a:x", 6000, 9000, max_pending=2)
    assert await store.get("m1") is None
    pending = await store.get("m5")
    assert pending is not None and pending.sha256 is None and pending.unused_expires_at == 9000

    stored = StoredFile("e" * 64, 7)
    assert await store.complete_pending("m5", "text/plain", "n.txt", stored)
    assert not await store.complete_pending("m5", "text/plain", "n.txt", stored)
    done = await store.get("m5")
    assert done is not None
    assert (done.sha256, done.size, done.content_type, done.upload_name) == (
        "e" * 64, 7, "text/plain", "n.txt")
    assert done.unused_expires_at is None


async def test_thumbnail_rows(store: MediaStore) -> None:
    assert await store.get_thumbnail("m", 32, 32, "crop") is None
    thumb = ThumbnailRecord("image/png", "d" * 64, 99)
    await store.insert_thumbnail("m", 32, 32, "crop", thumb)
    await store.insert_thumbnail("m", 32, 32, "crop", thumb)  # a concurrent twin: ignored
    assert await store.get_thumbnail("m", 32, 32, "crop") == thumb
    assert await store.get_thumbnail("m", 32, 32, "scale") is None
