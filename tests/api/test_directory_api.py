"""Room aliases, the published room directory and /publicRooms.

https://spec.matrix.org/v1.19/client-server-api/#room-aliases
https://spec.matrix.org/v1.19/client-server-api/#published-room-directory
"""

from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec

V3 = "/_matrix/client/v3"


def alias_path(alias: str) -> str:
    return f"{V3}/directory/room/{quote(alias, safe=':')}"


async def put_alias(client: TestClient, user: Any, alias: str, room_id: Any,
                    status: int = 200) -> dict[str, Any]:
    resp = await client.put(alias_path(alias), json={"room_id": room_id}, headers=user.auth)
    body = await resp.json()
    assert resp.status == status, body
    return dict(body)


async def call(client: TestClient, method: str, path: str, user: Any | None = None,
               status: int = 200, **kwargs: Any) -> dict[str, Any]:
    headers = user.auth if user is not None else {}
    resp = await client.request(method, path, headers=headers, **kwargs)
    body = await resp.json()
    assert resp.status == status, body
    return dict(body)


async def test_alias_create_resolve_list_delete(client: TestClient, register, create_room
                                                ) -> None:
    alice = await register("alice")
    room_id = await create_room(alice)
    assert await put_alias(client, alice, "#hall:test.local", room_id) == {}
    resolved = await call(client, "GET", alias_path("#hall:test.local"))  # no auth needed
    assert resolved == {"room_id": room_id, "servers": ["test.local"]}
    listed = await call(client, "GET", f"{V3}/rooms/{room_id}/aliases", alice)
    assert listed == {"aliases": ["#hall:test.local"]}
    taken = await put_alias(client, alice, "#hall:test.local", room_id, 409)
    assert taken["errcode"] == "M_UNKNOWN"
    bob = await register("bob")
    assert await call(client, "DELETE", alias_path("#hall:test.local"), alice) == {}
    gone = await call(client, "GET", alias_path("#hall:test.local"), status=404)
    assert gone["errcode"] == "M_NOT_FOUND"
    again = await call(client, "DELETE", alias_path("#hall:test.local"), alice, 404)
    assert again["errcode"] == "M_NOT_FOUND"
    assert (await call(client, "GET", f"{V3}/rooms/{room_id}/aliases", alice))["aliases"] == []
    forbidden = await call(client, "GET", f"{V3}/rooms/{room_id}/aliases", bob, 403)
    assert forbidden["errcode"] == "M_FORBIDDEN"


async def test_alias_permissions(client: TestClient, register, create_room) -> None:
    alice, bob, eve = await register("alice"), await register("bob"), await register("eve")
    room_id = await create_room(alice, preset="public_chat", room_alias_name="town")
    assert (await call(client, "POST", f"{V3}/join/%23town:test.local", bob))["room_id"] \
        == room_id
    # A non-member cannot add an alias; a member can.
    assert (await put_alias(client, eve, "#eve:test.local", room_id, 403))["errcode"] \
        == "M_FORBIDDEN"
    await put_alias(client, bob, "#bobs:test.local", room_id)
    # Bob (power 0) cannot delete Alice's alias; Alice (room admin) can delete Bob's.
    denied = await call(client, "DELETE", alias_path("#town:test.local"), bob, 403)
    assert denied["errcode"] == "M_FORBIDDEN"
    await call(client, "DELETE", alias_path("#bobs:test.local"), alice)
    # Bob may delete an alias he created himself.
    await put_alias(client, bob, "#mine:test.local", room_id)
    await call(client, "DELETE", alias_path("#mine:test.local"), bob)

    # Deleting the canonical alias takes it out of m.room.canonical_alias.
    state_path = f"{V3}/rooms/{room_id}/state/m.room.canonical_alias"
    assert (await call(client, "GET", state_path, alice))["alias"] == "#town:test.local"
    await call(client, "DELETE", alias_path("#town:test.local"), alice)
    assert "alias" not in await call(client, "GET", state_path, alice)


@pytest.mark.parametrize(("alias", "body", "status", "errcode"), [
    ("hall", None, 400, "M_INVALID_PARAM"),
    ("#hall", None, 400, "M_INVALID_PARAM"),
    ("#hall:other.server", None, 400, "M_INVALID_PARAM"),
    ("#with space:test.local", None, 400, "M_INVALID_PARAM"),
    ("#hall:test.local", {}, 400, "M_MISSING_PARAM"),
    ("#hall:test.local", {"room_id": 5}, 400, "M_BAD_JSON"),
    ("#hall:test.local", {"room_id": "not-a-room"}, 400, "M_INVALID_PARAM"),
    ("#hall:test.local", {"room_id": "!unknown:test.local"}, 404, "M_NOT_FOUND"),
])
async def test_put_alias_bad_input(client: TestClient, register, create_room, alias: str,
                                   body: dict[str, Any] | None, status: int, errcode: str
                                   ) -> None:
    alice = await register("alice")
    room_id = await create_room(alice)
    resp = await client.put(alias_path(alias), json=body if body is not None else {
        "room_id": room_id}, headers=alice.auth)
    assert resp.status == status
    assert (await resp.json())["errcode"] == errcode


async def test_alias_bad_requests(client: TestClient, register, create_room) -> None:
    alice = await register("alice")
    room_id = await create_room(alice)
    resp = await client.put(alias_path("#a:test.local"), data=b"{nope", headers=alice.auth)
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_NOT_JSON"
    resp = await client.put(alias_path("#a:test.local"), json={"room_id": room_id})
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_MISSING_TOKEN"
    resp = await client.delete(alias_path("#a:test.local"))
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_MISSING_TOKEN"
    assert (await call(client, "GET", alias_path("bad"), status=400))["errcode"] \
        == "M_INVALID_PARAM"
    # Remote aliases cannot be resolved without federation.
    assert (await call(client, "GET", alias_path("#x:remote.example"), status=404))[
        "errcode"] == "M_NOT_FOUND"
    assert (await call(client, "DELETE", alias_path("#x:remote.example"), alice, 400))[
        "errcode"] == "M_INVALID_PARAM"
    assert (await call(client, "GET", f"{V3}/rooms/!nope:test.local/aliases", alice, 403))[
        "errcode"] == "M_FORBIDDEN"


async def test_room_visibility(client: TestClient, register, create_room) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    path = f"{V3}/directory/list/room/{room_id}"
    assert await call(client, "GET", path) == {"visibility": "private"}
    await call(client, "PUT", path, alice, json={"visibility": "public"})
    assert await call(client, "GET", path) == {"visibility": "public"}
    await call(client, "POST", f"{V3}/join/{room_id}", bob)
    denied = await call(client, "PUT", path, bob, 403, json={"visibility": "private"})
    assert denied["errcode"] == "M_FORBIDDEN"
    await call(client, "PUT", path, alice, json={"visibility": "private"})
    await call(client, "PUT", path, alice, json={})  # defaults to public
    assert await call(client, "GET", path) == {"visibility": "public"}

    for method, kwargs, status, errcode in (
        ("PUT", {"json": {"visibility": "secret"}}, 400, "M_INVALID_PARAM"),
        ("PUT", {"json": {"visibility": 1}}, 400, "M_BAD_JSON"),
        ("PUT", {"data": b"[]"}, 400, "M_BAD_JSON"),
    ):
        assert (await call(client, method, path, alice, status, **kwargs))["errcode"] == errcode
    unknown = f"{V3}/directory/list/room/!nope:test.local"
    assert (await call(client, "GET", unknown, status=404))["errcode"] == "M_NOT_FOUND"
    assert (await call(client, "PUT", unknown, alice, 404, json={}))["errcode"] == "M_NOT_FOUND"
    resp = await client.put(path, json={"visibility": "public"})
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_MISSING_TOKEN"


async def test_public_rooms(client: TestClient, register, create_room) -> None:
    alice, bob = await register("alice"), await register("bob")
    cafe = await create_room(alice, visibility="public", name="Cafe", topic="Coffee talk",
                             room_alias_name="cafe")
    garden = await create_room(alice, visibility="public", name="Garden",
                               creation_content={"type": "m.space"})
    hidden = await create_room(alice, name="Hidden Cafe")
    await call(client, "POST", f"{V3}/join/{cafe}", bob)

    listing = await call(client, "GET", f"{V3}/publicRooms")
    assert [r["room_id"] for r in listing["chunk"]] == [cafe, garden]
    assert listing["total_room_count_estimate"] == 2
    entry = listing["chunk"][0]
    assert entry == {
        "room_id": cafe, "num_joined_members": 2, "name": "Cafe", "topic": "Coffee talk",
        "canonical_alias": "#cafe:test.local", "world_readable": False,
        "guest_can_join": False, "join_rule": "public",
    }
    assert listing["chunk"][1]["room_type"] == "m.space"
    assert hidden not in [r["room_id"] for r in listing["chunk"]]

    page1 = await call(client, "GET", f"{V3}/publicRooms", params={"limit": "1"})
    assert [r["room_id"] for r in page1["chunk"]] == [cafe] and "prev_batch" not in page1
    page2 = await call(client, "GET", f"{V3}/publicRooms", params={
        "limit": "1", "since": page1["next_batch"]})
    assert [r["room_id"] for r in page2["chunk"]] == [garden] and "next_batch" not in page2
    back = await call(client, "GET", f"{V3}/publicRooms", params={
        "limit": "1", "since": page2["prev_batch"]})
    assert [r["room_id"] for r in back["chunk"]] == [cafe]

    post = f"{V3}/publicRooms"
    for flt, expected in (
        ({"generic_search_term": "coffee"}, [cafe]),
        ({"generic_search_term": "CAFE:test"}, [cafe]),
        ({"generic_search_term": "gard"}, [garden]),
        ({"generic_search_term": "nothing"}, []),
        ({"room_types": [None]}, [cafe]),
        ({"room_types": ["m.space"]}, [garden]),
        ({"room_types": [None, "m.space"]}, [cafe, garden]),
    ):
        found = await call(client, "POST", post, alice, json={"filter": flt})
        assert [r["room_id"] for r in found["chunk"]] == expected, flt
    limited = await call(client, "POST", post, alice, json={"limit": 1})
    assert len(limited["chunk"]) == 1 and limited["next_batch"]
    network = await call(client, "POST", post, alice, json={"third_party_instance_id": "irc"})
    assert network["chunk"] == []
    every = await call(client, "POST", post, alice, json={"include_all_networks": True})
    assert len(every["chunk"]) == 2


@pytest.mark.parametrize(("method", "kwargs", "status", "errcode"), [
    ("GET", {"params": {"limit": "x"}}, 400, "M_INVALID_PARAM"),
    ("GET", {"params": {"limit": "-1"}}, 400, "M_INVALID_PARAM"),
    ("GET", {"params": {"since": "garbage"}}, 400, "M_INVALID_PARAM"),
    ("GET", {"params": {"server": "remote.example"}}, 400, "M_INVALID_PARAM"),
    ("POST", {"json": {"limit": "10"}}, 400, "M_BAD_JSON"),
    ("POST", {"json": {"limit": -1}}, 400, "M_INVALID_PARAM"),
    ("POST", {"json": {"since": 3}}, 400, "M_BAD_JSON"),
    ("POST", {"json": {"since": "zz"}}, 400, "M_INVALID_PARAM"),
    ("POST", {"json": {"filter": "coffee"}}, 400, "M_BAD_JSON"),
    ("POST", {"json": {"filter": {"generic_search_term": 5}}}, 400, "M_BAD_JSON"),
    ("POST", {"json": {"filter": {"room_types": "m.space"}}}, 400, "M_BAD_JSON"),
    ("POST", {"json": {"filter": {"room_types": [1]}}}, 400, "M_BAD_JSON"),
    ("POST", {"json": {"include_all_networks": "yes"}}, 400, "M_BAD_JSON"),
    ("POST", {"data": b"{"}, 400, "M_NOT_JSON"),
])
async def test_public_rooms_bad_input(client: TestClient, register, method: str,
                                      kwargs: dict[str, Any], status: int, errcode: str
                                      ) -> None:
    alice = await register("alice")
    body = await call(client, method, f"{V3}/publicRooms", alice, status, **kwargs)
    assert body["errcode"] == errcode


async def test_post_public_rooms_needs_auth(client: TestClient) -> None:
    resp = await client.post(f"{V3}/publicRooms", json={})
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_MISSING_TOKEN"


async def test_directory_responses_match_the_spec_schema(client: TestClient, register,
                                                         create_room) -> None:
    spec = MatrixSpec.load()
    alice = await register("alice")
    room_id = await create_room(alice, visibility="public", name="Cafe", topic="Coffee",
                                room_alias_name="cafe")
    alias = "/directory/room/{roomAlias}"
    checks: list[tuple[str, str, str, int, dict[str, Any]]] = [
        ("directory", "PUT", alias, 200,
         await put_alias(client, alice, "#more:test.local", room_id)),
        ("directory", "PUT", alias, 409,
         await put_alias(client, alice, "#more:test.local", room_id, 409)),
        ("directory", "PUT", alias, 400, await put_alias(client, alice, "bad", room_id, 400)),
        ("directory", "GET", alias, 200,
         await call(client, "GET", alias_path("#more:test.local"))),
        ("directory", "GET", alias, 404,
         await call(client, "GET", alias_path("#none:test.local"), status=404)),
        ("directory", "DELETE", alias, 200,
         await call(client, "DELETE", alias_path("#more:test.local"), alice)),
        ("directory", "DELETE", alias, 404,
         await call(client, "DELETE", alias_path("#more:test.local"), alice, 404)),
        ("directory", "GET", "/rooms/{roomId}/aliases", 200,
         await call(client, "GET", f"{V3}/rooms/{room_id}/aliases", alice)),
        ("list_public_rooms", "GET", "/directory/list/room/{roomId}", 200,
         await call(client, "GET", f"{V3}/directory/list/room/{room_id}")),
        ("list_public_rooms", "PUT", "/directory/list/room/{roomId}", 200,
         await call(client, "PUT", f"{V3}/directory/list/room/{room_id}", alice,
                    json={"visibility": "public"})),
        ("list_public_rooms", "GET", "/directory/list/room/{roomId}", 404,
         await call(client, "GET", f"{V3}/directory/list/room/!x:test.local", status=404)),
        ("list_public_rooms", "GET", "/publicRooms", 200,
         await call(client, "GET", f"{V3}/publicRooms")),
        ("list_public_rooms", "POST", "/publicRooms", 200,
         await call(client, "POST", f"{V3}/publicRooms", alice,
                    json={"filter": {"generic_search_term": "coffee"}})),
    ]
    for api_file, method, path, status, body in checks:
        spec.check_response(api_file, method, path, status, body)
