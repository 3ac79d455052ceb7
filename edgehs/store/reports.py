"""Content reports (table ``content_reports``, migration 0012), kept for the admins."""

from dataclasses import dataclass

import aiosqlite

from edgehs.store.db import Database


@dataclass(frozen=True)
class Report:
    reporter: str
    room_id: str | None = None
    event_id: str | None = None
    target_user_id: str | None = None
    reason: str | None = None
    score: int | None = None
    received_ts: int = 0
    id: int = 0


class ReportStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, report: Report) -> int:
        async def run(conn: aiosqlite.Connection) -> int:
            async with conn.execute(
                "INSERT INTO content_reports (reporter, room_id, event_id, target_user_id, "
                "reason, score, received_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (report.reporter, report.room_id, report.event_id, report.target_user_id,
                 report.reason, report.score, report.received_ts),
            ) as cur:
                return int(cur.lastrowid or 0)
        return await self.db.write(run)

    async def list(self, limit: int = 100) -> list[Report]:
        """The newest reports first."""
        rows = await self.db.fetchall(
            "SELECT reporter, room_id, event_id, target_user_id, reason, score, received_ts, id "
            "FROM content_reports ORDER BY id DESC LIMIT ?", (limit,))
        return [Report(*r) for r in rows]
