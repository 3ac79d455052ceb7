"""GET /admin/whois/{userId}: the user themself or a server admin; each device with its last
connection (address, time, User-Agent), which every authenticated request keeps current.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3adminwhoisuserid
"""

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, Env, User, expect

from edgehs.api.keys import HS_KEY


async def whois(client: TestClient, asking: User, user_id: str,
                agent: str = "whois-test/1.0") -> tuple[int, dict]:
    resp = await client.get(f"{V3}/admin/whois/{user_id}",
                            headers={**asking.auth, "User-Agent": agent})
    return resp.status, await resp.json()


async def test_whois_self_lists_devices_and_connections(client: TestClient, env: Env,
                                                         spec: MatrixSpec) -> None:
    status, body = await whois(client, env.alice, env.alice.user_id)
    assert status == 200, body
    spec.check_response("admin", "GET", "/v3/admin/whois/{userId}", 200, body)
    assert body["user_id"] == env.alice.user_id
    session = body["devices"][env.alice.device_id]["sessions"][0]
    connection = session["connections"][0]
    assert connection["ip"] == "127.0.0.1"
    assert connection["user_agent"] == "whois-test/1.0"
    assert isinstance(connection["last_seen"], int) and connection["last_seen"] > 0
    # A new User-Agent is written at once.
    _, body = await whois(client, env.alice, env.alice.user_id, agent="other/2.0")
    connection = body["devices"][env.alice.device_id]["sessions"][0]["connections"][0]
    assert connection["user_agent"] == "other/2.0"


async def test_devices_list_shows_the_last_request(client: TestClient, env: Env) -> None:
    resp = await client.get(f"{V3}/devices/{env.bob.device_id}", headers=env.bob.auth)
    device = await resp.json()
    assert device["last_seen_ip"] == "127.0.0.1" and device["last_seen_ts"] > 0
    assert "last_seen_user_agent" not in device  # not a field of the spec's Device


async def test_other_users_only_for_admins(client: TestClient, env: Env,
                                           spec: MatrixSpec) -> None:
    status, body = await whois(client, env.bob, env.alice.user_id)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await whois(client, env.bob, "@nobody:test.local")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")  # no user enumeration

    server = client.app[HS_KEY]
    admin_id = await server.users.register("root", "secret-pw", admin=True)
    token, device = await server.users.login(admin_id, None, None)
    admin = User(admin_id, token, device)
    status, body = await whois(client, admin, env.bob.user_id)
    assert status == 200, body
    spec.check_response("admin", "GET", "/v3/admin/whois/{userId}", 200, body)
    assert list(body["devices"]) == [env.bob.device_id]
    resp = await client.get(f"{V3}/admin/whois/@nobody:test.local", headers=admin.auth)
    await expect(resp, 404, "M_NOT_FOUND")


async def test_needs_a_token(client: TestClient, env: Env) -> None:
    resp = await client.get(f"{V3}/admin/whois/{env.alice.user_id}")
    await expect(resp, 401, "M_MISSING_TOKEN")
