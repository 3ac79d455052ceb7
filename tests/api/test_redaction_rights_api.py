"""PUT /rooms/{roomId}/redact: only the sender, or a member with the redact level.

https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidredacteventidtxnid
"""

from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient
from support import V3, Env, User, expect


async def send(client: TestClient, user: User, room_id: str, body: str) -> str:
    resp = await client.post(f"{V3}/rooms/{room_id}/send/m.room.message",
                             json={"msgtype": "m.text", "body": body}, headers=user.auth)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["event_id"])


async def content(client: TestClient, user: User, room_id: str, event_id: str) -> dict:
    resp = await client.get(f"{V3}/rooms/{room_id}/event/{event_id}", headers=user.auth)
    assert resp.status == 200, await resp.text()
    return dict((await resp.json())["content"])


async def redact(client: TestClient, user: User, room_id: str, event_id: str, txn: str):
    return await client.put(f"{V3}/rooms/{room_id}/redact/{event_id}/{txn}",
                            json={"reason": "test"}, headers=user.auth)


async def join(client: TestClient, user: User, room_id: str) -> None:
    resp = await client.post(f"{V3}/join/{room_id}", json={}, headers=user.auth)
    assert resp.status == 200, await resp.text()


async def test_member_without_power_cannot_redact_others(client: TestClient, env: Env) -> None:
    await join(client, env.bob, env.room_id)
    resp = await redact(client, env.bob, env.room_id, env.event_id, "t1")
    await expect(resp, 403, "M_FORBIDDEN")
    # nothing was stored: the creator's message is intact for everyone
    assert await content(client, env.alice, env.room_id, env.event_id) == {
        "msgtype": "m.text", "body": "hi"}
    assert await content(client, env.bob, env.room_id, env.event_id) != {}


async def test_own_events_and_redact_level(client: TestClient, env: Env) -> None:
    await join(client, env.bob, env.room_id)
    own = await send(client, env.bob, env.room_id, "mine")
    assert (await redact(client, env.bob, env.room_id, own, "t1")).status == 200
    assert await content(client, env.alice, env.room_id, own) == {}
    # the creator (power 100 >= redact 50) may redact bob's events
    other = await send(client, env.bob, env.room_id, "second")
    assert (await redact(client, env.alice, env.room_id, other, "t2")).status == 200
    assert await content(client, env.bob, env.room_id, other) == {}
    # given the redact level, bob may redact alice's message
    resp = await client.get(f"{V3}/rooms/{env.room_id}/state/m.room.power_levels/",
                            headers=env.alice.auth)
    levels = await resp.json()
    levels["users"][env.bob.user_id] = 50
    resp = await client.put(f"{V3}/rooms/{env.room_id}/state/m.room.power_levels/",
                            json=levels, headers=env.alice.auth)
    assert resp.status == 200, await resp.text()
    assert (await redact(client, env.bob, env.room_id, env.event_id, "t3")).status == 200
    assert await content(client, env.alice, env.room_id, env.event_id) == {}


async def test_redaction_of_another_rooms_event(
    client: TestClient, env: Env, create_room: Callable[..., Awaitable[str]]
) -> None:
    other_room = await create_room(env.alice)
    resp = await redact(client, env.alice, other_room, env.event_id, "t1")
    await expect(resp, 400, "M_INVALID_PARAM")
    resp = await redact(client, env.alice, env.room_id, "$unknown:test.local", "t2")
    await expect(resp, 404, "M_NOT_FOUND")
    assert await content(client, env.alice, env.room_id, env.event_id) != {}
