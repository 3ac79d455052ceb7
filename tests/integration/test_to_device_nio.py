"""Send-to-Device messaging end to end: two matrix-nio clients and edgehs as a process.

nio sends with ``AsyncClient.to_device`` (PUT /sendToDevice) and receives through its /sync
(``SyncResponse.to_device_events``). https://spec.matrix.org/v1.19/client-server-api/#send-to-device-messaging
"""

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import nio
import pytest

pytestmark = pytest.mark.integration

NioUser = Callable[[str], Awaitable[nio.AsyncClient]]


async def sync_ok(client: nio.AsyncClient, timeout: int = 0) -> nio.SyncResponse:
    resp = await client.sync(timeout=timeout)
    assert isinstance(resp, nio.SyncResponse), f"sync failed: {resp}"
    return resp


async def to_device(client: nio.AsyncClient, event_type: str, user_id: str, device_id: str,
                    content: dict[str, Any], txn: str | None = None) -> None:
    msg = nio.ToDeviceMessage(event_type, user_id, device_id, content)
    resp = await client.to_device(msg, tx_id=txn)
    assert isinstance(resp, nio.ToDeviceResponse), f"to_device failed: {resp}"


def custom(resp: nio.SyncResponse) -> list[dict[str, Any]]:
    """The raw events of the to-device messages nio did not recognise (our custom type)."""
    return [e.source for e in resp.to_device_events if isinstance(e, nio.UnknownToDeviceEvent)]


async def test_to_device_between_nio_clients(nio_user: NioUser) -> None:
    alice = await nio_user("alice")
    bob = await nio_user("bob")
    await sync_ok(alice)
    await sync_ok(bob)
    await to_device(alice, "org.example.hello", bob.user_id, bob.device_id, {"n": 1}, "t1")
    await to_device(alice, "org.example.hello", bob.user_id, bob.device_id, {"n": 1}, "t1")
    await to_device(alice, "org.example.hello", bob.user_id, "*", {"n": 2}, "t2")
    got = custom(await sync_ok(bob, timeout=5000))
    # The retried t1 was not sent again; order is send order.
    assert [(e["sender"], e["type"], e["content"]) for e in got] == [
        (alice.user_id, "org.example.hello", {"n": 1}),
        (alice.user_id, "org.example.hello", {"n": 2}),
    ]
    # Acknowledged by the next sync: delivered exactly once.
    assert custom(await sync_ok(bob)) == []
    # And back: bob answers alice's device, alice's long-poll wakes for it.
    await to_device(bob, "org.example.reply", alice.user_id, alice.device_id, {"ok": True})
    got = custom(await sync_ok(alice, timeout=5000))
    assert [(e["sender"], e["content"]) for e in got] == [(bob.user_id, {"ok": True})]


async def test_bad_input_through_http(nio_user: NioUser, http: aiohttp.ClientSession) -> None:
    alice = await nio_user("alice")
    auth = {"Authorization": f"Bearer {alice.access_token}"}
    url = "/_matrix/client/v3/sendToDevice/m.test/t1"
    async with http.put(url, data=b"{oops", headers=auth) as resp:
        assert resp.status == 400 and (await resp.json())["errcode"] == "M_NOT_JSON"
    async with http.put(url, json={"messages": ["x"]}, headers=auth) as resp:
        assert resp.status == 400 and (await resp.json())["errcode"] == "M_BAD_JSON"
