"""Server-side key backups: versions and the megolm session keys stored in them.

https://spec.matrix.org/v1.19/client-server-api/#server-side-key-backups

The server never reads the keys: ``auth_data`` and ``session_data`` are the client's
(encrypted) objects. What it decides:

1. Versions are opaque strings to clients; here they are the per-user integers "1", "2", ...
   never reused. The current backup is the highest version not deleted.
2. Keys may only be written to the current backup: a write to an older one is
   403 ``M_WRONG_ROOM_KEYS_VERSION`` with ``current_version``; to an unknown or deleted one
   404 ``M_NOT_FOUND``.
3. A session already in the backup is replaced by an upload only when the new key is better
   (:func:`should_replace`).
4. ``etag`` changes whenever the backup's keys change; ``count`` is the number of keys.
"""

from dataclasses import dataclass
from typing import Any

import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.store.db import Database
from edgehs.store.room_keys import (
    BackedUpKey,
    BackupVersion,
    RoomKeyStore,
    bump_etag,
    count_keys_in,
    create_version,
    delete_keys,
    delete_version,
    get_key_in,
    get_version_in,
    put_key,
    update_auth_data,
)
from edgehs.types import JsonDict

# room id -> session id -> key
KeyMap = dict[str, dict[str, BackedUpKey]]


def should_replace(old: BackedUpKey | None, new: BackedUpKey) -> bool:
    """Whether an uploaded key replaces the stored one of the same session (spec, "Server-side
    key backups"): 1. a verified key beats an unverified one; 2. with the same
    ``is_verified``, the lower ``first_message_index`` wins; 3. with both equal, the lower
    ``forwarded_count`` wins. A tie keeps the stored key."""
    if old is None:
        return True
    if old.is_verified != new.is_verified:  # 1
        return new.is_verified
    if old.first_message_index != new.first_message_index:  # 2
        return new.first_message_index < old.first_message_index
    return new.forwarded_count < old.forwarded_count  # 3


def parse_version(raw: str | None) -> int:
    """The version of a path or ``?version=``: a missing one is 400 M_MISSING_PARAM; one this
    server cannot have issued is simply unknown (404)."""
    if raw is None or raw == "":
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing parameter: version")
    if not raw.isdigit() or len(raw) > 18:
        raise MatrixError(404, Codes.NOT_FOUND, f"Unknown backup version {raw!r}")
    return int(raw)


def parse_backup_info(body: JsonDict) -> tuple[str, JsonDict]:
    """``algorithm`` (a non-empty string) and ``auth_data`` (an object) of a version body."""
    for name in ("algorithm", "auth_data"):
        if body.get(name) is None:
            raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameter: {name}")
    algorithm, auth_data = body["algorithm"], body["auth_data"]
    if not isinstance(algorithm, str):
        raise MatrixError(400, Codes.BAD_JSON, "algorithm must be a string")
    if not algorithm:
        raise MatrixError(400, Codes.INVALID_PARAM, "algorithm must not be empty")
    if not isinstance(auth_data, dict):
        raise MatrixError(400, Codes.BAD_JSON, "auth_data must be an object")
    return algorithm, auth_data


def _count(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MatrixError(400, Codes.BAD_JSON, f"{where} must be an integer")
    if value < 0 or value > 2**53:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{where} must be between 0 and 2^53")
    return value


def parse_key_data(raw: Any, where: str) -> BackedUpKey:
    """A KeyBackupData object."""
    if not isinstance(raw, dict):
        raise MatrixError(400, Codes.BAD_JSON, f"{where} must be an object")
    is_verified = raw.get("is_verified")
    if not isinstance(is_verified, bool):
        raise MatrixError(400, Codes.BAD_JSON, f"{where}.is_verified must be a boolean")
    session_data = raw.get("session_data")
    if not isinstance(session_data, dict):
        raise MatrixError(400, Codes.BAD_JSON, f"{where}.session_data must be an object")
    return BackedUpKey(_count(raw.get("first_message_index"), f"{where}.first_message_index"),
                       _count(raw.get("forwarded_count"), f"{where}.forwarded_count"),
                       is_verified, session_data)


def check_room_id(room_id: str) -> str:
    if not room_id.startswith("!") or len(room_id) > 255:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{room_id!r} is not a room id")
    return room_id


def parse_sessions(raw: Any, where: str) -> dict[str, BackedUpKey]:
    """A RoomKeyBackup object: ``{"sessions": {session id: KeyBackupData}}``."""
    if not isinstance(raw, dict):
        raise MatrixError(400, Codes.BAD_JSON, f"{where} must be an object")
    sessions = raw.get("sessions")
    if sessions is None:
        raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameter: {where}.sessions")
    if not isinstance(sessions, dict):
        raise MatrixError(400, Codes.BAD_JSON, f"{where}.sessions must be an object")
    return {sid: parse_key_data(data, f"{where}.sessions[{sid}]")
            for sid, data in sessions.items()}


def parse_rooms(body: JsonDict) -> KeyMap:
    """The body of PUT /room_keys/keys: ``{"rooms": {room id: RoomKeyBackup}}``."""
    rooms = body.get("rooms")
    if rooms is None:
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing parameter: rooms")
    if not isinstance(rooms, dict):
        raise MatrixError(400, Codes.BAD_JSON, "rooms must be an object")
    return {check_room_id(r): parse_sessions(data, f"rooms[{r}]") for r, data in rooms.items()}


@dataclass(frozen=True)
class UpdateResult:
    etag: int
    count: int

    def to_json(self) -> JsonDict:
        return {"etag": str(self.etag), "count": self.count}


def _unknown(version: int) -> MatrixError:
    return MatrixError(404, Codes.NOT_FOUND, f"Unknown backup version {version}")


class RoomKeyService:
    def __init__(self, db: Database, store: RoomKeyStore) -> None:
        self.db = db
        self.store = store

    # --- versions ---------------------------------------------------------------------------

    async def create_version(self, user_id: str, body: JsonDict) -> str:
        algorithm, auth_data = parse_backup_info(body)

        async def run(conn: aiosqlite.Connection) -> int:
            return await create_version(conn, user_id, algorithm, auth_data)
        return str(await self.db.write(run))

    async def get_version(self, user_id: str, raw_version: str | None) -> JsonDict:
        """The current backup (``raw_version`` None) or the named one, with count and etag."""
        if raw_version is None:
            info = await self.store.get_version(user_id, None)
            if info is None:
                raise MatrixError(404, Codes.NOT_FOUND, "No current backup version")
        else:
            info = await self._existing(user_id, parse_version(raw_version))
        return {"algorithm": info.algorithm, "auth_data": info.auth_data,
                "count": await self.store.count_keys(user_id, info.version),
                "etag": str(info.etag), "version": str(info.version)}

    async def update_version(self, user_id: str, raw_version: str, body: JsonDict) -> None:
        """Only ``auth_data`` changes; ``algorithm`` must stay, a ``version`` in the body must
        be the path's."""
        version = parse_version(raw_version)
        algorithm, auth_data = parse_backup_info(body)
        if "version" in body and body["version"] != raw_version:
            raise MatrixError(400, Codes.INVALID_PARAM,
                              "The version in the body does not match the version in the path")

        async def run(conn: aiosqlite.Connection) -> None:
            info = await get_version_in(conn, user_id, version)
            if info is None or info.deleted:
                raise _unknown(version)
            if info.algorithm != algorithm:
                raise MatrixError(400, Codes.INVALID_PARAM, "Algorithm does not match")
            await update_auth_data(conn, user_id, version, auth_data)
        await self.db.write(run)

    async def delete_version(self, user_id: str, raw_version: str) -> None:
        """Delete the backup and its keys; deleting a deleted backup again succeeds."""
        version = parse_version(raw_version)

        async def run(conn: aiosqlite.Connection) -> None:
            info = await get_version_in(conn, user_id, version)
            if info is None:
                raise _unknown(version)
            if not info.deleted:
                await delete_version(conn, user_id, version)
        await self.db.write(run)

    async def _existing(self, user_id: str, version: int) -> BackupVersion:
        info = await self.store.get_version(user_id, version)
        if info is None or info.deleted:
            raise _unknown(version)
        return info

    # --- keys -------------------------------------------------------------------------------

    async def put_keys(self, user_id: str, raw_version: str | None, keys: KeyMap
                       ) -> UpdateResult:
        """Store keys into the current backup, each session only if it beats the stored one."""
        version = parse_version(raw_version)

        async def run(conn: aiosqlite.Connection) -> UpdateResult:
            info = await get_version_in(conn, user_id, version)
            if info is None or info.deleted:
                raise _unknown(version)
            current = await get_version_in(conn, user_id, None)
            if current is None or current.version != version:
                raise MatrixError(
                    403, Codes.WRONG_ROOM_KEYS_VERSION, "Wrong backup version",
                    current_version=None if current is None else str(current.version))
            changed = False
            for room_id, sessions in keys.items():
                for session_id, key in sessions.items():
                    old = await get_key_in(conn, user_id, version, room_id, session_id)
                    if should_replace(old, key):
                        await put_key(conn, user_id, version, room_id, session_id, key)
                        changed = True
            if changed:
                await bump_etag(conn, user_id, version)
            return UpdateResult(info.etag + int(changed),
                                await count_keys_in(conn, user_id, version))
        return await self.db.write(run)

    async def get_keys(self, user_id: str, raw_version: str | None, room_id: str | None = None,
                       session_id: str | None = None) -> KeyMap:
        version = parse_version(raw_version)
        await self._existing(user_id, version)
        return await self.store.get_keys(user_id, version, room_id, session_id)

    async def delete_keys(self, user_id: str, raw_version: str | None,
                          room_id: str | None = None, session_id: str | None = None
                          ) -> UpdateResult:
        version = parse_version(raw_version)

        async def run(conn: aiosqlite.Connection) -> UpdateResult:
            info = await get_version_in(conn, user_id, version)
            if info is None or info.deleted:
                raise _unknown(version)
            deleted = await delete_keys(conn, user_id, version, room_id, session_id)
            if deleted:
                await bump_etag(conn, user_id, version)
            return UpdateResult(info.etag + int(deleted > 0),
                                await count_keys_in(conn, user_id, version))
        return await self.db.write(run)
