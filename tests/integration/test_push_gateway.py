"""Push end to end: edgehs as a process, two matrix-nio users, a push gateway on a loopback port.

bob registers a pusher; the gateway must receive exactly the notifications his push rules call
for (an invite, a message, a mention with the highlight tweak; no notice, nothing from a room he
muted with a nio-made room rule), receive a notification sent while it was down once it is back
(the outbox's retry), and bob's unread counts in /sync must reset after his read receipt.

https://spec.matrix.org/v1.19/client-server-api/#push-notifications
https://spec.matrix.org/v1.19/push-gateway-api/
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import nio
import pytest
from aiohttp import web

pytestmark = pytest.mark.integration

NOTIFY = "/_matrix/push/v1/notify"
WAIT_S = 30.0  # generous: the gateway is polled, never timed


class Gateway:
    """A push gateway that records every /notify body; while ``down`` it answers 503."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        self.down = False
        self.changed = asyncio.Event()

    async def notify(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.changed.set()
        if self.down:
            self.refused += 1
            return web.json_response({"error": "down for maintenance"}, status=503)
        self.received.append(body["notification"])
        return web.json_response({"rejected": []})

    async def until(self, done: Callable[[], bool]) -> None:
        async def wait() -> None:
            while not done():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), WAIT_S)

    def event_ids(self) -> list[str]:
        return [n["event_id"] for n in self.received]


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Gateway, str]]:
    gw = Gateway()
    app = web.Application()
    app.router.add_post(NOTIFY, gw.notify)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    yield gw, f"http://127.0.0.1:{port}{NOTIFY}"
    await runner.cleanup()


async def send(client: nio.AsyncClient, room_id: str, content: dict[str, Any]) -> str:
    resp = await client.room_send(room_id, "m.room.message", content)
    assert isinstance(resp, nio.RoomSendResponse), resp
    return str(resp.event_id)


async def text(client: nio.AsyncClient, room_id: str, body: str) -> str:
    return await send(client, room_id, {"msgtype": "m.text", "body": body})


async def create_room(client: nio.AsyncClient, invite: list[str]) -> str:
    resp = await client.room_create(invite=invite)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return str(resp.room_id)


async def join(client: nio.AsyncClient, room_id: str) -> None:
    resp = await client.join(room_id)
    assert isinstance(resp, nio.JoinResponse), resp


async def sync(client: nio.AsyncClient) -> nio.SyncResponse:
    resp = await client.sync(timeout=0)
    assert isinstance(resp, nio.SyncResponse), resp
    return resp


async def set_pusher(server: Any, token: str, url: str) -> None:
    """matrix-nio has no pusher API: a plain POST /pushers/set."""
    body = {"kind": "http", "app_id": "org.example.test", "pushkey": "bob-phone",
            "app_display_name": "Test", "device_display_name": "bob's phone", "lang": "en",
            "data": {"url": url}}
    async with aiohttp.ClientSession() as http, http.post(
            f"{server.base_url}/_matrix/client/v3/pushers/set", json=body,
            headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200, await resp.text()
    async with aiohttp.ClientSession() as http, http.get(
            f"{server.base_url}/_matrix/client/v3/pushers",
            headers={"Authorization": f"Bearer {token}"}) as resp:
        assert [p["pushkey"] for p in (await resp.json())["pushers"]] == ["bob-phone"]


async def test_gateway_gets_exactly_the_expected_notifications(
        server: Any, nio_user: Callable[[str], Awaitable[nio.AsyncClient]],
        gateway: tuple[Gateway, str]) -> None:
    gw, url = gateway
    alice, bob = await nio_user("alice"), await nio_user("bob")
    assert bob.access_token
    await set_pusher(server, bob.access_token, url)

    # An invite notifies the invitee (.m.rule.invite_for_me).
    room = await create_room(alice, [bob.user_id])
    await join(bob, room)
    # bob makes a second room with alice and mutes it with a room rule (nio's push rule API).
    quiet = await create_room(bob, [alice.user_id])
    await join(alice, quiet)
    resp = await bob.set_pushrule("global", nio.PushRuleKind.room, quiet,
                                  actions=[nio.PushDontNotify()])
    assert isinstance(resp, nio.SetPushRuleResponse), resp
    first = await sync(bob)
    hello = await text(alice, room, "hello there")
    mention = await send(alice, room, {"msgtype": "m.text", "body": "bob: look",
                                       "m.mentions": {"user_ids": [bob.user_id]}})
    await send(alice, room, {"msgtype": "m.notice", "body": "a bot speaking"})
    await text(alice, quiet, "psst")  # muted
    await text(alice, quiet, "still muted")
    fence = await text(alice, room, "fence")
    # The outbox delivers a pusher's notifications in order: once the fence is there,
    # everything before it is too.
    await gw.until(lambda: fence in gw.event_ids())
    invite = gw.received[0]
    assert invite["type"] == "m.room.member" and invite["user_is_target"] is True
    assert invite["room_id"] == room
    assert gw.event_ids()[1:] == [hello, mention, fence]
    tweaks = [n["devices"][0]["tweaks"] for n in gw.received]
    assert tweaks[2] == {"sound": "default", "highlight": True}
    assert all("highlight" not in t for i, t in enumerate(tweaks) if i != 2)
    assert all(n["devices"][0]["pushkey"] == "bob-phone" for n in gw.received)
    assert gw.received[1]["content"] == {"msgtype": "m.text", "body": "hello there"}
    assert gw.received[1]["sender"] == alice.user_id

    # Gateway down: the notification waits in the outbox and arrives once it is back.
    gw.down = True
    while_down = await text(alice, room, "while you were out")
    await gw.until(lambda: gw.refused >= 1)
    gw.down = False
    await gw.until(lambda: while_down in gw.event_ids())
    fence2 = await text(alice, room, "fence 2")
    await gw.until(lambda: fence2 in gw.event_ids())
    assert gw.event_ids()[4:] == [while_down, fence2]

    # Counts in /sync: everything since bob joined, then nothing after his read receipt.
    counts = await sync(bob)
    unread = counts.rooms.join[room].unread_notifications
    assert (unread.notification_count, unread.highlight_count) == (5, 1)
    assert first.next_batch != counts.next_batch
    muted = counts.rooms.join.get(quiet)
    assert muted is None or muted.unread_notifications.notification_count == 0
    resp = await bob.update_receipt_marker(room, fence2)
    assert isinstance(resp, nio.UpdateReceiptMarkerResponse), resp
    after = await sync(bob)
    unread = after.rooms.join[room].unread_notifications
    assert (unread.notification_count, unread.highlight_count) == (0, 0)


async def test_push_rules_with_nio(
        server: Any, nio_user: Callable[[str], Awaitable[nio.AsyncClient]]) -> None:
    """nio's push rule calls, and the m.push_rules account data nio parses from /sync."""
    bob = await nio_user("bob")
    initial = await sync(bob)
    [rules] = [e for e in initial.account_data_events if isinstance(e, nio.PushRulesEvent)]
    assert [r.id for r in rules.global_rules.override][:2] == [".m.rule.master",
                                                               ".m.rule.suppress_notices"]
    resp = await bob.set_pushrule("global", nio.PushRuleKind.content, "cake",
                                  actions=[nio.PushNotify(), nio.PushSetTweak("highlight", True)],
                                  pattern="cake*")
    assert isinstance(resp, nio.SetPushRuleResponse), resp
    resp = await bob.set_pushrule("global", nio.PushRuleKind.content, "tea", before="cake",
                                  actions=[nio.PushNotify()], pattern="tea")
    assert isinstance(resp, nio.SetPushRuleResponse), resp
    resp = await bob.enable_pushrule("global", nio.PushRuleKind.override, ".m.rule.master",
                                     True)
    assert isinstance(resp, nio.EnablePushRuleResponse), resp
    resp = await bob.set_pushrule_actions("global", nio.PushRuleKind.underride,
                                          ".m.rule.message", [nio.PushNotify()])
    assert isinstance(resp, nio.SetPushRuleActionsResponse), resp
    changed = await sync(bob)
    [rules] = [e for e in changed.account_data_events if isinstance(e, nio.PushRulesEvent)]
    assert [r.id for r in rules.global_rules.content][:2] == ["tea", "cake"]
    assert rules.global_rules.override[0].enabled is True
    resp = await bob.delete_pushrule("global", nio.PushRuleKind.content, "tea")
    assert isinstance(resp, nio.DeletePushRuleResponse), resp
    resp = await bob.delete_pushrule("global", nio.PushRuleKind.content, "tea")
    assert isinstance(resp, nio.DeletePushRuleError) and resp.status_code == "M_NOT_FOUND"
    resp = await bob.set_pushrule("global", nio.PushRuleKind.override, ".m.rule.mine",
                                  actions=[])
    assert isinstance(resp, nio.SetPushRuleError) and resp.status_code == "M_INVALID_PARAM"
