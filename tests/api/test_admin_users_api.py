"""POST /_edgehs/admin/v1/users: ``edgehs register-user`` while the server runs (the running
server registers the user; the command never opens the database beside it).

The Matrix side is https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3register
(errcodes) and #post_matrixclientv3login (the new user logs in).
"""

from typing import Any

from aiohttp.test_utils import TestClient
from support import V3, expect

from edgehs.api.admin import ADMIN_KEY
from edgehs.api.keys import HS_KEY

USERS = "/_edgehs/admin/v1/users"


def secret_auth(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.app[ADMIN_KEY].secret}"}


async def login(client: TestClient, user: str, password: str) -> Any:
    return await client.post(f"{V3}/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
        "password": password})


async def test_register_a_user_who_then_logs_in(client: TestClient) -> None:
    resp = await client.post(USERS, headers=secret_auth(client),
                             json={"username": "alice", "password": "pw-a"})
    assert resp.status == 200
    assert await resp.json() == {"user_id": "@alice:test.local"}
    resp = await login(client, "alice", "pw-a")
    assert resp.status == 200 and (await resp.json())["user_id"] == "@alice:test.local"
    await expect(await login(client, "alice", "wrong"), 403, "M_FORBIDDEN")
    user = await client.app[HS_KEY].user_store.get_user("@alice:test.local")
    assert user is not None and not user.get("admin")


async def test_register_an_admin_who_may_use_the_admin_api(client: TestClient) -> None:
    resp = await client.post(USERS, headers=secret_auth(client),
                             json={"username": "root", "password": "pw-r", "admin": True})
    assert resp.status == 200
    token = (await (await login(client, "root", "pw-r")).json())["access_token"]
    # The new admin's token is accepted by the admin API itself.
    resp = await client.post(USERS, headers={"Authorization": f"Bearer {token}"},
                             json={"username": "bob", "password": "pw-b"})
    assert resp.status == 200 and (await resp.json())["user_id"] == "@bob:test.local"


async def test_taken_and_invalid_names(client: TestClient) -> None:
    auth = secret_auth(client)
    assert (await client.post(USERS, headers=auth,
                              json={"username": "alice", "password": "one"})).status == 200
    await expect(await client.post(USERS, headers=auth,
                                   json={"username": "alice", "password": "two"}),
                 400, "M_USER_IN_USE")
    assert (await login(client, "alice", "one")).status == 200  # the password did not change
    await expect(await client.post(USERS, headers=auth,
                                   json={"username": "Bad Name", "password": "x"}),
                 400, "M_INVALID_USERNAME")


async def test_bad_bodies(client: TestClient) -> None:
    auth = secret_auth(client)
    cases: list[tuple[Any, str]] = [
        ({"password": "x"}, "M_MISSING_PARAM"),
        ({"username": "carol"}, "M_MISSING_PARAM"),
        ({"username": 5, "password": "x"}, "M_BAD_JSON"),
        ({"username": "carol", "password": ["x"]}, "M_BAD_JSON"),
        ({"username": "carol", "password": "x", "admin": "yes"}, "M_BAD_JSON"),
        (["carol"], "M_BAD_JSON"),
    ]
    for body, errcode in cases:
        await expect(await client.post(USERS, headers=auth, json=body), 400, errcode)
    await expect(await client.post(USERS, headers=auth, data=b"{nope"), 400, "M_NOT_JSON")
    await expect(await client.post(USERS, headers=auth, data=b""), 400, "M_NOT_JSON")
    assert await client.app[HS_KEY].user_store.get_user("@carol:test.local") is None


async def test_credentials_are_required(client: TestClient) -> None:
    body = {"username": "mallory", "password": "x"}
    await expect(await client.post(USERS, json=body), 401, "M_MISSING_TOKEN")
    await expect(await client.post(USERS, json=body,
                                   headers={"Authorization": "Bearer nope"}),
                 401, "M_UNKNOWN_TOKEN")
    server = client.app[HS_KEY]
    alice = await server.users.register("alice", "pw")
    token, _ = await server.users.login(alice, None, None)
    await expect(await client.post(USERS, json=body,
                                   headers={"Authorization": f"Bearer {token}"}),
                 403, "M_FORBIDDEN")
    assert await server.user_store.get_user("@mallory:test.local") is None
