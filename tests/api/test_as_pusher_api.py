"""Pushing events to application services through the durable outbox.

https://spec.matrix.org/v1.19/application-service-api/#pushing-events
"""

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from support import User, make_config

from edgehs.api.keys import HS_KEY
from edgehs.app import init_app
from edgehs.service.appservice.registry import AppService, Namespace

V3 = "/_matrix/client/v3"


@dataclass
class FakeAppService:
    """A receiver in the style of the 2015 examples: records every transaction."""

    status: int = 200
    legacy_only: bool = False
    transactions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    peer_ports: list[int] = field(default_factory=list)  # the client port of each request

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_put("/_matrix/app/v1/transactions/{txn}", self.handle)
        app.router.add_put("/transactions/{txn}", self.handle_legacy)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        if self.legacy_only:
            return web.json_response({"errcode": "M_UNRECOGNIZED"}, status=404)
        return await self._record(request)

    async def handle_legacy(self, request: web.Request) -> web.Response:
        return await self._record(request)

    async def _record(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer hs-secret"
        txn = request.match_info["txn"]
        self.attempts.append(txn)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peer_ports.append(peer[1] if peer else 0)
        if self.status != 200:
            return web.json_response({"errcode": "M_UNKNOWN"}, status=self.status)
        self.transactions.append((txn, await request.json()))
        self.arrived.set()
        return web.json_response({})

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [e for _, body in self.transactions for e in body["events"]
                if event_type is None or e["type"] == event_type]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(loop(), timeout)


@pytest.fixture
async def fake_as() -> AsyncIterator[tuple[FakeAppService, str]]:
    fake = FakeAppService()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


def make_service(url: str, **kw: Any) -> AppService:
    return AppService(
        id="bridge", url=url, as_token="as-secret", hs_token="hs-secret",
        sender_localpart="bridgebot", server_name="test.local",
        users=(Namespace(re.compile(r"@bridge_.*:test\.local"), exclusive=False),), **kw,
    )


async def setup(client: TestClient, register: Any, create_room: Any, url: str, **kw: Any
                ) -> tuple[User, User, str]:
    hs = client.app[HS_KEY]
    hs.appservices.add(make_service(url, **kw))
    hs.outbox.first_retry_s = 0.05
    alice = await register("alice")
    ghost = await register("bridge_ghost")
    room = await create_room(alice, invite=[ghost.user_id])
    resp = await client.post(f"{V3}/rooms/{room}/join", json={}, headers=ghost.auth)
    assert resp.status == 200
    return alice, ghost, room


async def send(client: TestClient, user: User, room: str, body: str, txn: str) -> str:
    resp = await client.put(f"{V3}/rooms/{room}/send/m.room.message/{txn}",
                            json={"msgtype": "m.text", "body": body}, headers=user.auth)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["event_id"])


async def test_events_of_rooms_with_namespaced_members_arrive_in_order(
    client: TestClient, register: Any, create_room: Any, fake_as: Any
) -> None:
    fake, url = fake_as
    alice, _, room = await setup(client, register, create_room, url)
    sent = [await send(client, alice, room, f"m{i}", f"t{i}") for i in range(20)]
    await fake.wait_for(lambda: len(fake.events("m.room.message")) == 20)
    got = [e["event_id"] for e in fake.events("m.room.message")]
    assert got == sent
    # The invite of the namespaced user came first, with the client event format.
    invite = next(e for e in fake.events("m.room.member")
                  if e["content"]["membership"] == "invite")
    assert invite["room_id"] == room and invite["state_key"].startswith("@bridge_ghost")
    txn_ids = [int(t) for t, _ in fake.transactions]
    assert txn_ids == sorted(set(txn_ids)), "transaction ids increase and never repeat"


async def test_rooms_without_namespaced_users_are_not_pushed(
    client: TestClient, register: Any, create_room: Any, fake_as: Any
) -> None:
    fake, url = fake_as
    alice, _, room = await setup(client, register, create_room, url)
    bob = await register("bob")
    private = await create_room(bob)
    await send(client, bob, private, "secret", "s1")
    marker = await send(client, alice, room, "marker", "m1")
    await fake.wait_for(lambda: any(e["event_id"] == marker for e in fake.events()))
    assert private not in {e["room_id"] for e in fake.events()}


async def test_a_failing_service_gets_the_same_transaction_again(
    client: TestClient, register: Any, create_room: Any, fake_as: Any
) -> None:
    fake, url = fake_as
    alice, _, room = await setup(client, register, create_room, url)
    await fake.wait_for(lambda: bool(fake.transactions))
    fake.status = 503
    fake.attempts.clear()
    first = await send(client, alice, room, "while down", "d1")
    while len(fake.attempts) < 3:
        await asyncio.sleep(0.02)
    assert len(set(fake.attempts)) == 1, "retries carry the same txnId"
    fake.status = 200
    await fake.wait_for(lambda: any(e["event_id"] == first for e in fake.events()))
    retried = fake.attempts[0]
    assert [t for t, _ in fake.transactions if t == retried], "delivered under the same id"
    hs = client.app[HS_KEY]
    for _ in range(250):  # the acknowledgement is written right after the 200
        if await hs.outbox.store.count_pending("as:bridge") == 0:
            break
        await asyncio.sleep(0.02)
    assert await hs.outbox.store.count_pending("as:bridge") == 0


async def test_legacy_unprefixed_receiver(
    client: TestClient, register: Any, create_room: Any, fake_as: Any
) -> None:
    fake, url = fake_as
    fake.legacy_only = True
    alice, _, room = await setup(client, register, create_room, url)
    event_id = await send(client, alice, room, "old style", "o1")
    await fake.wait_for(lambda: any(e["event_id"] == event_id for e in fake.events()))


async def test_ephemeral_only_with_receive_ephemeral(
    client: TestClient, register: Any, create_room: Any, fake_as: Any
) -> None:
    fake, url = fake_as
    alice, _, room = await setup(client, register, create_room, url, receive_ephemeral=True)
    resp = await client.put(f"{V3}/rooms/{room}/typing/{alice.user_id}",
                            json={"typing": True, "timeout": 10000}, headers=alice.auth)
    assert resp.status == 200

    def typing_seen() -> bool:
        return any(edu["type"] == "m.typing" and alice.user_id in edu["content"]["user_ids"]
                   for _, body in fake.transactions for edu in body.get("ephemeral", []))
    await fake.wait_for(typing_seen)


async def test_ephemeral_data_is_built_not_queued_as_outbox_rows(
    client: TestClient, register: Any, create_room: Any, fake_as: Any
) -> None:
    """Typing and receipts reach the service, and while it is down its transaction carries
    them without one outbox row per EDU."""
    fake, url = fake_as
    alice, _, room = await setup(client, register, create_room, url, receive_ephemeral=True)
    await fake.wait_for(lambda: bool(fake.transactions))
    hs = client.app[HS_KEY]
    hs.outbox.first_retry_s = 0.2
    fake.status = 503
    fake.attempts.clear()
    event_id = await send(client, alice, room, "read me", "r1")
    resp = await client.post(f"{V3}/rooms/{room}/receipt/m.read/{event_id}", json={},
                             headers=alice.auth)
    assert resp.status == 200
    resp = await client.put(f"{V3}/rooms/{room}/typing/{alice.user_id}",
                            json={"typing": True, "timeout": 10000}, headers=alice.auth)
    assert resp.status == 200
    while len(fake.attempts) < 2:
        await asyncio.sleep(0.02)
    kinds = [r[0] for r in await hs.db.fetchall("SELECT kind FROM outbox")]
    assert "ephemeral" not in kinds and kinds, kinds
    fake.status = 200

    def seen(edu_type: str) -> bool:
        return any(edu["type"] == edu_type and edu["room_id"] == room
                   for _, body in fake.transactions for edu in body.get("ephemeral", []))
    await fake.wait_for(lambda: seen("m.receipt") and seen("m.typing"))
    [receipt] = [edu for _, body in fake.transactions for edu in body.get("ephemeral", [])
                 if edu["type"] == "m.receipt"]
    assert alice.user_id in receipt["content"][event_id]["m.read"]


async def test_one_shared_http_client_with_connection_reuse(
    client: TestClient, register: Any, create_room: Any, fake_as: Any
) -> None:
    hs = client.app[HS_KEY]
    assert hs.http is not None and not hs.http.closed
    assert hs.as_pusher.http is hs.http
    assert hs.as_queries.http is hs.http
    assert hs.push_gateway.http is hs.http
    fake, url = fake_as
    alice, _, room = await setup(client, register, create_room, url)
    ports: list[int] = []
    for n in range(3):
        event_id = await send(client, alice, room, f"m{n}", f"c{n}")
        await fake.wait_for(lambda eid=event_id: any(e["event_id"] == eid
                                                     for e in fake.events()))
        ports.append(fake.peer_ports[-1])
    assert len(set(ports)) == 1, f"one kept-alive connection, not one each: {ports}"
    session = hs.http
    await client.close()
    assert session.closed, "closed with the server"


async def make_user(client: TestClient, name: str) -> User:
    server = client.app[HS_KEY]
    user_id = await server.users.register(name, "secret-pw")
    token, device_id = await server.users.login(user_id, None, None)
    return User(user_id, token, device_id)


async def test_receipts_after_a_restart_neither_resent_nor_lost(
    aiohttp_client: Any, tmp_path: Path, fake_as: Any
) -> None:
    """A receipt the service acknowledged is not sent again after a restart; one it had not
    acknowledged (it was down) is."""
    fake, url = fake_as
    reg = tmp_path / "bridge.yaml"
    reg.write_text(yaml.safe_dump({
        "id": "bridge", "url": url, "as_token": "as-secret", "hs_token": "hs-secret",
        "sender_localpart": "bridgebot", "receive_ephemeral": True,
        "namespaces": {"users": [{"regex": "@bridge_.*:test\\.local", "exclusive": False}]},
    }))
    config = make_config(tmp_path / "data", app_service_config_files=[str(reg)])
    client = await aiohttp_client(init_app(config))
    alice, ghost = await make_user(client, "alice"), await make_user(client, "bridge_ghost")
    resp = await client.post(f"{V3}/createRoom", headers=alice.auth,
                             json={"invite": [ghost.user_id]})
    room = (await resp.json())["room_id"]
    assert (await client.post(f"{V3}/rooms/{room}/join", json={},
                              headers=ghost.auth)).status == 200

    def receipts() -> list[str]:
        return [event_id for _, body in fake.transactions for edu in body.get("ephemeral", [])
                if edu["type"] == "m.receipt" for event_id in edu["content"]]

    async def read(event_id: str) -> None:
        resp = await client.post(f"{V3}/rooms/{room}/receipt/m.read/{event_id}", json={},
                                 headers=alice.auth)
        assert resp.status == 200

    first = await send(client, alice, room, "one", "t1")
    await read(first)
    await fake.wait_for(lambda: receipts() == [first])
    hs = client.app[HS_KEY]
    for _ in range(250):  # acknowledged right after the 200
        if await hs.db.fetchval("SELECT acked FROM outbox_edu_positions WHERE stream = "
                                "'receipts' AND inflight IS NULL"):
            break
        await asyncio.sleep(0.02)
    fake.status = 503
    fake.attempts.clear()
    second = await send(client, alice, room, "two", "t2")
    await read(second)
    while not fake.attempts:
        await asyncio.sleep(0.02)
    await client.close()

    fake.status = 200
    fake.transactions.clear()
    client = await aiohttp_client(init_app(config))
    await fake.wait_for(lambda: second in receipts())
    later = await send(client, alice, room, "three", "t3")
    await fake.wait_for(lambda: any(e["event_id"] == later for e in fake.events()))
    assert receipts() == [second], "the acknowledged receipt is not sent again"
    assert second in [e["event_id"] for e in fake.events()]
