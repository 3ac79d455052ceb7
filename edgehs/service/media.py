"""The media repository: uploads (direct and asynchronous), downloads and thumbnails.

https://spec.matrix.org/v1.19/client-server-api/#content-repository

Only local media exists for now: edgehs does not federate yet, so an ``mxc://`` URI naming
another server is answered with 404 M_NOT_FOUND.
"""

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from pathlib import Path

from edgehs.errors import Codes, MatrixError
from edgehs.service.thumbnails import can_thumbnail, cannot_thumbnail, make_thumbnail
from edgehs.store.media import MediaRecord, MediaStore, StoredFile, ThumbnailRecord
from edgehs.types import JsonDict

# The spec allows only these characters in a media id (no path traversal by construction).
MEDIA_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
DEFAULT_TIMEOUT_MS = 20_000
MAX_TIMEOUT_MS = 60_000  # Synapse's cap for ?timeout_ms
UNUSED_EXPIRY_MS = 24 * 3600 * 1000  # the spec's recommended lifetime of a created mxc URI
MAX_PENDING_UPLOADS = 5  # per user, as Synapse's default
THUMBNAIL_CONCURRENCY = 2  # Pillow decodes at most this many images at once
THUMBNAIL_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif",
                        "image/webp": "webp"}


@dataclass(frozen=True)
class MediaFile:
    """A file to send: where it is and how to describe it."""
    path: Path
    content_type: str
    filename: str | None
    size: int


class _UploadWaiters:
    """Downloads of created-but-not-uploaded media wait here until the upload lands."""

    def __init__(self) -> None:
        self._events: dict[str, tuple[asyncio.Event, int]] = {}

    def enter(self, media_id: str) -> asyncio.Event:
        event, count = self._events.get(media_id, (asyncio.Event(), 0))
        self._events[media_id] = (event, count + 1)
        return event

    def leave(self, media_id: str, event: asyncio.Event) -> None:
        entry = self._events.get(media_id)
        if entry is None or entry[0] is not event:  # already woken by uploaded()
            return
        if entry[1] <= 1:
            del self._events[media_id]
        else:
            self._events[media_id] = (entry[0], entry[1] - 1)

    def uploaded(self, media_id: str) -> None:
        entry = self._events.pop(media_id, None)
        if entry is not None:
            entry[0].set()


class MediaService:
    def __init__(self, server_name: str, max_upload_size: int, store: MediaStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.server_name = server_name
        self.max_upload_size = max_upload_size
        self.store = store
        self.clock = clock
        self._waiters = _UploadWaiters()
        self._thumbnail_slots = asyncio.Semaphore(THUMBNAIL_CONCURRENCY)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def mxc(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    def config(self) -> JsonDict:
        return {"m.upload.size": self.max_upload_size}

    # --- uploads -------------------------------------------------------------------------------

    async def upload(self, user_id: str, chunks: AsyncIterable[bytes], content_type: str | None,
                     upload_name: str | None) -> str:
        """Store the bytes, then the row; returns the new ``mxc://`` URI."""
        stored = await self.store.files.write_stream(chunks, self.max_upload_size)
        media_id = secrets.token_urlsafe(18)
        await self.store.insert_uploaded(MediaRecord(
            media_id, user_id, content_type, upload_name, stored.size, stored.sha256,
            self._now_ms(), None,
        ))
        return self.mxc(media_id)

    async def create(self, user_id: str) -> tuple[str, int]:
        """Reserve an ``mxc://`` URI for a later upload: (content_uri, unused_expires_at)."""
        now = self._now_ms()
        expires_at = now + UNUSED_EXPIRY_MS
        media_id = secrets.token_urlsafe(18)
        if not await self.store.create_pending(media_id, user_id, now, expires_at,
                                               MAX_PENDING_UPLOADS):
            raise MatrixError(429, Codes.LIMIT_EXCEEDED,
                              f"You may have at most {MAX_PENDING_UPLOADS} pending uploads")
        return self.mxc(media_id), expires_at

    async def upload_to(self, user_id: str, server_name: str, media_id: str,
                        chunks: AsyncIterable[bytes], content_type: str | None,
                        upload_name: str | None) -> None:
        """Upload to a reserved URI: only its creator, only once, only before it expires.
        The checks run before the body is read."""
        record = await self._local_record(server_name, media_id)
        if record.sha256 is None and self._expired(record):
            raise MatrixError(404, Codes.NOT_FOUND, "This media ID has expired")
        if record.user_id != user_id:
            raise MatrixError(403, Codes.FORBIDDEN, "You did not create this media ID")
        if record.sha256 is not None:
            raise MatrixError(409, Codes.CANNOT_OVERWRITE_MEDIA, "Media already uploaded")
        stored = await self.store.files.write_stream(chunks, self.max_upload_size)
        if not await self.store.complete_pending(media_id, content_type, upload_name, stored):
            # Another upload to the same id finished first (or the id was dropped meanwhile).
            if await self.store.get(media_id) is None:
                raise MatrixError(404, Codes.NOT_FOUND, "This media ID has expired")
            raise MatrixError(409, Codes.CANNOT_OVERWRITE_MEDIA, "Media already uploaded")
        self._waiters.uploaded(media_id)

    # --- downloads -----------------------------------------------------------------------------

    async def download(self, server_name: str, media_id: str, timeout_ms: int) -> MediaFile:
        record = await self._available(server_name, media_id, timeout_ms)
        assert record.sha256 is not None and record.size is not None
        return MediaFile(self._existing(record.sha256), record.content_type
                         or "application/octet-stream", record.upload_name, record.size)

    async def thumbnail(self, server_name: str, media_id: str, width: int, height: int,
                        method: str, timeout_ms: int) -> MediaFile:
        """A thumbnail made earlier for the same request, or a new one (cached)."""
        record = await self._available(server_name, media_id, timeout_ms)
        assert record.sha256 is not None and record.size is not None
        if not can_thumbnail(record.content_type):
            raise cannot_thumbnail()
        thumb = await self.store.get_thumbnail(media_id, width, height, method)
        if thumb is None:
            thumb = await self._generate(record, width, height, method)
        ext = THUMBNAIL_EXTENSIONS.get(thumb.content_type, "png")
        return MediaFile(self._existing(thumb.sha256), thumb.content_type, f"thumbnail.{ext}",
                         thumb.size)

    async def _generate(self, record: MediaRecord, width: int, height: int,
                        method: str) -> ThumbnailRecord:
        assert record.sha256 is not None and record.size is not None
        source = self._existing(record.sha256)
        async with self._thumbnail_slots:
            loop = asyncio.get_running_loop()
            made = await loop.run_in_executor(None, make_thumbnail, source, width, height, method)
        if made.data is None:  # the original is small enough: it is its own thumbnail
            stored = StoredFile(record.sha256, record.size)
        else:
            stored = await self.store.files.write_bytes(made.data)
        thumb = ThumbnailRecord(made.content_type, stored.sha256, stored.size)
        await self.store.insert_thumbnail(record.media_id, width, height, method, thumb)
        return thumb

    # --- helpers -------------------------------------------------------------------------------

    def _expired(self, record: MediaRecord) -> bool:
        return record.unused_expires_at is not None and record.unused_expires_at <= self._now_ms()

    def _existing(self, sha256: str) -> Path:
        path = self.store.files.path(sha256)
        if not path.is_file():
            raise MatrixError(404, Codes.NOT_FOUND, "The media's file is missing on this server")
        return path

    async def _local_record(self, server_name: str, media_id: str) -> MediaRecord:
        if server_name != self.server_name:
            raise MatrixError(404, Codes.NOT_FOUND,
                              f"Remote media ({server_name}) is not available: this server "
                              "does not federate yet")
        record = await self.store.get(media_id) if MEDIA_ID_RE.match(media_id) else None
        if record is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Unknown media ID")
        return record

    async def _available(self, server_name: str, media_id: str, timeout_ms: int) -> MediaRecord:
        """The uploaded record, waiting up to ``timeout_ms`` (capped) for a pending upload;
        404 M_NOT_FOUND for unknown or expired ids, 504 M_NOT_YET_UPLOADED on timeout."""
        record = await self._local_record(server_name, media_id)
        if record.sha256 is not None:
            return record
        event = self._waiters.enter(media_id)
        try:
            # Re-read after registering, so an upload landing in between is not missed.
            deadline = min(max(timeout_ms, 0), MAX_TIMEOUT_MS) / 1000
            while True:
                latest = await self.store.get(media_id)
                if latest is None or (latest.sha256 is None and self._expired(latest)):
                    raise MatrixError(404, Codes.NOT_FOUND, "Unknown media ID")
                if latest.sha256 is not None:
                    return latest
                if event.is_set() or deadline <= 0:
                    break
                try:
                    await asyncio.wait_for(event.wait(), deadline)
                except TimeoutError:
                    break
                deadline = 0  # woken: read once more, then give up
        finally:
            self._waiters.leave(media_id, event)
        raise MatrixError(504, Codes.NOT_YET_UPLOADED, "Content has not yet been uploaded")
