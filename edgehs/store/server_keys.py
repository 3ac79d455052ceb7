"""This server's old verify keys (table ``server_old_verify_keys``, migration 0023)."""

from dataclasses import dataclass

import aiosqlite

from edgehs.store.db import Database


@dataclass(frozen=True)
class OldVerifyKey:
    key_id: str
    verify_key: str  # unpadded base64
    expired_ts: int


class ServerKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_old_key(self, key: OldVerifyKey) -> None:
        """Record a retired key (a key retired twice keeps its first expiry)."""
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT OR IGNORE INTO server_old_verify_keys (key_id, verify_key, expired_ts) "
                "VALUES (?, ?, ?)", (key.key_id, key.verify_key, key.expired_ts))
        await self.db.write(run)

    async def old_keys(self) -> list[OldVerifyKey]:
        rows = await self.db.fetchall(
            "SELECT key_id, verify_key, expired_ts FROM server_old_verify_keys "
            "ORDER BY expired_ts, key_id")
        return [OldVerifyKey(str(r[0]), str(r[1]), int(r[2])) for r in rows]
