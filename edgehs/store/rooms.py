"""Rooms, aliases and the room directory."""

import json
from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

from edgehs.store.db import Database


class RoomStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._versions: dict[str, str] = {}

    async def get_room_version_id(self, room_id: str) -> str | None:
        cached = self._versions.get(room_id)
        if cached is not None:
            return cached
        value = await self.db.fetchval("SELECT room_version FROM rooms WHERE room_id = ?",
                                       (room_id,))
        if value is not None:
            self._versions[room_id] = str(value)
        return None if value is None else str(value)

    async def get_room(self, room_id: str) -> dict[str, object] | None:
        row = await self.db.fetchone("SELECT * FROM rooms WHERE room_id = ?", (room_id,))
        return None if row is None else dict(row)

    async def get_public_room_ids(self) -> list[str]:
        rows = await self.db.fetchall(
            "SELECT room_id FROM rooms WHERE is_public = 1 ORDER BY created_ts"
        )
        return [r[0] for r in rows]

    async def set_visibility(self, room_id: str, public: bool) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            await set_room_visibility(conn, room_id, public)
        await self.db.write(run)

    async def get_alias(self, alias: str) -> tuple[str, str] | None:
        """(room_id, creator) for a local alias."""
        row = await self.db.fetchone(
            "SELECT room_id, creator FROM room_aliases WHERE alias = ?", (alias,)
        )
        return None if row is None else (row[0], row[1])

    async def get_aliases_for_room(self, room_id: str) -> list[str]:
        rows = await self.db.fetchall(
            "SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias", (room_id,)
        )
        return [r[0] for r in rows]

    async def create_alias(self, alias: str, room_id: str, creator: str) -> bool:
        """False if the alias is taken."""
        async def run(conn: aiosqlite.Connection) -> bool:
            return await insert_alias(conn, alias, room_id, creator)
        return await self.db.write(run)

    async def delete_alias(self, alias: str) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute("DELETE FROM room_aliases WHERE alias = ?", (alias,))
        await self.db.write(run)


async def insert_room(
    conn: aiosqlite.Connection, room_id: str, version: str, creator: str, ts: int
) -> None:
    await conn.execute(
        "INSERT INTO rooms (room_id, room_version, creator, is_public, created_ts) "
        "VALUES (?, ?, ?, 0, ?)",
        (room_id, version, creator, ts),
    )


async def insert_alias(conn: aiosqlite.Connection, alias: str, room_id: str, creator: str) -> bool:
    """False if the alias is taken."""
    async with conn.execute(
        "INSERT OR IGNORE INTO room_aliases VALUES (?, ?, ?)", (alias, room_id, creator)
    ) as cur:
        return cur.rowcount == 1


async def set_room_visibility(conn: aiosqlite.Connection, room_id: str, public: bool) -> None:
    await conn.execute("UPDATE rooms SET is_public = ? WHERE room_id = ?", (int(public), room_id))


@dataclass(frozen=True)
class RoomMemberSummary:
    joined: int
    invited: int
    heroes: list[str]  # up to 5 other members, in the order they became members
    named: bool  # a non-empty m.room.name or m.room.canonical_alias is set


# One statement for the /sync room summary: the join and invite counts, up to ``limit`` other
# members (joined and invited ones first, then those who left or were banned, each in the stream
# order of their last membership change) and the room's name and canonical alias events.
SUMMARY = """
SELECT 'count', membership, COUNT(*), NULL FROM room_memberships
WHERE room_id = ?1 AND membership IN ('join', 'invite') GROUP BY membership
UNION ALL
SELECT * FROM (
    SELECT 'hero', membership, stream_ordering, user_id FROM room_memberships
    WHERE room_id = ?1 AND user_id != ?2 AND membership IN ('join', 'invite', 'leave', 'ban')
    ORDER BY membership NOT IN ('join', 'invite'), stream_ordering, user_id LIMIT ?3
)
UNION ALL
SELECT 'name', cs.type, NULL, e.json FROM current_state cs JOIN events e ON e.event_id = cs.event_id
WHERE cs.room_id = ?1 AND cs.type IN ('m.room.name', 'm.room.canonical_alias')
  AND cs.state_key = ''
"""


class MemberStore:
    """Who is in which room, from the membership index kept beside current_state."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # (room_id, user_id) -> (membership, event_id); every send asks it. Kept in step by
        # the event write path (note_membership) after each commit.
        self._cache: dict[tuple[str, str], tuple[str, str]] = {}
        # room_id -> its joined members, for rooms asked about (the appservice pusher asks for
        # every event); kept in step by note_membership too. ``_writes`` counts the membership
        # changes, so a load that raced with one is not cached.
        self._joined: dict[str, frozenset[str]] = {}
        self._writes = 0

    async def get_membership(self, room_id: str, user_id: str) -> tuple[str, str] | None:
        """(membership, event_id) of the user's current member event."""
        cached = self._cache.get((room_id, user_id))
        if cached is not None:
            return cached
        writes = self._writes
        row = await self.db.fetchone(
            "SELECT membership, event_id FROM room_memberships WHERE room_id = ? AND user_id = ?",
            (room_id, user_id),
        )
        if row is None:
            return None
        # A membership noted while the row was read is newer than the row: keep that one.
        if writes == self._writes:
            if len(self._cache) > 20000:
                self._cache.clear()
            self._cache[(room_id, user_id)] = (row[0], row[1])
        return (row[0], row[1])

    def note_membership(self, room_id: str, user_id: str, membership: str, event_id: str) -> None:
        """Called after a member event became current state."""
        self._cache[(room_id, user_id)] = (membership, event_id)
        self._writes += 1
        joined = self._joined.get(room_id)
        if joined is not None and (membership == "join") != (user_id in joined):
            self._joined[room_id] = (joined | {user_id} if membership == "join"
                                     else joined - {user_id})

    async def get_joined(self, room_id: str) -> frozenset[str]:
        """The room's joined members, from memory after the first call for the room."""
        joined = self._joined.get(room_id)
        if joined is not None:
            return joined
        writes = self._writes
        joined = frozenset(await self.get_members(room_id, "join"))
        if writes == self._writes:
            if len(self._joined) > 1000:
                self._joined.clear()
            self._joined[room_id] = joined
        return joined

    async def get_rooms_for_user(
        self, user_id: str, memberships: Sequence[str] = ("join",)
    ) -> dict[str, tuple[str, str, int]]:
        """room_id -> (membership, event_id, stream_ordering), forgotten rooms left out. The
        position is that of the event which last changed the membership (store.state)."""
        rows = await self.db.fetchall(
            "SELECT room_id, membership, event_id, stream_ordering FROM room_memberships "
            f"WHERE user_id = ? AND forgotten = 0 AND membership IN "
            f"({','.join('?' * len(memberships))})",
            [user_id, *memberships],
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    async def get_members(self, room_id: str, membership: str | None = "join") -> dict[str, str]:
        """user_id -> membership."""
        sql = "SELECT user_id, membership FROM room_memberships WHERE room_id = ?"
        params: list[str] = [room_id]
        if membership is not None:
            sql += " AND membership = ?"
            params.append(membership)
        return {r[0]: r[1] for r in await self.db.fetchall(sql, params)}

    async def count_members(self, room_id: str, membership: str) -> int:
        return int(await self.db.fetchval(
            "SELECT COUNT(*) FROM room_memberships WHERE room_id = ? AND membership = ?",
            (room_id, membership),
        ))

    async def summary(self, room_id: str, user_id: str, limit: int = 5) -> RoomMemberSummary:
        """The /sync room summary's member counts and heroes (one statement)."""
        counts: dict[str, int] = {}
        others: list[tuple[bool, int, str, str]] = []
        named = False
        for kind, a, b, c in await self.db.fetchall(SUMMARY, (room_id, user_id, limit)):
            if kind == "count":
                counts[str(a)] = int(b)
            elif kind == "hero":
                others.append((a not in ("join", "invite"), int(b), str(c), str(a)))
            else:
                content = json.loads(c).get("content")
                key = "name" if a == "m.room.name" else "alias"
                named = named or (isinstance(content, dict) and bool(content.get(key)))
        others.sort()
        # Joined and invited members when there are any, else those who left or were banned.
        current = [o[2] for o in others if o[3] in ("join", "invite")]
        heroes = current if current else [o[2] for o in others]
        return RoomMemberSummary(counts.get("join", 0), counts.get("invite", 0), heroes, named)

    async def forget(self, room_id: str, user_id: str) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "UPDATE room_memberships SET forgotten = 1 WHERE room_id = ? AND user_id = ?",
                (room_id, user_id),
            )
        await self.db.write(run)
