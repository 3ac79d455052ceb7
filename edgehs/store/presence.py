"""Presence rows: only the states and status messages users set explicitly.

https://spec.matrix.org/v1.19/client-server-api/#presence
"""

from dataclasses import dataclass

import aiosqlite

from edgehs.store.db import Database


@dataclass(frozen=True)
class PresenceRow:
    user_id: str
    presence: str
    status_msg: str | None
    updated_ts: int


# Replace the user's one row (see migrations/0011_presence.sql).
UPSERT = (
    "INSERT INTO presence (user_id, presence, status_msg, updated_ts) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence, "
    "status_msg = excluded.status_msg, updated_ts = excluded.updated_ts"
)

# Everyone who shares a joined room with the user, the user included.
CO_MEMBERS = (
    "SELECT DISTINCT other.user_id FROM room_memberships AS me "
    "JOIN room_memberships AS other ON other.room_id = me.room_id "
    "WHERE me.user_id = ? AND me.membership = 'join' AND other.membership = 'join'"
)


class PresenceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def load_all(self) -> list[PresenceRow]:
        rows = await self.db.fetchall(
            "SELECT user_id, presence, status_msg, updated_ts FROM presence"
        )
        return [PresenceRow(r[0], r[1], r[2], r[3]) for r in rows]

    async def save(self, row: PresenceRow) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute(UPSERT, (row.user_id, row.presence, row.status_msg,
                                        row.updated_ts))

        await self.db.write(run)

    async def co_members(self, user_id: str) -> set[str]:
        """The users sharing a joined room with ``user_id`` (who is one of them when joined
        anywhere)."""
        return {r[0] for r in await self.db.fetchall(CO_MEMBERS, (user_id,))}
