"""The two orders of events: the stream (live, positive positions; what /sync reads) and the
topological order (depth, then stream position; what /messages reads). Backfilled events and
outliers have negative positions; outliers and rejected events are in neither order."""

from typing import Any

import aiosqlite

from edgehs.store.db import Database
from edgehs.store.event_writes import insert_event
from edgehs.store.events import TOPO_BOTTOM, TOPO_TOP, EventStore
from edgehs.store.streams import StreamIdGenerator

ROOM = "!r:x"
OTHER = "!other:x"


def pdu(event_id: str, depth: int, room_id: str = ROOM, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "room_id": room_id, "type": "m.room.message",
            "sender": "@a:x", "origin_server_ts": 1000 + depth, "depth": depth,
            "content": {"body": event_id}, "prev_events": [], "auth_events": [], **extra}


async def insert(db: Database, event: dict[str, Any], pos: int, **kwargs: Any) -> None:
    async def run(conn: aiosqlite.Connection) -> None:
        await insert_event(conn, event, pos, str(event["room_id"]), state_before=None,
                           state_after=None, **kwargs)
    await db.write(run)


async def room_with_history(db: Database) -> None:
    """Live events at depths 1-4 (positions 1-4); history backfilled at depths 2 and 3
    (positions -1, -2); an outlier and a rejected event at both kinds of position."""
    for i in range(1, 5):
        await insert(db, pdu(f"$live{i}", i), i)
    await insert(db, pdu("$back2", 2), -1)
    await insert(db, pdu("$back3", 3), -2)
    await insert(db, pdu("$outlier", 3), -3, outlier=True)
    await insert(db, pdu("$rejected", 3), -4, rejected_reason="auth_error")
    await insert(db, pdu("$outlier_live", 5, OTHER), 5, outlier=True)
    await insert(db, pdu("$rejected_live", 5, OTHER), 6, rejected_reason="auth_error")


async def test_backfill_positions_go_down_from_the_lowest_stored(db: Database) -> None:
    empty = await StreamIdGenerator.load(db)
    assert (empty.next_backfill(), empty.next_backfill(), empty.next()) == (-1, -2, 1)
    await room_with_history(db)
    streams = await StreamIdGenerator.load(db)
    assert (streams.next_backfill(), streams.next_backfill()) == (-5, -6)
    assert streams.next() == 7


async def test_topological_order_places_backfill_by_depth(db: Database) -> None:
    await room_with_history(db)
    events = EventStore(db)
    forwards = await events.get_room_events_topo(ROOM, after=TOPO_BOTTOM, upto=TOPO_TOP,
                                                 limit=50, backwards=False)
    order = ["$live1", "$back2", "$live2", "$back3", "$live3", "$live4"]
    assert [e.event_id for e in forwards] == order
    backwards = await events.get_room_events_topo(ROOM, after=TOPO_BOTTOM, upto=TOPO_TOP,
                                                  limit=50, backwards=True)
    assert [e.event_id for e in backwards] == order[::-1]
    # Bounds are keys: after (2, 2) ($live2) up to (3, 3) ($live3) inclusive.
    middle = await events.get_room_events_topo(ROOM, after=(2, 2), upto=(3, 3), limit=50,
                                               backwards=False)
    assert [e.event_id for e in middle] == ["$back3", "$live3"]
    # A stream bound (a /sync token): live events past it are left out, backfill stays.
    announced = await events.get_room_events_topo(ROOM, after=TOPO_BOTTOM, upto=TOPO_TOP,
                                                  limit=50, backwards=False, stream_upto=2)
    assert [e.event_id for e in announced] == ["$live1", "$back2", "$live2", "$back3"]


async def test_a_sync_position_stands_at_the_last_live_event_it_covers(db: Database) -> None:
    await room_with_history(db)
    events = EventStore(db)
    assert await events.topo_key_at(ROOM, 3) == (3, 3)
    assert await events.topo_key_at(ROOM, 100) == (4, 4)
    assert await events.topo_key_at(ROOM, 0) is None  # backfill is not learned "by" 0
    assert await events.topo_key_at(OTHER, 100) is None  # only an outlier and a rejection


async def test_stream_queries_see_only_live_timeline_events(db: Database) -> None:
    await room_with_history(db)
    events = EventStore(db)
    live = await events.get_room_events(ROOM, limit=50, backwards=False)
    assert [e.event_id for e in live] == ["$live1", "$live2", "$live3", "$live4"]
    assert await events.get_room_events(ROOM, after=-10, before=0, limit=50,
                                        backwards=True) == []
    assert await events.get_room_events(OTHER, limit=50, backwards=True) == []
    assert await events.rooms_with_events_after([ROOM, OTHER], 4) == set()
    assert await events.rooms_with_events_after([ROOM, OTHER], -10) == {ROOM}
    assert await events.room_changes_after([ROOM, OTHER], 4) == {}


async def test_stored_events_say_whether_they_have_a_timeline_place(db: Database) -> None:
    await room_with_history(db)
    found = await EventStore(db).get_events(["$back2", "$outlier", "$rejected"])
    assert found["$back2"].in_timeline and found["$back2"].topo == (2, -1)
    assert found["$outlier"].outlier and not found["$outlier"].in_timeline
    assert found["$rejected"].rejected_reason == "auth_error"
    assert not found["$rejected"].in_timeline
