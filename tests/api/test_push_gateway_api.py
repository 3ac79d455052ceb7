"""Delivery to a push gateway (in-process server on a loopback port): both formats, tweaks and
counts, the request body checked against the Push Gateway API, rejected pushkeys and refusals.

https://spec.matrix.org/v1.19/push-gateway-api/#post_matrixpushv1notify
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from spec_schema import MatrixSpec
from support import V3, User, count

from edgehs.api.keys import HS_KEY

NOTIFY = "/_matrix/push/v1/notify"
WAIT_S = 20.0


class Gateway:
    """Records /notify bodies; ``answers`` (consumed in order) decide the replies."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.answers: list[tuple[int, Any]] = []
        self.arrived = asyncio.Event()

    async def notify(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.arrived.set()
        status, body = self.answers.pop(0) if self.answers else (200, {"rejected": []})
        if isinstance(body, str):
            return web.Response(text=body, status=status)
        return web.json_response(body, status=status)

    async def wait_for(self, n: int) -> list[dict[str, Any]]:
        async def enough() -> None:
            while len(self.bodies) < n:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(enough(), WAIT_S)
        return self.bodies


@pytest.fixture
async def gateway(aiohttp_server: Callable[..., Awaitable[TestServer]]
                  ) -> tuple[Gateway, str]:
    gw = Gateway()
    app = web.Application()
    app.router.add_post(NOTIFY, gw.notify)
    server = await aiohttp_server(app)
    return gw, str(server.make_url(NOTIFY))


async def _ok(resp: Any) -> Any:
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def _setup(client: TestClient, register: Any, create_room: Any, url: str,
                 fmt: str | None) -> tuple[User, User, str]:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat", name="Kitchen")
    await _ok(await client.post(f"{V3}/join/{room_id}", json={}, headers=bob.auth))
    data: dict[str, Any] = {"url": url, "custom": "kept"}
    if fmt:
        data["format"] = fmt
    await _ok(await client.post(f"{V3}/pushers/set", headers=bob.auth, json={
        "kind": "http", "app_id": "org.example.app", "pushkey": "bobkey",
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "data": data,
    }))
    return alice, bob, room_id


async def _send(client: TestClient, user: User, room_id: str, txn: str,
                content: dict[str, Any]) -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/{txn}", json=content,
                            headers=user.auth)
    return str((await _ok(resp))["event_id"])


def _check_body(spec: MatrixSpec, body: dict[str, Any]) -> None:
    uri = spec.operation_uri("push_notifier", "POST", "/notify", api="push-gateway")
    errors = list(spec.validator(uri + "/requestBody/content/application~1json/schema")
                  .iter_errors(body))
    assert not errors, errors


async def test_full_format(client: TestClient, register: Any, create_room: Any,
                           gateway: tuple[Gateway, str], spec: MatrixSpec) -> None:
    gw, url = gateway
    alice, bob, room_id = await _setup(client, register, create_room, url, None)
    hello = await _send(client, alice, room_id, "1", {"msgtype": "m.text", "body": "hello"})
    await _send(client, alice, room_id, "2", {"msgtype": "m.notice", "body": "quiet"})
    mention = await _send(client, alice, room_id, "3", {
        "msgtype": "m.text", "body": "bob!", "m.mentions": {"user_ids": [bob.user_id]}})
    first, second = await gw.wait_for(2)
    for body in (first, second):
        _check_body(spec, body)
    note = first["notification"]
    assert note["event_id"] == hello and note["room_id"] == room_id
    assert note["id"] == hello  # the pre-spec name, as Synapse sends it too
    assert note["type"] == "m.room.message" and note["sender"] == alice.user_id
    assert note["content"] == {"msgtype": "m.text", "body": "hello"}
    assert note["room_name"] == "Kitchen" and note["sender_display_name"] == "alice"
    assert note["counts"]["unread"] >= 1  # counted when delivered
    [device] = note["devices"]
    assert device["app_id"] == "org.example.app" and device["pushkey"] == "bobkey"
    assert device["data"] == {"custom": "kept"}  # the url is left out
    assert device["tweaks"] == {"sound": "default"}  # two members: .m.rule.room_one_to_one
    assert second["notification"]["event_id"] == mention
    assert second["notification"]["devices"][0]["tweaks"] == {"sound": "default",
                                                             "highlight": True}
    assert second["notification"]["prio"] == "high"


async def test_event_id_only_format(client: TestClient, register: Any, create_room: Any,
                                    gateway: tuple[Gateway, str], spec: MatrixSpec) -> None:
    gw, url = gateway
    alice, _, room_id = await _setup(client, register, create_room, url, "event_id_only")
    hello = await _send(client, alice, room_id, "1", {"msgtype": "m.text", "body": "secret"})
    [body] = await gw.wait_for(1)
    _check_body(spec, body)
    note = body["notification"]
    assert note["event_id"] == hello and note["room_id"] == room_id
    assert not {"content", "sender", "type", "room_name"} & set(note)
    assert note["devices"][0]["data"] == {"format": "event_id_only", "custom": "kept"}


async def test_rejected_pushkey_removes_the_pusher(
        client: TestClient, register: Any, create_room: Any,
        gateway: tuple[Gateway, str]) -> None:
    gw, url = gateway
    alice, bob, room_id = await _setup(client, register, create_room, url, "event_id_only")
    gw.answers.append((200, {"rejected": ["bobkey"]}))
    await _send(client, alice, room_id, "1", {"msgtype": "m.text", "body": "x"})
    await gw.wait_for(1)
    hs = client.app[HS_KEY]
    for _ in range(200):  # the pusher is removed right after the gateway answered
        if await count(client, "pushers") == 0:
            break
        await asyncio.sleep(0.05)
    assert await count(client, "pushers") == 0
    assert await hs.pushers.pusher_ids(bob.user_id) == ()
    later = await _send(client, alice, room_id, "2", {"msgtype": "m.text", "body": "y"})
    queued = await hs.db.fetchval("SELECT COUNT(*) FROM outbox WHERE payload LIKE ?",
                                  (f"%{later}%",))
    assert queued == 0


async def test_retry_after_failure_and_drop_on_refusal(
        client: TestClient, register: Any, create_room: Any,
        gateway: tuple[Gateway, str]) -> None:
    gw, url = gateway
    hs = client.app[HS_KEY]
    hs.outbox.first_retry_s = 0.05
    alice, _, room_id = await _setup(client, register, create_room, url, "event_id_only")
    gw.answers += [(503, {}), (400, {"error": "bad"}), (200, "not the spec's answer")]
    first = await _send(client, alice, room_id, "1", {"msgtype": "m.text", "body": "x"})
    # 503: retried with the same notification; 400: dropped, not retried
    bodies = await gw.wait_for(2)
    assert [b["notification"]["event_id"] for b in bodies] == [first, first]
    second = await _send(client, alice, room_id, "2", {"msgtype": "m.text", "body": "y"})
    third = await _send(client, alice, room_id, "3", {"msgtype": "m.text", "body": "z"})
    bodies = await gw.wait_for(4)
    # a 200 with a body that is not JSON counts as accepted: no retry of the second
    assert [b["notification"]["event_id"] for b in bodies] == [first, first, second, third]


async def test_reading_sends_a_badge_update(client: TestClient, register: Any, create_room: Any,
                                            gateway: tuple[Gateway, str],
                                            spec: MatrixSpec) -> None:
    """A read receipt that lowers the unread count sends a notification with only the counts
    (https://spec.matrix.org/v1.19/push-gateway-api/: event_id "may be omitted for
    notifications that only contain updated badge counts"); one that changes nothing does not."""
    gw, url = gateway
    alice, bob, room_id = await _setup(client, register, create_room, url, None)
    hello = await _send(client, alice, room_id, "1", {"msgtype": "m.text", "body": "hello"})
    [first] = await gw.wait_for(1)
    assert first["notification"]["counts"] == {"unread": 1}
    resp = await client.post(f"{V3}/rooms/{room_id}/receipt/m.read/{hello}", json={},
                             headers=bob.auth)
    await _ok(resp)
    [_, badge] = await gw.wait_for(2)
    _check_body(spec, badge)
    note = badge["notification"]
    assert note["counts"] == {"unread": 0}  # the zero is the update
    assert "event_id" not in note and "content" not in note
    assert note["devices"][0]["pushkey"] == "bobkey"
    # nothing unread any more: reading bob's own newer message sends nothing
    mine = await _send(client, bob, room_id, "b1", {"msgtype": "m.text", "body": "mine"})
    resp = await client.post(f"{V3}/rooms/{room_id}/read_markers", json={"m.read": mine},
                             headers=bob.auth)
    await _ok(resp)
    later = await _send(client, alice, room_id, "2", {"msgtype": "m.text", "body": "again"})
    bodies = await gw.wait_for(3)
    assert bodies[2]["notification"]["event_id"] == later
