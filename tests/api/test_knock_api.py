"""Knocking: POST /knock/{roomIdOrAlias}, rooms.knock in /sync, and how a knock is answered.

https://spec.matrix.org/v1.19/client-server-api/#knocking-on-rooms
"""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User, expect, get_sync

Json = dict[str, Any]
Register = Callable[[str], Awaitable[User]]
Create = Callable[..., Awaitable[str]]
SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


def rule(join_rule: str) -> list[Json]:
    return [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": join_rule}}]


async def knock(client: TestClient, user: User, target: str, body: Json | None = None,
                query: str = "") -> Any:
    return await client.post(f"{V3}/knock/{target}{query}", json=body or {}, headers=user.auth)


async def post(client: TestClient, user: User, path: str, body: Json | None = None) -> Json:
    resp = await client.post(f"{V3}{path}", json=body or {}, headers=user.auth)
    data = await resp.json()
    assert resp.status == 200, data
    return dict(data)


# Room versions with knocking (v7+).
KNOCK_VERSIONS = pytest.mark.parametrize("room_version", [str(n) for n in range(7, 13)])


async def door(client: TestClient, register: Register, create_room: Create,
               join_rule: str = "knock", room_version: str = "12") -> tuple[User, User, str]:
    """Alice's room with the given join rule, alias #door, named "Door"; and Bob."""
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, name="Door", room_alias_name="door",
                                initial_state=rule(join_rule), room_version=room_version)
    return alice, bob, room_id


def check_sync(spec: MatrixSpec, body: Json) -> None:
    spec.check_response("sync", "GET", "/sync", 200, body, strict=False)


def members_of(events: list[Json], user_id: str) -> list[str]:
    return [e["content"]["membership"] for e in events
            if e["type"] == "m.room.member" and e["state_key"] == user_id]


@KNOCK_VERSIONS
async def test_knock_reaches_knocker_and_admins(client: TestClient, register: Register,
                                                create_room: Create, spec: MatrixSpec,
                                                room_version: str) -> None:
    alice, bob, room_id = await door(client, register, create_room, room_version=room_version)
    before = (await get_sync(client, alice))["next_batch"]
    resp = await knock(client, bob, "%23door:test.local", {"reason": "Looking for support"},
                       query="?via=elsewhere.example&server_name=elsewhere.example")
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response("knocking", "POST", "/knock/{roomIdOrAlias}", 200, body)
    assert body == {"room_id": room_id}
    # The knocker: rooms.knock with the stripped state and the knock itself.
    sync = await get_sync(client, bob)
    check_sync(spec, sync)
    assert room_id not in sync["rooms"]["join"] and room_id not in sync["rooms"]["invite"]
    stripped = sync["rooms"]["knock"][room_id]["knock_state"]["events"]
    by_type = {(e["type"], e["state_key"]): e for e in stripped}
    assert by_type[("m.room.join_rules", "")]["content"] == {"join_rule": "knock"}
    assert by_type[("m.room.name", "")]["content"] == {"name": "Door"}
    mine = by_type[("m.room.member", bob.user_id)]
    assert mine["content"]["membership"] == "knock"
    assert mine["content"]["reason"] == "Looking for support"
    assert mine["sender"] == bob.user_id
    # Incremental: the knock is not repeated.
    again = await get_sync(client, bob, sync["next_batch"])
    assert room_id not in again["rooms"]["knock"]
    # The admin sees the knock in the room's timeline and in the member list.
    admin = await get_sync(client, alice, before)
    check_sync(spec, admin)
    timeline = admin["rooms"]["join"][room_id]["timeline"]["events"]
    assert members_of(timeline, bob.user_id) == ["knock"]
    for event in timeline:
        spec.check_event(event, with_room_id=False)
    resp = await client.get(f"{V3}/rooms/{room_id}/members?membership=knock",
                            headers=alice.auth)
    assert [e["state_key"] for e in (await resp.json())["chunk"]] == [bob.user_id]
    # Knocking again while knocking is allowed (5.7.3); a plain join is not (5.3.4).
    assert (await knock(client, bob, room_id)).status == 200
    await expect(await client.post(f"{V3}/join/{room_id}", json={}, headers=bob.auth),
                 403, "M_FORBIDDEN")


@KNOCK_VERSIONS
async def test_invite_answers_the_knock(client: TestClient, register: Register,
                                        create_room: Create, spec: MatrixSpec,
                                        room_version: str) -> None:
    alice, bob, room_id = await door(client, register, create_room, room_version=room_version)
    assert (await knock(client, bob, room_id)).status == 200
    since = (await get_sync(client, bob))["next_batch"]
    await post(client, alice, f"/rooms/{room_id}/invite", {"user_id": bob.user_id})
    sync = await get_sync(client, bob, since)
    check_sync(spec, sync)
    assert room_id not in sync["rooms"]["knock"]
    invite = sync["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert members_of(invite, bob.user_id) == ["invite"]
    assert room_id not in (await get_sync(client, bob))["rooms"]["knock"]
    await post(client, bob, f"/join/{room_id}")
    joined = await get_sync(client, bob)
    assert room_id in joined["rooms"]["join"] and not joined["rooms"]["knock"]


@pytest.mark.parametrize("answer", ["retract", "kick"])
async def test_leave_ends_the_knock(client: TestClient, register: Register,
                                    create_room: Create, spec: MatrixSpec, answer: str) -> None:
    alice, bob, room_id = await door(client, register, create_room)
    assert (await knock(client, bob, room_id)).status == 200
    since = (await get_sync(client, bob))["next_batch"]
    admin_since = (await get_sync(client, alice))["next_batch"]
    if answer == "retract":
        await post(client, bob, f"/rooms/{room_id}/leave")
    else:
        await post(client, alice, f"/rooms/{room_id}/kick",
                   {"user_id": bob.user_id, "reason": "not now"})
    sync = await get_sync(client, bob, since)
    check_sync(spec, sync)
    assert room_id not in sync["rooms"]["knock"] and room_id in sync["rooms"]["leave"]
    left = sync["rooms"]["leave"][room_id]
    [own] = [e for e in left["timeline"]["events"] + left["state"]["events"]
             if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
    assert own["content"]["membership"] == "leave"
    assert own["sender"] == (bob if answer == "retract" else alice).user_id
    assert not (await get_sync(client, bob))["rooms"]["knock"]
    admin = await get_sync(client, alice, admin_since)
    timeline = admin["rooms"]["join"][room_id]["timeline"]["events"]
    assert members_of(timeline, bob.user_id) == ["leave"]
    # A knock that was answered with a leave can be made again.
    assert (await knock(client, bob, room_id)).status == 200


@pytest.mark.parametrize("room_version", ["10", "11", "12"])
async def test_knock_restricted_room(client: TestClient, register: Register,
                                     create_room: Create, room_version: str) -> None:
    _alice, bob, room_id = await door(client, register, create_room, "knock_restricted",
                                      room_version)
    resp = await knock(client, bob, room_id)
    assert resp.status == 200, await resp.json()
    assert room_id in (await get_sync(client, bob))["rooms"]["knock"]


@pytest.mark.parametrize(("room_version", "join_rule"), [
    ("1", "knock"), ("6", "knock"), ("9", "knock_restricted"),
])
async def test_no_knocking_where_the_version_lacks_it(
    client: TestClient, register: Register, create_room: Create, room_version: str,
    join_rule: str,
) -> None:
    """v1-v6 have no knock membership; v7-v9 no knock_restricted join rule."""
    _alice, bob, room_id = await door(client, register, create_room, join_rule, room_version)
    await expect(await knock(client, bob, room_id), 403, "M_FORBIDDEN")
    assert not (await get_sync(client, bob))["rooms"]["knock"]


@pytest.mark.parametrize("join_rule", ["public", "invite"])
async def test_join_rule_without_knocking_is_403(client: TestClient, register: Register,
                                                 create_room: Create, spec: MatrixSpec,
                                                 join_rule: str) -> None:
    _alice, bob, room_id = await door(client, register, create_room, join_rule)
    body = await expect(await knock(client, bob, room_id), 403, "M_FORBIDDEN")
    spec.check_response("knocking", "POST", "/knock/{roomIdOrAlias}", 403, body)
    assert not (await get_sync(client, bob))["rooms"]["knock"]


async def test_banned_joined_invited_are_403(client: TestClient, register: Register,
                                             create_room: Create) -> None:
    alice, bob, room_id = await door(client, register, create_room)
    carol = await register("carol")
    # Joined: the room's creator.
    await expect(await knock(client, alice, room_id), 403, "M_FORBIDDEN")
    # Banned.
    await post(client, alice, f"/rooms/{room_id}/ban", {"user_id": bob.user_id})
    await expect(await knock(client, bob, room_id), 403, "M_FORBIDDEN")
    # Invited: join instead.
    await post(client, alice, f"/rooms/{room_id}/invite", {"user_id": carol.user_id})
    await expect(await knock(client, carol, room_id), 403, "M_FORBIDDEN")


async def test_unknown_room_or_alias_is_404(client: TestClient, register: Register,
                                            spec: MatrixSpec) -> None:
    bob = await register("bob")
    for target in ("!nowhere:test.local", "%23nowhere:test.local"):
        body = await expect(await knock(client, bob, target), 404, "M_NOT_FOUND")
        spec.check_response("knocking", "POST", "/knock/{roomIdOrAlias}", 404, body)


async def test_bad_input(client: TestClient, register: Register, create_room: Create) -> None:
    _alice, bob, room_id = await door(client, register, create_room)
    await expect(await knock(client, bob, "not-a-room"), 400, "M_INVALID_PARAM")
    await expect(await knock(client, bob, room_id, {"reason": 5}), 400, "M_BAD_JSON")
    resp = await client.post(f"{V3}/knock/{room_id}", data=b"{nope", headers=bob.auth)
    await expect(resp, 400, "M_NOT_JSON")
    await expect(await client.post(f"{V3}/knock/{room_id}", json={}), 401, "M_MISSING_TOKEN")
    assert not (await get_sync(client, bob))["rooms"]["knock"]


async def test_forget_while_knocking_is_refused(client: TestClient, register: Register,
                                                create_room: Create) -> None:
    _alice, bob, room_id = await door(client, register, create_room)
    assert (await knock(client, bob, room_id)).status == 200
    await expect(await client.post(f"{V3}/rooms/{room_id}/forget", json={}, headers=bob.auth),
                 400, "M_UNKNOWN")


async def test_directory_and_hierarchy_show_knock(client: TestClient, register: Register,
                                                  create_room: Create) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, name="Door", visibility="public",
                                initial_state=rule("knock"))
    resp = await client.get(f"{V3}/publicRooms", headers=bob.auth)
    [entry] = [r for r in (await resp.json())["chunk"] if r["room_id"] == room_id]
    assert entry["join_rule"] == "knock"
    resp = await client.get(f"/_matrix/client/v1/rooms/{room_id}/hierarchy", headers=bob.auth)
    data = await resp.json()
    assert resp.status == 200, data
    assert data["rooms"][0]["join_rule"] == "knock"


async def test_sliding_sync_lists_the_knock(client: TestClient, register: Register,
                                            create_room: Create) -> None:
    _alice, bob, room_id = await door(client, register, create_room)
    assert (await knock(client, bob, room_id)).status == 200
    resp = await client.post(SS, json={"lists": {"all": {"ranges": [[0, 9]],
                                                          "timeline_limit": 1}}},
                             headers=bob.auth)
    data = await resp.json()
    assert resp.status == 200, data
    room = data["rooms"][room_id]
    assert members_of(room["invite_state"], bob.user_id) == ["knock"]
    assert "timeline" not in room or not room["timeline"]
