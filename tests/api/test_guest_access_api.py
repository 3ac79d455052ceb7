"""Guest accounts: https://spec.matrix.org/v1.19/client-server-api/#guest-access"""

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User, expect, make_config

from edgehs.api.guest_access import GUEST_ROUTES
from edgehs.api.routes import CLIENT_ROUTES, CLIENT_V1_ROUTES
from edgehs.config import Config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "data", allow_guest_access=True)


async def register_guest(client: TestClient, spec: MatrixSpec | None = None) -> User:
    resp = await client.post(f"{V3}/register?kind=guest", json={
        "username": "ignored", "password": "ignored", "device_id": "IGNORED",
        "initial_device_display_name": "Guest phone"})
    body = await resp.json()
    assert resp.status == 200, body
    if spec is not None:
        spec.check_response("registration", "POST", "/register", 200, body)
    assert body["device_id"] != "IGNORED"
    assert not body["user_id"].startswith("@ignored:")
    return User(body["user_id"], body["access_token"], body["device_id"])


async def set_guest_access(client: TestClient, user: User, room_id: str, value: str) -> None:
    resp = await client.put(f"{V3}/rooms/{room_id}/state/m.room.guest_access/",
                            json={"guest_access": value}, headers=user.auth)
    assert resp.status == 200, await resp.text()


async def membership(client: TestClient, user: User, room_id: str, target: str) -> str | None:
    resp = await client.get(f"{V3}/rooms/{room_id}/state/m.room.member/{target}",
                            headers=user.auth)
    return (await resp.json()).get("membership") if resp.status == 200 else None


def test_every_guest_route_exists() -> None:
    routes = {(m, p) for m, p, _ in (*CLIENT_ROUTES, *CLIENT_V1_ROUTES)}
    assert set(GUEST_ROUTES) - routes == set()


async def test_guest_registration_disabled_by_default(
        aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path) -> None:
    from edgehs.app import init_app
    client = await aiohttp_client(init_app(make_config(tmp_path / "off")))
    resp = await client.post(f"{V3}/register?kind=guest", json={})
    await expect(resp, 403, "M_GUEST_ACCESS_FORBIDDEN")


async def test_guest_registers_and_is_limited(client: TestClient, spec: MatrixSpec) -> None:
    guest = await register_guest(client, spec)
    resp = await client.get(f"{V3}/account/whoami", headers=guest.auth)
    assert (await resp.json())["user_id"] == guest.user_id
    resp = await client.get(f"{V3}/devices/{guest.device_id}", headers=guest.auth)
    assert (await resp.json())["display_name"] == "Guest phone"
    # Not on the spec's list: creating rooms, account data, the global /events stream.
    resp = await client.post(f"{V3}/createRoom", json={}, headers=guest.auth)
    await expect(resp, 403, "M_GUEST_ACCESS_FORBIDDEN")
    resp = await client.put(f"{V3}/user/{guest.user_id}/account_data/x", json={},
                            headers=guest.auth)
    await expect(resp, 403, "M_GUEST_ACCESS_FORBIDDEN")
    resp = await client.put(f"{V3}/profile/{guest.user_id}/avatar_url",
                            json={"avatar_url": "mxc://a/b"}, headers=guest.auth)
    await expect(resp, 403, "M_GUEST_ACCESS_FORBIDDEN")
    resp = await client.get("/_matrix/client/r0/events?timeout=0", headers=guest.auth)
    await expect(resp, 403, "M_GUEST_ACCESS_FORBIDDEN")


async def test_guest_joins_only_can_join_rooms(
        client: TestClient, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    alice = await register("alice")
    guest = await register_guest(client)
    room_id = await create_room(alice, preset="public_chat")
    resp = await client.post(f"{V3}/join/{room_id}", json={}, headers=guest.auth)
    await expect(resp, 403, "M_GUEST_ACCESS_FORBIDDEN")
    await set_guest_access(client, alice, room_id, "can_join")
    resp = await client.post(f"{V3}/rooms/{room_id}/join", json={}, headers=guest.auth)
    assert resp.status == 200, await resp.text()
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/t1",
                            json={"msgtype": "m.text", "body": "sup"}, headers=guest.auth)
    assert resp.status == 200, await resp.text()
    # A guest display name reaches the room.
    resp = await client.put(f"{V3}/profile/{guest.user_id}/displayname",
                            json={"displayname": "creeper"}, headers=guest.auth)
    assert resp.status == 200, await resp.text()
    resp = await client.get(f"{V3}/rooms/{room_id}/state/m.room.member/{guest.user_id}",
                            headers=guest.auth)
    assert (await resp.json())["displayname"] == "creeper"
    # Revoking guest access removes the guest, not the others.
    await set_guest_access(client, alice, room_id, "forbidden")
    assert await membership(client, alice, room_id, guest.user_id) == "leave"
    assert await membership(client, alice, room_id, alice.user_id) == "join"


async def test_guest_upgrades_to_full_account(
        client: TestClient, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    alice = await register("alice")
    room_id = await create_room(alice, preset="public_chat")
    guest = await register_guest(client)
    localpart = guest.user_id[1:].split(":")[0]
    body = {"username": localpart, "password": "new-pw", "guest_access_token": guest.token}
    resp = await client.post(f"{V3}/register", json=body)
    assert resp.status == 401  # the UIA challenge first
    resp = await client.post(f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy"}})
    data = await resp.json()
    assert resp.status == 200, data
    assert data["user_id"] == guest.user_id
    full = User(data["user_id"], data["access_token"], data["device_id"])
    # Now a full account: it may join rooms that do not let guests in, and log in.
    resp = await client.post(f"{V3}/join/{room_id}", json={}, headers=full.auth)
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"{V3}/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart},
        "password": "new-pw"})
    assert resp.status == 200, await resp.text()


async def test_guest_cannot_upgrade_another_user(
        client: TestClient, register: Callable[[str], Awaitable[User]]) -> None:
    first, second = await register_guest(client), await register_guest(client)
    alice = await register("alice")
    for target, token in ((first.user_id, second.token), ("@alice:test.local", second.token),
                          ("@alice:test.local", alice.token)):
        resp = await client.post(f"{V3}/register", json={
            "username": target[1:].split(":")[0], "password": "pw",
            "guest_access_token": token, "auth": {"type": "m.login.dummy"}})
        await expect(resp, 403, "M_FORBIDDEN")
    resp = await client.post(f"{V3}/register", json={
        "password": "pw", "guest_access_token": first.token, "auth": {"type": "m.login.dummy"}})
    await expect(resp, 400, "M_MISSING_PARAM")
