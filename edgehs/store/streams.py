"""The stream positions that order events, account data and receipts.

Live events take increasing positions from :meth:`StreamIdGenerator.next`: a position says when
this server learned of an event, and /sync returns what lies after a token. Backfilled history
and outliers take *negative* positions from :meth:`StreamIdGenerator.next_backfill`, a second,
decreasing counter: they never lie after any /sync token (every token is >= 0), so they never
look new; their place in a room is their depth (topological order, ``store/events.py``).
"""

from edgehs.store.db import Database

# Every table whose rows carry a position of the shared stream.
STREAM_TABLES = (
    ("events", "stream_ordering"),
    ("account_data", "stream_id"),
    ("receipts", "stream_id"),
    ("device_list_changes", "stream_id"),
)


class StreamIdGenerator:
    """Hands out increasing positions, and decreasing negative ones for backfill. Only the
    single writer allocates, inside its transaction, so commit order equals position order."""

    def __init__(self, current: int, backfill_current: int = 0) -> None:
        self.current = current
        # The last negative position handed out (0: none yet).
        self.backfill_current = min(backfill_current, 0)

    @classmethod
    async def load(cls, db: Database) -> "StreamIdGenerator":
        current = 0
        for table, column in STREAM_TABLES:
            value = await db.fetchval(f"SELECT COALESCE(MAX({column}), 0) FROM {table}")
            current = max(current, int(value))
        lowest = await db.fetchval("SELECT COALESCE(MIN(stream_ordering), 0) FROM events")
        return cls(current, int(lowest))

    def next(self) -> int:
        self.current += 1
        return self.current

    def next_backfill(self) -> int:
        """The next position for an outlier, a backfilled, rejected or soft-failed event: below
        every position handed out so far (-1, -2, ...), so that /sync never sees it."""
        self.backfill_current -= 1
        return self.backfill_current
