"""A device token limited to one room (``edgehs device add NAME --room``) is refused on every
route that names another room: the route table's ``{roomId}`` / ``{roomIdOrAlias}`` (the
report route included), ``?room_id=`` and a ``room_id`` in the body. The check lives in
``requester`` and ``json_body``, so these tests walk the whole route table."""

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import V3, Env, User, expect

from edgehs.api.keys import HS_KEY
from edgehs.api.routes import CLIENT_PREFIXES, CLIENT_ROUTES, CLIENT_V1_ROUTES, OTHER_ROUTES

ROOM_PARAM = re.compile(r"\{(roomId|roomIdOrAlias)\}")
REFUSAL = "This token may only be used in one room"

# Room routes that need no access token: a token (scoped or not) authorises nothing there.
PUBLIC_ROOM_ROUTES = {("GET", f"{V3}/directory/list/room/{{roomId}}")}

ROOM_ROUTES = sorted(
    ({(method, CLIENT_PREFIXES[0] + path) for method, path, _ in CLIENT_ROUTES
      if ROOM_PARAM.search(path)}
     | {(method, "/_matrix/client/v1" + path) for method, path, _ in CLIENT_V1_ROUTES
        if ROOM_PARAM.search(path)}
     | {(method, path) for method, path, _ in OTHER_ROUTES if ROOM_PARAM.search(path)})
    - PUBLIC_ROOM_ROUTES)


def test_the_table_has_room_routes() -> None:
    paths = {path for _, path in ROOM_ROUTES}
    assert f"{V3}/rooms/{{roomId}}/report" in paths
    assert len(ROOM_ROUTES) > 40, ROOM_ROUTES


async def scoped(client: TestClient, user: User, room_id: str) -> User:
    """A second device of ``user`` whose token is limited to ``room_id``."""
    token, device_id = await client.app[HS_KEY].users.login(user.user_id, None, "lamp",
                                                            room_id=room_id)
    return User(user.user_id, token, device_id)


def fill(path: str, env: Env, room: str) -> str:
    values = {"roomId": room, "roomIdOrAlias": room, "eventId": env.event_id,
              "userId": env.alice.user_id}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)


@pytest.fixture
async def own_room(client: TestClient, env: Env, create_room: Any) -> str:
    return str(await create_room(env.alice, preset="public_chat", room_alias_name="own"))


@pytest.mark.parametrize("method, path", ROOM_ROUTES, ids=[f"{m} {p}" for m, p in ROOM_ROUTES])
async def test_every_room_route_refuses_a_token_of_another_room(
        client: TestClient, env: Env, own_room: str, method: str, path: str) -> None:
    lamp = await scoped(client, env.alice, own_room)
    body: Any = {"reason": "spam", "user_id": env.bob.user_id, "body": "hi"}
    resp = await client.request(method, fill(path, env, env.room_id), headers=lamp.auth,
                                json=None if method == "GET" else body)
    assert (await expect(resp, 403, "M_FORBIDDEN"))["error"] == REFUSAL


@pytest.mark.parametrize("method, path", sorted(PUBLIC_ROOM_ROUTES))
async def test_the_public_room_routes_need_no_token(client: TestClient, env: Env, method: str,
                                                    path: str) -> None:
    resp = await client.request(method, fill(path, env, env.room_id))
    assert resp.status == 200, await resp.json()


async def test_report_route_of_another_room(client: TestClient, env: Env,
                                            own_room: str) -> None:
    lamp = await scoped(client, env.alice, own_room)
    resp = await client.post(f"{V3}/rooms/{env.room_id}/report", headers=lamp.auth,
                             json={"reason": "spam"})
    await expect(resp, 403, "M_FORBIDDEN")
    reports = await client.post(f"{V3}/rooms/{own_room}/report", headers=lamp.auth,
                                json={"reason": "spam"})
    assert reports.status == 200, await reports.json()


async def test_the_own_room_works(client: TestClient, env: Env, own_room: str) -> None:
    lamp = await scoped(client, env.alice, own_room)
    resp = await client.get(f"{V3}/rooms/{own_room}/state", headers=lamp.auth)
    assert resp.status == 200
    resp = await client.put(f"{V3}/rooms/{own_room}/send/m.room.message/t1", headers=lamp.auth,
                            json={"msgtype": "m.text", "body": "on"})
    assert resp.status == 200
    joined = await client.post(f"{V3}/join/%23own:test.local", headers=lamp.auth, json={})
    assert (joined.status, (await joined.json())["room_id"]) == (200, own_room)


async def test_an_alias_of_another_room(client: TestClient, env: Env, own_room: str,
                                        create_room: Any) -> None:
    await create_room(env.alice, preset="public_chat", room_alias_name="other")
    lamp = await scoped(client, env.alice, own_room)
    for method, path in (("POST", f"{V3}/join/%23other:test.local"),
                         ("POST", f"{V3}/knock/%23other:test.local"),
                         ("GET", "/_matrix/client/v1/room_summary/%23other:test.local")):
        resp = await client.request(method, path, headers=lamp.auth,
                                    json=None if method == "GET" else {})
        await expect(resp, 403, "M_FORBIDDEN")


async def test_a_room_in_the_query_or_the_body(client: TestClient, env: Env,
                                               own_room: str) -> None:
    lamp = await scoped(client, env.alice, own_room)
    resp = await client.get(f"{V3}/events", params={"room_id": env.room_id, "timeout": "0"},
                            headers=lamp.auth)
    await expect(resp, 403, "M_FORBIDDEN")
    resp = await client.put(f"{V3}/directory/room/%23lamp:test.local", headers=lamp.auth,
                            json={"room_id": env.room_id})
    await expect(resp, 403, "M_FORBIDDEN")
    resp = await client.put(f"{V3}/directory/room/%23lamp:test.local", headers=lamp.auth,
                            json={"room_id": own_room})
    assert resp.status == 200, await resp.json()
