"""Client config (account data, global and per room) and room tagging.

https://spec.matrix.org/v1.19/client-server-api/#client-config
https://spec.matrix.org/v1.19/client-server-api/#room-tagging

Tags are the ``m.tag`` room account data, so /sync delivers them like any other. Every write
takes a stream position through :meth:`EventService.run_write`, which wakes waiting /sync
requests. ``room_id`` is ``""`` for global account data.
"""

import aiosqlite

from edgehs.service.events import EventService
from edgehs.store.account_data import AccountDataStore, put_account_data, update_room_tag
from edgehs.types import JsonDict


class AccountDataService:
    def __init__(self, events: EventService, store: AccountDataStore) -> None:
        self.events = events
        self.store = store

    async def get(self, user_id: str, room_id: str, data_type: str) -> JsonDict | None:
        """The content of one account data type, or None if it was never set."""
        return await self.store.get(user_id, room_id, data_type)

    async def put(self, user_id: str, room_id: str, data_type: str, content: JsonDict) -> None:
        """Replace one account data type's content."""

        async def write(conn: aiosqlite.Connection, pos: int) -> None:
            await put_account_data(conn, pos, user_id, room_id, data_type, content)
        await self.events.run_write(write)

    async def get_tags(self, user_id: str, room_id: str) -> JsonDict:
        """tag -> tag content, from the room's ``m.tag`` account data ({} if none)."""
        content = await self.store.get(user_id, room_id, "m.tag")
        tags = (content or {}).get("tags")
        return tags if isinstance(tags, dict) else {}

    async def set_tag(self, user_id: str, room_id: str, tag: str, content: JsonDict) -> None:
        """Add or replace one tag (read and rewritten in the write's own transaction)."""

        async def write(conn: aiosqlite.Connection, pos: int) -> None:
            await update_room_tag(conn, pos, user_id, room_id, tag, content)
        await self.events.run_write(write)

    async def remove_tag(self, user_id: str, room_id: str, tag: str) -> None:
        """Remove one tag; nothing is written (no stream position taken) if it is not set."""
        if tag not in await self.get_tags(user_id, room_id):
            return

        async def write(conn: aiosqlite.Connection, pos: int) -> None:
            await update_room_tag(conn, pos, user_id, room_id, tag, None)
        await self.events.run_write(write)
