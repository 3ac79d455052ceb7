"""Spaces: GET /rooms/{roomId}/hierarchy.

https://spec.matrix.org/v1.19/client-server-api/#spaces
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidhierarchy
"""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, expect

V1 = "/_matrix/client/v1"
PATH = "/rooms/{roomId}/hierarchy"


async def add_child(client: TestClient, user: Any, space: str, child: str,
                    **content: Any) -> None:
    body = {"via": ["test.local"], **content}
    resp = await client.put(f"{V3}/rooms/{space}/state/m.space.child/{child}", json=body,
                            headers=user.auth)
    assert resp.status == 200, await resp.text()


async def hierarchy(client: TestClient, user: Any, room_id: str, spec: MatrixSpec,
                    **params: Any) -> dict[str, Any]:
    resp = await client.get(f"{V1}/rooms/{room_id}/hierarchy", params=params,
                            headers=user.auth)
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response("space_hierarchy", "GET", PATH, 200, body)
    return dict(body)


@pytest.fixture
async def space(client: TestClient, register: Any, create_room: Any) -> dict[str, Any]:
    """A public space with: a public room, an invite-only room, a world-readable room, a room
    restricted to the space's members, a sub-space (with one room) and a child without via."""
    alice, bob = await register("alice"), await register("bob")
    space = await create_room(alice, preset="public_chat", name="Home",
                              creation_content={"type": "m.space"}, topic="our house")
    public = await create_room(alice, preset="public_chat", name="Kitchen")
    private = await create_room(alice, preset="private_chat", name="Secret")
    readable = await create_room(alice, preset="private_chat", name="Log", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility":
                                                          "world_readable"}}])
    restricted = await create_room(alice, preset="private_chat", name="Members", initial_state=[
        {"type": "m.room.join_rules", "content": {
            "join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": space}]}}])
    sub = await create_room(alice, preset="public_chat", name="Garden",
                            creation_content={"type": "m.space"})
    shed = await create_room(alice, preset="public_chat", name="Shed")
    hidden = await create_room(alice, preset="public_chat", name="No via")
    await add_child(client, alice, space, public, order="b", suggested=True)
    await add_child(client, alice, space, private, order="c")
    await add_child(client, alice, space, readable, order="d")
    await add_child(client, alice, space, restricted, order="e")
    await add_child(client, alice, space, sub, order="a")
    await add_child(client, alice, sub, shed)
    resp = await client.put(f"{V3}/rooms/{space}/state/m.space.child/{hidden}", json={},
                            headers=alice.auth)
    assert resp.status == 200
    return {"alice": alice, "bob": bob, "space": space, "public": public, "private": private,
            "readable": readable, "restricted": restricted, "sub": sub, "shed": shed}


def ids(body: dict[str, Any]) -> list[str]:
    return [r["room_id"] for r in body["rooms"]]


async def test_hierarchy_walk(client: TestClient, space: dict[str, Any],
                              spec: MatrixSpec) -> None:
    s = space
    # alice is in every room: depth first, children by `order`
    body = await hierarchy(client, s["alice"], s["space"], spec)
    assert ids(body) == [s["space"], s["sub"], s["shed"], s["public"], s["private"],
                         s["readable"], s["restricted"]]
    assert "next_batch" not in body
    root = body["rooms"][0]
    assert root["room_type"] == "m.space" and root["name"] == "Home"
    assert root["topic"] == "our house" and root["join_rule"] == "public"
    assert root["num_joined_members"] == 1 and root["room_version"] == "12"
    children = {c["state_key"]: c for c in root["children_state"]}
    assert set(children) == {s["public"], s["private"], s["readable"], s["restricted"], s["sub"]}
    assert all(c["type"] == "m.space.child" and c["sender"] == s["alice"].user_id
               and isinstance(c["origin_server_ts"], int) for c in children.values())
    assert children[s["public"]]["content"]["suggested"] is True
    leaf = body["rooms"][3]
    assert leaf["children_state"] == [] and "room_type" not in leaf
    restricted = body["rooms"][6]
    assert restricted["join_rule"] == "restricted"
    assert restricted["allowed_room_ids"] == [s["space"]]
    # bob is in no room: the invite-only room is hidden, the restricted one too until he
    # joins the space
    body = await hierarchy(client, s["bob"], s["space"], spec)
    assert ids(body) == [s["space"], s["sub"], s["shed"], s["public"], s["readable"]]
    assert (await client.post(f"{V3}/join/{s['space']}", headers=s["bob"].auth)).status == 200
    body = await hierarchy(client, s["bob"], s["space"], spec)
    assert ids(body) == [s["space"], s["sub"], s["shed"], s["public"], s["readable"],
                         s["restricted"]]


async def test_hierarchy_filters_and_pages(client: TestClient, space: dict[str, Any],
                                           spec: MatrixSpec) -> None:
    s, alice = space, space["alice"]
    body = await hierarchy(client, alice, s["space"], spec, suggested_only="true")
    assert ids(body) == [s["space"], s["public"]]
    assert [c["state_key"] for c in body["rooms"][0]["children_state"]] == [s["public"]]
    assert ids(await hierarchy(client, alice, s["space"], spec, max_depth="0")) == [s["space"]]
    assert ids(await hierarchy(client, alice, s["space"], spec, max_depth="1")) == [
        s["space"], s["sub"], s["public"], s["private"], s["readable"], s["restricted"]]
    # pages of three
    seen: list[str] = []
    params: dict[str, str] = {"limit": "3"}
    for _ in range(5):
        page = await hierarchy(client, alice, s["space"], spec, **params)
        seen += ids(page)
        if "next_batch" not in page:
            break
        params = {"limit": "3", "from": page["next_batch"]}
    assert seen == [s["space"], s["sub"], s["shed"], s["public"], s["private"], s["readable"],
                    s["restricted"]]
    first = await hierarchy(client, alice, s["space"], spec, limit="2")
    # a token is only good with the same suggested_only and max_depth
    url = f"{V1}/rooms/{s['space']}/hierarchy"
    for changed in ({"max_depth": "1"}, {"suggested_only": "true"}):
        body = await expect(await client.get(
            url, params={"from": first["next_batch"], **changed}, headers=alice.auth),
            400, "M_INVALID_PARAM")
        spec.check_response("space_hierarchy", "GET", PATH, 400, body)


async def test_hierarchy_bad_input(client: TestClient, space: dict[str, Any],
                                   spec: MatrixSpec, register: Any, create_room: Any) -> None:
    s = space
    url = f"{V1}/rooms/{s['space']}/hierarchy"
    for params in ({"limit": "0"}, {"limit": "-3"}, {"limit": "many"}, {"max_depth": "-1"},
                   {"from": "nonsense"}, {"from": "1_2"}, {"suggested_only": "maybe"}):
        await expect(await client.get(url, params=params, headers=s["alice"].auth), 400,
                     "M_INVALID_PARAM")
    # a space bob cannot see, and one that does not exist
    for room_id in (s["private"], "!nowhere:test.local"):
        body = await expect(await client.get(f"{V1}/rooms/{room_id}/hierarchy",
                                             headers=s["bob"].auth), 403, "M_FORBIDDEN")
        spec.check_response("space_hierarchy", "GET", PATH, 403, body)
    # banned from a public space
    resp = await client.post(f"{V3}/rooms/{s['space']}/ban", json={"user_id": s["bob"].user_id},
                             headers=s["alice"].auth)
    assert resp.status == 200
    await expect(await client.get(url, headers=s["bob"].auth), 403, "M_FORBIDDEN")
    await expect(await client.get(url), 401, "M_MISSING_TOKEN")
