"""StateStore: delta-encoded state groups, chain cuts, current state, the membership index."""

import random

import aiosqlite

from edgehs.store.db import Database
from edgehs.store.event_writes import insert_event
from edgehs.store.state import MAX_CHAIN, StateStore
from edgehs.types import StateKey, StateMap

ROOM = "!r:x"


async def add_group(db: Database, store: StateStore, parent: int | None,
                    parent_state: StateMap, state: StateMap) -> int:
    async def run(conn: aiosqlite.Connection) -> int:
        return await store.add_group(conn, ROOM, parent, parent_state, state)
    return await db.write(run)


async def group_row(db: Database, group: int) -> tuple[int | None, int]:
    row = await db.fetchone("SELECT parent_id, chain_length FROM state_groups WHERE id = ?",
                            (group,))
    assert row is not None
    return row[0], row[1]


async def entries(db: Database, group: int) -> dict[StateKey, str | None]:
    rows = await db.fetchall(
        "SELECT type, state_key, event_id FROM state_group_entries WHERE group_id = ?", (group,))
    return {(r[0], r[1]): r[2] for r in rows}


async def test_snapshot_then_delta_with_removal(db: Database) -> None:
    store = StateStore(db)
    first = {("m.room.create", ""): "$c", ("m.room.member", "@a:x"): "$m1",
             ("m.room.name", ""): "$n1"}
    g1 = await add_group(db, store, None, {}, first)
    assert await group_row(db, g1) == (None, 0)
    assert await entries(db, g1) == first
    second = {("m.room.create", ""): "$c", ("m.room.member", "@a:x"): "$m2",
              ("m.room.topic", ""): "$t"}  # changed, added, and m.room.name removed
    g2 = await add_group(db, store, g1, first, second)
    assert await group_row(db, g2) == (g1, 1)
    assert await entries(db, g2) == {("m.room.member", "@a:x"): "$m2",
                                     ("m.room.topic", ""): "$t", ("m.room.name", ""): None}
    assert await store.get_state_group(g2) == second
    assert await StateStore(db).get_state_group(g2) == second  # from the rows, no cache
    assert await StateStore(db).get_state_group(g1) == first
    unchanged = await add_group(db, store, g2, second, second)
    assert await entries(db, unchanged) == {}
    assert await StateStore(db).get_state_group(unchanged) == second


async def test_chain_is_cut_after_max_chain(db: Database) -> None:
    store = StateStore(db)
    rng = random.Random(7)
    expected: dict[int, StateMap] = {}
    state: StateMap = {("m.room.create", ""): "$c"}
    group: int | None = None
    for i in range(2 * MAX_CHAIN + 5):
        new = dict(state)
        new[("m.room.member", f"@u{rng.randrange(10)}:x")] = f"$m{i}"
        if i % 3 == 0 and len(new) > 2:
            del new[rng.choice(sorted(k for k in new if k[0] == "m.room.member"))]
        group = await add_group(db, store, group, state, new)
        expected[group] = new
        state = new
    lengths = [(await group_row(db, g))[1] for g in sorted(expected)]
    assert max(lengths) == MAX_CHAIN
    assert lengths[: MAX_CHAIN + 2] == [*range(MAX_CHAIN + 1), 0]
    for g in sorted(expected):
        parent, length = await group_row(db, g)
        assert (parent is None) == (length == 0)
        if length == 0:  # a snapshot holds the full map itself
            assert await entries(db, g) == expected[g]
    fresh = StateStore(db)
    for g in reversed(sorted(expected)):
        assert await fresh.get_state_group(g) == expected[g], g


async def test_cached_map_is_not_shared(db: Database) -> None:
    store = StateStore(db)
    g1 = await add_group(db, store, None, {}, {("a", ""): "$1"})
    got = await store.get_state_group(g1)
    got[("b", "")] = "$2"
    assert await store.get_state_group(g1) == {("a", ""): "$1"}


async def test_state_before_and_after_events(db: Database) -> None:
    store = StateStore(db)
    before = {("m.room.create", ""): "$c"}
    after = {**before, ("m.room.name", ""): "$n"}
    g1 = await add_group(db, store, None, {}, before)
    g2 = await add_group(db, store, g1, before, after)

    async def run(conn: aiosqlite.Connection) -> None:
        await insert_event(conn, {
            "event_id": "$n", "room_id": ROOM, "type": "m.room.name", "state_key": "",
            "sender": "@a:x", "origin_server_ts": 1, "depth": 2, "prev_events": ["$c"],
            "auth_events": [], "content": {"name": "x"},
        }, 1, ROOM, state_before=g1, state_after=g2)
    await db.write(run)
    assert await store.get_state_before("$n") == before
    assert await store.get_state_after("$n") == after
    assert await store.get_state_group_after("$n") == g2
    assert await store.get_state_before("$missing") is None


async def test_current_state_and_membership_index(db: Database) -> None:
    store = StateStore(db)
    old: StateMap = {}
    new = {("m.room.create", ""): "$c", ("m.room.member", "@a:x"): "$ja",
           ("m.room.name", ""): "$n"}

    async def set_state(old: StateMap, new: StateMap, members: dict[str, tuple[str, str]],
                        pos: int) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            await store.set_current_state(conn, ROOM, old, new, members, pos)
        await db.write(run)

    await set_state(old, new, {"$ja": ("@a:x", "join")}, 3)
    assert await store.get_current_state_ids(ROOM) == new
    assert await store.get_current_state_event_id(ROOM, ("m.room.name", "")) == "$n"
    newer = {("m.room.create", ""): "$c", ("m.room.member", "@a:x"): "$la",
             ("m.room.member", "@b:x"): "$ib"}
    await set_state(new, newer, {"$la": ("@a:x", "leave"), "$ib": ("@b:x", "invite")}, 4)
    assert await store.get_current_state_ids(ROOM) == newer
    assert await store.get_current_state_event_id(ROOM, ("m.room.name", "")) is None
    rows = await db.fetchall("SELECT user_id, membership, event_id, stream_ordering "
                             "FROM room_memberships WHERE room_id = ? ORDER BY user_id", (ROOM,))
    assert [tuple(r) for r in rows] == [("@a:x", "leave", "$la", 4),
                                        ("@b:x", "invite", "$ib", 4)]
