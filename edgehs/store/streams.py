"""The one stream position that orders events, account data and receipts."""

from edgehs.store.db import Database

# Every table whose rows carry a position of the shared stream.
STREAM_TABLES = (
    ("events", "stream_ordering"),
    ("account_data", "stream_id"),
    ("receipts", "stream_id"),
    ("device_list_changes", "stream_id"),
)


class StreamIdGenerator:
    """Hands out increasing positions. Only the single writer allocates, inside its
    transaction, so commit order equals position order."""

    def __init__(self, current: int, backfill: int = 0) -> None:
        self.current = current
        # Outliers, backfilled, rejected and soft-failed events take positions below every
        # other (negative, decreasing): they never look new to /sync.
        self.backfill = backfill

    @classmethod
    async def load(cls, db: Database) -> "StreamIdGenerator":
        current = 0
        for table, column in STREAM_TABLES:
            value = await db.fetchval(f"SELECT COALESCE(MAX({column}), 0) FROM {table}")
            current = max(current, int(value))
        lowest = await db.fetchval("SELECT COALESCE(MIN(stream_ordering), 0) FROM events")
        return cls(current, min(int(lowest), 0))

    def next(self) -> int:
        self.current += 1
        return self.current

    def next_backfill(self) -> int:
        self.backfill -= 1
        return self.backfill
