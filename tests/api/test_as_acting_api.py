"""Application services acting on the Client-Server API: the as_token, identity assertion,
m.login.application_service registration and login, exclusive namespaces, rate limits and
POST /_matrix/client/v1/appservice/{appserviceId}/ping.

https://spec.matrix.org/v1.19/application-service-api/#client-server-api-extensions
"""

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from spec_schema import MatrixSpec
from support import V3, User, expect, make_config

from edgehs.api.keys import HS_KEY
from edgehs.app import init_app
from edgehs.service.appservice.registry import AppService, Namespace

V1 = "/_matrix/client/v1"
AS_TOKEN = "acting-as-token"
HS_TOKEN = "acting-hs-token"
AS = {"Authorization": f"Bearer {AS_TOKEN}"}
BOT = "@actbot:test.local"


@dataclass
class PingReceiver:
    """A fake application service answering /_matrix/app/v1/ping (and swallowing pushes)."""

    status: int = 200
    delay_s: float = 0.0
    pings: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/_matrix/app/v1/ping", self.ping)
        app.router.add_put("/_matrix/app/v1/transactions/{txn}", self.transaction)
        return app

    async def ping(self, request: web.Request) -> web.Response:
        self.pings.append((request.headers.get("Authorization"), await request.json()))
        await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.json_response({"errcode": "M_UNKNOWN_TOKEN"}, status=self.status)
        return web.json_response({})

    async def transaction(self, request: web.Request) -> web.Response:
        return web.json_response({})


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[PingReceiver, str]]:
    fake = PingReceiver()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


def service(url: str | None = None, **kw: Any) -> AppService:
    defaults: dict[str, Any] = dict(
        id="acting", url=url, as_token=AS_TOKEN, hs_token=HS_TOKEN, sender_localpart="actbot",
        server_name="test.local",
        users=(Namespace(re.compile(r"@_act_.*:test\.local"), exclusive=True),
               Namespace(re.compile(r"@shared_.*:test\.local"), exclusive=False)),
    )
    return AppService(**{**defaults, **kw})


def install(client: TestClient, *services: AppService) -> None:
    for s in services:
        client.app[HS_KEY].appservices.add(s)


async def as_register(client: TestClient, username: str, headers: dict[str, str] | None = None,
                      **body: Any) -> Any:
    return await client.post(f"{V3}/register", headers=AS if headers is None else headers,
                             json={"type": "m.login.application_service", "username": username,
                                   **body})


async def ghost(client: TestClient, localpart: str) -> str:
    resp = await as_register(client, localpart, inhibit_login=True)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["user_id"])


# --- the as_token and identity assertion ------------------------------------------------------


async def test_as_token_acts_as_the_sender_by_header_or_query(client: TestClient) -> None:
    install(client, service())
    resp = await client.get(f"{V3}/account/whoami", headers=AS)
    assert await resp.json() == {"user_id": BOT, "is_guest": False}
    resp = await client.get(f"{V3}/account/whoami", params={"access_token": AS_TOKEN})
    assert (await resp.json())["user_id"] == BOT


async def test_user_id_masquerades_as_registered_namespaced_users(client: TestClient) -> None:
    install(client, service())
    for localpart in ("_act_alice", "shared_bob"):  # exclusive and non-exclusive namespaces
        user_id = await ghost(client, localpart)
        resp = await client.get(f"{V3}/account/whoami", params={"user_id": user_id},
                                headers=AS)
        assert (resp.status, (await resp.json())["user_id"]) == (200, user_id)
    resp = await client.get(f"{V3}/account/whoami", params={"user_id": BOT}, headers=AS)
    assert (await resp.json())["user_id"] == BOT


async def test_user_id_outside_the_namespace_or_unregistered_is_forbidden(
    client: TestClient, register: Callable[[str], Awaitable[User]]
) -> None:
    install(client, service())
    alice = await register("alice")
    for user_id in (alice.user_id, "@_act_nobody:test.local", "@_act_x:elsewhere.org"):
        resp = await client.get(f"{V3}/account/whoami", params={"user_id": user_id},
                                headers=AS)
        await expect(resp, 403, "M_FORBIDDEN")
    # An ordinary user's ?user_id= is not identity assertion: it is ignored.
    resp = await client.get(f"{V3}/account/whoami", params={"user_id": "@_act_x:test.local"},
                            headers=alice.auth)
    assert (await resp.json())["user_id"] == alice.user_id
    resp = await client.get(f"{V3}/account/whoami", headers={"Authorization": "Bearer nope"})
    await expect(resp, 401, "M_UNKNOWN_TOKEN")


async def test_device_id_masquerading(client: TestClient) -> None:
    install(client, service())
    user_id = await ghost(client, "_act_dev")
    resp = await client.post(f"{V3}/login", headers=AS, json={
        "type": "m.login.application_service", "device_id": "GHOSTDEV",
        "identifier": {"type": "m.id.user", "user": user_id}})
    assert resp.status == 200
    params = {"user_id": user_id, "device_id": "GHOSTDEV"}
    resp = await client.get(f"{V3}/account/whoami", params=params, headers=AS)
    assert await resp.json() == {"user_id": user_id, "device_id": "GHOSTDEV", "is_guest": False}
    resp = await client.get(f"{V3}/account/whoami", headers=AS,
                            params={"user_id": user_id, "device_id": "NOPE"})
    await expect(resp, 400, "M_UNKNOWN_DEVICE")


async def test_transaction_ids_are_idempotent_per_virtual_user(
    client: TestClient, create_room: Callable[..., Awaitable[str]]
) -> None:
    install(client, service())
    alice, bob = await ghost(client, "_act_alice"), await ghost(client, "_act_bob")
    room = await create_room(User(BOT, AS_TOKEN, ""), preset="public_chat")
    for user_id in (alice, bob):
        resp = await client.post(f"{V3}/join/{room}", params={"user_id": user_id}, headers=AS,
                                 json={})
        assert resp.status == 200

    async def send(user_id: str, txn: str) -> str:
        resp = await client.put(f"{V3}/rooms/{room}/send/m.room.message/{txn}", headers=AS,
                                params={"user_id": user_id}, json={"msgtype": "m.text",
                                                                   "body": txn})
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["event_id"])

    first = await send(alice, "t1")
    assert await send(alice, "t1") == first  # a retry answers with the same event
    assert await send(bob, "t1") != first  # another virtual user's t1 is its own
    resp = await client.get(f"{V3}/rooms/{room}/event/{first}", params={"user_id": alice},
                            headers=AS)
    event = await resp.json()
    assert event["sender"] == alice and event["unsigned"]["transaction_id"] == "t1"


async def test_rate_limits_are_skipped_for_unlimited_services(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> None:
    config = make_config(tmp_path / "rl", rate_limits={
        "enabled": True, "message": {"per_second": 0.001, "burst_count": 2}})
    client = await aiohttp_client(init_app(config))
    limited = service(id="limited")
    free = service(id="free", as_token="free-token", sender_localpart="freebot",
                   rate_limited=False, users=())
    install(client, limited, free)
    for token in (AS_TOKEN, "free-token"):
        resp = await client.post(f"{V3}/createRoom", json={},
                                 headers={"Authorization": f"Bearer {token}"})
        room = (await resp.json())["room_id"]
        statuses = []
        for i in range(4):
            resp = await client.put(f"{V3}/rooms/{room}/send/m.room.message/r{i}",
                                    headers={"Authorization": f"Bearer {token}"},
                                    json={"msgtype": "m.text", "body": "x"})
            statuses.append(resp.status)
            if resp.status == 429:
                await expect(resp, 429, "M_LIMIT_EXCEEDED")
        assert statuses == ([200, 200, 429, 429] if token == AS_TOKEN else [200] * 4)


# --- registration -----------------------------------------------------------------------------


async def test_appservice_registration(client: TestClient, spec: MatrixSpec) -> None:
    install(client, service())
    resp = await as_register(client, "_act_alice", inhibit_login=True)
    body = await resp.json()
    assert resp.status == 200 and body["user_id"] == "@_act_alice:test.local"
    assert "access_token" not in body
    spec.check_response("registration", "POST", "/register", 200, body)
    resp = await as_register(client, "_act_carol", device_id="CAROLDEV")
    body = await resp.json()
    spec.check_response("registration", "POST", "/register", 200, body)
    assert body["device_id"] == "CAROLDEV"
    resp = await client.get(f"{V3}/account/whoami",
                            headers={"Authorization": f"Bearer {body['access_token']}"})
    assert (await resp.json())["user_id"] == "@_act_carol:test.local"
    # The service may register its own sender too; a second time the name is taken.
    assert (await as_register(client, "actbot", inhibit_login=True)).status == 200
    await expect(await as_register(client, "actbot"), 400, "M_USER_IN_USE")


async def test_appservice_registration_works_with_registration_disabled(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> None:
    client = await aiohttp_client(init_app(make_config(tmp_path / "closed",
                                                       enable_registration=False)))
    install(client, service())
    resp = await client.post(f"{V3}/register", json={
        "username": "human", "password": "pw", "auth": {"type": "m.login.dummy"}})
    await expect(resp, 403, "M_FORBIDDEN")
    assert (await as_register(client, "_act_ok", inhibit_login=True)).status == 200


async def test_appservice_registration_bad_input(
    client: TestClient, register: Callable[[str], Awaitable[User]], spec: MatrixSpec
) -> None:
    install(client, service(), service(
        id="other", as_token="other-token", sender_localpart="otherbot",
        users=(Namespace(re.compile(r"@_act_.*:test\.local"), exclusive=False),)))
    alice = await register("alice")
    other = {"Authorization": "Bearer other-token"}
    cases: list[tuple[Any, int, str]] = [
        (as_register(client, "alice2"), 400, "M_EXCLUSIVE"),  # outside its namespace
        # In another service's exclusive namespace.
        (as_register(client, "_act_mine", headers=other), 400, "M_EXCLUSIVE"),
        (as_register(client, "_act_x", headers={}), 401, "M_MISSING_TOKEN"),
        (as_register(client, "_act_x", headers=alice.auth), 401, "M_UNKNOWN_TOKEN"),
        # Not even the historical grammar (printable ASCII but ':') allows a space; mixed
        # case is allowed (tests/api/test_as_gaps_api.py).
        (as_register(client, "_act_x y"), 400, "M_INVALID_USERNAME"),
        (client.post(f"{V3}/register", headers=AS,
                     json={"type": "m.login.application_service"}), 400, "M_MISSING_PARAM"),
        (as_register(client, 5), 400, "M_BAD_JSON"),  # type: ignore[arg-type]
        (as_register(client, "_act_y", inhibit_login="yes"), 400, "M_BAD_JSON"),
        (client.post(f"{V3}/register", headers=AS, data=b"{nope"), 400, "M_NOT_JSON"),
    ]
    for request, status, errcode in cases:
        resp = await request
        body = await expect(resp, status, errcode)
        if status == 400:
            spec.check_response("registration", "POST", "/register", status, body)


async def test_exclusive_namespaces_refuse_normal_registration(
    client: TestClient, register: Callable[[str], Awaitable[User]], spec: MatrixSpec
) -> None:
    install(client, service())
    resp = await client.post(f"{V3}/register", json={
        "username": "_act_sneaky", "password": "pw", "auth": {"type": "m.login.dummy"}})
    body = await expect(resp, 400, "M_EXCLUSIVE")
    spec.check_response("registration", "POST", "/register", 400, body)
    resp = await client.get(f"{V3}/register/available", params={"username": "_act_sneaky"})
    body = await expect(resp, 400, "M_EXCLUSIVE")
    spec.check_response("registration", "GET", "/register/available", 400, body)
    resp = await client.get(f"{V3}/register/available", params={"username": "actbot"})
    await expect(resp, 400, "M_EXCLUSIVE")  # the sender is the service's own
    # Non-exclusive namespaces stay open to everyone.
    resp = await client.get(f"{V3}/register/available", params={"username": "shared_joe"})
    assert await resp.json() == {"available": True}
    assert (await register("shared_joe")).user_id == "@shared_joe:test.local"


# --- login and logout -------------------------------------------------------------------------


async def test_appservice_login(client: TestClient, spec: MatrixSpec) -> None:
    install(client, service())
    user_id = await ghost(client, "_act_login")
    flows = await (await client.get(f"{V3}/login")).json()
    spec.check_response("login", "GET", "/login", 200, flows)
    assert {"type": "m.login.application_service"} in flows["flows"]
    for user in (user_id, "_act_login"):
        resp = await client.post(f"{V3}/login", headers=AS, json={
            "type": "m.login.application_service", "identifier": {"type": "m.id.user",
                                                                  "user": user}})
        body = await resp.json()
        assert resp.status == 200 and body["user_id"] == user_id, body
        spec.check_response("login", "POST", "/login", 200, body)
    token = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await (await client.get(f"{V3}/account/whoami", headers=token)).json())[
        "user_id"] == user_id


async def test_appservice_login_bad_input(
    client: TestClient, register: Callable[[str], Awaitable[User]], spec: MatrixSpec
) -> None:
    install(client, service())
    alice = await register("alice")

    def login(user: Any, headers: dict[str, str]) -> Any:
        return client.post(f"{V3}/login", headers=headers, json={
            "type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": user}})

    cases: list[tuple[Any, int, str]] = [
        (login(alice.user_id, AS), 403, "M_FORBIDDEN"),  # not in the namespace
        (login("@_act_ghost:test.local", AS), 403, "M_FORBIDDEN"),  # not registered
        (login("@_act_ghost:test.local", {}), 401, "M_MISSING_TOKEN"),
        (login("@_act_ghost:test.local", alice.auth), 401, "M_UNKNOWN_TOKEN"),
        (login(7, AS), 400, "M_BAD_JSON"),
        (client.post(f"{V3}/login", headers=AS, json={"type": "m.login.application_service"}),
         400, "M_MISSING_PARAM"),
    ]
    for request, status, errcode in cases:
        body = await expect(await request, status, errcode)
        spec.check_response("login", "POST", "/login", status, body)


async def test_logout_with_the_as_token_ends_no_session(client: TestClient) -> None:
    install(client, service())
    user_id = await ghost(client, "_act_keep")
    resp = await client.post(f"{V3}/login", headers=AS, json={
        "type": "m.login.application_service", "identifier": {"type": "m.id.user",
                                                              "user": user_id}})
    token = {"Authorization": f"Bearer {(await resp.json())['access_token']}"}
    resp = await client.post(f"{V3}/logout", params={"user_id": user_id}, headers=AS)
    assert (resp.status, await resp.json()) == (200, {})
    assert (await client.get(f"{V3}/account/whoami", headers=token)).status == 200


# --- ping -------------------------------------------------------------------------------------


PING = "/appservice/{appserviceId}/ping"


async def ping(client: TestClient, as_id: str = "acting", headers: dict[str, str] | None = None,
               **kw: Any) -> Any:
    return await client.post(f"{V1}/appservice/{as_id}/ping",
                             headers=AS if headers is None else headers, **kw)


async def test_ping(client: TestClient, receiver: tuple[PingReceiver, str],
                    spec: MatrixSpec) -> None:
    fake, url = receiver
    install(client, service(url))
    resp = await ping(client, json={"transaction_id": "mautrix_1"})
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response("appservice_ping", "POST", PING, 200, body)
    assert isinstance(body["duration_ms"], int) and body["duration_ms"] >= 0
    assert fake.pings == [(f"Bearer {HS_TOKEN}", {"transaction_id": "mautrix_1"})]
    assert (await ping(client, json={})).status == 200
    assert fake.pings[-1][1] == {}


async def test_ping_refused(client: TestClient, register: Callable[[str], Awaitable[User]],
                            receiver: tuple[PingReceiver, str], spec: MatrixSpec) -> None:
    _, url = receiver
    install(client, service(url), service(url, id="second", as_token="second-token",
                                          sender_localpart="secondbot", users=()))
    alice = await register("alice")
    cases: list[tuple[Any, int, str]] = [
        (ping(client, "second"), 403, "M_FORBIDDEN"),  # another service's id
        (ping(client, "nonexistent"), 403, "M_FORBIDDEN"),
        (ping(client, headers=alice.auth, json={}), 403, "M_FORBIDDEN"),  # not an AS
        (ping(client, headers={}, json={}), 401, "M_MISSING_TOKEN"),
        (ping(client, headers={"Authorization": "Bearer nope"}, json={}), 401,
         "M_UNKNOWN_TOKEN"),
        (ping(client, json={"transaction_id": 5}), 400, "M_BAD_JSON"),
        (ping(client, data=b"[1]"), 400, "M_BAD_JSON"),
        (ping(client, data=b"{"), 400, "M_NOT_JSON"),
    ]
    for request, status, errcode in cases:
        body = await expect(await request, status, errcode)
        spec.check_response("appservice_ping", "POST", PING, status, body)


async def test_ping_failures_follow_the_spec(
    client: TestClient, receiver: tuple[PingReceiver, str], spec: MatrixSpec
) -> None:
    fake, url = receiver
    hs = client.app[HS_KEY]
    # The service answers with an error: 502 M_BAD_STATUS with its status and body.
    install(client, service(url))
    fake.status = 401
    body = await expect(await ping(client, json={}), 502, "M_BAD_STATUS")
    spec.check_response("appservice_ping", "POST", PING, 502, body)
    assert body["status"] == 401 and "M_UNKNOWN_TOKEN" in body["body"]
    # Too slow: 504 M_CONNECTION_TIMEOUT.
    fake.status, fake.delay_s = 200, 1.0
    hs.as_queries.timeout_s = 0.1
    body = await expect(await ping(client, json={}), 504, "M_CONNECTION_TIMEOUT")
    spec.check_response("appservice_ping", "POST", PING, 504, body)
    # Nobody listening: 502 M_CONNECTION_FAILED.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    install(client, service(f"http://127.0.0.1:{closed_port}"))
    body = await expect(await ping(client, json={}), 502, "M_CONNECTION_FAILED")
    spec.check_response("appservice_ping", "POST", PING, 502, body)
    # No URL: 400 M_URL_NOT_SET.
    install(client, service(None))
    body = await expect(await ping(client, json={}), 400, "M_URL_NOT_SET")
    spec.check_response("appservice_ping", "POST", PING, 400, body)
