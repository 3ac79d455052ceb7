"""Application-service gaps of issue 3: the admin endpoint that provisions plain-HTTP devices
in the running server, exclusive alias namespaces, the sender user created at start-up, and
historical (mixed-case) localparts for users an application service registers.

https://spec.matrix.org/v1.19/application-service-api/#registration
https://spec.matrix.org/v1.19/appendices/#historical-user-ids
"""

import os
import re
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import pytest
import yaml
from aiohttp.test_utils import TestClient, make_mocked_request
from spec_schema import MatrixSpec
from support import V3, User, expect, make_config

from edgehs.api.admin import ADMIN_KEY, authorize, secret_path
from edgehs.api.keys import HS_KEY
from edgehs.app import init_app
from edgehs.config import Config
from edgehs.errors import MatrixError
from edgehs.service.appservice.registry import AppService, Namespace

DEVICES = "/_edgehs/admin/v1/devices"
AS_TOKEN = "gaps-as-token"
AS = {"Authorization": f"Bearer {AS_TOKEN}"}
OTHER = {"Authorization": "Bearer gaps-other-token"}
Register = Callable[[str], Awaitable[User]]
CreateRoom = Callable[..., Awaitable[str]]


def service(**kw: Any) -> AppService:
    defaults: dict[str, Any] = dict(
        id="gaps", url=None, as_token=AS_TOKEN, hs_token="gaps-hs-token",
        sender_localpart="gapsbot", server_name="test.local",
        users=(Namespace(re.compile(r"@wa_.*:test\.local"), exclusive=True),),
        aliases=(Namespace(re.compile(r"#wa_.*:test\.local"), exclusive=True),
                 Namespace(re.compile(r"#open_.*:test\.local"), exclusive=False)),
    )
    return AppService(**{**defaults, **kw})


async def install(client: TestClient, *services: AppService) -> None:
    """Add services as a start-up would (their sender users created)."""
    server = client.app[HS_KEY]
    for s in services:
        server.appservices.add(s)
    await server.as_registrations.ensure_senders(services)


def secret_auth(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.app[ADMIN_KEY].secret}"}


async def make_user(client: TestClient, name: str, *, admin: bool = False) -> User:
    server = client.app[HS_KEY]
    user_id = await server.users.register(name, "secret-pw", admin=admin)
    token, device_id = await server.users.login(user_id, None, None)
    return User(user_id, token, device_id)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- POST /_edgehs/admin/v1/devices -------------------------------------------------------


async def test_admin_secret_file_is_private_and_matches(client: TestClient,
                                                        config: Config) -> None:
    path = secret_path(config.data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert secret == client.app[ADMIN_KEY].secret and len(secret) >= 43


async def test_provision_and_replace_a_device_token(client: TestClient) -> None:
    alice = await make_user(client, "alice")
    resp = await client.post(DEVICES, headers=secret_auth(client),
                             json={"name": "meter", "owner": "alice"})
    first = await resp.json()
    assert resp.status == 200, first
    assert first["user_id"] == "@device_meter:test.local"
    assert first["room_alias"] == "#meter:test.local" and first["room_id"].startswith("!")
    assert first["room_limited"] and first["created_user"] and first["created_room"]
    assert first["invited_owner"] == alice.user_id and first["device_id"] == "EDGEHS_DEVICE"
    room = quote(first["room_id"], safe="")
    reading = {"value": "21.5", "unit": "C"}
    legacy = f"/_matrix/client/api/v1/rooms/{room}/send/org.edgehs.sensor"
    resp = await client.post(legacy, params={"access_token": first["access_token"]},
                             json=reading)
    assert resp.status == 200, await resp.text()

    # Again: the same user and room, a new token; the old one is refused at once (the
    # server's token cache forgot it), with no restart.
    resp = await client.post(DEVICES, headers=secret_auth(client), json={"name": "meter"})
    second = await resp.json()
    assert resp.status == 200, second
    assert (second["user_id"], second["room_id"]) == (first["user_id"], first["room_id"])
    assert not second["created_user"] and not second["created_room"]
    assert second["access_token"] != first["access_token"]
    await expect(await client.post(legacy, params={"access_token": first["access_token"]},
                                   json=reading), 401, "M_UNKNOWN_TOKEN")
    resp = await client.post(legacy, params={"access_token": second["access_token"]},
                             json=reading)
    assert resp.status == 200

    # A server admin's access token works too (any_room: the token is not limited).
    root = await make_user(client, "root", admin=True)
    resp = await client.post(DEVICES, headers=root.auth, json={"name": "lamp",
                                                               "any_room": True})
    lamp = await resp.json()
    assert resp.status == 200 and lamp["room_limited"] is False, lamp
    resp = await client.post(f"{V3}/createRoom", headers=bearer(lamp["access_token"]), json={})
    assert resp.status == 200


async def test_admin_endpoint_refuses_wrong_credentials(client: TestClient) -> None:
    alice = await make_user(client, "alice")
    await install(client, service())
    secret = client.app[ADMIN_KEY].secret
    assert secret is not None
    body = {"name": "meter"}
    cases: list[tuple[dict[str, str], dict[str, str], int, str]] = [
        ({}, {}, 401, "M_MISSING_TOKEN"),
        ({"Authorization": f"Basic {secret}"}, {}, 401, "M_MISSING_TOKEN"),
        ({"Authorization": "Bearer "}, {}, 401, "M_MISSING_TOKEN"),
        ({}, {"access_token": secret}, 401, "M_MISSING_TOKEN"),  # never in the query string
        (bearer(secret[:-1]), {}, 401, "M_UNKNOWN_TOKEN"),
        (bearer(secret + "x"), {}, 401, "M_UNKNOWN_TOKEN"),
        (bearer("nope"), {}, 401, "M_UNKNOWN_TOKEN"),
        (alice.auth, {}, 403, "M_FORBIDDEN"),  # not an admin
        (AS, {}, 403, "M_FORBIDDEN"),  # an application service is not an admin
    ]
    for headers, params, status, errcode in cases:
        resp = await client.post(DEVICES, headers=headers, params=params, json=body)
        await expect(resp, status, errcode)
    server = client.app[HS_KEY]
    assert await server.user_store.get_user("@device_meter:test.local") is None


async def test_admin_secret_only_from_this_machine(client: TestClient) -> None:
    secret = client.app[ADMIN_KEY].secret

    def request(peer: str, local: str) -> Any:
        transport = mock.Mock()
        transport.get_extra_info.side_effect = lambda name, default=None: {
            "peername": (peer, 40000), "sockname": (local, 8008)}.get(name, default)
        return make_mocked_request("POST", DEVICES, headers=bearer(str(secret)),
                                   app=client.app, transport=transport)

    assert await authorize(request("127.0.0.1", "127.0.0.1")) == "the local admin secret"
    assert await authorize(request("::ffff:127.0.0.1", "::")) == "the local admin secret"
    # a client on this host connecting to the LAN address the server listens on
    assert await authorize(request("192.168.1.5", "192.168.1.5"))
    with pytest.raises(MatrixError) as err:
        await authorize(request("192.168.1.9", "192.168.1.5"))
    assert (err.value.status, err.value.errcode) == (403, "M_FORBIDDEN")


async def test_admin_endpoint_bad_input(client: TestClient,
                                        create_room: CreateRoom) -> None:
    auth = secret_auth(client)
    bob = await make_user(client, "bob")
    await create_room(bob, room_alias_name="closed")  # private: a device cannot join it
    cases: list[tuple[Any, int, str]] = [
        ({}, 400, "M_NOT_JSON"),  # empty body
        ({"room_alias": "#x:test.local"}, 400, "M_MISSING_PARAM"),
        ({"name": 5}, 400, "M_BAD_JSON"),
        ({"name": "x", "any_room": "yes"}, 400, "M_BAD_JSON"),
        ({"name": "x", "owner": ["bob"]}, 400, "M_BAD_JSON"),
        ({"name": "Bad Name"}, 400, "M_INVALID_USERNAME"),
        ({"name": "x", "owner": "nobody"}, 400, "M_INVALID_PARAM"),
        ({"name": "x", "room_alias": "#x:elsewhere.org"}, 400, "M_INVALID_PARAM"),
        ({"name": "x", "room_alias": "closed"}, 403, "M_FORBIDDEN"),
    ]
    for body, status, errcode in cases:
        resp = await client.post(DEVICES, headers=auth, json=body if body else None)
        await expect(resp, status, errcode)
    resp = await client.post(DEVICES, headers=auth, data=b"{nope")
    await expect(resp, 400, "M_NOT_JSON")
    resp = await client.get(DEVICES, headers=auth)
    await expect(resp, 405, "M_UNRECOGNIZED")


# --- exclusive alias namespaces -------------------------------------------------------------


async def test_normal_users_cannot_create_aliases_in_exclusive_namespaces(
    client: TestClient, register: Register, create_room: CreateRoom, spec: MatrixSpec,
) -> None:
    await install(client, service())
    alice = await register("alice")
    room = await create_room(alice, preset="public_chat")
    put = "/directory/room/{roomAlias}"
    resp = await client.put(f"{V3}/directory/room/{quote('#wa_chat:test.local')}",
                            headers=alice.auth, json={"room_id": room})
    body = await expect(resp, 400, "M_EXCLUSIVE")
    spec.check_response("directory", "PUT", put, 400, body)
    resp = await client.post(f"{V3}/createRoom", headers=alice.auth,
                             json={"room_alias_name": "wa_room"})
    body = await expect(resp, 400, "M_EXCLUSIVE")
    spec.check_response("create_room", "POST", "/createRoom", 400, body)
    # A non-exclusive namespace is open to everyone.
    resp = await client.put(f"{V3}/directory/room/{quote('#open_chat:test.local')}",
                            headers=alice.auth, json={"room_id": room})
    assert resp.status == 200
    # Another application service may not use the namespace either.
    await install(client, service(id="other", as_token="gaps-other-token",
                                  sender_localpart="otherbot", users=(), aliases=()))
    resp = await client.post(f"{V3}/createRoom", headers=OTHER,
                             json={"room_alias_name": "wa_other"})
    await expect(resp, 400, "M_EXCLUSIVE")
    server = client.app[HS_KEY]
    for alias in ("#wa_chat:test.local", "#wa_room:test.local", "#wa_other:test.local"):
        assert await server.room_store.get_alias(alias) is None


async def test_the_appservice_manages_its_exclusive_aliases(
    client: TestClient, register: Register, create_room: CreateRoom,
) -> None:
    await install(client, service())
    alice = await register("alice")
    resp = await client.post(f"{V3}/createRoom", headers=AS, json={
        "room_alias_name": "wa_family", "preset": "public_chat"})
    assert resp.status == 200, await resp.text()
    family = (await resp.json())["room_id"]
    # A masqueraded user, and the service without being in the room.
    resp = await client.post(f"{V3}/register", headers=AS, json={
        "type": "m.login.application_service", "username": "wa_ghost", "inhibit_login": True})
    ghost = (await resp.json())["user_id"]
    resp = await client.post(f"{V3}/join/{family}", headers=AS, params={"user_id": ghost},
                             json={})
    assert resp.status == 200
    resp = await client.put(f"{V3}/directory/room/{quote('#wa_ghosts:test.local')}",
                            headers=AS, params={"user_id": ghost}, json={"room_id": family})
    assert resp.status == 200, await resp.text()
    elsewhere = await create_room(alice, preset="public_chat")
    resp = await client.put(f"{V3}/directory/room/{quote('#wa_elsewhere:test.local')}",
                            headers=AS, json={"room_id": elsewhere})
    assert resp.status == 200, await resp.text()
    resolved = await (await client.get(
        f"{V3}/directory/room/{quote('#wa_elsewhere:test.local')}")).json()
    assert resolved["room_id"] == elsewhere

    # alice moderates `elsewhere`, but the alias is the service's: M_EXCLUSIVE, not deleted.
    resp = await client.delete(f"{V3}/directory/room/{quote('#wa_elsewhere:test.local')}",
                               headers=alice.auth)
    await expect(resp, 400, "M_EXCLUSIVE")
    # The service deletes aliases of its namespace, whoever created them.
    resp = await client.delete(f"{V3}/directory/room/{quote('#wa_elsewhere:test.local')}",
                               headers=AS, params={"user_id": ghost})
    assert resp.status == 200, await resp.text()
    resp = await client.delete(f"{V3}/directory/room/{quote('#wa_ghosts:test.local')}",
                               headers=AS)
    assert resp.status == 200
    server = client.app[HS_KEY]
    assert await server.room_store.get_alias("#wa_elsewhere:test.local") is None
    await expect(await client.delete(f"{V3}/directory/room/{quote('#wa_gone:test.local')}",
                                     headers=alice.auth), 404, "M_NOT_FOUND")


async def test_an_alias_made_before_the_service_came_is_the_services(
    client: TestClient, register: Register, create_room: CreateRoom,
) -> None:
    alice = await register("alice")
    room = await create_room(alice, preset="public_chat", room_alias_name="wa_early")
    await install(client, service())  # the namespace is claimed afterwards
    alias = quote("#wa_early:test.local")
    resp = await client.delete(f"{V3}/directory/room/{alias}", headers=alice.auth)
    await expect(resp, 400, "M_EXCLUSIVE")
    # the sender user with an access token of its own counts as the service (as in Synapse)
    resp = await client.post(f"{V3}/login", headers=AS, json={
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": "gapsbot"}})
    sender = bearer((await resp.json())["access_token"])
    resp = await client.delete(f"{V3}/directory/room/{alias}", headers=sender)
    assert resp.status == 200, await resp.text()
    resp = await client.put(f"{V3}/directory/room/{alias}", headers=sender,
                            json={"room_id": room})
    assert resp.status == 200, await resp.text()


# --- the sender user exists from the start ----------------------------------------------------


def write_registration(path: Path, sender: str) -> Path:
    path.write_text(yaml.safe_dump({
        "id": "mautrix-like", "url": None, "as_token": AS_TOKEN, "hs_token": "gaps-hs-token",
        "sender_localpart": sender,
        "namespaces": {"users": [{"regex": "@wa_.*:test\\.local", "exclusive": True}]},
    }))
    return path


async def test_sender_user_is_created_at_start_up(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path,
) -> None:
    # mautrix-go writes random mixed-case sender localparts (the historical grammar).
    reg = write_registration(tmp_path / "reg.yaml", "MxBot_Q7x")
    config = make_config(tmp_path / "asdata", app_service_config_files=[str(reg)])
    client = await aiohttp_client(init_app(config))
    sender = "@MxBot_Q7x:test.local"
    resp = await client.get(f"{V3}/profile/{quote(sender)}")
    assert (resp.status, await resp.json()) == (200, {"displayname": "MxBot_Q7x"})
    alice = await make_user(client, "alice")
    resp = await client.post(f"{V3}/createRoom", headers=alice.auth,
                             json={"preset": "public_chat"})
    room = (await resp.json())["room_id"]
    resp = await client.post(f"{V3}/join/{room}", headers=AS, json={})
    assert resp.status == 200, await resp.text()
    members = await (await client.get(f"{V3}/rooms/{room}/joined_members",
                                      headers=alice.auth)).json()
    assert members["joined"][sender] == {"display_name": "MxBot_Q7x"}
    user = await client.app[HS_KEY].user_store.get_user(sender)
    assert user is not None and user["appservice_id"] == "mautrix-like"
    await client.close()
    # A second start finds the user and leaves it alone.
    client = await aiohttp_client(init_app(config))
    assert (await client.get(f"{V3}/profile/{quote(sender)}")).status == 200


async def test_sender_user_of_a_run_time_registration(client: TestClient) -> None:
    root = await make_user(client, "root", admin=True)
    resp = await client.post("/_matrix/appservice/v1/register", headers=root.auth, json={
        "url": "http://127.0.0.1:9", "as_token": "late-token", "sender_localpart": "latebot",
        "namespaces": {}})
    assert resp.status == 200, await resp.text()
    resp = await client.get(f"{V3}/profile/@latebot:test.local")
    assert (resp.status, await resp.json()) == (200, {"displayname": "latebot"})
    resp = await client.post(f"{V3}/createRoom", headers=bearer("late-token"), json={})
    assert resp.status == 200


# --- historical localparts for appservice users -----------------------------------------------


async def as_register(client: TestClient, username: Any) -> Any:
    return await client.post(f"{V3}/register", headers=AS, json={
        "type": "m.login.application_service", "username": username, "inhibit_login": True})


async def test_appservice_may_register_mixed_case_localparts(client: TestClient,
                                                             spec: MatrixSpec) -> None:
    await install(client, service())
    resp = await as_register(client, "wa_AbC=Q!x~")
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response("registration", "POST", "/register", 200, body)
    user_id = "@wa_AbC=Q!x~:test.local"
    assert body["user_id"] == user_id
    # ... and act as it, log it in (its case kept), and look at its profile.
    resp = await client.get(f"{V3}/account/whoami", headers=AS, params={"user_id": user_id})
    assert (await resp.json())["user_id"] == user_id
    resp = await client.post(f"{V3}/login", headers=AS, json={
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": user_id}})
    assert (resp.status, (await resp.json())["user_id"]) == (200, user_id)
    resp = await client.get(f"{V3}/profile/{quote(user_id)}")
    assert resp.status == 200
    # The lower-case id is another user, not registered.
    resp = await client.get(f"{V3}/account/whoami", headers=AS,
                            params={"user_id": user_id.lower()})
    await expect(resp, 403, "M_FORBIDDEN")


async def test_appservice_localparts_outside_the_historical_grammar(
    client: TestClient, spec: MatrixSpec,
) -> None:
    await install(client, service())
    for username in ("wa_a:b", "wa_a b", "wa_\u00e9", "wa_tab\t", "wa_nl\n", "",
                     "wa_" + "x" * 250):
        body = await expect(await as_register(client, username), 400, "M_INVALID_USERNAME")
        spec.check_response("registration", "POST", "/register", 400, body)


async def test_normal_registration_stays_strict(client: TestClient, spec: MatrixSpec) -> None:
    # Capitals are lower-cased, not refused (test_registration_sessions.py).
    for username in ("Alice!", "alice!", "al ice", "alice\n"):
        resp = await client.post(f"{V3}/register", json={
            "username": username, "password": "pw", "auth": {"type": "m.login.dummy"}})
        body = await expect(resp, 400, "M_INVALID_USERNAME")
        spec.check_response("registration", "POST", "/register", 400, body)
        resp = await client.get(f"{V3}/register/available", params={"username": username})
        await expect(resp, 400, "M_INVALID_USERNAME")


def test_secret_file_mode_ignores_the_umask(tmp_path: Path) -> None:
    from edgehs.api.admin import write_secret

    old = os.umask(0)
    try:
        secret = write_secret(tmp_path / "admin.secret")
    finally:
        os.umask(old)
    path = tmp_path / "admin.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == secret + "\n"
    assert write_secret(path) != secret  # a new one at every start
