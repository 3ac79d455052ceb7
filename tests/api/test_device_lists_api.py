"""A new login, a renamed device and a deleted device are device list changes: /sync's
``device_lists.changed`` and GET /keys/changes name the user, for its room-mates and itself.

https://spec.matrix.org/v1.19/client-server-api/#tracking-the-device-list-for-a-user
https://spec.matrix.org/v1.19/client-server-api/#device-management
"""

from typing import Any

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import AUTH_PW, V3, User, count, get_sync


async def _login(client: TestClient, user: User, password: str = "secret-pw") -> User:
    resp = await client.post(f"{V3}/login", json={
        "type": "m.login.password", "password": password,
        "identifier": {"type": "m.id.user", "user": user.user_id},
    })
    body = await resp.json()
    assert resp.status == 200, body
    return User(body["user_id"], body["access_token"], body["device_id"])


async def _pair(client: TestClient, register: Any, create_room: Any) -> tuple[User, User]:
    alice, bob = await register("alice"), await register("bob")
    room = await create_room(alice, preset="public_chat")
    resp = await client.post(f"{V3}/join/{room}", json={}, headers=bob.auth)
    assert resp.status == 200
    return alice, bob


async def _changed(client: TestClient, user: User, since: str, spec: MatrixSpec) -> list[str]:
    """device_lists.changed of an incremental /sync, checked against GET /keys/changes."""
    sync = await get_sync(client, user, since)
    resp = await client.get(f"{V3}/keys/changes",
                            params={"from": since, "to": sync["next_batch"]}, headers=user.auth)
    body = await resp.json()
    spec.check_response("keys", "GET", "/keys/changes", resp.status, body)
    assert body["changed"] == sync["device_lists"]["changed"]
    return list(sync["device_lists"]["changed"])


async def test_new_login_is_a_change(client: TestClient, register: Any, create_room: Any,
                                     spec: MatrixSpec) -> None:
    alice, bob = await _pair(client, register, create_room)
    since_a = (await get_sync(client, alice))["next_batch"]
    since_b = (await get_sync(client, bob))["next_batch"]
    await _login(client, bob)
    assert await _changed(client, alice, since_a, spec) == [bob.user_id]
    assert await _changed(client, bob, since_b, spec) == [bob.user_id]


async def test_rename_is_a_change(client: TestClient, register: Any, create_room: Any,
                                  spec: MatrixSpec) -> None:
    alice, bob = await _pair(client, register, create_room)
    since = (await get_sync(client, alice))["next_batch"]
    path = f"{V3}/devices/{bob.device_id}"
    resp = await client.put(path, json={"display_name": "bob's phone"}, headers=bob.auth)
    assert resp.status == 200
    assert await _changed(client, alice, since, spec) == [bob.user_id]
    # The same name again changes nothing; an unknown device is 404 and changes nothing.
    since = (await get_sync(client, alice))["next_batch"]
    resp = await client.put(path, json={"display_name": "bob's phone"}, headers=bob.auth)
    assert resp.status == 200
    resp = await client.put(f"{V3}/devices/NOPE", json={"display_name": "x"}, headers=bob.auth)
    assert resp.status == 404
    assert await _changed(client, alice, since, spec) == []


async def test_deleted_device_is_a_change(client: TestClient, register: Any, create_room: Any,
                                          spec: MatrixSpec) -> None:
    alice, bob = await _pair(client, register, create_room)
    other = await _login(client, bob)
    since = (await get_sync(client, alice))["next_batch"]
    before = await count(client, "device_list_changes")
    resp = await client.request("DELETE", f"{V3}/devices/{other.device_id}", headers=bob.auth,
                                json={"auth": {**AUTH_PW, "user": bob.user_id}})
    assert resp.status == 200, await resp.text()
    assert await _changed(client, alice, since, spec) == [bob.user_id]
    assert await count(client, "device_list_changes") == before + 1
    # Logging out deletes the device too.
    since = (await get_sync(client, alice))["next_batch"]
    resp = await client.post(f"{V3}/logout", headers=bob.auth)
    assert resp.status == 200
    assert await _changed(client, alice, since, spec) == [bob.user_id]
