"""User-interactive auth sessions are bound to the operation that started them.

https://spec.matrix.org/v1.19/client-server-api/#user-interactive-authentication-api
"""

from typing import Any

from aiohttp.test_utils import TestClient
from support import V3, User, expect
from test_as_acting_api import AS, ghost, install, service


async def login(client: TestClient, name: str, device_id: str) -> None:
    resp = await client.post(f"{V3}/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": name},
        "password": "secret-pw", "device_id": device_id})
    assert resp.status == 200, await resp.text()


def password_auth(user: User, session: str | None = None, password: str = "secret-pw"
                  ) -> dict[str, Any]:
    auth: dict[str, Any] = {"type": "m.login.password", "password": password,
                            "identifier": {"type": "m.id.user", "user": user.user_id}}
    if session is not None:
        auth["session"] = session
    return auth


async def start(client: TestClient, user: User, method: str, path: str,
                body: dict[str, Any]) -> str:
    """Make the request without auth; return the session of the 401."""
    resp = await client.request(method, V3 + path, json=body, headers=user.auth)
    data = await expect(resp, 401, "M_UNAUTHORIZED")
    assert data["flows"] == [{"stages": ["m.login.password"]}]
    return str(data["session"])


async def device_ids(client: TestClient, user: User) -> set[str]:
    resp = await client.get(f"{V3}/devices", headers=user.auth)
    return {d["device_id"] for d in (await resp.json())["devices"]}


async def test_session_for_one_device_cannot_delete_another(client: TestClient,
                                                            register: Any) -> None:
    alice = await register("alice")
    await login(client, "alice", "DEVA")
    await login(client, "alice", "DEVB")
    session = await start(client, alice, "DELETE", "/devices/DEVA", {})
    resp = await client.delete(f"{V3}/devices/DEVB", headers=alice.auth,
                               json={"auth": password_auth(alice, session)})
    await expect(resp, 403, "M_FORBIDDEN")
    assert {"DEVA", "DEVB"} <= await device_ids(client, alice)
    # the session still completes the operation it was started for
    resp = await client.delete(f"{V3}/devices/DEVA", headers=alice.auth,
                               json={"auth": password_auth(alice, session)})
    assert resp.status == 200, await resp.text()
    assert "DEVA" not in await device_ids(client, alice)
    assert "DEVB" in await device_ids(client, alice)


async def test_session_binds_the_body_fields(client: TestClient, register: Any) -> None:
    alice = await register("alice")
    for device in ("DEVA", "DEVB"):
        await login(client, "alice", device)
    session = await start(client, alice, "POST", "/delete_devices", {"devices": ["DEVA"]})
    resp = await client.post(f"{V3}/delete_devices", headers=alice.auth, json={
        "devices": ["DEVA", "DEVB"], "auth": password_auth(alice, session)})
    await expect(resp, 403, "M_FORBIDDEN")
    assert {"DEVA", "DEVB"} <= await device_ids(client, alice)
    # a password-change session cannot deactivate the account
    session = await start(client, alice, "POST", "/account/password", {"new_password": "x2"})
    resp = await client.post(f"{V3}/account/deactivate", headers=alice.auth,
                             json={"auth": password_auth(alice, session)})
    await expect(resp, 403, "M_FORBIDDEN")
    # nor change the password to something else than what it was started for
    resp = await client.post(f"{V3}/account/password", headers=alice.auth, json={
        "new_password": "other", "auth": password_auth(alice, session)})
    await expect(resp, 403, "M_FORBIDDEN")
    resp = await client.post(f"{V3}/account/password", headers=alice.auth, json={
        "new_password": "x2", "logout_devices": False, "auth": password_auth(alice, session)})
    await expect(resp, 403, "M_FORBIDDEN")


async def test_session_of_another_user_and_unknown_sessions(client: TestClient,
                                                            register: Any) -> None:
    alice, eve = await register("alice"), await register("eve")
    await login(client, "alice", "DEVA")
    await login(client, "eve", "DEVA")  # device ids are per user: eve has a DEVA too
    session = await start(client, eve, "DELETE", "/devices/DEVA", {})
    resp = await client.delete(f"{V3}/devices/DEVA", headers=alice.auth,
                               json={"auth": password_auth(alice, session)})
    await expect(resp, 403, "M_FORBIDDEN")
    # eve's own credentials with alice's token: refused, not a retryable stage failure
    resp = await client.delete(f"{V3}/devices/DEVA", headers=alice.auth,
                               json={"auth": password_auth(eve)})
    await expect(resp, 403, "M_FORBIDDEN")
    resp = await client.delete(f"{V3}/devices/DEVA", headers=alice.auth,
                               json={"auth": password_auth(alice, "no-such-session")})
    await expect(resp, 400, "M_UNKNOWN")
    resp = await client.delete(f"{V3}/devices/DEVA", headers=alice.auth,
                               json={"auth": password_auth(alice, password="wrong")})
    data = await expect(resp, 401, "M_FORBIDDEN")
    assert data["session"]
    assert "DEVA" in await device_ids(client, alice)


async def test_appservice_deactivates_its_user_without_uia(client: TestClient) -> None:
    """https://spec.matrix.org/v1.19/application-service-api/ (SyTest 'AS can deactivate a
    user'): the as_token acting as a user of its namespace needs no password stage."""
    install(client, service())
    user_id = await ghost(client, "_act_leaving")
    resp = await client.post(f"{V3}/account/deactivate", params={"user_id": user_id},
                             headers=AS, json={})
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"{V3}/account/deactivate", headers=AS, json={})
    assert resp.status == 200, await resp.text()  # its sender user too


async def test_a_failed_stage_lists_the_completed_ones(client: TestClient, register: Any) -> None:
    alice = await register("alice")
    resp = await client.post(f"{V3}/account/deactivate", headers=alice.auth,
                             json={"auth": password_auth(alice, password="wrong")})
    data = await expect(resp, 401, "M_FORBIDDEN")
    assert data["completed"] == []
