"""Server-side key backups: backup versions and the session keys stored in them (migration 0010).

https://spec.matrix.org/v1.19/client-server-api/#server-side-key-backups

Reads go through :class:`RoomKeyStore`; writes are functions taking the connection of the
caller's transaction, so that checking the current version, storing keys and bumping the etag
happen in one commit.
"""

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from edgehs.store.db import Database
from edgehs.types import JsonDict


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class BackupVersion:
    version: int
    algorithm: str
    auth_data: JsonDict
    etag: int
    deleted: bool


@dataclass(frozen=True)
class BackedUpKey:
    """One session's key data as stored (and as the client uploaded it)."""

    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: JsonDict

    def to_json(self) -> JsonDict:
        return {"first_message_index": self.first_message_index,
                "forwarded_count": self.forwarded_count, "is_verified": self.is_verified,
                "session_data": self.session_data}


VERSION_COLUMNS = "version, algorithm, auth_data, etag, deleted"


def _version(row: Any) -> BackupVersion:
    return BackupVersion(int(row[0]), row[1], json.loads(row[2]), int(row[3]), bool(row[4]))


def _key(row: Any) -> BackedUpKey:
    return BackedUpKey(int(row[0]), int(row[1]), bool(row[2]), json.loads(row[3]))


KEY_COLUMNS = "first_message_index, forwarded_count, is_verified, session_data"


# --- reads inside a write transaction ------------------------------------------------------------

async def get_version_in(conn: aiosqlite.Connection, user_id: str, version: int | None
                         ) -> BackupVersion | None:
    """The version (deleted ones included), or with None the current one (never deleted)."""
    if version is None:
        sql = (f"SELECT {VERSION_COLUMNS} FROM room_key_backup_versions WHERE user_id = ? "
               "AND deleted = 0 ORDER BY version DESC LIMIT 1")
        params: tuple[Any, ...] = (user_id,)
    else:
        sql = (f"SELECT {VERSION_COLUMNS} FROM room_key_backup_versions WHERE user_id = ? "
               "AND version = ?")
        params = (user_id, version)
    async with conn.execute(sql, params) as cur:
        row = await cur.fetchone()
    return None if row is None else _version(row)


async def get_key_in(conn: aiosqlite.Connection, user_id: str, version: int, room_id: str,
                     session_id: str) -> BackedUpKey | None:
    async with conn.execute(
        f"SELECT {KEY_COLUMNS} FROM room_key_backup_sessions WHERE user_id = ? AND version = ? "
        "AND room_id = ? AND session_id = ?", (user_id, version, room_id, session_id),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else _key(row)


async def count_keys_in(conn: aiosqlite.Connection, user_id: str, version: int) -> int:
    async with conn.execute(
        "SELECT COUNT(*) FROM room_key_backup_sessions WHERE user_id = ? AND version = ?",
        (user_id, version),
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


# --- writes --------------------------------------------------------------------------------------

async def create_version(conn: aiosqlite.Connection, user_id: str, algorithm: str,
                         auth_data: JsonDict) -> int:
    """A new backup version, one above the user's highest (deleted ones included)."""
    async with conn.execute(
        "SELECT COALESCE(MAX(version), 0) FROM room_key_backup_versions WHERE user_id = ?",
        (user_id,),
    ) as cur:
        row = await cur.fetchone()
    version = (int(row[0]) if row else 0) + 1
    await conn.execute(
        "INSERT INTO room_key_backup_versions (user_id, version, algorithm, auth_data) "
        "VALUES (?, ?, ?, ?)", (user_id, version, algorithm, _dumps(auth_data)),
    )
    return version


async def update_auth_data(conn: aiosqlite.Connection, user_id: str, version: int,
                           auth_data: JsonDict) -> None:
    await conn.execute(
        "UPDATE room_key_backup_versions SET auth_data = ? WHERE user_id = ? AND version = ?",
        (_dumps(auth_data), user_id, version),
    )


async def delete_version(conn: aiosqlite.Connection, user_id: str, version: int) -> None:
    """Mark the version deleted and drop its keys (the row stays: versions are not reused)."""
    await conn.execute(
        "DELETE FROM room_key_backup_sessions WHERE user_id = ? AND version = ?",
        (user_id, version),
    )
    await conn.execute(
        "UPDATE room_key_backup_versions SET deleted = 1 WHERE user_id = ? AND version = ?",
        (user_id, version),
    )


async def put_key(conn: aiosqlite.Connection, user_id: str, version: int, room_id: str,
                  session_id: str, key: BackedUpKey) -> None:
    await conn.execute(
        "INSERT INTO room_key_backup_sessions (user_id, version, room_id, session_id, "
        "first_message_index, forwarded_count, is_verified, session_data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, version, room_id, session_id) "
        "DO UPDATE SET first_message_index = excluded.first_message_index, "
        "forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified, "
        "session_data = excluded.session_data",
        (user_id, version, room_id, session_id, key.first_message_index, key.forwarded_count,
         int(key.is_verified), _dumps(key.session_data)),
    )


async def delete_keys(conn: aiosqlite.Connection, user_id: str, version: int,
                      room_id: str | None, session_id: str | None) -> int:
    """Delete the version's keys (of one room, or one session); the number deleted."""
    sql = "DELETE FROM room_key_backup_sessions WHERE user_id = ? AND version = ?"
    params: list[Any] = [user_id, version]
    if room_id is not None:
        sql += " AND room_id = ?"
        params.append(room_id)
    if session_id is not None:
        sql += " AND session_id = ?"
        params.append(session_id)
    async with conn.execute(sql, params) as cur:
        return int(cur.rowcount)


async def bump_etag(conn: aiosqlite.Connection, user_id: str, version: int) -> None:
    await conn.execute(
        "UPDATE room_key_backup_versions SET etag = etag + 1 WHERE user_id = ? AND version = ?",
        (user_id, version),
    )


# --- reads ---------------------------------------------------------------------------------------

class RoomKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_version(self, user_id: str, version: int | None) -> BackupVersion | None:
        """As :func:`get_version_in`, outside a transaction."""
        if version is None:
            row = await self.db.fetchone(
                f"SELECT {VERSION_COLUMNS} FROM room_key_backup_versions WHERE user_id = ? "
                "AND deleted = 0 ORDER BY version DESC LIMIT 1", (user_id,),
            )
        else:
            row = await self.db.fetchone(
                f"SELECT {VERSION_COLUMNS} FROM room_key_backup_versions WHERE user_id = ? "
                "AND version = ?", (user_id, version),
            )
        return None if row is None else _version(row)

    async def count_keys(self, user_id: str, version: int) -> int:
        return int(await self.db.fetchval(
            "SELECT COUNT(*) FROM room_key_backup_sessions WHERE user_id = ? AND version = ?",
            (user_id, version),
        ))

    async def get_keys(self, user_id: str, version: int, room_id: str | None = None,
                       session_id: str | None = None) -> dict[str, dict[str, BackedUpKey]]:
        """room id -> session id -> key, of the whole version, one room or one session."""
        sql = (f"SELECT room_id, session_id, {KEY_COLUMNS} FROM room_key_backup_sessions "
               "WHERE user_id = ? AND version = ?")
        params: list[Any] = [user_id, version]
        if room_id is not None:
            sql += " AND room_id = ?"
            params.append(room_id)
        if session_id is not None:
            sql += " AND session_id = ?"
            params.append(session_id)
        out: dict[str, dict[str, BackedUpKey]] = {}
        for row in await self.db.fetchall(sql + " ORDER BY room_id, session_id", params):
            out.setdefault(row[0], {})[row[1]] = _key((row[2], row[3], row[4], row[5]))
        return out
