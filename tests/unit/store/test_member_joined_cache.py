"""MemberStore.get_joined: a room's joined members kept in memory (the appservice pusher asks
for every event), in step with note_membership, on a real SQLite file."""


import aiosqlite

from edgehs.store.db import Database
from edgehs.store.rooms import MemberStore

ROOM = "!r:test.local"


async def set_membership(db: Database, members: MemberStore, user_id: str, membership: str,
                         *, notify: bool = True) -> None:
    """What the write path does: the index row in a transaction, then note_membership."""
    event_id = f"${user_id}-{membership}"

    async def run(conn: aiosqlite.Connection) -> None:
        await conn.execute(
            "INSERT INTO room_memberships (room_id, user_id, membership, event_id, "
            "stream_ordering) VALUES (?, ?, ?, ?, 1) ON CONFLICT (room_id, user_id) DO UPDATE "
            "SET membership = excluded.membership, event_id = excluded.event_id",
            (ROOM, user_id, membership, event_id))
    await db.write(run)
    if notify:
        members.note_membership(ROOM, user_id, membership, event_id)


async def test_joined_members_follow_membership_changes(db: Database) -> None:
    members = MemberStore(db)
    await set_membership(db, members, "@a:test.local", "join")
    await set_membership(db, members, "@b:test.local", "invite")
    assert await members.get_joined(ROOM) == {"@a:test.local"}
    await set_membership(db, members, "@b:test.local", "join")
    await set_membership(db, members, "@a:test.local", "leave")
    assert await members.get_joined(ROOM) == {"@b:test.local"}
    assert await members.get_joined(ROOM) == set(await members.get_members(ROOM, "join"))
    assert await members.get_joined("!empty:test.local") == frozenset()


async def test_second_read_comes_from_memory(db: Database) -> None:
    members = MemberStore(db)
    await set_membership(db, members, "@a:test.local", "join")
    assert await members.get_joined(ROOM) == {"@a:test.local"}
    # A row written behind the store's back is not seen: the answer is the cached one.
    await set_membership(db, members, "@c:test.local", "join", notify=False)
    assert await members.get_joined(ROOM) == {"@a:test.local"}


async def test_a_load_that_races_with_a_change_is_not_kept(db: Database) -> None:
    members = MemberStore(db)
    await set_membership(db, members, "@a:test.local", "join")
    real = members.get_members

    async def slow_get_members(room_id: str, membership: str | None = "join") -> dict[str, str]:
        found = await real(room_id, membership)
        # A join commits and is noted while this load is in flight.
        await set_membership(db, members, "@late:test.local", "join")
        return found

    members.get_members = slow_get_members  # type: ignore[method-assign]
    assert await members.get_joined(ROOM) == {"@a:test.local"}
    members.get_members = real  # type: ignore[method-assign]
    assert await members.get_joined(ROOM) == {"@a:test.local", "@late:test.local"}


async def test_a_membership_read_that_races_with_a_change_is_not_kept(db: Database) -> None:
    """get_membership must not cache the row it read when a newer membership was noted while
    it waited for the database (a leave cached as a join would let a departed user act)."""
    members = MemberStore(db)
    user = "@a:test.local"
    await set_membership(db, members, user, "join")
    members._cache.clear()  # a cold cache: the next read goes to the database
    real = db.fetchone

    async def slow_fetchone(sql: str, params: object = ()) -> object:
        row = await real(sql, params)  # reads the join...
        await set_membership(db, members, user, "leave")  # ...then a leave commits
        return row

    db.fetchone = slow_fetchone  # type: ignore[method-assign]
    try:
        assert await members.get_membership(ROOM, user) == ("join", f"${user}-join")
    finally:
        db.fetchone = real  # type: ignore[method-assign]
    assert await members.get_membership(ROOM, user) == ("leave", f"${user}-leave")
