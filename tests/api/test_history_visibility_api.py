"""m.room.history_visibility applied per event, on every route that hands out room events.

https://spec.matrix.org/v1.19/client-server-api/#room-history-visibility

The scene: alice sets the visibility, sends "before-invite", invites bob, sends "before-join",
bob joins, alice sends "after-join". Which of the three bob may see depends on the setting.
"""

import json
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import V3, User, expect, get_sync

from edgehs.service.visibility import EVERYTHING, HV_TYPE, RoomFacts, allowed
from edgehs.store.events import TOPO_BOTTOM, TOPO_TOP

SLIDING_SYNC = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

BEFORE_INVITE, BEFORE_JOIN, AFTER_JOIN = "note before-invite", "note before-join", "note after"
BODIES = (BEFORE_INVITE, BEFORE_JOIN, AFTER_JOIN)
VISIBLE = {
    "world_readable": set(BODIES),
    "shared": set(BODIES),
    "invited": {BEFORE_JOIN, AFTER_JOIN},
    "joined": {AFTER_JOIN},
}


@dataclass
class Scene:
    alice: User
    bob: User
    room_id: str
    ids: dict[str, str]  # body -> event id


async def send(client: TestClient, user: User, room_id: str, body: str, **extra: Any) -> str:
    resp = await client.post(f"{V3}/rooms/{room_id}/send/m.room.message",
                             json={"msgtype": "m.text", "body": body, **extra},
                             headers=user.auth)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["event_id"])


async def set_visibility(client: TestClient, user: User, room_id: str, value: str) -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/state/m.room.history_visibility",
                            json={"history_visibility": value}, headers=user.auth)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["event_id"])


async def membership(client: TestClient, user: User, room_id: str, action: str,
                     **body: Any) -> None:
    resp = await client.post(f"{V3}/rooms/{room_id}/{action}", json=body, headers=user.auth)
    assert resp.status == 200, await resp.text()


async def scene(client: TestClient, register: Any, create_room: Any, value: str) -> Scene:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="private_chat")
    await set_visibility(client, alice, room_id, value)
    ids = {BEFORE_INVITE: await send(client, alice, room_id, BEFORE_INVITE)}
    await membership(client, alice, room_id, "invite", user_id=bob.user_id)
    ids[BEFORE_JOIN] = await send(client, alice, room_id, BEFORE_JOIN)
    await membership(client, bob, room_id, "join")
    ids[AFTER_JOIN] = await send(client, alice, room_id, AFTER_JOIN)
    return Scene(alice, bob, room_id, ids)


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def all_messages(client: TestClient, user: User, room_id: str, **params: Any
                       ) -> list[dict[str, Any]]:
    """Every event /messages gives, paging until there is no `end`."""
    events: list[dict[str, Any]] = []
    for _ in range(50):
        resp = await client.get(f"{V3}/rooms/{room_id}/messages", params=params,
                                headers=user.auth)
        body = await resp.json()
        assert resp.status == 200, body
        events += body["chunk"]
        if "end" not in body or (params.get("dir") == "f" and not body["chunk"]):
            return events  # forwards, `end` stays: the live edge gives an empty chunk
        params["from"] = body["end"]
    raise AssertionError("pagination never ended")


@pytest.mark.parametrize("value", sorted(VISIBLE))
async def test_each_setting_on_every_route(client: TestClient, register: Any, create_room: Any,
                                           value: str) -> None:
    s = await scene(client, register, create_room, value)
    seen = VISIBLE[value]
    expected = [b for b in BODIES if b in seen]

    backwards = await all_messages(client, s.bob, s.room_id, dir="b", limit=3)
    assert bodies(backwards) == list(reversed(expected))
    forwards = await all_messages(client, s.bob, s.room_id, dir="f", limit=2)
    assert bodies(forwards) == expected
    # bob's own join is always his to see; his invite (membership invite after it) is not
    # under "joined".
    mine = [e["content"]["membership"] for e in forwards
            if e["type"] == "m.room.member" and e["state_key"] == s.bob.user_id]
    assert mine == (["join"] if value == "joined" else ["invite", "join"])

    for body, event_id in s.ids.items():
        resp = await client.get(f"{V3}/rooms/{s.room_id}/event/{event_id}", headers=s.bob.auth)
        ctx = await client.get(f"{V3}/rooms/{s.room_id}/context/{event_id}",
                               params={"limit": "10"}, headers=s.bob.auth)
        if body in seen:
            assert resp.status == 200 and (await resp.json())["content"]["body"] == body
            data = await ctx.json()
            assert ctx.status == 200, data
            assert bodies(data["events_before"]) == [
                b for b in reversed(expected) if BODIES.index(b) < BODIES.index(body)]
            assert bodies(data["events_after"]) == [
                b for b in expected if BODIES.index(b) > BODIES.index(body)]
        else:
            await expect(resp, 404, "M_NOT_FOUND")
            await expect(ctx, 404, "M_NOT_FOUND")

    # Initial sync: only what bob may see, and back-pagination from prev_batch adds nothing
    # he may not.
    flt = json.dumps({"room": {"timeline": {"limit": 2}}})
    resp = await client.get(f"{V3}/sync", params={"filter": flt}, headers=s.bob.auth)
    timeline = (await resp.json())["rooms"]["join"][s.room_id]["timeline"]
    assert set(bodies(timeline["events"])) <= seen
    assert timeline["events"][-1]["content"].get("body") == AFTER_JOIN
    older = await all_messages(client, s.bob, s.room_id, dir="b", limit=4,
                               **{"from": timeline["prev_batch"]})
    assert bodies(timeline["events"]) == expected[len(expected) - len(bodies(
        timeline["events"])):]
    assert bodies(list(reversed(older))) + bodies(timeline["events"]) == expected

    resp = await client.post(f"{V3}/search", headers=s.bob.auth, json={
        "search_categories": {"room_events": {"search_term": "note", "order_by": "recent"}}})
    results = (await resp.json())["search_categories"]["room_events"]["results"]
    assert [r["result"]["content"]["body"] for r in results] == list(reversed(expected))


async def test_change_applies_from_that_event_on(client: TestClient, register: Any,
                                                 create_room: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await send(client, alice, room_id, "shared-era")
    change = await set_visibility(client, alice, room_id, "joined")
    hidden = await send(client, alice, room_id, "joined-era")
    await membership(client, bob, room_id, "join")
    await send(client, alice, room_id, "after-join")
    events = await all_messages(client, bob, room_id, dir="b", limit=5)
    assert bodies(events) == ["after-join", "shared-era"]
    # The change itself: visible by the setting before it (shared).
    assert change in {e["event_id"] for e in events}
    resp = await client.get(f"{V3}/rooms/{room_id}/event/{hidden}", headers=bob.auth)
    await expect(resp, 404, "M_NOT_FOUND")
    # Back to shared: everything sent under it is visible again, the joined era stays hidden.
    await set_visibility(client, alice, room_id, "shared")
    await send(client, alice, room_id, "shared-again")
    events = await all_messages(client, bob, room_id, dir="f", limit=3)
    assert bodies(events) == ["shared-era", "after-join", "shared-again"]


async def test_aggregations_and_relations_hide_what_came_after_leaving(
        client: TestClient, register: Any, create_room: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await membership(client, bob, room_id, "join")
    root = await send(client, alice, room_id, "root")
    thread = {"rel_type": "m.thread", "event_id": root}
    first = await send(client, alice, room_id, "reply 1", **{"m.relates_to": thread})
    await membership(client, bob, room_id, "leave")
    await send(client, alice, room_id, "reply 2", **{"m.relates_to": thread})
    await send(client, alice, room_id, "* root", **{
        "m.new_content": {"msgtype": "m.text", "body": "root edited"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": root}})

    resp = await client.get(f"{V3}/rooms/{room_id}/event/{root}", headers=bob.auth)
    relations = (await resp.json())["unsigned"]["m.relations"]
    assert "m.replace" not in relations
    assert relations["m.thread"]["count"] == 1
    assert relations["m.thread"]["latest_event"]["event_id"] == first
    resp = await client.get(f"/_matrix/client/v1/rooms/{room_id}/relations/{root}",
                            headers=bob.auth)
    assert [e["event_id"] for e in (await resp.json())["chunk"]] == [first]
    # alice, still joined, sees all of it.
    resp = await client.get(f"{V3}/rooms/{room_id}/event/{root}", headers=alice.auth)
    relations = (await resp.json())["unsigned"]["m.relations"]
    assert relations["m.thread"]["count"] == 2 and "m.replace" in relations


async def test_joined_room_hides_history_from_new_member_in_sync_and_threads(
        client: TestClient, register: Any, create_room: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await set_visibility(client, alice, room_id, "joined")
    root = await send(client, alice, room_id, "old root")
    await send(client, alice, room_id, "old reply",
               **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    for i in range(30):
        await send(client, alice, room_id, f"old {i}")
    await membership(client, bob, room_id, "join")
    await send(client, alice, room_id, "new")
    sync = await get_sync(client, bob)
    timeline = sync["rooms"]["join"][room_id]["timeline"]
    assert bodies(timeline["events"]) == ["new"]
    assert not any(e["type"] == "m.room.message" and e["content"]["body"].startswith("old")
                   for e in await all_messages(client, bob, room_id, dir="b", limit=10))
    resp = await client.get(f"/_matrix/client/v1/rooms/{room_id}/threads", headers=bob.auth)
    assert (await resp.json())["chunk"] == []
    resp = await client.post(SLIDING_SYNC, headers=bob.auth, json={"lists": {"all": {
        "ranges": [[0, 9]], "timeline_limit": 10, "required_state": []}}})
    room = (await resp.json())["rooms"][room_id]
    assert bodies(room["timeline"]) == ["new"]
    assert room["limited"] is False
    resp = await client.get(f"/_matrix/client/v1/rooms/{room_id}/threads", headers=alice.auth)
    assert [e["event_id"] for e in (await resp.json())["chunk"]] == [root]


async def test_world_readable_lets_a_non_member_read(client: TestClient, register: Any,
                                                     create_room: Any) -> None:
    alice, carol = await register("alice"), await register("carol")
    room_id = await create_room(alice, preset="public_chat")
    await set_visibility(client, alice, room_id, "world_readable")
    event_id = await send(client, alice, room_id, "for everyone")
    events = await all_messages(client, carol, room_id, dir="b", limit=10)
    assert bodies(events) == ["for everyone"]
    resp = await client.get(f"{V3}/rooms/{room_id}/event/{event_id}", headers=carol.auth)
    assert resp.status == 200
    # Once no longer world_readable, a non-member may not read the room at all.
    await set_visibility(client, alice, room_id, "shared")
    resp = await client.get(f"{V3}/rooms/{room_id}/messages", headers=carol.auth)
    await expect(resp, 403, "M_FORBIDDEN")


@pytest.mark.parametrize(("hv", "membership", "joined_after", "ok"), [
    ("world_readable", None, False, True),
    ("joined", "join", False, True),
    ("shared", None, True, True),
    ("shared", "leave", False, False),
    (None, None, True, True),  # no history_visibility: shared
    ("bogus", None, True, True),  # not understood: shared
    ("invited", "invite", False, True),
    ("invited", None, True, False),
    ("joined", "invite", True, False),
])
def test_spec_rules(hv: str | None, membership: str | None, joined_after: bool,
                    ok: bool) -> None:
    assert allowed(hv, membership, joined_after) is ok


def test_ranges_skip_what_a_late_joiner_may_not_see() -> None:
    # hv joined at 5, bob invited at 10, joined at 20, left at 30, rejoined at 40.
    # (stream position, depth, type, value): a linear room, depth 100 + position.
    changes = [(5, 105, HV_TYPE, "joined"), (10, 110, "m.room.member", "invite"),
               (20, 120, "m.room.member", "join"), (30, 130, "m.room.member", "leave"),
               (40, 140, "m.room.member", "join")]
    facts = RoomFacts(changes, joined=True)
    # Before 5 (shared, joined later) and the change itself; bob's join until his leave
    # event; everything from the rejoin on.
    assert facts.ranges() == [(-EVERYTHING, 5), (19, 30), (39, EVERYTHING)]
    assert facts.restrictive
    # The same ranges in topological order (depth, stream position).
    assert facts.topo_ranges() == [(TOPO_BOTTOM, (105, 5)), ((120, 19), (130, 30)),
                                   ((140, 39), TOPO_TOP)]


def test_topological_ranges_follow_depth_not_arrival() -> None:
    # The join arrived first (live, position 3) but sits at depth 50; the room's earlier
    # history, backfilled later at negative positions, switched to "joined" at depth 10.
    changes = [(-7, 10, HV_TYPE, "joined"), (3, 50, "m.room.member", "join")]
    facts = RoomFacts(changes, joined=False)
    assert facts.topo_ranges() == [(TOPO_BOTTOM, (10, -7)), ((50, 2), TOPO_TOP)]
    assert facts.joined_after_topo((20, -2)) and not facts.joined_after_topo((60, -3))
