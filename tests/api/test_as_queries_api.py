"""The homeserver asking application services: unknown aliases and users, and third-party
network lookups proxied to the services that list a protocol.

https://spec.matrix.org/v1.19/application-service-api/#querying
https://spec.matrix.org/v1.19/client-server-api/#third-party-networks
"""

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from spec_schema import MatrixSpec
from support import V3, User, expect

from edgehs.api.keys import HS_KEY
from edgehs.service.appservice.registry import AppService, Namespace

Register = Callable[[str], Awaitable[User]]
APP = "/_matrix/app/v1"
LOOKUP = "third_party_lookup"


def protocol_info(network: str) -> dict[str, Any]:
    return {
        "user_fields": ["network", "nickname"], "location_fields": ["network", "channel"],
        "icon": "mxc://example.org/icon",
        "field_types": {"network": {"regexp": ".*", "placeholder": "irc.example.org"},
                        "nickname": {"regexp": ".*", "placeholder": "nick"},
                        "channel": {"regexp": "#.*", "placeholder": "#chan"}},
        "instances": [{"network_id": network, "desc": network.title(), "fields": {}}],
    }


@dataclass
class QueryService:
    """A fake application service: records every request and answers queries the way a
    bridge would, creating rooms and users through the homeserver's client API."""

    as_id: str
    client: TestClient
    as_token: str
    create: bool = True  # create the room / register the user when asked
    status: int = 200
    delay_s: float = 0.0
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: list[Any] = field(default_factory=list)  # third-party lookups answer this
    requests: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.as_token}"}

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.record])
        app.router.add_get(APP + "/rooms/{alias}", self.query_alias)
        app.router.add_get(APP + "/users/{user_id}", self.query_user)
        app.router.add_get(APP + "/thirdparty/protocol/{protocol}", self.protocol)
        for path in ("/thirdparty/location/{protocol}", "/thirdparty/user/{protocol}",
                     "/thirdparty/location", "/thirdparty/user"):
            app.router.add_get(APP + path, self.lookup)
        app.router.add_put(APP + "/transactions/{txn}", self.transaction)
        return app

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if "/transactions/" not in request.path:
            self.requests.append((request.path, dict(request.query),
                                  request.headers.get("Authorization")))
        await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.json_response({"errcode": "COM.EXAMPLE.NOPE"}, status=self.status)
        return await handler(request)

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.requests]

    async def query_alias(self, request: web.Request) -> web.Response:
        alias = request.match_info["alias"]
        if self.create:
            resp = await self.client.post(f"{V3}/createRoom", headers=self.auth, json={
                "room_alias_name": alias[1:].split(":")[0], "preset": "public_chat"})
            assert resp.status == 200, await resp.text()
        return web.json_response({})

    async def query_user(self, request: web.Request) -> web.Response:
        user_id = request.match_info["user_id"]
        if self.create:
            localpart = user_id[1:].split(":")[0]
            resp = await self.client.post(f"{V3}/register", headers=self.auth, json={
                "type": "m.login.application_service", "username": localpart,
                "inhibit_login": True})
            assert resp.status == 200, await resp.text()
            resp = await self.client.put(f"{V3}/profile/{quote(user_id)}/displayname",
                                         params={"user_id": user_id}, headers=self.auth,
                                         json={"displayname": "Bridged " + localpart})
            assert resp.status == 200, await resp.text()
        return web.json_response({})

    async def protocol(self, request: web.Request) -> web.Response:
        info = self.protocols.get(request.match_info["protocol"])
        if info is None:
            return web.json_response({"errcode": "COM.EXAMPLE.NOT_FOUND"}, status=404)
        return web.json_response(info)

    async def lookup(self, request: web.Request) -> web.Response:
        return web.json_response(self.results)

    async def transaction(self, request: web.Request) -> web.Response:
        return web.json_response({})


Start = Callable[..., Awaitable[QueryService]]


@pytest.fixture
async def start_service(client: TestClient) -> AsyncIterator[Start]:
    """``await start_service(as_id, **registration)``: a fake service on 127.0.0.1, registered
    with the homeserver under as_token ``{as_id}-as``."""
    servers: list[TestServer] = []

    async def start(as_id: str = "bridge", **registration: Any) -> QueryService:
        fake = QueryService(as_id, client, f"{as_id}-as")
        server = TestServer(fake.app(), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        defaults: dict[str, Any] = dict(
            id=as_id, url=str(server.make_url("")).rstrip("/"), as_token=fake.as_token,
            hs_token=f"{as_id}-hs", sender_localpart=f"{as_id}bot", server_name="test.local",
            users=(Namespace(re.compile(rf"@_{as_id}_.*:test\.local"), exclusive=True),),
            aliases=(Namespace(re.compile(rf"#_{as_id}_.*:test\.local"), exclusive=True),),
        )
        client.app[HS_KEY].appservices.add(AppService(**{**defaults, **registration}))
        return fake

    yield start
    for server in servers:
        await server.close()


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- aliases ------------------------------------------------------------------------------------


async def test_joining_an_unknown_alias_asks_the_service(
    client: TestClient, register: Register, start_service: Start
) -> None:
    fake = await start_service()
    alice = await register("alice")
    alias = "#_bridge_lobby:test.local"
    resp = await client.post(f"{V3}/join/{quote(alias)}", headers=alice.auth, json={})
    body = await resp.json()
    assert resp.status == 200, body
    path, query, auth = fake.requests[0]
    assert path == f"{APP}/rooms/{alias}"
    assert auth == "Bearer bridge-hs" and query == {"access_token": "bridge-hs"}
    members = await (await client.get(f"{V3}/rooms/{body['room_id']}/joined_members",
                                      headers=alice.auth)).json()
    assert alice.user_id in members["joined"]
    # Known now: the service is not asked again.
    resp = await client.get(f"{V3}/directory/room/{quote(alias)}", headers=alice.auth)
    assert (await resp.json())["room_id"] == body["room_id"]
    assert len(fake.requests) == 1


async def test_resolving_an_unknown_alias_asks_the_service(
    client: TestClient, register: Register, start_service: Start, spec: MatrixSpec
) -> None:
    fake = await start_service()
    alice = await register("alice")
    resp = await client.get(f"{V3}/directory/room/{quote('#_bridge_hall:test.local')}",
                            headers=alice.auth)
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response("directory", "GET", "/directory/room/{roomAlias}", 200, body)
    assert body["room_id"].startswith("!") and fake.paths() == [
        f"{APP}/rooms/#_bridge_hall:test.local"]


async def test_alias_queries_that_find_nothing_are_404(
    client: TestClient, register: Register, start_service: Start, spec: MatrixSpec
) -> None:
    fake = await start_service()
    alice = await register("alice")

    async def resolve(alias: str) -> None:
        resp = await client.get(f"{V3}/directory/room/{quote(alias)}", headers=alice.auth)
        body = await expect(resp, 404, "M_NOT_FOUND")
        spec.check_response("directory", "GET", "/directory/room/{roomAlias}", 404, body)
        resp = await client.post(f"{V3}/join/{quote(alias)}", headers=alice.auth, json={})
        await expect(resp, 404, "M_NOT_FOUND")

    await resolve("#elsewhere:test.local")  # not in any namespace: nobody is asked
    assert fake.requests == []
    fake.status = 404  # the service does not know it
    await resolve("#_bridge_a:test.local")
    fake.status, fake.create = 200, False  # says yes, but created nothing
    await resolve("#_bridge_b:test.local")
    assert len(fake.requests) == 4
    fake.create, fake.delay_s = True, 1.0  # too slow
    client.app[HS_KEY].as_queries.timeout_s = 0.1
    await resolve("#_bridge_c:test.local")


async def test_alias_queries_survive_a_service_that_is_down(
    client: TestClient, register: Register, start_service: Start
) -> None:
    await start_service("down", url=closed_url(),
                        aliases=(Namespace(re.compile(r"#_(down|bridge)_.*"), exclusive=False),))
    fake = await start_service("bridge")
    alice = await register("alice")
    resp = await client.post(f"{V3}/join/{quote('#_down_x:test.local')}", headers=alice.auth,
                             json={})
    await expect(resp, 404, "M_NOT_FOUND")
    # A matching service after one that is down is still asked.
    resp = await client.post(f"{V3}/join/{quote('#_bridge_y:test.local')}", headers=alice.auth,
                             json={})
    assert resp.status == 200 and len(fake.requests) == 1


# --- users --------------------------------------------------------------------------------------


async def test_profile_of_an_unknown_namespaced_user_asks_the_service(
    client: TestClient, register: Register, start_service: Start, spec: MatrixSpec
) -> None:
    fake = await start_service()
    alice = await register("alice")
    user_id = "@_bridge_carol:test.local"
    resp = await client.get(f"{V3}/profile/{quote(user_id)}", headers=alice.auth)
    body = await resp.json()
    assert (resp.status, body) == (200, {"displayname": "Bridged _bridge_carol"})
    spec.check_response("profile", "GET", "/profile/{userId}", 200, body)
    assert fake.paths() == [f"{APP}/users/{user_id}"]
    assert fake.requests[0][1:] == ({"access_token": "bridge-hs"}, "Bearer bridge-hs")


async def test_profile_queries_that_find_nothing_are_404(
    client: TestClient, register: Register, start_service: Start, spec: MatrixSpec
) -> None:
    fake = await start_service()
    await start_service("down", url=closed_url())
    alice = await register("alice")
    for user_id, status in (("@nobody:test.local", 200), ("@_bridge_x:test.local", 404),
                            ("@_bridge_y:test.local", 500), ("@_down_z:test.local", 200)):
        fake.status = status
        resp = await client.get(f"{V3}/profile/{quote(user_id)}", headers=alice.auth)
        body = await expect(resp, 404, "M_NOT_FOUND")
        spec.check_response("profile", "GET", "/profile/{userId}", 404, body)
    assert fake.paths() == [f"{APP}/users/@_bridge_x:test.local",
                            f"{APP}/users/@_bridge_y:test.local"]


async def test_inviting_an_unknown_namespaced_user_asks_the_service(
    client: TestClient, register: Register, start_service: Start,
    create_room: Callable[..., Awaitable[str]],
) -> None:
    fake = await start_service()
    alice = await register("alice")
    room = await create_room(alice)
    user_id = "@_bridge_dave:test.local"
    resp = await client.post(f"{V3}/rooms/{room}/invite", headers=alice.auth,
                             json={"user_id": user_id})
    assert resp.status == 200, await resp.text()
    assert fake.paths() == [f"{APP}/users/{user_id}"]
    resp = await client.get(f"{V3}/rooms/{room}/state/m.room.member/{quote(user_id)}",
                            headers=alice.auth)
    assert await resp.json() == {"membership": "invite",
                                 "displayname": "Bridged _bridge_dave"}
    # The invited user exists now: a second invite elsewhere does not ask again.
    room2 = await create_room(alice)
    resp = await client.post(f"{V3}/rooms/{room2}/invite", headers=alice.auth,
                             json={"user_id": user_id})
    assert resp.status == 200 and len(fake.requests) == 1
    # Invites in /createRoom ask too.
    await create_room(alice, invite=["@_bridge_erin:test.local"])
    assert fake.paths()[-1] == f"{APP}/users/@_bridge_erin:test.local"


# --- third-party networks -----------------------------------------------------------------------


async def test_protocols_are_merged_across_services(
    client: TestClient, register: Register, start_service: Start, spec: MatrixSpec
) -> None:
    one = await start_service("one", protocols=("irc", "gitter"))
    two = await start_service("two", protocols=("irc",))
    await start_service("down", url=closed_url(), protocols=("slack",))
    one.protocols = {"irc": protocol_info("libera"), "gitter": protocol_info("gitter")}
    two.protocols = {"irc": protocol_info("oftc")}
    alice = await register("alice")
    resp = await client.get(f"{V3}/thirdparty/protocols", headers=alice.auth)
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response(LOOKUP, "GET", "/thirdparty/protocols", 200, body)
    assert sorted(body) == ["gitter", "irc"]  # slack's only service is down
    assert [i["instance_id"] for i in body["irc"]["instances"]] == ["one|libera", "two|oftc"]
    resp = await client.get(f"{V3}/thirdparty/protocol/irc", headers=alice.auth)
    single = await resp.json()
    spec.check_response(LOOKUP, "GET", "/thirdparty/protocol/{protocol}", 200, single)
    assert single == body["irc"]
    assert ("/_matrix/app/v1/thirdparty/protocol/irc", {"access_token": "two-hs"},
            "Bearer two-hs") in two.requests


async def test_unknown_protocols_are_404(
    client: TestClient, register: Register, start_service: Start, spec: MatrixSpec
) -> None:
    fake = await start_service("one", protocols=("irc", "broken"))
    fake.protocols = {"irc": protocol_info("libera"), "broken": {"instances": "no"}}
    alice = await register("alice")
    for path, template in (("/thirdparty/protocol/matrix", "/thirdparty/protocol/{protocol}"),
                           ("/thirdparty/protocol/broken", "/thirdparty/protocol/{protocol}"),
                           ("/thirdparty/location/matrix", "/thirdparty/location/{protocol}"),
                           ("/thirdparty/user/matrix", "/thirdparty/user/{protocol}")):
        resp = await client.get(V3 + path, headers=alice.auth)
        body = await expect(resp, 404, "M_NOT_FOUND")
        spec.check_response(LOOKUP, "GET", template, 404, body)


async def test_lookups_are_proxied_and_merged(
    client: TestClient, register: Register, start_service: Start, spec: MatrixSpec
) -> None:
    one = await start_service("one", protocols=("irc",))
    two = await start_service("two", protocols=("irc",))
    await start_service("down", url=closed_url(), protocols=("irc",))
    one.results = [{"alias": "#_one_chan:test.local", "protocol": "irc",
                    "fields": {"channel": "#chan"}},
                   {"alias": 5, "protocol": "irc", "fields": {}},  # invalid: dropped
                   "junk"]
    two.results = [{"alias": "#_two_chan:test.local", "protocol": "irc",
                    "fields": {"channel": "#chan"}}]
    alice = await register("alice")
    resp = await client.get(f"{V3}/thirdparty/location/irc", headers=alice.auth,
                            params={"network": "libera", "channel": "#chan"})
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response(LOOKUP, "GET", "/thirdparty/location/{protocol}", 200, body)
    assert [r["alias"] for r in body] == ["#_one_chan:test.local", "#_two_chan:test.local"]
    path, query, auth = one.requests[-1]
    assert path == f"{APP}/thirdparty/location/irc" and auth == "Bearer one-hs"
    assert query == {"network": "libera", "channel": "#chan", "access_token": "one-hs"}

    one.results = [{"userid": "@_one_nick:test.local", "protocol": "irc",
                    "fields": {"nickname": "nick"}}]
    two.results = []
    resp = await client.get(f"{V3}/thirdparty/user/irc", params={"nickname": "nick"},
                            headers=alice.auth)
    body = await resp.json()
    spec.check_response(LOOKUP, "GET", "/thirdparty/user/{protocol}", 200, body)
    assert [r["userid"] for r in body] == ["@_one_nick:test.local"]
    # A known protocol without matches is an empty list (as in Synapse).
    one.results = []
    resp = await client.get(f"{V3}/thirdparty/user/irc", headers=alice.auth)
    assert (resp.status, await resp.json()) == (200, [])


async def test_reverse_lookups_ask_the_services_owning_the_id(
    client: TestClient, register: Register, start_service: Start, spec: MatrixSpec
) -> None:
    one = await start_service("one", protocols=("irc",))
    two = await start_service("two", protocols=("irc",))
    one.results = [{"alias": "#_one_chan:test.local", "protocol": "irc",
                    "fields": {"channel": "#chan"}}]
    alice = await register("alice")
    resp = await client.get(f"{V3}/thirdparty/location", headers=alice.auth,
                            params={"alias": "#_one_chan:test.local"})
    body = await resp.json()
    spec.check_response(LOOKUP, "GET", "/thirdparty/location", 200, body)
    assert body == one.results and two.requests == []
    assert one.requests[-1][:2] == (f"{APP}/thirdparty/location",
                                    {"alias": "#_one_chan:test.local",
                                     "access_token": "one-hs"})
    two.results = [{"userid": "@_two_nick:test.local", "protocol": "irc",
                    "fields": {"nickname": "nick"}}]
    resp = await client.get(f"{V3}/thirdparty/user", headers=alice.auth,
                            params={"userid": "@_two_nick:test.local"})
    body = await resp.json()
    spec.check_response(LOOKUP, "GET", "/thirdparty/user", 200, body)
    assert body == two.results
    resp = await client.get(f"{V3}/thirdparty/user", headers=alice.auth,
                            params={"userid": "@alice:test.local"})
    assert await resp.json() == []


async def test_third_party_bad_input(
    client: TestClient, register: Register, start_service: Start, spec: MatrixSpec
) -> None:
    await start_service("one", protocols=("irc",))
    alice = await register("alice")
    cases = [
        ("/thirdparty/location", {}, "/thirdparty/location", 400, "M_MISSING_PARAM"),
        ("/thirdparty/location", {"alias": "nope"}, "/thirdparty/location", 400,
         "M_INVALID_PARAM"),
        ("/thirdparty/user", {}, "/thirdparty/user", 400, "M_MISSING_PARAM"),
        ("/thirdparty/user", {"userid": "bob"}, "/thirdparty/user", 400, "M_INVALID_PARAM"),
    ]
    for path, params, template, status, errcode in cases:
        resp = await client.get(V3 + path, params=params, headers=alice.auth)
        body = await expect(resp, status, errcode)
        spec.check_response(LOOKUP, "GET", template, status, body)
    for path in ("/thirdparty/protocols", "/thirdparty/protocol/irc",
                 "/thirdparty/location/irc", "/thirdparty/user/irc",
                 "/thirdparty/location?alias=%23a:test.local",
                 "/thirdparty/user?userid=@a:test.local"):
        await expect(await client.get(V3 + path), 401, "M_MISSING_TOKEN")
        await expect(await client.get(V3 + path, headers={"Authorization": "Bearer x"}),
                     401, "M_UNKNOWN_TOKEN")


async def test_an_appservice_may_look_up_too(client: TestClient, start_service: Start) -> None:
    fake = await start_service("one", protocols=("irc",))
    fake.results = [{"userid": "@_one_n:test.local", "protocol": "irc", "fields": {}}]
    resp = await client.get(f"{V3}/thirdparty/user/irc", headers=fake.auth,
                            params={"user_id": "@onebot:test.local", "nickname": "n"})
    assert await resp.json() == fake.results
    # The identity assertion parameters are not passed on as search fields.
    assert fake.requests[-1][1] == {"nickname": "n", "access_token": "one-hs"}
