"""POST /user_directory/search and GET /mutual_rooms.

https://spec.matrix.org/v1.19/client-server-api/#user-directory
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mutual_rooms
"""

from typing import Any

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User, expect

from edgehs.api.keys import HS_KEY

V1 = "/_matrix/client/v1"
UNSTABLE = "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms"


async def find(client: TestClient, user: User, term: str, spec: MatrixSpec | None = None,
               **extra: Any) -> dict[str, Any]:
    resp = await client.post(f"{V3}/user_directory/search", headers=user.auth,
                             json={"search_term": term, **extra})
    body = await resp.json()
    assert resp.status == 200, body
    if spec is not None:
        spec.check_response("users", "POST", "/user_directory/search", 200, body)
    return dict(body)


def user_ids(body: dict[str, Any]) -> list[str]:
    return [r["user_id"] for r in body["results"]]


async def join(client: TestClient, user: User, room_id: str) -> None:
    assert (await client.post(f"{V3}/join/{room_id}", headers=user.auth, json={})).status == 200


async def set_name(client: TestClient, user: User, name: str) -> None:
    resp = await client.put(f"{V3}/profile/{user.user_id}/displayname",
                            json={"displayname": name}, headers=user.auth)
    assert resp.status == 200


async def test_shared_and_public_rooms(client: TestClient, register: Any, create_room: Any,
                                       spec: MatrixSpec) -> None:
    alice, bob, carol, dave = [await register(n) for n in ("alice", "bob", "carol", "dave")]
    # Nobody shares a room yet: nobody is found.
    assert (await find(client, alice, "bob", spec)) == {"results": [], "limited": False}
    private = await create_room(alice, preset="private_chat", invite=[bob.user_id])
    await join(client, bob, private)
    assert user_ids(await find(client, alice, "bob", spec)) == [bob.user_id]
    assert user_ids(await find(client, bob, "ali")) == [alice.user_id]
    # carol cannot see into the private room
    assert user_ids(await find(client, carol, "bob")) == []
    # nor does sharing a private room make bob visible to himself
    assert user_ids(await find(client, bob, "bob")) == []
    await client.put(f"{V3}/rooms/{private}/state/m.room.join_rules/", headers=alice.auth,
                     json={"join_rule": "public"})
    assert user_ids(await find(client, bob, "bob")) == [bob.user_id]
    assert user_ids(await find(client, carol, "bob")) == [bob.user_id]
    await client.put(f"{V3}/rooms/{private}/state/m.room.join_rules/", headers=alice.auth,
                     json={"join_rule": "invite"})
    assert user_ids(await find(client, bob, "bob")) == []
    # dave joins a public room: everyone finds him, though they share nothing
    public = await create_room(dave, preset="public_chat")
    assert user_ids(await find(client, carol, "dave")) == [dave.user_id]
    # leaving the public room takes him out again
    assert (await client.post(f"{V3}/rooms/{public}/leave", headers=dave.auth,
                              json={})).status == 200
    assert user_ids(await find(client, carol, "dave")) == []


async def test_display_names_case_and_profile_changes(client: TestClient, register: Any,
                                                      create_room: Any, spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    await set_name(client, bob, "Zoë Ångström")
    await create_room(alice, preset="public_chat", invite=[bob.user_id])
    room = await create_room(bob, preset="public_chat")
    assert room
    found = await find(client, alice, "zoë", spec)
    assert found["results"] == [{"user_id": bob.user_id, "display_name": "Zoë Ångström"}]
    assert user_ids(await find(client, alice, "ÅNG")) == [bob.user_id]  # word prefix
    assert user_ids(await find(client, alice, "@bo")) == [bob.user_id]  # user id prefix
    assert user_ids(await find(client, alice, "zoë ång")) == [bob.user_id]  # every word
    assert user_ids(await find(client, alice, "zoë xyz")) == []
    assert user_ids(await find(client, alice, "ngstr")) == []  # not a prefix
    # a new display name is searchable at once, the old one no more
    await set_name(client, bob, "Robert")
    assert user_ids(await find(client, alice, "rob")) == [bob.user_id]
    assert user_ids(await find(client, alice, "zoë")) == []
    avatar = "mxc://test.local/abcdef"
    resp = await client.put(f"{V3}/profile/{bob.user_id}/avatar_url",
                            json={"avatar_url": avatar}, headers=bob.auth)
    assert resp.status == 200
    found = await find(client, alice, "robert", spec)
    assert found["results"] == [{"user_id": bob.user_id, "display_name": "Robert",
                                 "avatar_url": avatar}]


async def test_limit_and_ranking(client: TestClient, register: Any, create_room: Any,
                                 spec: MatrixSpec) -> None:
    searcher = await register("searcher")
    users = [await register(f"sam{i}") for i in range(5)]
    room = await create_room(searcher, preset="public_chat")
    for user in users:
        await join(client, user, room)
    await set_name(client, users[3], "sam")
    found = await find(client, searcher, "sam", spec, limit=2)
    assert found["limited"] is True and len(found["results"]) == 2
    assert found["results"][0]["user_id"] == users[3].user_id  # the exact name first
    found = await find(client, searcher, "sam", limit=10)
    assert found["limited"] is False and len(found["results"]) == 5
    assert (await find(client, searcher, "   "))["results"] == []
    for wildcard in ("%", "_", "\\", "s%m", "sam_"):  # LIKE's metacharacters are plain text
        assert (await find(client, searcher, wildcard))["results"] == []


async def test_deactivated_users_are_hidden(client: TestClient, register: Any,
                                            create_room: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    room = await create_room(alice, preset="public_chat")
    await join(client, bob, room)
    assert user_ids(await find(client, alice, "bob")) == [bob.user_id]
    resp = await client.post(f"{V3}/account/deactivate", headers=bob.auth, json={
        "auth": {"type": "m.login.password", "password": "secret-pw",
                 "identifier": {"type": "m.id.user", "user": bob.user_id}}})
    assert resp.status == 200, await resp.text()
    assert user_ids(await find(client, alice, "bob")) == []


async def test_user_directory_bad_input(client: TestClient, register: Any,
                                        spec: MatrixSpec) -> None:
    alice = await register("alice")
    url = f"{V3}/user_directory/search"
    for body, errcode in (({}, "M_MISSING_PARAM"), ({"search_term": 1}, "M_BAD_JSON"),
                          ({"search_term": "a", "limit": "5"}, "M_BAD_JSON"),
                          ({"search_term": "a", "limit": -1}, "M_INVALID_PARAM")):
        resp = await client.post(url, json=body, headers=alice.auth)
        await expect(resp, 400, errcode)
    await expect(await client.post(url, data=b"[", headers=alice.auth), 400, "M_NOT_JSON")
    await expect(await client.post(url, data=b'{"search_term": "\\udc00"}', headers=alice.auth),
                 400, "M_BAD_JSON")
    await expect(await client.post(url, json={"search_term": "a"}), 401, "M_MISSING_TOKEN")


async def test_mutual_rooms(client: TestClient, register: Any, create_room: Any,
                            spec: MatrixSpec) -> None:
    alice, bob, carol = await register("alice"), await register("bob"), await register("carol")
    rooms = sorted([await create_room(alice, preset="public_chat") for _ in range(3)])
    await join(client, bob, rooms[0])
    await join(client, bob, rooms[2])
    await join(client, carol, rooms[1])
    for path in (f"{V1}/mutual_rooms", UNSTABLE):
        resp = await client.get(path, params={"user_id": bob.user_id}, headers=alice.auth)
        body = await resp.json()
        assert resp.status == 200, body
        spec.check_response("mutual_rooms", "GET", "/mutual_rooms", 200, body)
        assert body == {"joined": [rooms[0], rooms[2]], "count": 2}
    resp = await client.get(f"{V1}/mutual_rooms", params={"user_id": carol.user_id},
                            headers=bob.auth)
    assert await resp.json() == {"joined": [], "count": 0}
    # an unknown (valid) user: an empty list, as the spec asks
    resp = await client.get(f"{V1}/mutual_rooms", params={"user_id": "@nobody:elsewhere"},
                            headers=alice.auth)
    assert await resp.json() == {"joined": [], "count": 0}
    # Element only asks when /versions advertises the unstable feature
    resp = await client.get("/_matrix/client/versions")
    assert (await resp.json())["unstable_features"]["uk.half-shot.msc2666.query_mutual_rooms"]


async def test_mutual_rooms_pagination(client: TestClient, register: Any,
                                       create_room: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    rooms = [await create_room(alice, preset="public_chat") for _ in range(3)]
    for room in rooms:
        await join(client, bob, room)
    client.app[HS_KEY].user_directory.page_size = 2
    resp = await client.get(f"{V1}/mutual_rooms", params={"user_id": bob.user_id},
                            headers=alice.auth)
    first = await resp.json()
    assert len(first["joined"]) == 2 and first["count"] == 3 and "next_batch" in first
    resp = await client.get(f"{V1}/mutual_rooms", headers=alice.auth,
                            params={"user_id": bob.user_id, "from": first["next_batch"]})
    second = await resp.json()
    assert len(second["joined"]) == 1 and "next_batch" not in second
    assert sorted(first["joined"] + second["joined"]) == sorted(rooms)


async def test_mutual_rooms_bad_input(client: TestClient, register: Any,
                                      spec: MatrixSpec) -> None:
    alice = await register("alice")
    url = f"{V1}/mutual_rooms"
    cases: list[tuple[dict[str, str], str]] = [
        ({}, "M_MISSING_PARAM"),
        ({"user_id": "bob"}, "M_INVALID_PARAM"),
        ({"user_id": "@bob"}, "M_INVALID_PARAM"),
        ({"user_id": alice.user_id}, "M_INVALID_PARAM"),
        ({"user_id": "@bob:test.local", "from": "nope"}, "M_INVALID_PARAM"),
    ]
    for params, errcode in cases:
        body = await expect(await client.get(url, params=params, headers=alice.auth), 400,
                            errcode)
        spec.check_response("mutual_rooms", "GET", "/mutual_rooms", 400, body)
    await expect(await client.get(url, params={"user_id": "@b:c"}), 401, "M_MISSING_TOKEN")
