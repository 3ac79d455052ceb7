"""The legacy (2015) POST /_matrix/appservice/v1/register: admins only, persisted."""

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import User, expect

from edgehs.api.keys import HS_KEY
from edgehs.app import init_app
from edgehs.config import Config

PATH = "/_matrix/appservice/v1/register"
# What the seed's examples post (exclusive users, a non-exclusive alias namespace).
BODY: dict[str, Any] = {
    "url": "http://127.0.0.1:5000",
    "as_token": "seed_as_token",
    "namespaces": {
        "users": [{"regex": "@irc_.*", "exclusive": True}],
        "aliases": [{"regex": "#irc_.*", "exclusive": False}],
    },
}


async def make_admin(client: TestClient, name: str = "root") -> User:
    server = client.app[HS_KEY]
    user_id = await server.users.register(name, "secret-pw", admin=True)
    token, device_id = await server.users.login(user_id, None, None)
    return User(user_id, token, device_id)


@pytest.fixture
async def admin(client: TestClient) -> User:
    return await make_admin(client)


async def test_admin_registers_an_appservice(client: TestClient, admin: User) -> None:
    resp = await client.post(PATH, json=BODY, headers=admin.auth)
    body = await resp.json()
    assert resp.status == 200, body
    hs_token = body["hs_token"]
    assert isinstance(hs_token, str) and len(hs_token) >= 32 and hs_token != BODY["as_token"]
    service = client.app[HS_KEY].appservices.by_token("seed_as_token")
    assert service is not None and service.hs_token == hs_token
    assert service.id.startswith("legacy_") and service.sender_localpart == service.id
    assert service.url == "http://127.0.0.1:5000" and service.source == "database"
    assert service.exclusive_user("@irc_alice:test.local")
    assert service.owns_alias("#irc_chan:test.local")
    assert not service.exclusive_alias("#irc_chan:test.local")
    assert service.rate_limited is True
    assert client.app[HS_KEY].appservices.by_id(service.id) is service

    # Registering again with the same as_token (an old AS does so at every start) updates it
    # and keeps id and hs_token.
    again = {**BODY, "url": "http://127.0.0.1:5001", "namespaces": {}}
    resp = await client.post(PATH, json=again, headers=admin.auth)
    assert resp.status == 200 and (await resp.json())["hs_token"] == hs_token
    updated = client.app[HS_KEY].appservices.by_token("seed_as_token")
    assert updated is not None and updated.id == service.id
    assert updated.url == "http://127.0.0.1:5001" and updated.users == ()
    assert len(client.app[HS_KEY].appservices.all()) == 1


async def test_optional_registration_fields(client: TestClient, admin: User) -> None:
    body = {**BODY, "id": "irc", "sender_localpart": "ircbot", "rate_limited": False,
            "protocols": ["irc"], "receive_ephemeral": True}
    resp = await client.post(PATH, json=body, headers=admin.auth)
    assert resp.status == 200
    service = client.app[HS_KEY].appservices.by_id("irc")
    assert service is not None and service.sender == "@ircbot:test.local"
    assert not service.rate_limited and service.protocols == ("irc",)
    assert service.receive_ephemeral
    # the same id with another as_token
    resp = await client.post(PATH, json={**body, "as_token": "other"}, headers=admin.auth)
    assert "id" in (await expect(resp, 400, "M_BAD_JSON"))["error"]
    # the same as_token with another id
    resp = await client.post(PATH, json={**body, "id": "irc2"}, headers=admin.auth)
    assert "id" in (await expect(resp, 400, "M_BAD_JSON"))["error"]


async def test_namespaces_are_optional(client: TestClient, admin: User) -> None:
    for token, extra in (("t1", {}), ("t2", {"namespaces": None})):
        body = {"url": "http://127.0.0.1:5000", "as_token": token, **extra}
        resp = await client.post(PATH, json=body, headers=admin.auth)
        assert resp.status == 200, await resp.json()
        service = client.app[HS_KEY].appservices.by_token(token)
        assert service is not None and (service.users, service.aliases) == ((), ())


async def test_only_admins(client: TestClient, register: Callable[[str], Awaitable[User]]
                           ) -> None:
    alice = await register("alice")
    await expect(await client.post(PATH, json=BODY, headers=alice.auth), 403, "M_FORBIDDEN")
    # a non-admin gets 403 even for a malformed body
    await expect(await client.post(PATH, data=b"{nope", headers=alice.auth), 403, "M_FORBIDDEN")
    await expect(await client.post(PATH, json=BODY), 401, "M_MISSING_TOKEN")
    await expect(await client.post(PATH, json=BODY, headers={"Authorization": "Bearer nope"}),
                 401, "M_UNKNOWN_TOKEN")
    assert client.app[HS_KEY].appservices.all() == []
    assert await client.app[HS_KEY].appservice_store.get_all() == []


async def test_room_limited_admin_token_is_refused(client: TestClient) -> None:
    server = client.app[HS_KEY]
    user_id = await server.users.register("root", "pw", admin=True)
    token, _ = await server.users.login(user_id, None, None, room_id="!r:test.local")
    resp = await client.post(PATH, json=BODY, headers={"Authorization": f"Bearer {token}"})
    await expect(resp, 403, "M_FORBIDDEN")


BAD_BODIES: list[tuple[Any, int, str, str]] = [
    # (body, status, errcode, a word the error must contain)
    (b"{not json", 400, "M_NOT_JSON", "JSON"),
    (b"", 400, "M_NOT_JSON", "JSON"),
    ([BODY], 400, "M_BAD_JSON", "object"),
    ({**BODY, "url": 5}, 400, "M_BAD_JSON", "url"),
    ({k: v for k, v in BODY.items() if k != "url"}, 400, "M_MISSING_PARAM", "url"),
    ({k: v for k, v in BODY.items() if k != "as_token"}, 400, "M_MISSING_PARAM", "as_token"),
    ({**BODY, "as_token": ""}, 400, "M_BAD_JSON", "as_token"),
    ({**BODY, "as_token": 7}, 400, "M_BAD_JSON", "as_token"),
    ({**BODY, "url": "ftp://x"}, 400, "M_BAD_JSON", "url"),
    ({**BODY, "namespaces": []}, 400, "M_BAD_JSON", "namespaces"),
    ({**BODY, "namespaces": {"users": "@irc_.*"}}, 400, "M_BAD_JSON", "namespaces.users"),
    ({**BODY, "namespaces": {"users": ["@irc_.*"]}}, 400, "M_BAD_JSON", "namespaces.users[0]"),
    ({**BODY, "namespaces": {"users": [{"regex": "@irc_(("}]}}, 400, "M_BAD_JSON",
     "namespaces.users[0].regex: invalid regex"),
    ({**BODY, "namespaces": {"rooms": [{"regex": "!.*"}]}}, 400, "M_BAD_JSON",
     "namespaces.rooms[0].exclusive"),
    ({**BODY, "namespaces": {"aliases": [{"exclusive": True}]}}, 400, "M_BAD_JSON",
     "namespaces.aliases[0].regex"),
    ({**BODY, "hs_token": "mine"}, 400, "M_BAD_JSON", "hs_token"),
    ({**BODY, "sender_localpart": "a:b"}, 400, "M_BAD_JSON", "sender_localpart"),
    ({**BODY, "id": ""}, 400, "M_BAD_JSON", "id"),
    ({**BODY, "rate_limited": "no"}, 400, "M_BAD_JSON", "rate_limited"),
    ({**BODY, "protocols": [1]}, 400, "M_BAD_JSON", "protocols[0]"),
]


@pytest.mark.parametrize(("body", "status", "errcode", "word"), BAD_BODIES)
async def test_bad_bodies(client: TestClient, admin: User, body: Any, status: int,
                          errcode: str, word: str) -> None:
    if isinstance(body, bytes):
        resp = await client.post(PATH, data=body, headers=admin.auth)
    else:
        resp = await client.post(PATH, json=body, headers=admin.auth)
    error = (await expect(resp, status, errcode))["error"]
    assert word in error, error
    assert client.app[HS_KEY].appservices.all() == []
    assert await client.app[HS_KEY].appservice_store.get_all() == []


async def test_as_token_of_a_file_registration_is_refused(
        aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config) -> None:
    path = config.data_dir / "bridge.yaml"
    path.write_text("id: bridge\nurl: null\nas_token: seed_as_token\nhs_token: h\n"
                    "sender_localpart: bridge\nnamespaces: {}\n")
    client = await aiohttp_client(init_app(replace(config, app_service_config_files=[path])))
    admin = await make_admin(client)
    assert client.app[HS_KEY].appservices.by_id("bridge") is not None
    error = (await expect(await client.post(PATH, json=BODY, headers=admin.auth), 400,
                          "M_BAD_JSON"))["error"]
    assert "as_token" in error
    resp = await client.post(PATH, json={**BODY, "as_token": "x", "id": "bridge"},
                             headers=admin.auth)
    assert "id" in (await expect(resp, 400, "M_BAD_JSON"))["error"]


async def test_registration_survives_a_restart(
        aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config) -> None:
    first = await aiohttp_client(init_app(config))
    admin = await make_admin(first)
    resp = await first.post(PATH, json=BODY, headers=admin.auth)
    assert resp.status == 200
    hs_token = (await resp.json())["hs_token"]
    as_id = first.app[HS_KEY].appservices.by_token("seed_as_token").id  # type: ignore[union-attr]
    await first.close()

    second = await aiohttp_client(init_app(config))
    service = second.app[HS_KEY].appservices.by_token("seed_as_token")
    assert service is not None
    assert (service.id, service.hs_token, service.url) == (as_id, hs_token,
                                                           "http://127.0.0.1:5000")
    assert service.exclusive_user("@irc_bob:test.local")
    # the old AS registers again at its own restart: same hs_token
    resp = await second.post(PATH, json=BODY, headers=admin.auth)
    assert resp.status == 200 and (await resp.json())["hs_token"] == hs_token
