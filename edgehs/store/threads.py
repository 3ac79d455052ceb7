"""Thread roots of a room, newest reply first, for GET /threads.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidthreads

Reads the ``event_relations`` index of migration 0001 (rel_type ``m.thread``); nothing is stored
for threads beyond it.
"""

from dataclasses import dataclass

from edgehs.store.db import Database

# One row a thread: its root and the stream position of its newest visible reply. Replies that
# are redacted, rejected, outliers or in another room do not count. ``participated`` keeps
# threads whose root or a reply the user sent (spec: "current_user_participated").
THREAD_ROOTS = """
SELECT r.relates_to_id AS root, MAX(e.stream_ordering) AS latest
FROM event_relations r
JOIN events e ON e.event_id = r.event_id
JOIN events root ON root.event_id = r.relates_to_id AND root.room_id = r.room_id
WHERE r.room_id = ? AND r.rel_type = 'm.thread'
  AND e.outlier = 0 AND e.rejected_reason IS NULL AND e.soft_failed = 0
  AND e.stream_ordering <= ?
  AND root.outlier = 0 AND root.rejected_reason IS NULL AND root.soft_failed = 0
  AND root.stream_ordering <= ?
  AND NOT EXISTS (SELECT 1 FROM applied_redactions d WHERE d.redacts = e.event_id)
GROUP BY r.relates_to_id
HAVING latest < ? {participated}
ORDER BY latest DESC
LIMIT ?
"""
PARTICIPATED = """AND (MAX(root.sender) = ? OR SUM(e.sender = ?) > 0)"""


@dataclass(frozen=True)
class ThreadRoot:
    root_id: str
    latest: int  # stream position of the newest reply


class ThreadStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_thread_roots(self, room_id: str, *, until: int, before: int, limit: int,
                               participant: str | None) -> list[ThreadRoot]:
        """Threads whose newest reply (at or before ``until``) is before ``before``."""
        sql = THREAD_ROOTS.format(participated=PARTICIPATED if participant else "")
        params: list[object] = [room_id, until, until, before]
        if participant:
            params += [participant, participant]
        rows = await self.db.fetchall(sql, [*params, limit])
        return [ThreadRoot(r[0], int(r[1])) for r in rows]
