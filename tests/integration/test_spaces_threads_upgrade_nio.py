"""Spaces, threads and room upgrades through matrix-nio against edgehs as a process.

https://spec.matrix.org/v1.19/client-server-api/#spaces
https://spec.matrix.org/v1.19/client-server-api/#threading
https://spec.matrix.org/v1.19/client-server-api/#room-upgrades
"""

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import nio
import pytest

pytestmark = pytest.mark.integration

NioUser = Callable[[str], Awaitable[nio.AsyncClient]]


async def sync_ok(client: nio.AsyncClient, **kwargs: Any) -> nio.SyncResponse:
    kwargs.setdefault("timeout", 0)
    resp = await client.sync(**kwargs)
    assert isinstance(resp, nio.SyncResponse), f"sync failed: {resp}"
    return resp


async def create(client: nio.AsyncClient, **kwargs: Any) -> str:
    resp = await client.room_create(**kwargs)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return str(resp.room_id)


async def join(client: nio.AsyncClient, room_id: str) -> None:
    resp = await client.join(room_id)
    assert isinstance(resp, nio.JoinResponse), resp


async def test_nio_follows_a_room_upgrade(nio_user: NioUser,
                                          http: aiohttp.ClientSession) -> None:
    alice, bob = await nio_user("alice"), await nio_user("bob")
    old = await create(alice, visibility=nio.RoomVisibility.public, alias="hall", name="Hall",
                       room_version="11")
    await join(bob, old)
    await sync_ok(bob)
    resp = await http.post(f"/_matrix/client/v3/rooms/{old}/upgrade",
                           json={"new_version": "12"},
                           headers={"Authorization": f"Bearer {alice.access_token}"})
    body = await resp.json()
    assert resp.status == 200, body
    new = body["replacement_room"]
    # bob's next sync brings the tombstone, which nio parses as a RoomUpgradeEvent
    tombstones: list[nio.RoomUpgradeEvent] = []
    for _ in range(5):
        sync = await sync_ok(bob, timeout=5000)
        room = sync.rooms.join.get(old)
        if room is not None:
            tombstones += [e for e in room.timeline.events
                           if isinstance(e, nio.RoomUpgradeEvent)]
        if tombstones:
            break
    assert [t.replacement_room for t in tombstones] == [new]
    await join(bob, tombstones[0].replacement_room)
    sent = await bob.room_send(new, "m.room.message", {"msgtype": "m.text", "body": "moved"})
    assert isinstance(sent, nio.RoomSendResponse), sent
    # the alias now leads to the new room, whose create event names its predecessor
    resolved = await bob.room_resolve_alias("#hall:test.local")
    assert isinstance(resolved, nio.RoomResolveAliasResponse) and resolved.room_id == new
    state = await bob.room_get_state_event(new, "m.room.create")
    assert isinstance(state, nio.RoomGetStateEventResponse), state
    assert state.content["predecessor"]["room_id"] == old
    assert state.content["room_version"] == "12"


async def test_nio_space_hierarchy_and_threads(nio_user: NioUser) -> None:
    alice, bob = await nio_user("alice"), await nio_user("bob")
    space = await create(alice, visibility=nio.RoomVisibility.public, name="Home",
                         space=True)
    kitchen = await create(alice, visibility=nio.RoomVisibility.public, name="Kitchen")
    resp = await alice.room_put_state(space, "m.space.child", {"via": ["test.local"]},
                                      state_key=kitchen)
    assert isinstance(resp, nio.RoomPutStateResponse), resp
    hierarchy = await bob.space_get_hierarchy(space)
    assert isinstance(hierarchy, nio.SpaceGetHierarchyResponse), hierarchy
    assert [r["room_id"] for r in hierarchy.rooms] == [space, kitchen]
    assert hierarchy.rooms[0]["room_type"] == "m.space"
    # threads, newest reply first
    await join(bob, kitchen)
    roots = []
    for body in ("first", "second"):
        sent = await alice.room_send(kitchen, "m.room.message", {"msgtype": "m.text",
                                                                 "body": body})
        assert isinstance(sent, nio.RoomSendResponse), sent
        roots.append(sent.event_id)
    for root in (roots[1], roots[0]):
        sent = await bob.room_send(kitchen, "m.room.message", {
            "msgtype": "m.text", "body": "reply",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
        assert isinstance(sent, nio.RoomSendResponse), sent
    listed = [e.event_id async for e in bob.room_get_threads(kitchen)]
    assert listed == [roots[0], roots[1]]
