"""The media repository's storage: the ``media`` / ``media_thumbnails`` tables and the
content-addressed files under ``media_store_path``.

Files are named by the sha256 of their bytes, ``<root>/<sha[:2]>/<sha[2:4]>/<sha>``, so the
same content uploaded twice is stored once. A file is written to ``<root>/tmp``, fsynced and
renamed into place (atomic on one filesystem); callers write the row only after that, so a row
never points at a partial file. A power cut mid-upload leaves at most a temp file, removed at
the next start.
"""

import asyncio
import hashlib
import logging
import os
import re
import secrets
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.store.db import Database

log = logging.getLogger(__name__)

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class MediaRecord:
    media_id: str
    user_id: str
    content_type: str | None
    upload_name: str | None
    size: int | None
    sha256: str | None  # None while created (POST /create) but not uploaded yet
    created_ts: int
    unused_expires_at: int | None


@dataclass(frozen=True)
class ThumbnailRecord:
    content_type: str
    sha256: str
    size: int


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int


class MediaFiles:
    """The content-addressed folder. Creating it removes temp files a power cut left behind."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        for stale in self.tmp.iterdir():
            log.info("removing unfinished upload %s", stale)
            stale.unlink(missing_ok=True)

    def path(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def _temp(self) -> tuple[Path, BinaryIO]:
        path = self.tmp / f"{secrets.token_hex(16)}.part"
        return path, path.open("xb")

    async def write_stream(self, chunks: AsyncIterable[bytes], limit: int) -> StoredFile:
        """Stream ``chunks`` into the store while hashing and counting them.

        Over ``limit`` bytes: 413 M_TOO_LARGE, with the temp file removed. Chunk writes go to
        the page cache and stay on the event loop; the fsync + rename runs in a thread."""
        tmp, fobj = self._temp()
        digest = hashlib.sha256()
        size = 0
        handed_over = False
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise MatrixError(413, Codes.TOO_LARGE,
                                      f"Cannot upload files larger than {limit} bytes")
                digest.update(chunk)
                fobj.write(chunk)
            sha = digest.hexdigest()
            handed_over = True  # from here the thread owns (and cleans up) the temp file
            await asyncio.to_thread(self._commit, tmp, fobj, sha)
            return StoredFile(sha, size)
        finally:
            if not handed_over:
                fobj.close()
                tmp.unlink(missing_ok=True)

    async def write_bytes(self, data: bytes) -> StoredFile:
        """Store ``data`` (a generated thumbnail); blocking work runs in a thread."""
        def run() -> StoredFile:
            tmp, fobj = self._temp()
            sha = hashlib.sha256(data).hexdigest()
            try:
                fobj.write(data)
            except BaseException:
                fobj.close()
                tmp.unlink(missing_ok=True)
                raise
            self._commit(tmp, fobj, sha)
            return StoredFile(sha, len(data))

        return await asyncio.to_thread(run)

    def _commit(self, tmp: Path, fobj: BinaryIO, sha: str) -> None:
        """fsync, then rename into place (or drop the temp file if the content is stored)."""
        try:
            fobj.flush()
            os.fsync(fobj.fileno())
            fobj.close()
            final = self.path(sha)
            if final.exists():
                tmp.unlink()
                return
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            dir_fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException:
            fobj.close()
            tmp.unlink(missing_ok=True)
            raise


# --- the tables -------------------------------------------------------------------------------

MEDIA_COLUMNS = ("media_id, user_id, content_type, upload_name, size, sha256, created_ts, "
                 "unused_expires_at")


class MediaStore:
    """Rows of ``media`` and ``media_thumbnails`` plus the files they point at."""

    def __init__(self, db: Database, files: MediaFiles) -> None:
        self.db = db
        self.files = files

    async def get(self, media_id: str) -> MediaRecord | None:
        row = await self.db.fetchone(
            f"SELECT {MEDIA_COLUMNS} FROM media WHERE media_id = ?", (media_id,)
        )
        return None if row is None else MediaRecord(*row)

    async def insert_uploaded(self, record: MediaRecord) -> None:
        """A finished upload; its file must already be in place."""
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                f"INSERT INTO media ({MEDIA_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (record.media_id, record.user_id, record.content_type, record.upload_name,
                 record.size, record.sha256, record.created_ts, record.unused_expires_at),
            )
        await self.db.write(run)

    async def create_pending(self, media_id: str, user_id: str, now_ms: int, expires_at: int,
                             max_pending: int) -> bool:
        """Reserve ``media_id`` for a later upload by ``user_id``. False when the user already
        has ``max_pending`` unexpired reservations. The user's expired reservations are
        dropped in the same transaction."""
        async def run(conn: aiosqlite.Connection) -> bool:
            # Expired, never-uploaded reservations of this user: forget them.
            await conn.execute(
                "DELETE FROM media WHERE user_id = ? AND sha256 IS NULL "
                "AND unused_expires_at <= ?", (user_id, now_ms),
            )
            async with conn.execute(
                "SELECT COUNT(*) FROM media WHERE user_id = ? AND sha256 IS NULL",
                (user_id,),
            ) as cur:
                row = await cur.fetchone()
            if row is not None and row[0] >= max_pending:
                return False
            await conn.execute(
                f"INSERT INTO media ({MEDIA_COLUMNS}) VALUES (?, ?, NULL, NULL, NULL, NULL, ?, ?)",
                (media_id, user_id, now_ms, expires_at),
            )
            return True
        return await self.db.write(run)

    async def complete_pending(self, media_id: str, content_type: str | None,
                               upload_name: str | None, stored: StoredFile) -> bool:
        """Attach an uploaded file to a reservation; False if it was uploaded (or dropped)
        meanwhile."""
        async def run(conn: aiosqlite.Connection) -> bool:
            async with conn.execute(
                "UPDATE media SET content_type = ?, upload_name = ?, size = ?, sha256 = ?, "
                "unused_expires_at = NULL WHERE media_id = ? AND sha256 IS NULL",
                (content_type, upload_name, stored.size, stored.sha256, media_id),
            ) as cur:
                return cur.rowcount == 1
        return await self.db.write(run)

    async def get_thumbnail(self, media_id: str, width: int, height: int,
                            method: str) -> ThumbnailRecord | None:
        """A thumbnail made earlier for this request size (rows are keyed by the requested
        width, height and method, not by the thumbnail's own pixel size)."""
        row = await self.db.fetchone(
            "SELECT content_type, sha256, size FROM media_thumbnails "
            "WHERE media_id = ? AND width = ? AND height = ? AND method = ? LIMIT 1",
            (media_id, width, height, method),
        )
        return None if row is None else ThumbnailRecord(row[0], row[1], row[2])

    async def insert_thumbnail(self, media_id: str, width: int, height: int, method: str,
                               thumb: ThumbnailRecord) -> None:
        """Remember a thumbnail whose file is in place (a concurrent twin is ignored)."""
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT OR IGNORE INTO media_thumbnails "
                "(media_id, width, height, method, content_type, sha256, size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (media_id, width, height, method, thumb.content_type, thumb.sha256, thumb.size),
            )
        await self.db.write(run)
