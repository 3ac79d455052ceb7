"""Knocking through matrix-nio against edgehs as a process: a knock, the admin's invite, the join.

matrix-nio 0.26 sends the knock (``room_knock``) and the join rule (``room_enable_knocking``);
its /sync model has no ``rooms.knock`` section, so the knocker's side is read over plain HTTP.
https://spec.matrix.org/v1.19/client-server-api/#knocking-on-rooms
"""

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import nio
import pytest

pytestmark = pytest.mark.integration

NioUser = Callable[[str], Awaitable[nio.AsyncClient]]


async def sync_ok(client: nio.AsyncClient) -> nio.SyncResponse:
    resp = await client.sync(timeout=0)
    assert isinstance(resp, nio.SyncResponse), f"sync failed: {resp}"
    return resp


async def raw_sync(http: aiohttp.ClientSession, client: nio.AsyncClient) -> dict[str, Any]:
    async with http.get("/_matrix/client/v3/sync", params={"timeout": "0"},
                        headers={"Authorization": f"Bearer {client.access_token}"}) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


def memberships(events: list[nio.Event], user_id: str) -> list[str]:
    return [e.membership for e in events
            if isinstance(e, nio.RoomMemberEvent) and e.state_key == user_id]


async def test_knock_invite_join(nio_user: NioUser, http: aiohttp.ClientSession) -> None:
    alice, bob = await nio_user("alice"), await nio_user("bob")
    created = await alice.room_create(name="Door", alias="door")
    assert isinstance(created, nio.RoomCreateResponse), created
    room_id = created.room_id
    enabled = await alice.room_enable_knocking(room_id)
    assert isinstance(enabled, nio.RoomPutStateResponse), enabled
    await sync_ok(alice)
    await sync_ok(bob)

    knocked = await bob.room_knock("#door:test.local", reason="let me in")
    assert isinstance(knocked, nio.RoomKnockResponse), knocked
    assert knocked.room_id == room_id
    # nio's sync still parses a response with rooms.knock (and ignores it).
    resp = await sync_ok(bob)
    assert room_id not in resp.rooms.join and room_id not in resp.rooms.invite
    knock_state = (await raw_sync(http, bob))["rooms"]["knock"][room_id]["knock_state"]
    assert any(e["type"] == "m.room.member" and e["state_key"] == bob.user_id
               and e["content"]["membership"] == "knock" for e in knock_state["events"])

    # The admin sees the knock in the timeline, with its reason.
    resp = await sync_ok(alice)
    events = resp.rooms.join[room_id].timeline.events
    assert memberships(events, bob.user_id) == ["knock"]
    [event] = [e for e in events if isinstance(e, nio.RoomMemberEvent)
               and e.state_key == bob.user_id]
    assert event.content.get("reason") == "let me in"

    # Bob cannot join before the knock is answered; the admin's invite answers it.
    refused = await bob.join(room_id)
    assert isinstance(refused, nio.JoinError) and refused.status_code == "M_FORBIDDEN", refused
    invited = await alice.room_invite(room_id, bob.user_id)
    assert isinstance(invited, nio.RoomInviteResponse), invited
    resp = await sync_ok(bob)
    assert room_id in resp.rooms.invite, resp.rooms
    assert room_id not in (await raw_sync(http, bob))["rooms"]["knock"]
    joined = await bob.join(room_id)
    assert isinstance(joined, nio.JoinResponse), joined
    await sync_ok(bob)
    assert room_id in bob.rooms and bob.user_id in bob.rooms[room_id].users
    resp = await sync_ok(alice)
    assert memberships(resp.rooms.join[room_id].timeline.events, bob.user_id)[-1] == "join"


async def test_knock_refused_where_the_rule_does_not_allow(nio_user: NioUser) -> None:
    alice, bob = await nio_user("alice"), await nio_user("bob")
    created = await alice.room_create(name="Closed")
    assert isinstance(created, nio.RoomCreateResponse), created
    refused = await bob.room_knock(created.room_id)
    assert isinstance(refused, nio.RoomKnockError), refused
    assert refused.status_code == "M_FORBIDDEN"
    missing = await bob.room_knock("#nowhere:test.local")
    assert isinstance(missing, nio.RoomKnockError) and missing.status_code == "M_NOT_FOUND"
