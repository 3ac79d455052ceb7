"""Account data (global and per room, including room tags), receipts, filters and the extended
profile fields."""

import json
from collections.abc import Sequence
from typing import Any

import aiosqlite

from edgehs.store.db import Database
from edgehs.types import JsonDict

# (receipt_type, user_id, thread_id, event_id, ts)
ReceiptRow = tuple[str, str, str, str, int]


class AccountDataStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: str, room_id: str, data_type: str) -> JsonDict | None:
        value = await self.db.fetchval(
            "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
            (user_id, room_id, data_type),
        )
        return None if value is None else dict(json.loads(value))

    async def get_changed(self, user_id: str, after: int) -> dict[str, dict[str, JsonDict]]:
        """room_id ('' = global) -> type -> content, for everything changed after ``after``."""
        rows = await self.db.fetchall(
            "SELECT room_id, type, content FROM account_data WHERE user_id = ? AND stream_id > ?",
            (user_id, after),
        )
        out: dict[str, dict[str, JsonDict]] = {}
        for room_id, data_type, content in rows:
            out.setdefault(room_id, {})[data_type] = json.loads(content)
        return out


async def put_account_data(conn: aiosqlite.Connection, pos: int, user_id: str, room_id: str,
                           data_type: str, content: JsonDict) -> None:
    await conn.execute(
        "INSERT INTO account_data VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, room_id, type) "
        "DO UPDATE SET content = excluded.content, stream_id = excluded.stream_id",
        (user_id, room_id, data_type, json.dumps(content), pos),
    )


async def update_room_tag(conn: aiosqlite.Connection, pos: int, user_id: str, room_id: str,
                          tag: str, content: JsonDict | None) -> None:
    """Set (``content``) or remove (None) one tag in the room's ``m.tag`` account data, read and
    rewritten in the same transaction so concurrent tag changes do not lose each other."""
    async with conn.execute(
        "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = 'm.tag'",
        (user_id, room_id),
    ) as cur:
        row = await cur.fetchone()
    current = json.loads(row[0]).get("tags") if row is not None else None
    tags = dict(current) if isinstance(current, dict) else {}
    if content is None:
        tags.pop(tag, None)
    else:
        tags[tag] = content
    await put_account_data(conn, pos, user_id, room_id, "m.tag", {"tags": tags})


class ReceiptStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_changed(self, room_ids: Sequence[str], after: int) -> dict[str, list[ReceiptRow]]:
        """room_id -> [(receipt_type, user_id, thread_id, event_id, ts)] changed after ``after``
        (all of them when ``after`` is 0)."""
        if not room_ids:
            return {}
        rows = await self.db.fetchall(
            "SELECT room_id, receipt_type, user_id, thread_id, event_id, ts FROM receipts "
            f"WHERE stream_id > ? AND room_id IN ({','.join('?' * len(room_ids))})",
            [after, *room_ids],
        )
        out: dict[str, list[ReceiptRow]] = {}
        for r in rows:
            out.setdefault(r[0], []).append((r[1], r[2], r[3], r[4], r[5]))
        return out

    async def public_changes(self, after: int, upto: int
                             ) -> list[tuple[int, str, str, str, str, int]]:
        """The public (m.read) receipts written after stream position ``after`` up to
        ``upto``, in position order: (position, room_id, user_id, thread_id, event_id, ts)."""
        rows = await self.db.fetchall(
            "SELECT stream_id, room_id, user_id, thread_id, event_id, ts FROM receipts "
            "WHERE stream_id > ? AND stream_id <= ? AND receipt_type = 'm.read' "
            "ORDER BY stream_id", (after, upto),
        )
        return [(int(r[0]), r[1], r[2], r[3], r[4], int(r[5])) for r in rows]

    async def get_receipt(self, room_id: str, receipt_type: str, user_id: str,
                          thread_id: str) -> str | None:
        """The event id of one receipt (thread_id '' = unthreaded)."""
        value = await self.db.fetchval(
            "SELECT event_id FROM receipts WHERE room_id = ? AND receipt_type = ? "
            "AND user_id = ? AND thread_id = ?",
            (room_id, receipt_type, user_id, thread_id),
        )
        return None if value is None else str(value)

    async def get_read_position(self, room_id: str, user_id: str) -> str | None:
        """The event id of the user's newest read receipt (public or private) in the room."""
        value = await self.db.fetchval(
            "SELECT r.event_id FROM receipts r JOIN events e ON e.event_id = r.event_id "
            "WHERE r.room_id = ? AND r.user_id = ? AND r.receipt_type IN ('m.read', "
            "'m.read.private') ORDER BY e.stream_ordering DESC LIMIT 1",
            (room_id, user_id),
        )
        return None if value is None else str(value)


async def put_receipt(conn: aiosqlite.Connection, pos: int, room_id: str, receipt_type: str,
                      user_id: str, thread_id: str, event_id: str, ts: int) -> None:
    await conn.execute(
        "INSERT INTO receipts VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE SET "
        "event_id = excluded.event_id, ts = excluded.ts, stream_id = excluded.stream_id",
        (room_id, receipt_type, user_id, thread_id, event_id, ts, pos),
    )


class FilterStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: str, filter_id: int) -> JsonDict | None:
        value = await self.db.fetchval(
            "SELECT json FROM filters WHERE user_id = ? AND filter_id = ?", (user_id, filter_id)
        )
        return None if value is None else dict(json.loads(value))

    async def add(self, user_id: str, definition: JsonDict) -> int:
        async def run(conn: aiosqlite.Connection) -> int:
            async with conn.execute(
                "SELECT COALESCE(MAX(filter_id), -1) + 1 FROM filters WHERE user_id = ?",
                (user_id,),
            ) as cur:
                row = await cur.fetchone()
            assert row is not None
            await conn.execute("INSERT INTO filters VALUES (?, ?, ?)",
                               (user_id, row[0], json.dumps(definition)))
            return int(row[0])
        return await self.db.write(run)


class ProfileFieldStore:
    """Extended profile fields (spec v1.16+), one JSON value per key. ``displayname`` and
    ``avatar_url`` live in the users table, where room membership events read them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_all(self, user_id: str) -> dict[str, Any]:
        rows = await self.db.fetchall(
            "SELECT key, value FROM profile_fields WHERE user_id = ? ORDER BY key", (user_id,)
        )
        return {r[0]: json.loads(r[1]) for r in rows}

    async def set(self, user_id: str, key: str, value: Any) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO profile_fields VALUES (?, ?, ?) ON CONFLICT (user_id, key) "
                "DO UPDATE SET value = excluded.value",
                (user_id, key, json.dumps(value)),
            )
        await self.db.write(run)

    async def delete(self, user_id: str, key: str) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute("DELETE FROM profile_fields WHERE user_id = ? AND key = ?",
                               (user_id, key))
        await self.db.write(run)
