"""Room summary (MSC3266, v1.15): GET /_matrix/client/v1/room_summary/{roomIdOrAlias} and the
unstable /_matrix/client/unstable/im.nheko.summary/rooms/{roomIdOrAlias}/summary.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1room_summaryroomidoralias
"""

from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, expect

PATH = "/room_summary/{roomIdOrAlias}"


def url(room: str, unstable: bool = False) -> str:
    if unstable:
        return f"/_matrix/client/unstable/im.nheko.summary/rooms/{quote(room)}/summary"
    return f"/_matrix/client/v1/room_summary/{quote(room)}"


async def summary(client: TestClient, room: str, user: Any, spec: MatrixSpec,
                  unstable: bool = False) -> dict[str, Any]:
    resp = await client.get(url(room, unstable), headers=user.auth if user else {})
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response("room_summary", "GET", PATH, 200, body)
    return dict(body)


async def not_found(client: TestClient, room: str, user: Any, spec: MatrixSpec) -> None:
    resp = await client.get(url(room), headers=user.auth if user else {})
    body = await expect(resp, 404, "M_NOT_FOUND")
    spec.check_response("room_summary", "GET", PATH, 404, body)


@pytest.fixture
async def rooms(client: TestClient, register: Any, create_room: Any) -> dict[str, Any]:
    alice, bob, carol = await register("alice"), await register("bob"), await register("carol")
    lobby = await create_room(alice, preset="public_chat", name="Lobby", topic="Say hi",
                              room_alias_name="lobby")
    private = await create_room(alice, preset="private_chat", name="Secret")
    readable = await create_room(alice, preset="private_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility":
                                                          "world_readable"}}])
    restricted = await create_room(alice, preset="private_chat", name="Members", initial_state=[
        {"type": "m.room.join_rules", "content": {
            "join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": lobby}]}}])
    knock = await create_room(alice, preset="private_chat", name="Door", initial_state=[
        {"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    space = await create_room(alice, preset="private_chat", name="Home",
                              creation_content={"type": "m.space"}, initial_state=[
        {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    resp = await client.post(f"{V3}/join/{lobby}", json={}, headers=bob.auth)
    assert resp.status == 200
    resp = await client.post(f"{V3}/rooms/{space}/invite", json={"user_id": bob.user_id},
                             headers=alice.auth)
    assert resp.status == 200
    return {"alice": alice, "bob": bob, "carol": carol, "lobby": lobby, "private": private,
            "readable": readable, "restricted": restricted, "knock": knock, "space": space}


async def test_public_room_summary(client: TestClient, rooms: dict[str, Any],
                                   spec: MatrixSpec) -> None:
    r = rooms
    body = await summary(client, r["lobby"], r["alice"], spec)
    version = body.pop("room_version")
    assert isinstance(version, str) and version
    assert body == {"room_id": r["lobby"], "name": "Lobby", "topic": "Say hi",
                    "canonical_alias": "#lobby:test.local", "num_joined_members": 2,
                    "join_rule": "public", "world_readable": False, "guest_can_join": False,
                    "membership": "join"}
    # By alias; a stranger's membership is "leave"; the unstable path answers the same.
    by_alias = await summary(client, "#lobby:test.local", r["carol"], spec)
    assert by_alias["room_id"] == r["lobby"] and by_alias["membership"] == "leave"
    assert await summary(client, "#lobby:test.local", r["carol"], spec,
                         unstable=True) == by_alias
    # Unauthenticated: no membership.
    anonymous = await summary(client, r["lobby"], None, spec)
    assert "membership" not in anonymous and anonymous["name"] == "Lobby"


async def test_members_see_private_rooms(client: TestClient, rooms: dict[str, Any],
                                         spec: MatrixSpec) -> None:
    r = rooms
    body = await summary(client, r["private"], r["alice"], spec)
    assert (body["join_rule"], body["membership"]) == ("invite", "join")
    # An invited user sees the space (type, encryption) before accepting.
    body = await summary(client, r["space"], r["bob"], spec)
    assert body["membership"] == "invite"
    assert body["room_type"] == "m.space"
    assert body["encryption"] == "m.megolm.v1.aes-sha2"
    assert body["num_joined_members"] == 1
    await summary(client, r["space"], r["bob"], spec, unstable=True)


async def test_hidden_rooms_are_not_found(client: TestClient, rooms: dict[str, Any],
                                          spec: MatrixSpec) -> None:
    r = rooms
    for room in ("private", "space", "restricted"):
        await not_found(client, r[room], r["carol"], spec)
        await not_found(client, r[room], None, spec)
    resp = await client.get(url(r["space"], unstable=True), headers=r["carol"].auth)
    await expect(resp, 404, "M_NOT_FOUND")
    # Banned: a private room is hidden, a public one shows the ban.
    for room in ("private", "lobby"):
        resp = await client.post(f"{V3}/rooms/{r[room]}/ban", json={"user_id": r["carol"].user_id},
                                 headers=r["alice"].auth)
        assert resp.status == 200
    await not_found(client, r["private"], r["carol"], spec)
    assert (await summary(client, r["lobby"], r["carol"], spec))["membership"] == "ban"


async def test_potential_joiners(client: TestClient, rooms: dict[str, Any],
                                 spec: MatrixSpec) -> None:
    r = rooms
    # Restricted: bob is joined to the allowed room, carol is not (see above).
    body = await summary(client, r["restricted"], r["bob"], spec)
    assert body["join_rule"] == "restricted"
    assert body["allowed_room_ids"] == [r["lobby"]]
    assert body["membership"] == "leave"
    # world_readable history and knock join rules: anyone, even unauthenticated.
    for room in ("readable", "knock"):
        assert (await summary(client, r[room], r["carol"], spec))["membership"] == "leave"
        assert "membership" not in await summary(client, r[room], None, spec)
    assert (await summary(client, r["readable"], None, spec))["world_readable"] is True
    assert (await summary(client, r["knock"], None, spec))["join_rule"] == "knock"


async def test_room_summary_bad_input(client: TestClient, rooms: dict[str, Any],
                                      spec: MatrixSpec) -> None:
    r = rooms
    for room in ("#nowhere:test.local", "#lobby:elsewhere.example", "!unknown:test.local"):
        await not_found(client, room, r["alice"], spec)
        await not_found(client, room, None, spec)
    for bad in ("lobby", "@alice:test.local", "!"):
        resp = await client.get(url(bad), headers=r["alice"].auth)
        body = await expect(resp, 400, "M_INVALID_PARAM")
        spec.check_response("room_summary", "GET", PATH, 400, body)
    await expect(await client.get(url("#bad alias")), 400, "M_INVALID_PARAM")
    # A token, if given, must be valid.
    resp = await client.get(url(r["lobby"]), headers={"Authorization": "Bearer nope"})
    await expect(resp, 401, "M_UNKNOWN_TOKEN")
    resp = await client.get(url(r["lobby"]), headers={"Authorization": "Basic abc"})
    await expect(resp, 401, "M_MISSING_TOKEN")


async def test_versions_advertises_unstable_summary(client: TestClient) -> None:
    resp = await client.get("/_matrix/client/versions")
    assert (await resp.json())["unstable_features"]["im.nheko.summary"] is True
