"""The database: one writer connection with group commit, one reader connection, WAL.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``. In WAL mode ``NORMAL`` only syncs at
checkpoints, so a power cut may lose the last commits; ``FULL`` syncs the WAL at every commit, so
a client that got a 200 with an event_id keeps that event. The cost of that fsync on an SD card
is shared by *group commit*: every write is a callable queued to the single writer task, which
runs everything queued so far in ONE transaction (each callable in its own SAVEPOINT, so one
failing write rolls back alone) and commits once.
"""

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

log = logging.getLogger(__name__)
T = TypeVar("T")
Row = sqlite3.Row
WriteFn = Callable[[aiosqlite.Connection], Awaitable[Any]]

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    # Keep the WAL small: fewer SD-card blocks touched, faster start-up.
    "PRAGMA wal_autocheckpoint=1000",
    "PRAGMA cache_size=-4096",
)


class Database:
    """Owns the SQLite connections. Reads go to the reader; writes through ``write()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: list[tuple[WriteFn, asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        try:
            await self.migrate()
            self._reader = await self._connect()
        except BaseException:
            await self._writer.close()
            self._writer = None
            raise
        self._task = asyncio.create_task(self._writer_loop(), name="db-writer")

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        return conn

    async def close(self) -> None:
        if self._task is not None:
            # The writer commits what is queued (and the batch in flight), then returns.
            self._closing = True
            self._wakeup.set()
            await self._task
            self._task = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def migrate(self) -> None:
        """Apply every migrations/NNNN_*.sql not applied yet, each in its own transaction."""
        conn = self._writer
        assert conn is not None
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name TEXT PRIMARY KEY, applied_ts INTEGER)"
        )
        async with conn.execute("SELECT name FROM schema_migrations") as cur:
            done = {row[0] for row in await cur.fetchall()}
        folder = resources.files("edgehs.store") / "migrations"
        for item in sorted(folder.iterdir(), key=lambda p: p.name):
            if not item.name.endswith(".sql") or item.name in done:
                continue
            log.info("applying migration %s", item.name)
            script = item.read_text()
            await conn.executescript(
                "BEGIN;\n" + script + "\nINSERT INTO schema_migrations VALUES "
                f"('{item.name}', strftime('%s','now') * 1000);\nCOMMIT;"
            )

    # --- reads -----------------------------------------------------------------------------

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        # execute_fetchall is one round trip to the connection's thread (execute + fetch +
        # close would be three).
        assert self._reader is not None
        return list(await self._reader.execute_fetchall(sql, tuple(params)))

    async def fetchval(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    # --- writes ----------------------------------------------------------------------------

    async def write(self, fn: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``fn(conn)`` inside a transaction; returns once it is durably committed."""
        if self._closing:
            raise RuntimeError("the database is closing")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, fut))
        self._wakeup.set()
        return await fut

    async def _writer_loop(self) -> None:
        conn = self._writer
        assert conn is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            if batch:
                await self._run_batch(conn, batch)
                self._wakeup.set()  # look again: more may have been queued meanwhile
            elif self._closing:
                return

    async def _run_batch(
        self, conn: aiosqlite.Connection, batch: list[tuple[WriteFn, asyncio.Future[Any]]]
    ) -> None:
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        # A lone write needs no savepoint: if it fails the whole transaction rolls back.
        isolate = len(batch) > 1
        try:
            await conn.execute("BEGIN IMMEDIATE")
            for fn, fut in batch:
                if isolate:
                    await conn.execute("SAVEPOINT w")
                try:
                    value = await fn(conn)
                except Exception as exc:  # handed to the waiting caller
                    if not isolate:
                        await conn.execute("ROLLBACK")
                        if not fut.done():
                            fut.set_exception(exc)
                        return
                    await conn.execute("ROLLBACK TO w")
                    await conn.execute("RELEASE w")
                    results.append((fut, False, exc))
                else:
                    if isolate:
                        await conn.execute("RELEASE w")
                    results.append((fut, True, value))
            await conn.execute("COMMIT")
        except Exception as exc:  # the commit itself failed: nothing of the batch is durable
            log.exception("database commit failed")
            with contextlib.suppress(sqlite3.Error):
                await conn.execute("ROLLBACK")
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for fut, ok, value in results:
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
