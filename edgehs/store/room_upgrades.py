"""Writes of a room upgrade beside the new room's events (run inside its transaction).

https://spec.matrix.org/v1.19/client-server-api/#server-behaviour-19
"""

import aiosqlite


async def move_room_listing(conn: aiosqlite.Connection, old_room: str, new_room: str) -> None:
    """Point the old room's local aliases at the new room and move its published room
    directory entry there (the old room leaves the directory)."""
    await conn.execute("UPDATE room_aliases SET room_id = ? WHERE room_id = ?",
                       (new_room, old_room))
    await conn.execute(
        "UPDATE rooms SET is_public = (SELECT is_public FROM rooms WHERE room_id = ?) "
        "WHERE room_id = ?", (old_room, new_room))
    await conn.execute("UPDATE rooms SET is_public = 0 WHERE room_id = ?", (old_room,))
