"""Registration's user-interactive authentication session remembers the first request's
parameters and, once complete, its user.

https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3register
https://spec.matrix.org/v1.19/client-server-api/#user-interactive-authentication-api
"""

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, expect

from edgehs.api.keys import HS_KEY
from edgehs.service.appservice.registry import AppService, Namespace


async def start(client: TestClient, spec: MatrixSpec, **params: Any) -> str:
    resp = await client.post(f"{V3}/register", json=params)
    assert resp.status == 401
    assert resp.headers["Content-Type"] == "application/json"
    body = await resp.json()
    assert {"stages": ["m.login.dummy"]} in body["flows"]
    return str(body["session"])


async def complete(client: TestClient, session: str, **params: Any) -> dict[str, Any]:
    resp = await client.post(f"{V3}/register", json={
        **params, "auth": {"type": "m.login.dummy", "session": session}})
    body = await resp.json()
    assert resp.status == 200, body
    return dict(body)


@pytest.mark.parametrize("params", [{"password": "sUp3rs3kr1t"},
                                    {"username": "again", "password": "sUp3rs3kr1t"}])
async def test_retrying_a_completed_session_answers_for_the_same_user(
        client: TestClient, spec: MatrixSpec, params: dict[str, Any]) -> None:
    session = await start(client, spec, **params)
    first = await complete(client, session, **params)
    second = await complete(client, session, **params)
    assert second["user_id"] == first["user_id"]
    assert second["access_token"] != first["access_token"]
    resp = await client.get(f"{V3}/account/whoami",
                            headers={"Authorization": f"Bearer {second['access_token']}"})
    assert (await resp.json())["user_id"] == first["user_id"]
    if "username" in params:
        assert first["user_id"] == "@again:test.local"


async def test_session_remembers_the_first_requests_parameters(client: TestClient,
                                                               spec: MatrixSpec) -> None:
    session = await start(client, spec, username="remember", password="übers3kr1t",
                          device_id="xyzzy", initial_device_display_name="display_name")
    body = await complete(client, session)
    assert (body["user_id"], body["device_id"]) == ("@remember:test.local", "xyzzy")
    resp = await client.get(f"{V3}/devices/xyzzy",
                            headers={"Authorization": f"Bearer {body['access_token']}"})
    assert (await resp.json())["display_name"] == "display_name"
    resp = await client.post(f"{V3}/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "remember"},
        "password": "übers3kr1t"})
    assert resp.status == 200, await resp.text()


async def test_session_remembers_inhibit_login(client: TestClient, spec: MatrixSpec) -> None:
    session = await start(client, spec, username="inhibited", password="pw",
                          inhibit_login=True)
    body = await complete(client, session)
    assert body["user_id"] == "@inhibited:test.local"
    assert "access_token" not in body and "device_id" not in body


async def test_later_parameters_replace_the_remembered_ones(client: TestClient,
                                                            spec: MatrixSpec) -> None:
    session = await start(client, spec, username="first", password="pw")
    body = await complete(client, session, username="second", password="pw")
    assert body["user_id"] == "@second:test.local"


async def test_unknown_session_is_refused(client: TestClient) -> None:
    resp = await client.post(f"{V3}/register", json={
        "password": "pw", "auth": {"type": "m.login.dummy", "session": "made-up"}})
    await expect(resp, 400, "M_UNKNOWN")


async def test_taken_name_is_refused_before_a_session_starts(client: TestClient,
                                                             spec: MatrixSpec) -> None:
    session = await start(client, spec, username="taken", password="pw")
    await complete(client, session)
    resp = await client.post(f"{V3}/register", json={"username": "taken", "password": "pw"})
    await expect(resp, 400, "M_USER_IN_USE")


@pytest.mark.parametrize("params", [{"device_id": 5}, {"inhibit_login": "yes"},
                                    {"password": ["x"]}, {"auth": "dummy"}])
async def test_parameter_types(client: TestClient, params: dict[str, Any]) -> None:
    resp = await client.post(f"{V3}/register", json={"username": "typed", **params})
    await expect(resp, 400, "M_BAD_JSON")


async def test_user_name_is_lower_cased(client: TestClient) -> None:
    resp = await client.get(f"{V3}/register/available", params={"username": "User-UPPER"})
    assert (await resp.json()) == {"available": True}
    resp = await client.post(f"{V3}/register", json={
        "username": "User-UPPER", "password": "pw", "auth": {"type": "m.login.dummy"}})
    assert (await resp.json())["user_id"] == "@user-upper:test.local"
    resp = await client.get(f"{V3}/register/available", params={"username": "USER-upper"})
    await expect(resp, 400, "M_USER_IN_USE")


async def test_appservice_registration_checks_types_first(client: TestClient) -> None:

    client.app[HS_KEY].appservices.add(AppService(
        id="bridge", url=None, as_token="as-secret", hs_token="hs-secret",
        sender_localpart="bridgebot", server_name="test.local",
        users=(Namespace(re.compile(r"@_br_.*:test\.local"), exclusive=True),)))
    body = {"type": "m.login.application_service", "username": "_br_x", "device_id": 5}
    headers = {"Authorization": "Bearer as-secret"}
    resp = await client.post(f"{V3}/register", json=body, headers=headers)
    await expect(resp, 400, "M_BAD_JSON")
    resp = await client.post(f"{V3}/register", json={**body, "device_id": "D"},
                             headers=headers)
    assert resp.status == 200, await resp.text()  # the first attempt registered no one
