"""Database (group commit, migrations), EventStore and UserStore on a real SQLite file."""

import asyncio
import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from edgehs.store.db import Database
from edgehs.store.event_writes import insert_event, update_forward_extremities
from edgehs.store.events import EventStore
from edgehs.store.users import (
    UserStore,
    deactivate_user,
    put_device,
    remove_devices,
    rename_device,
)


class Boom(Exception):
    pass


def put_filter(user: str, n: int, fail: bool = False) -> Any:
    """A write that inserts one filters row, then fails if asked."""
    async def run(conn: aiosqlite.Connection) -> int:
        await conn.execute("INSERT INTO filters VALUES (?, ?, '{}')", (user, n))
        if fail:
            raise Boom(f"write {n} fails")
        return n
    return run


async def filter_ids(db: Database) -> list[int]:
    return [r[0] for r in await db.fetchall("SELECT filter_id FROM filters ORDER BY filter_id")]


async def trace(db: Database) -> list[str]:
    """Every statement the writer connection runs from now on."""
    statements: list[str] = []
    assert db._writer is not None
    await db._writer.set_trace_callback(statements.append)
    return statements


# --- Database: group commit ----------------------------------------------------------------------


async def test_concurrent_writes_all_commit_in_few_transactions(db: Database) -> None:
    statements = await trace(db)
    results = await asyncio.gather(*(db.write(put_filter("@a:x", n)) for n in range(40)))
    assert results == list(range(40))
    assert await filter_ids(db) == list(range(40))
    commits = [s for s in statements if s.strip().upper() == "COMMIT"]
    assert 1 <= len(commits) < 40  # grouped: one fsync serves many writes


async def test_failing_write_rolls_back_alone_in_its_batch(db: Database) -> None:
    statements = await trace(db)
    results = await asyncio.gather(
        db.write(put_filter("@a:x", 1)),
        db.write(put_filter("@a:x", 2, fail=True)),
        db.write(put_filter("@a:x", 3)),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], Boom)
    assert await filter_ids(db) == [1, 3]
    assert sum(s.strip().upper() == "COMMIT" for s in statements) == 1  # one batch
    assert any(s.startswith("ROLLBACK TO") for s in statements)


async def test_constraint_violation_rolls_back_alone(db: Database) -> None:
    await db.write(put_filter("@a:x", 1))
    results = await asyncio.gather(
        db.write(put_filter("@a:x", 1)),  # duplicate primary key
        db.write(put_filter("@a:x", 2)),
        return_exceptions=True,
    )
    assert isinstance(results[0], sqlite3.IntegrityError)
    assert results[1] == 2
    assert await filter_ids(db) == [1, 2]


async def test_lone_failing_write_then_writes_go_on(db: Database) -> None:
    with pytest.raises(Boom):
        await db.write(put_filter("@a:x", 1, fail=True))
    assert await filter_ids(db) == []
    assert await db.write(put_filter("@a:x", 2)) == 2
    assert await filter_ids(db) == [2]


async def test_reads_see_committed_writes(db: Database) -> None:
    await db.write(put_filter("@a:x", 7))
    assert await db.fetchval("SELECT COUNT(*) FROM filters") == 1
    row = await db.fetchone("SELECT user_id, filter_id FROM filters")
    assert row is not None and (row["user_id"], row["filter_id"]) == ("@a:x", 7)
    assert await db.fetchone("SELECT * FROM filters WHERE filter_id = 99") is None
    assert await db.fetchval("SELECT filter_id FROM filters WHERE filter_id = 99") is None


async def test_close_keeps_writes_already_queued(tmp_path: Path) -> None:
    db = Database(tmp_path / "edgehs.db")
    await db.open()
    pending = [asyncio.ensure_future(db.write(put_filter("@a:x", n))) for n in range(5)]
    await asyncio.sleep(0)  # queued, not yet committed
    await db.close()
    assert all(p.done() for p in pending)
    reopened = Database(tmp_path / "edgehs.db")
    await reopened.open()
    try:
        assert await filter_ids(reopened) == [0, 1, 2, 3, 4]
    finally:
        await reopened.close()


async def test_close_finishes_the_batch_in_flight(tmp_path: Path) -> None:
    db = Database(tmp_path / "edgehs.db")
    await db.open()

    async def slow(conn: aiosqlite.Connection) -> int:
        await conn.execute("INSERT INTO filters VALUES ('@a:x', 1, '{}')")
        await asyncio.sleep(0.1)  # an fsync on an SD card can take this long
        return 1

    pending = asyncio.ensure_future(db.write(slow))
    await asyncio.sleep(0.01)  # the writer has taken the batch
    await db.close()
    reopened = Database(tmp_path / "edgehs.db")
    await reopened.open()
    try:
        assert await filter_ids(reopened) == [1]
        assert pending.done() and pending.result() == 1
    finally:
        pending.cancel()
        await reopened.close()


async def test_pragmas(db: Database) -> None:
    assert db._writer is not None
    async with db._writer.execute("PRAGMA journal_mode") as cur:
        assert (await cur.fetchone())[0] == "wal"
    async with db._writer.execute("PRAGMA synchronous") as cur:
        assert (await cur.fetchone())[0] == 2  # FULL
    async with db._writer.execute("PRAGMA foreign_keys") as cur:
        assert (await cur.fetchone())[0] == 1


# --- Database: migrations -------------------------------------------------------------------------


def migration_names() -> list[str]:
    folder = resources.files("edgehs.store") / "migrations"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))


async def test_migrations_idempotent_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "edgehs.db"
    db = Database(path)
    await db.open()
    applied = [r[0] for r in await db.fetchall("SELECT name FROM schema_migrations ORDER BY 1")]
    assert applied == migration_names() and applied[0].startswith("0001_")
    await db.write(put_filter("@a:x", 1))
    await db.migrate()  # again on an open database: nothing to do
    await db.close()
    for _ in range(2):
        db = Database(path)
        await db.open()
        try:
            again = await db.fetchall("SELECT name, applied_ts FROM schema_migrations")
            assert sorted(r[0] for r in again) == applied
            assert await filter_ids(db) == [1]
        finally:
            await db.close()


async def test_every_migration_creates_its_tables(db: Database) -> None:
    tables = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"rooms", "events", "state_groups", "state_group_entries", "current_state",
            "room_memberships", "forward_extremities", "users", "devices", "access_tokens",
            "filters", "account_data", "receipts", "schema_migrations"} <= tables


# --- EventStore -----------------------------------------------------------------------------------


def pdu(n: int, *, prev: list[str] | None = None, etype: str = "m.room.message",
        state_key: str | None = None, content: dict[str, Any] | None = None,
        redacts: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"$e{n}", "room_id": "!r:x", "type": etype, "sender": "@a:x",
        "origin_server_ts": 1000 + n, "depth": n, "prev_events": prev or [],
        "auth_events": [], "content": content if content is not None else {"body": str(n)},
    }
    if state_key is not None:
        event["state_key"] = state_key
    if redacts is not None:
        event["redacts"] = redacts
    return event


async def store_events(db: Database, *events: tuple[dict[str, Any], dict[str, Any]]) -> None:
    async def run(conn: aiosqlite.Connection) -> None:
        for event, extra in events:
            await insert_event(conn, event, extra.pop("pos"), "!r:x", state_before=None,
                               state_after=None, **extra)
            await update_forward_extremities(conn, "!r:x", event["prev_events"],
                                             [event["event_id"]])
    await db.write(run)


async def test_event_insert_get_and_extremities(db: Database) -> None:
    events = EventStore(db)
    await store_events(db, (pdu(1), {"pos": 1}), (pdu(2, prev=["$e1"]), {"pos": 2}))
    assert await events.get_forward_extremities("!r:x") == ["$e2"]
    # a fork: two events on $e2, then one that merges them
    await store_events(db, (pdu(3, prev=["$e2"]), {"pos": 3}),
                       (pdu(4, prev=["$e2"]), {"pos": 4, "txn_id": "t", "device_id": "D"}))
    assert sorted(await events.get_forward_extremities("!r:x")) == ["$e3", "$e4"]
    await store_events(db, (pdu(5, prev=["$e3", "$e4"]), {"pos": 5}))
    assert await events.get_forward_extremities("!r:x") == ["$e5"]

    got = await events.get_event("$e4")
    assert got is not None
    assert got.pdu == pdu(4, prev=["$e2"]) and got.event_id == "$e4"
    assert (got.stream_ordering, got.room_id, got.txn_id, got.device_id) == (4, "!r:x", "t", "D")
    assert await events.get_event("$missing") is None
    many = await events.get_events(["$e1", "$missing", "$e5", "$e1"])
    assert sorted(many) == ["$e1", "$e5"]
    assert await events.get_event_by_txn("@a:x", "D", "t") == "$e4"
    assert await events.get_event_by_txn("@a:x", "D", "other") is None
    assert await events.max_stream_ordering() == 5
    newest = await events.get_room_events("!r:x", limit=2, backwards=True)
    assert [e.event_id for e in newest] == ["$e5", "$e4"]
    window = await events.get_room_events("!r:x", after=1, before=3, limit=10, backwards=False)
    assert [e.event_id for e in window] == ["$e2", "$e3"]


async def test_redaction_and_relation_rows(db: Database) -> None:
    events = EventStore(db)
    reaction = pdu(2, prev=["$e1"], etype="m.reaction", content={
        "m.relates_to": {"rel_type": "m.annotation", "event_id": "$e1", "key": "+"}})
    await store_events(db, (pdu(1), {"pos": 1}), (reaction, {"pos": 2}),
                       (pdu(3, prev=["$e2"], etype="m.room.redaction", content={},
                            redacts="$e1"), {"pos": 3}))
    target = await events.get_event("$e1")
    assert target is not None and target.redacted_by == "$e3"
    assert await events.get_relations("$e1", "m.annotation", None) == ["$e2"]
    assert await events.get_relations("$e1", "m.thread", None) == []


async def test_duplicate_event_id_is_refused(db: Database) -> None:
    await store_events(db, (pdu(1), {"pos": 1}))
    with pytest.raises(sqlite3.IntegrityError):
        await store_events(db, (pdu(1), {"pos": 2}))
    assert await EventStore(db).max_stream_ordering() == 1


# --- UserStore ------------------------------------------------------------------------------------


async def test_users_tokens_and_devices(db: Database) -> None:
    """The device writes run inside a caller's transaction (DeviceService adds the device list
    change in the same one); the token cache is dropped after their commit."""
    users = UserStore(db)
    assert await users.create_user("@a:x", "hash", False, 1, "a") is True
    assert await users.create_user("@a:x", "other", True, 2, "b") is False
    assert await users.get_password_hash("@a:x") == "hash"
    assert await db.write(lambda c: put_device(c, "@a:x", "D1", "phone", "tok1", 10)) is True
    await db.write(lambda c: put_device(c, "@a:x", "D2", None, "tok2", 11, room_id="!r:x"))
    info = await users.get_token("tok1")
    assert info is not None and (info.user_id, info.device_id, info.room_id) == ("@a:x", "D1",
                                                                                 None)
    scoped = await users.get_token("tok2")
    assert scoped is not None and scoped.room_id == "!r:x"
    assert await users.get_token("nope") is None
    # logging in again on D1 replaces its token (the cached one too)
    assert await db.write(lambda c: put_device(c, "@a:x", "D1", None, "tok1b", 12)) is False
    users.forget_tokens("@a:x", {"D1"})
    assert await users.get_token("tok1") is None
    assert (await users.get_token("tok1b")) is not None
    device = await users.get_device("@a:x", "D1")
    assert device is not None and device["display_name"] == "phone"  # kept
    assert await db.write(lambda c: rename_device(c, "@a:x", "D1", "laptop")) is True
    assert await db.write(lambda c: rename_device(c, "@a:x", "D1", "laptop")) is False
    assert [d["display_name"] for d in await users.get_devices("@a:x")] == ["laptop", None]
    assert await db.write(lambda c: remove_devices(c, "@a:x", ["D2"])) is True
    users.forget_tokens("@a:x", {"D2"})
    assert await users.get_token("tok2") is None and await users.get_token("tok1b") is not None
    assert [d["device_id"] for d in await users.get_devices("@a:x")] == ["D1"]
    assert await db.write(lambda c: remove_devices(c, "@a:x", None)) is True
    users.forget_tokens("@a:x", None)
    assert await users.get_token("tok1b") is None and await users.get_devices("@a:x") == []


async def test_deactivate_drops_tokens_and_password(db: Database) -> None:
    users = UserStore(db)
    await users.create_user("@a:x", "hash", False, 1, None)
    await db.write(lambda c: put_device(c, "@a:x", "D", None, "tok", 1))
    assert await users.get_token("tok") is not None  # cached now
    assert await db.write(lambda c: deactivate_user(c, "@a:x")) is True
    users.forget_tokens("@a:x", None)
    assert await users.get_token("tok") is None
    assert await users.get_password_hash("@a:x") is None
    user = await users.get_user("@a:x")
    assert user is not None and user["deactivated"] == 1
    # a second store over the same file (no cache) agrees
    assert await UserStore(db).get_token("tok") is None
