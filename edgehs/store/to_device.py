"""The to-device inbox of local devices and the transaction ids of /sendToDevice.

https://spec.matrix.org/v1.19/client-server-api/#send-to-device-messaging

Positions come from ``device_inbox.stream_id`` (AUTOINCREMENT): the to-device stream, the third
part of the /sync token. Only the single writer inserts, so commit order is position order.
"""

import json
from dataclasses import dataclass

import aiosqlite

from edgehs.store.db import Database
from edgehs.types import JsonDict

TXN_KEEP_MS = 24 * 3600 * 1000  # how long a transaction id is remembered


@dataclass(frozen=True)
class ToDeviceMessage:
    stream_id: int
    sender: str
    type: str
    content: JsonDict

    def to_event(self) -> JsonDict:
        """The message as /sync's ``to_device.events`` carries it."""
        return {"sender": self.sender, "type": self.type, "content": self.content}


async def claim_txn(conn: aiosqlite.Connection, sender: str, device_id: str, txn_id: str,
                    now_ms: int) -> bool:
    """Inside the send's transaction: remember the transaction id; False if it was seen
    before (the messages were sent then). Forgets ids older than a day."""
    await conn.execute("DELETE FROM to_device_txns WHERE created_ts < ?",
                       (now_ms - TXN_KEEP_MS,))
    async with conn.execute(
        "INSERT OR IGNORE INTO to_device_txns (sender, device_id, txn_id, created_ts) "
        "VALUES (?, ?, ?, ?)", (sender, device_id, txn_id, now_ms),
    ) as cur:
        return cur.rowcount == 1


async def existing_devices(conn: aiosqlite.Connection, user_id: str, device_id: str
                           ) -> list[str]:
    """The devices ``device_id`` names for ``user_id``: all of them for ``*``, else that one if
    it exists (unknown devices are dropped silently, as the spec allows)."""
    if device_id == "*":
        rows = await conn.execute_fetchall(
            "SELECT device_id FROM devices WHERE user_id = ? ORDER BY device_id", (user_id,)
        )
    else:
        rows = await conn.execute_fetchall(
            "SELECT device_id FROM devices WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        )
    return [r[0] for r in rows]


async def insert_messages(conn: aiosqlite.Connection, user_id: str, device_ids: list[str],
                          sender: str, event_type: str, content: JsonDict) -> int:
    """Queue one message for each device; returns the last position used (0 if none)."""
    if not device_ids:
        return 0
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    await conn.executemany(
        "INSERT INTO device_inbox (user_id, device_id, sender, type, content) "
        "VALUES (?, ?, ?, ?, ?)",
        [(user_id, d, sender, event_type, text) for d in device_ids],
    )
    async with conn.execute("SELECT MAX(stream_id) FROM device_inbox") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


class ToDeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def current_position(self) -> int:
        """The last position handed out (kept by SQLite even when the rows are gone)."""
        value = await self.db.fetchval(
            "SELECT seq FROM sqlite_sequence WHERE name = 'device_inbox'"
        )
        return int(value or 0)

    async def has_messages_upto(self, user_id: str, device_id: str, upto: int) -> bool:
        row = await self.db.fetchone(
            "SELECT 1 FROM device_inbox WHERE user_id = ? AND device_id = ? AND stream_id <= ? "
            "LIMIT 1", (user_id, device_id, upto),
        )
        return row is not None

    async def delete_upto(self, user_id: str, device_id: str, upto: int) -> None:
        """The device acknowledged every message up to ``upto``."""
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "DELETE FROM device_inbox WHERE user_id = ? AND device_id = ? AND stream_id <= ?",
                (user_id, device_id, upto),
            )
        await self.db.write(run)

    async def get_messages(self, user_id: str, device_id: str, after: int, upto: int,
                           limit: int) -> list[ToDeviceMessage]:
        """The device's messages in (``after``, ``upto``], oldest first, at most ``limit``."""
        rows = await self.db.fetchall(
            "SELECT stream_id, sender, type, content FROM device_inbox WHERE user_id = ? AND "
            "device_id = ? AND stream_id > ? AND stream_id <= ? ORDER BY stream_id LIMIT ?",
            (user_id, device_id, after, upto, limit),
        )
        return [ToDeviceMessage(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    async def count_messages(self, user_id: str, device_id: str) -> int:
        return int(await self.db.fetchval(
            "SELECT COUNT(*) FROM device_inbox WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        ))
