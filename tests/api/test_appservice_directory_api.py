"""The application services' published room directories and the network filters of
/publicRooms.

https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3directorylistappservicenetworkidroomid
https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3publicrooms
"""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, Env, expect

from edgehs.api.keys import HS_KEY
from edgehs.service.appservice.registry import AppService

AS_AUTH = {"Authorization": "Bearer as-secret"}
INSTANCE = "bridge|irc"


@pytest.fixture
def bridge(client: TestClient) -> None:
    client.app[HS_KEY].appservices.add(AppService(
        id="bridge", url=None, as_token="as-secret", hs_token="hs-secret",
        sender_localpart="bridgebot", server_name="test.local", protocols=("irc",)))


async def listed(client: TestClient, env: Env, spec: MatrixSpec, **body: Any) -> list[str]:
    resp = await client.post(f"{V3}/publicRooms", json=body, headers=env.alice.auth)
    data = await resp.json()
    assert resp.status == 200, data
    spec.check_response("list_public_rooms", "POST", "/publicRooms", 200, data)
    return [room["room_id"] for room in data["chunk"]]


async def put_as(client: TestClient, room_id: str, visibility: str,
                 network: str = "irc") -> Any:
    return await client.put(f"{V3}/directory/list/appservice/{network}/{room_id}",
                            json={"visibility": visibility}, headers=AS_AUTH)


async def test_appservice_list_is_separate(client: TestClient, env: Env, spec: MatrixSpec,
                                           bridge: None) -> None:
    private = await client.post(f"{V3}/createRoom", json={"preset": "public_chat"},
                                headers=env.alice.auth)
    room_id = (await private.json())["room_id"]
    resp = await put_as(client, room_id, "public")
    assert resp.status == 200 and await resp.json() == {}

    main = await listed(client, env, spec)
    assert room_id not in main
    assert await listed(client, env, spec, third_party_instance_id=INSTANCE) == [room_id]
    assert await listed(client, env, spec, third_party_instance_id="bridge|other") == []
    everything = await listed(client, env, spec, include_all_networks=True)
    assert sorted(everything) == sorted([*main, room_id])
    # The main list is not touched by the service's.
    resp = await client.get(f"{V3}/directory/list/room/{room_id}")
    assert (await resp.json())["visibility"] == "private"

    resp = await put_as(client, room_id, "private")
    assert resp.status == 200
    assert await listed(client, env, spec, third_party_instance_id=INSTANCE) == []
    await put_as(client, room_id, "public")
    resp = await client.delete(f"{V3}/directory/list/appservice/irc/{room_id}",
                               headers=AS_AUTH)
    assert resp.status == 200
    assert await listed(client, env, spec, third_party_instance_id=INSTANCE) == []


async def test_room_in_both_lists_is_listed_once(client: TestClient, env: Env,
                                                 spec: MatrixSpec, bridge: None) -> None:
    await client.put(f"{V3}/directory/list/room/{env.room_id}", json={"visibility": "public"},
                     headers=env.alice.auth)
    await put_as(client, env.room_id, "public")
    assert await listed(client, env, spec, include_all_networks=True) == [env.room_id]
    assert await listed(client, env, spec, third_party_instance_id=INSTANCE) == [env.room_id]


async def test_only_application_services(client: TestClient, env: Env, bridge: None) -> None:
    resp = await client.put(f"{V3}/directory/list/appservice/irc/{env.room_id}",
                            json={"visibility": "public"}, headers=env.alice.auth)
    await expect(resp, 403, "M_FORBIDDEN")
    resp = await client.put(f"{V3}/directory/list/appservice/irc/{env.room_id}",
                            json={"visibility": "public"})
    await expect(resp, 401, "M_MISSING_TOKEN")


@pytest.mark.parametrize("body,status,errcode", [
    ({}, 400, "M_MISSING_PARAM"),
    ({"visibility": 1}, 400, "M_BAD_JSON"),
    ({"visibility": "hidden"}, 400, "M_INVALID_PARAM"),
])
async def test_bad_visibility(client: TestClient, env: Env, bridge: None,
                              body: dict[str, Any], status: int, errcode: str) -> None:
    resp = await client.put(f"{V3}/directory/list/appservice/irc/{env.room_id}", json=body,
                            headers=AS_AUTH)
    await expect(resp, status, errcode)


async def test_unknown_room(client: TestClient, bridge: None) -> None:
    resp = await put_as(client, "!nope:test.local", "public")
    await expect(resp, 404, "M_NOT_FOUND")


@pytest.mark.parametrize("body,errcode", [
    ({"third_party_instance_id": INSTANCE, "include_all_networks": True}, "M_INVALID_PARAM"),
    ({"third_party_instance_id": 5}, "M_BAD_JSON"),
    ({"include_all_networks": "yes"}, "M_BAD_JSON"),
])
async def test_bad_network_filters(client: TestClient, env: Env, body: dict[str, Any],
                                   errcode: str) -> None:
    resp = await client.post(f"{V3}/publicRooms", json=body, headers=env.alice.auth)
    await expect(resp, 400, errcode)
