"""The application services' published room directories (migration 0019)."""

import aiosqlite

from edgehs.store.db import Database


class AppServiceRoomListStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def set_published(self, appservice_id: str, network_id: str, room_id: str,
                            published: bool) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            if published:
                await conn.execute(
                    "INSERT OR IGNORE INTO appservice_room_list (appservice_id, network_id, "
                    "room_id) VALUES (?, ?, ?)", (appservice_id, network_id, room_id))
            else:
                await conn.execute(
                    "DELETE FROM appservice_room_list WHERE appservice_id = ? "
                    "AND network_id = ? AND room_id = ?", (appservice_id, network_id, room_id))
        await self.db.write(run)

    async def get_room_ids(self, appservice_id: str, network_id: str) -> list[str]:
        """The rooms published in one service's directory of one network."""
        rows = await self.db.fetchall(
            "SELECT room_id FROM appservice_room_list WHERE appservice_id = ? "
            "AND network_id = ? ORDER BY room_id", (appservice_id, network_id))
        return [r[0] for r in rows]

    async def get_all_room_ids(self) -> list[str]:
        """The rooms published in any service's directory."""
        rows = await self.db.fetchall(
            "SELECT DISTINCT room_id FROM appservice_room_list ORDER BY room_id")
        return [r[0] for r in rows]
