"""OpenID: POST /user/{userId}/openid/request_token and GET /_matrix/federation/v1/openid/userinfo.

https://spec.matrix.org/v1.19/client-server-api/#openid
https://spec.matrix.org/v1.19/server-server-api/#openid
"""

from typing import Any

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, expect

from edgehs.api.keys import HS_KEY
from edgehs.service.openid import OpenIdService

PATH = "/user/{userId}/openid/request_token"
USERINFO = "/_matrix/federation/v1/openid/userinfo"


def check_userinfo(spec: MatrixSpec, status: int, body: Any) -> None:
    spec.check_response("openid", "GET", "/openid/userinfo", status, body, api="server-server")


async def request_token(client: TestClient, user: Any, spec: MatrixSpec) -> dict[str, Any]:
    resp = await client.post(f"{V3}/user/{user.user_id}/openid/request_token", json={},
                             headers=user.auth)
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response("openid", "POST", PATH, 200, body)
    return dict(body)


async def test_request_and_exchange(client: TestClient, register: Any,
                                    spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    token = await request_token(client, alice, spec)
    assert token["token_type"] == "Bearer"
    assert token["matrix_server_name"] == "test.local"
    assert token["expires_in"] == 3600
    other = await request_token(client, bob, spec)
    assert other["access_token"] != token["access_token"]

    resp = await client.get(USERINFO, params={"access_token": token["access_token"]})
    body = await resp.json()
    assert (resp.status, body) == (200, {"sub": alice.user_id})
    check_userinfo(spec, 200, body)
    resp = await client.get(USERINFO, params={"access_token": other["access_token"]})
    assert (await resp.json()) == {"sub": bob.user_id}
    # A token is good for several look-ups within its lifetime.
    resp = await client.get(USERINFO, params={"access_token": token["access_token"]})
    assert resp.status == 200


async def test_openid_token_is_not_an_access_token(client: TestClient, register: Any,
                                                   spec: MatrixSpec) -> None:
    alice = await register("alice")
    token = (await request_token(client, alice, spec))["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    await expect(await client.get(f"{V3}/account/whoami", headers=headers), 401,
                 "M_UNKNOWN_TOKEN")
    await expect(await client.post(f"{V3}/user/{alice.user_id}/openid/request_token", json={},
                                   headers=headers), 401, "M_UNKNOWN_TOKEN")
    # ...and an access token is not an OpenID token.
    resp = await client.get(USERINFO, params={"access_token": alice.token})
    body = await expect(resp, 401, "M_UNKNOWN_TOKEN")
    check_userinfo(spec, 401, body)


async def test_request_token_bad_input(client: TestClient, register: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    url = f"{V3}/user/{alice.user_id}/openid/request_token"
    await expect(await client.post(url, json={}), 401, "M_MISSING_TOKEN")
    await expect(await client.post(url, json={}, headers={"Authorization": "Bearer nope"}),
                 401, "M_UNKNOWN_TOKEN")
    # Only for yourself.
    await expect(await client.post(url, json={}, headers=bob.auth), 403, "M_FORBIDDEN")
    await expect(await client.post(f"{V3}/user/@ghost:test.local/openid/request_token",
                                   json={}, headers=alice.auth), 403, "M_FORBIDDEN")
    # The body must be a JSON object.
    await expect(await client.post(url, data=b"{not json", headers=alice.auth), 400,
                 "M_NOT_JSON")
    await expect(await client.post(url, json=[1], headers=alice.auth), 400, "M_BAD_JSON")
    assert len(client.app[HS_KEY].openid) == 0  # nothing was issued


async def test_userinfo_bad_input(client: TestClient) -> None:
    await expect(await client.get(USERINFO), 401, "M_MISSING_TOKEN")
    await expect(await client.get(USERINFO, params={"access_token": ""}), 401,
                 "M_MISSING_TOKEN")
    await expect(await client.get(USERINFO, params={"access_token": "nope"}), 401,
                 "M_UNKNOWN_TOKEN")


async def test_token_expires(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    """A token is refused once its lifetime has passed (the service's clock is moved, not
    waited for)."""
    alice = await register("alice")
    now = [1000.0]
    client.app[HS_KEY].openid = OpenIdService("test.local", clock=lambda: now[0])
    token = (await request_token(client, alice, spec))["access_token"]
    now[0] += 3599
    resp = await client.get(USERINFO, params={"access_token": token})
    assert resp.status == 200
    now[0] += 1
    await expect(await client.get(USERINFO, params={"access_token": token}), 401,
                 "M_UNKNOWN_TOKEN")
    assert len(client.app[HS_KEY].openid) == 0  # and it was dropped


def test_service_bounds_memory(monkeypatch: Any) -> None:
    """Past MAX_TOKENS the oldest live tokens are pushed out."""
    monkeypatch.setattr("edgehs.service.openid.MAX_TOKENS", 3)
    service = OpenIdService("test.local", clock=lambda: 0.0)
    tokens = [service.issue(f"@u{i}:test.local")["access_token"] for i in range(5)]
    assert len(service) == 3
    assert [service.user_for(t) for t in tokens] == [
        None, None, "@u2:test.local", "@u3:test.local", "@u4:test.local"]
