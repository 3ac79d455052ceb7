"""/sync rooms: newly joined rooms, profile changes, rooms joined and left in one gap, the
ephemeral section, federation format and strict filters.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync
https://spec.matrix.org/v1.19/client-server-api/#filtering
"""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User, expect
from sync_helpers import invite, join, leave, put_state, send, sync

Register = Callable[[str], Awaitable[User]]
CreateRoom = Callable[..., Awaitable[str]]


async def test_displayname_change_is_not_a_new_join(client: TestClient, register: Register,
                                                    create_room: CreateRoom,
                                                    spec: MatrixSpec) -> None:
    alice = await register("alice")
    room_id = await create_room(alice, preset="public_chat")
    first = await sync(client, alice, spec)
    resp = await client.put(f"{V3}/profile/{alice.user_id}/displayname",
                            json={"displayname": "Boris"}, headers=alice.auth)
    assert resp.status == 200
    message = await send(client, alice, room_id)
    body = await sync(client, alice, spec, since=first["next_batch"])
    room = body["rooms"]["join"][room_id]
    timeline = room["timeline"]["events"]
    assert [e["type"] for e in timeline] == ["m.room.member", "m.room.message"]
    assert timeline[0]["content"]["displayname"] == "Boris"
    assert timeline[1]["event_id"] == message
    assert room["state"]["events"] == [] and room["timeline"]["limited"] is False
    # With a filter that hides it all, nothing at all comes down.
    flt = {"room": {"timeline": {"types": []}, "state": {"types": ["x.state"]},
                    "ephemeral": {"types": []}}, "presence": {"types": []}}
    again = await sync(client, alice, spec, since=body["next_batch"], flt=flt)
    resp = await client.put(f"{V3}/profile/{alice.user_id}/displayname",
                            json={"displayname": "Natasha"}, headers=alice.auth)
    assert resp.status == 200
    assert (await sync(client, alice, spec, since=again["next_batch"], flt=flt)
            )["rooms"]["join"] == {}


async def test_newly_joined_room_incremental(client: TestClient, register: Register,
                                             create_room: CreateRoom, spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    for i in range(4):
        await send(client, alice, room_id, f"before-{i}")
    flt = {"room": {"timeline": {"types": ["m.room.message"], "limit": 10}}}
    first = await sync(client, bob, spec, flt=flt)
    await join(client, bob, room_id)
    body = await sync(client, bob, spec, since=first["next_batch"], flt=flt)
    room = body["rooms"]["join"][room_id]
    assert [e["content"]["body"] for e in room["timeline"]["events"]] == [
        f"before-{i}" for i in range(4)]
    # Bob has none of the history before these: the timeline is limited.
    assert room["timeline"]["limited"] is True
    assert room["ephemeral"]["events"] == []  # nobody typing: no empty m.typing
    assert room["summary"]["m.joined_member_count"] == 2
    again = await sync(client, bob, spec, since=body["next_batch"], flt=flt)
    assert room_id not in again["rooms"]["join"]


async def test_full_state_has_no_empty_typing(client: TestClient, register: Register,
                                              create_room: CreateRoom, spec: MatrixSpec) -> None:
    alice = await register("alice")
    room_id = await create_room(alice)
    first = await sync(client, alice, spec)
    body = await sync(client, alice, spec, since=first["next_batch"], full_state="true")
    room = body["rooms"]["join"][room_id]  # the whole room, though nothing changed
    assert room["timeline"]["events"] and room["ephemeral"]["events"] == []


async def test_join_and_leave_in_one_gap_sends_full_state(client: TestClient, register: Register,
                                                          create_room: CreateRoom,
                                                          spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="private_chat")
    await put_state(client, alice, room_id, "x.state", {"my_key": 1})
    await invite(client, alice, room_id, bob)
    flt = {"room": {"timeline": {"types": []}, "state": {"types": ["x.state"]},
                    "include_leave": True}}
    first = await sync(client, bob, spec, flt=flt)
    assert room_id in first["rooms"]["invite"]
    await join(client, bob, room_id)
    await leave(client, bob, room_id)
    body = await sync(client, bob, spec, since=first["next_batch"], flt=flt)
    state = body["rooms"]["leave"][room_id]["state"]["events"]
    assert [(e["type"], e["content"]) for e in state] == [("x.state", {"my_key": 1})]


async def test_left_room_history_and_filters(client: TestClient, register: Register,
                                             create_room: CreateRoom, spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await join(client, bob, room_id)
    flt = {"room": {"timeline": {"types": ["m.room.message", "x.state"]},
                    "state": {"types": ["x.state"]}, "include_leave": True}}
    first = await sync(client, bob, spec, flt=flt)
    await send(client, alice, room_id, "before")
    await put_state(client, alice, room_id, "x.state", {"my_key": "before"})
    await leave(client, bob, room_id)
    await send(client, alice, room_id, "after")
    await put_state(client, alice, room_id, "x.state", {"my_key": "after"})
    for since in (None, first["next_batch"]):
        body = await sync(client, bob, spec, since=since, flt=flt)
        room = body["rooms"]["leave"][room_id]
        assert room["state"]["events"] == []
        assert [e["content"].get("body", e["content"].get("my_key"))
                for e in room["timeline"]["events"]] == ["before", "before"]


async def test_federation_format(client: TestClient, register: Register,
                                 create_room: CreateRoom, spec: MatrixSpec) -> None:
    alice = await register("alice")
    room_id = await create_room(alice)
    event_id = await send(client, alice, room_id, "Test message")
    body = await sync(client, alice, flt={"event_format": "federation",
                                          "room": {"timeline": {"limit": 1}}})
    event = body["rooms"]["join"][room_id]["timeline"]["events"][0]
    assert event["event_id"] == event_id and event["room_id"] == room_id
    assert event["content"]["body"] == "Test message"
    for key in ("prev_events", "auth_events", "depth", "hashes", "signatures", "sender",
                "origin_server_ts", "type"):
        assert key in event, key
    # The client format has none of the federation keys.
    plain = await sync(client, alice, spec, flt={"room": {"timeline": {"limit": 1}}})
    assert "hashes" not in plain["rooms"]["join"][room_id]["timeline"]["events"][0]


BAD_FILTERS: list[Any] = [
    {"presence": "not_an_object"},
    {"room": {"timeline": "not_an_object"}},
    {"room": {"ephemeral": "not_an_object"}},
    {"room": {"timeline": {"rooms": "not_a_list"}}},
    {"room": {"timeline": {"not_rooms": "not_a_list"}}},
    {"room": {"timeline": {"types": [0]}}},
    {"room": {"timeline": {"rooms": ["not_a_room_id"]}}},
    {"room": {"timeline": {"senders": ["not_a_sender_id"]}}},
    {"room": {"state": {"lazy_load_members": "true"}}},
    {"room": {"state": {"lazy_load_members": 1}}},
    {"room": {"state": {"include_redundant_members": "true"}}},
    {"room": {"state": {"include_redundant_members": 1}}},
    {"room": {"include_leave": "yes"}},
    {"event_format": "xml"},
]


@pytest.mark.parametrize("definition", BAD_FILTERS)
async def test_bad_filters_are_refused(client: TestClient, register: Register,
                                       definition: Any) -> None:
    alice = await register("alice")
    resp = await client.post(f"{V3}/user/{alice.user_id}/filter", json=definition,
                             headers=alice.auth)
    await expect(resp, 400, "M_BAD_JSON")


async def test_current_state_appears_in_private_history(client: TestClient, register: Register,
                                                         create_room: CreateRoom,
                                                         spec: MatrixSpec) -> None:
    """A member who left and came back sees, in the timeline, the current state events of the
    time they could not see (who joined meanwhile), as well as the rest of the history."""
    creator, syncer, invitee = [await register(n) for n in ("creator", "syncer", "invitee")]
    room_id = await create_room(creator, preset="public_chat")
    await join(client, syncer, room_id)
    await put_state(client, creator, room_id, "m.room.history_visibility",
                    {"history_visibility": "joined"})
    await invite(client, creator, room_id, invitee)
    first = await sync(client, syncer, spec)
    for i in range(15):
        await send(client, creator, room_id, f"before {i}")
    await leave(client, syncer, room_id)
    await join(client, invitee, room_id)
    await send(client, creator, room_id, "while away")
    await join(client, syncer, room_id)
    body = await sync(client, syncer, spec, since=first["next_batch"])
    timeline = body["rooms"]["join"][room_id]["timeline"]["events"]
    assert any(e["type"] == "m.room.member" and e["state_key"] == invitee.user_id
               and e["content"]["membership"] == "join" for e in timeline)
    assert "while away" not in [e["content"].get("body") for e in timeline]
