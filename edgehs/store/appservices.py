"""Application service registrations added at run time (the legacy register endpoint).

Each row holds the registration in Synapse's format as JSON; it is parsed and validated again
at every start, exactly like a registration file.
"""

import json

import aiosqlite

from edgehs.store.db import Database
from edgehs.types import JsonDict


class AppServiceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_all(self) -> list[tuple[str, JsonDict]]:
        """Every stored registration as (id, registration), oldest first."""
        rows = await self.db.fetchall(
            "SELECT id, registration FROM appservices ORDER BY created_ts, id"
        )
        return [(str(row[0]), json.loads(row[1])) for row in rows]

    async def save(self, as_id: str, as_token: str, registration: JsonDict, ts: int) -> None:
        """Insert the registration, or replace the one stored under ``as_id``."""
        # created_ts is kept on update; updated_ts records the latest re-registration.
        sql = (
            "INSERT INTO appservices (id, as_token, registration, created_ts, updated_ts) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "as_token = excluded.as_token, registration = excluded.registration, "
            "updated_ts = excluded.updated_ts"
        )
        text = json.dumps(registration, sort_keys=True)

        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute(sql, (as_id, as_token, text, ts, ts))
        await self.db.write(run)

    async def delete(self, as_id: str) -> bool:
        """Remove a stored registration; False if there was none."""
        async def run(conn: aiosqlite.Connection) -> bool:
            async with conn.execute("DELETE FROM appservices WHERE id = ?", (as_id,)) as cur:
                return cur.rowcount == 1
        return await self.db.write(run)
