"""Send-to-Device messaging: PUT /sendToDevice, delivery once through /sync, acknowledgement,
and push to application services.

https://spec.matrix.org/v1.19/client-server-api/#send-to-device-messaging
"""

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from spec_schema import MatrixSpec
from support import V3, User, count, expect, get_sync, parked

from edgehs.api.keys import HS_KEY
from edgehs.service.appservice.registry import AppService, Namespace

OP = ("to_device", "PUT", "/sendToDevice/{eventType}/{txnId}")


async def send(client: TestClient, user: User, messages: Any, txn: str,
               event_type: str = "org.example.ping", spec: MatrixSpec | None = None
               ) -> None:
    resp = await client.put(f"{V3}/sendToDevice/{event_type}/{txn}",
                            json={"messages": messages}, headers=user.auth)
    body = await resp.json()
    assert resp.status == 200, body
    assert body == {}
    if spec is not None:
        spec.check_response(*OP, 200, body)


async def login(client: TestClient, user: User, device_id: str | None = None) -> User:
    """Another device of ``user`` (password of the register fixture)."""
    body: dict[str, Any] = {"type": "m.login.password", "password": "secret-pw",
                            "identifier": {"type": "m.id.user", "user": user.user_id}}
    if device_id:
        body["device_id"] = device_id
    resp = await client.post(f"{V3}/login", json=body)
    data = await resp.json()
    assert resp.status == 200, data
    return User(data["user_id"], data["access_token"], data["device_id"])


def to_device(sync: dict[str, Any]) -> list[dict[str, Any]]:
    return list(sync["to_device"]["events"])


async def test_send_and_receive_once(client: TestClient, register: Any,
                                     spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    since = (await get_sync(client, bob))["next_batch"]
    await send(client, alice, {bob.user_id: {bob.device_id: {"n": 1}}}, "t1", spec=spec)
    sync = await get_sync(client, bob, since)
    spec.check_response("sync", "GET", "/sync", 200, sync)
    assert to_device(sync) == [
        {"sender": alice.user_id, "type": "org.example.ping", "content": {"n": 1}}
    ]
    token = sync["next_batch"]
    assert re.fullmatch(r"s\d+_\d+_\d+(_\d+)?", token), token  # (4th part: presence)
    # Delivered once: the next sync with that token acknowledges (deletes) it.
    again = await get_sync(client, bob, token)
    assert to_device(again) == []
    assert await count(client, "device_inbox") == 0
    # Syncing again with the OLD token (the response was lost) would have delivered it again:
    # that is what the acknowledgement is for; here it is gone because `token` acked it.


async def test_unacknowledged_message_is_delivered_again(client: TestClient,
                                                         register: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    since = (await get_sync(client, bob))["next_batch"]
    await send(client, alice, {bob.user_id: {bob.device_id: {"n": 1}}}, "t1")
    first = await get_sync(client, bob, since)
    # The client never saw `first` (lost response) and syncs from `since` again.
    retry = await get_sync(client, bob, since)
    assert to_device(first) == to_device(retry) and len(to_device(retry)) == 1
    assert await count(client, "device_inbox") == 1


async def test_initial_sync_delivers_pending_messages(client: TestClient,
                                                      register: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    await send(client, alice, {bob.user_id: {bob.device_id: {"n": 1}}}, "t1")
    sync = await get_sync(client, bob)
    assert [e["content"] for e in to_device(sync)] == [{"n": 1}]


async def test_only_the_addressed_device_receives(client: TestClient, register: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    bob2 = await login(client, bob)
    await send(client, alice, {bob.user_id: {bob2.device_id: {"to": "bob2"}}}, "t1")
    assert to_device(await get_sync(client, bob)) == []
    assert [e["content"] for e in to_device(await get_sync(client, bob2))] == [{"to": "bob2"}]


async def test_star_means_all_devices(client: TestClient, register: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    bob2 = await login(client, bob)
    await send(client, alice, {bob.user_id: {"*": {"all": True}}}, "t1")
    for device in (bob, bob2):
        events = to_device(await get_sync(client, device))
        assert [e["content"] for e in events] == [{"all": True}]


async def test_transaction_ids_make_sends_idempotent(client: TestClient,
                                                     register: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    msg = {bob.user_id: {bob.device_id: {"n": 1}}}
    await send(client, alice, msg, "same")
    await send(client, alice, msg, "same")  # a retry: not sent again
    assert await count(client, "device_inbox") == 1
    await send(client, alice, msg, "other")
    # The same txn id from another device of the same user is another transaction.
    alice2 = await login(client, alice)
    await send(client, alice2, msg, "same")
    assert len(to_device(await get_sync(client, bob))) == 3


async def test_unknown_users_devices_and_remote_users_are_dropped(client: TestClient,
                                                                  register: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    await send(client, alice, {
        "@nobody:test.local": {"DEV": {"a": 1}},
        bob.user_id: {"NOSUCHDEVICE": {"a": 2}},
        "@remote:elsewhere.example": {"*": {"a": 3}},  # no federation yet
    }, "t1")
    assert await count(client, "device_inbox") == 0
    assert to_device(await get_sync(client, bob)) == []


async def test_long_poll_wakes_on_a_message(client: TestClient, register: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    since = (await get_sync(client, bob))["next_batch"]
    waiting = asyncio.create_task(get_sync(client, bob, since, timeout=10000))
    await parked(client)
    await send(client, alice, {bob.user_id: {bob.device_id: {"wake": 1}}}, "t1")
    sync = await asyncio.wait_for(waiting, 10)
    assert [e["content"] for e in to_device(sync)] == [{"wake": 1}]


async def test_at_most_100_per_sync_rest_later(client: TestClient, register: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    since = (await get_sync(client, bob))["next_batch"]
    for i in range(130):
        await send(client, alice, {bob.user_id: {bob.device_id: {"i": i}}}, f"t{i}")
    first = await get_sync(client, bob, since)
    second = await get_sync(client, bob, first["next_batch"])
    third = await get_sync(client, bob, second["next_batch"])
    assert [e["content"]["i"] for e in to_device(first)] == list(range(100))
    assert [e["content"]["i"] for e in to_device(second)] == list(range(100, 130))
    assert to_device(third) == []
    assert await count(client, "device_inbox") == 0


async def test_token_forms(client: TestClient, register: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    token = (await get_sync(client, bob))["next_batch"]
    assert re.fullmatch(r"s\d+_\d+(_0_\d+)?", token), \
        "to-device part 0 while the stream is empty (written only before a presence part)"
    await send(client, alice, {bob.user_id: {bob.device_id: {"n": 1}}}, "t1")
    # An old two-part token still parses: nothing acknowledged, the message comes.
    sync = await get_sync(client, bob, token)
    assert len(to_device(sync)) == 1
    pos, typing, td = sync["next_batch"][1:].split("_")[:3]
    await expect(await client.get(f"{V3}/sync", params={"since": f"s{pos}_{typing}_{int(td) + 5}"},
                                  headers=bob.auth), 400, "M_INVALID_PARAM")
    for bad in (f"s{pos}_{typing}_{td}_1_1", f"s{pos}_{typing}_x", "s1"):
        await expect(await client.get(f"{V3}/sync", params={"since": bad}, headers=bob.auth),
                     400, "M_INVALID_PARAM")


async def test_position_survives_acknowledgement(client: TestClient, register: Any) -> None:
    """The to-device stream never goes back, even when every row is gone (AUTOINCREMENT)."""
    alice, bob = await register("alice"), await register("bob")
    await send(client, alice, {bob.user_id: {bob.device_id: {"n": 1}}}, "t1")
    sync = await get_sync(client, bob)
    await get_sync(client, bob, sync["next_batch"])
    assert await count(client, "device_inbox") == 0
    store = client.app[HS_KEY].to_device_store
    assert await store.current_position() == int(sync["next_batch"].split("_")[2])


async def test_deleted_device_loses_its_inbox(client: TestClient, register: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    bob2 = await login(client, bob)
    await send(client, alice, {bob.user_id: {"*": {"n": 1}}}, "t1")
    assert await count(client, "device_inbox") == 2
    resp = await client.post(f"{V3}/logout", headers=bob2.auth)
    assert resp.status == 200
    assert await count(client, "device_inbox") == 1


async def test_bad_input(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    url = f"{V3}/sendToDevice/m.test/t1"
    cases: list[tuple[Any, int, str]] = [
        (b"{not json", 400, "M_NOT_JSON"),
        (b"", 400, "M_NOT_JSON"),
        (b"[]", 400, "M_BAD_JSON"),
        (b'{"messages": []}', 400, "M_BAD_JSON"),
        (b'{"messages": "x"}', 400, "M_BAD_JSON"),
        (b"{}", 400, "M_MISSING_PARAM"),
        (b'{"messages": {"@bob:test.local": []}}', 400, "M_BAD_JSON"),
        (b'{"messages": {"@bob:test.local": {"DEV": "text"}}}', 400, "M_BAD_JSON"),
        (b'{"messages": {"bob": {"DEV": {}}}}', 400, "M_INVALID_PARAM"),
        (b'{"messages": {"@bob:test.local": {"": {}}}}', 400, "M_INVALID_PARAM"),
    ]
    for raw, status, errcode in cases:
        resp = await client.put(url, data=raw, headers=alice.auth)
        body = await expect(resp, status, errcode)
        spec.check_response(*OP, status, body)
    long_type = "t" * 256
    await expect(await client.put(f"{V3}/sendToDevice/{long_type}/t1",
                                  json={"messages": {}}, headers=alice.auth),
                 400, "M_INVALID_PARAM")
    await expect(await client.put(url, json={"messages": {}}), 401, "M_MISSING_TOKEN")
    assert await count(client, "device_inbox") == 0
    assert to_device(await get_sync(client, bob)) == []


# --- application services ------------------------------------------------------------------


class Receiver:
    """Records the transactions pushed to an application service."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer hs-secret"
        self.bodies.append(await request.json())
        self.arrived.set()
        return web.json_response({})

    async def wait_to_device(self, n: int) -> list[dict[str, Any]]:
        async def loop() -> None:
            while len(self.to_device()) < n:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(loop(), 10)
        return self.to_device()

    def to_device(self) -> list[dict[str, Any]]:
        return [m for b in self.bodies for m in b.get("to_device", [])]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_put("/_matrix/app/v1/transactions/{txn}", rec.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield rec, str(server.make_url("")).rstrip("/")
    await server.close()


def add_service(client: TestClient, url: str, receive_ephemeral: bool) -> None:
    client.app[HS_KEY].appservices.add(AppService(
        id="bridge", url=url, as_token="as-secret", hs_token="hs-secret",
        sender_localpart="bridgebot", server_name="test.local",
        users=(Namespace(re.compile(r"@bridge_.*:test\.local"), exclusive=True),),
        receive_ephemeral=receive_ephemeral,
    ))


async def as_user(client: TestClient, localpart: str) -> User:
    """Register a namespaced user and log it in (a device) as the service."""
    auth = {"Authorization": "Bearer as-secret"}
    resp = await client.post(f"{V3}/register", headers=auth, json={
        "type": "m.login.application_service", "username": localpart, "inhibit_login": True})
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"{V3}/login", headers=auth, json={
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": localpart}})
    data = await resp.json()
    assert resp.status == 200, data
    return User(data["user_id"], data["access_token"], data["device_id"])


async def test_pushed_to_a_service_with_receive_ephemeral(
    client: TestClient, register: Any, receiver: Any
) -> None:
    rec, url = receiver
    add_service(client, url, receive_ephemeral=True)
    alice = await register("alice")
    ghost = await as_user(client, "bridge_ghost")
    await send(client, alice, {ghost.user_id: {"*": {"secret": 1}}}, "t1", "m.room.encrypted")
    [msg] = await rec.wait_to_device(1)
    assert msg == {"type": "m.room.encrypted", "sender": alice.user_id,
                   "content": {"secret": 1}, "to_user_id": ghost.user_id,
                   "to_device_id": ghost.device_id}
    body = next(b for b in rec.bodies if "to_device" in b)
    assert body["de.sorunome.msc2409.to_device"] == body["to_device"]
    assert body["events"] == []
    # Pushed instead of kept: the user's inbox stays empty.
    assert await count(client, "device_inbox") == 0


async def test_kept_in_the_inbox_without_receive_ephemeral(
    client: TestClient, register: Any, receiver: Any
) -> None:
    rec, url = receiver
    add_service(client, url, receive_ephemeral=False)
    alice = await register("alice")
    ghost = await as_user(client, "bridge_ghost")
    await send(client, alice, {ghost.user_id: {ghost.device_id: {"n": 1}}}, "t1")
    assert await count(client, "device_inbox") == 1
    assert [e["content"] for e in to_device(await get_sync(client, ghost))] == [{"n": 1}]
    assert rec.to_device() == []
