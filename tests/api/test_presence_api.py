"""Presence: GET/PUT /presence/{userId}/status, set_presence and presence.events in /sync.

https://spec.matrix.org/v1.19/client-server-api/#presence
"""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User, count, expect, get_sync, parked

from edgehs.api.keys import HS_KEY
from edgehs.service.presence import IDLE_MS, OFFLINE_MS
from edgehs.service.sync import SyncToken

Register = Callable[[str], Awaitable[User]]


def status_url(user: User | str) -> str:
    return f"{V3}/presence/{user if isinstance(user, str) else user.user_id}/status"


async def put_status(client: TestClient, user: User, body: Any, spec: MatrixSpec) -> None:
    resp = await client.put(status_url(user), json=body, headers=user.auth)
    data = await resp.json()
    assert resp.status == 200, data
    assert data == {}
    spec.check_response("presence", "PUT", "/presence/{userId}/status", 200, data)


async def get_status(client: TestClient, asker: User, user: User | str,
                     spec: MatrixSpec) -> dict[str, Any]:
    resp = await client.get(status_url(user), headers=asker.auth)
    data = await resp.json()
    assert resp.status == 200, data
    spec.check_response("presence", "GET", "/presence/{userId}/status", 200, data)
    return dict(data)


async def sync_with(client: TestClient, user: User, **params: str) -> dict[str, Any]:
    resp = await client.get(f"{V3}/sync", params={"timeout": "0", **params}, headers=user.auth)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


def presence_of(sync: dict[str, Any], spec: MatrixSpec) -> dict[str, dict[str, Any]]:
    """sender -> content of the m.presence events (each checked against m.presence.yaml)."""
    out = {}
    for event in sync["presence"]["events"]:
        errors = list(spec.validator(str(spec.event_schema_uri("m.presence"))).iter_errors(
            event))
        assert not errors, errors
        out[event["sender"]] = event["content"]
    return out


async def pair(client: TestClient, register: Register,
               create_room: Callable[..., Awaitable[str]]) -> tuple[User, User, str]:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    resp = await client.post(f"{V3}/join/{room_id}", json={}, headers=bob.auth)
    assert resp.status == 200
    return alice, bob, room_id


# --- PUT / GET ----------------------------------------------------------------------------------

async def test_put_and_get_own_presence(client: TestClient, register: Register,
                                        spec: MatrixSpec) -> None:
    alice = await register("alice")
    assert await get_status(client, alice, alice, spec) == {"presence": "offline"}
    await put_status(client, alice, {"presence": "online", "status_msg": "at home"}, spec)
    got = await get_status(client, alice, alice, spec)
    assert got["presence"] == "online" and got["status_msg"] == "at home"
    assert got["currently_active"] is True and got["last_active_ago"] >= 0
    # Without status_msg the message is cleared (Synapse does the same).
    await put_status(client, alice, {"presence": "unavailable"}, spec)
    got = await get_status(client, alice, alice, spec)
    assert got["presence"] == "unavailable" and "status_msg" not in got
    assert "currently_active" not in got


async def test_visibility_and_errors(client: TestClient, register: Register,
                                     create_room: Callable[..., Awaitable[str]],
                                     spec: MatrixSpec) -> None:
    alice, bob, _ = await pair(client, register, create_room)
    carol = await register("carol")
    await put_status(client, alice, {"presence": "online", "status_msg": "hi"}, spec)
    got = await get_status(client, bob, alice, spec)  # they share a room
    assert got["presence"] == "online" and got["status_msg"] == "hi"
    # carol shares no room with alice: 403; nobody: 404; someone else's status: 403.
    for asker, target, status, errcode in (
        (carol, alice.user_id, 403, "M_FORBIDDEN"),
        (carol, "@nobody:test.local", 404, "M_NOT_FOUND"),
        (carol, "@someone:elsewhere.example", 404, "M_NOT_FOUND"),
    ):
        resp = await client.get(status_url(target), headers=asker.auth)
        body = await expect(resp, status, errcode)
        spec.check_response("presence", "GET", "/presence/{userId}/status", status, body)
    resp = await client.put(status_url(alice), json={"presence": "offline"}, headers=bob.auth)
    await expect(resp, 403, "M_FORBIDDEN")
    resp = await client.get(status_url(alice))
    await expect(resp, 401, "M_MISSING_TOKEN")


@pytest.mark.parametrize(("body", "errcode"), [
    ({"presence": "away"}, "M_INVALID_PARAM"),
    ({"presence": "busy"}, "M_INVALID_PARAM"),
    ({"presence": 1}, "M_BAD_JSON"),
    ({"presence": "online", "status_msg": 5}, "M_BAD_JSON"),
    ({"status_msg": "no state"}, "M_MISSING_PARAM"),
    ({}, "M_MISSING_PARAM"),
    ([], "M_BAD_JSON"),
    ("{not json", "M_NOT_JSON"),
])
async def test_put_bad_input(client: TestClient, register: Register, spec: MatrixSpec,
                             body: Any, errcode: str) -> None:
    alice = await register("alice")
    data = body if isinstance(body, str) else json.dumps(body)
    resp = await client.put(status_url(alice), data=data, headers=alice.auth)
    err = await expect(resp, 400, errcode)
    spec.check_response("presence", "PUT", "/presence/{userId}/status", 400, err)
    assert await get_status(client, alice, alice, spec) == {"presence": "offline"}


# --- /sync --------------------------------------------------------------------------------------

async def test_sync_shows_co_members_and_self(client: TestClient, register: Register,
                                              create_room: Callable[..., Awaitable[str]],
                                              spec: MatrixSpec) -> None:
    alice, bob, _ = await pair(client, register, create_room)
    carol = await register("carol")  # in no room with them
    await sync_with(client, carol)  # carol is online too, but nobody else may see it
    first = await sync_with(client, alice)  # alice comes online by syncing
    spec.check_response("sync", "GET", "/sync", 200, first)
    assert presence_of(first, spec)[alice.user_id]["presence"] == "online"
    sync = await sync_with(client, bob)
    spec.check_response("sync", "GET", "/sync", 200, sync)
    seen = presence_of(sync, spec)
    assert set(seen) == {alice.user_id, bob.user_id}
    assert seen[alice.user_id]["presence"] == "online"
    assert seen[alice.user_id]["currently_active"] is True
    # Incremental: nothing changed, nothing sent; the token still parses and has 4 parts.
    token = sync["next_batch"]
    assert len(token.split("_")) == 4 and SyncToken.parse(token).presence > 0
    again = await sync_with(client, bob, since=token)
    assert again["presence"]["events"] == []
    # A status message is a change that bob's next sync carries.
    await put_status(client, alice, {"presence": "online", "status_msg": "cooking"}, spec)
    again = await sync_with(client, bob, since=again["next_batch"])
    spec.check_response("sync", "GET", "/sync", 200, again)
    assert presence_of(again, spec) == {alice.user_id: {
        "presence": "online", "status_msg": "cooking", "currently_active": True,
        "last_active_ago": presence_of(again, spec)[alice.user_id]["last_active_ago"]}}


async def test_presence_change_wakes_long_poll(client: TestClient, register: Register,
                                               create_room: Callable[..., Awaitable[str]],
                                               spec: MatrixSpec) -> None:
    alice, bob, _ = await pair(client, register, create_room)
    await sync_with(client, alice)
    since = (await get_sync(client, bob))["next_batch"]
    waiting = asyncio.create_task(get_sync(client, bob, since, timeout=20000))
    await parked(client)
    await put_status(client, alice, {"presence": "unavailable", "status_msg": "out"}, spec)
    sync = await asyncio.wait_for(waiting, 20)
    assert presence_of(sync, spec)[alice.user_id]["presence"] == "unavailable"
    assert presence_of(sync, spec)[alice.user_id]["status_msg"] == "out"


async def test_set_presence_param(client: TestClient, register: Register,
                                  create_room: Callable[..., Awaitable[str]],
                                  spec: MatrixSpec) -> None:
    alice, bob, _ = await pair(client, register, create_room)
    await sync_with(client, alice, set_presence="offline")  # does not mark alice online
    assert (await get_status(client, bob, alice, spec))["presence"] == "offline"
    await sync_with(client, alice, set_presence="unavailable")
    assert (await get_status(client, bob, alice, spec))["presence"] == "unavailable"
    await sync_with(client, alice)  # online (the default) undoes a chosen unavailable
    assert (await get_status(client, bob, alice, spec))["presence"] == "online"
    await client.put(f"{V3}/presence/{alice.user_id}/status", json={"presence": "offline"},
                     headers=alice.auth)
    await sync_with(client, alice, set_presence="online")  # and brings offline online
    assert (await get_status(client, bob, alice, spec))["presence"] == "online"
    resp = await client.get(f"{V3}/sync", params={"set_presence": "away"}, headers=alice.auth)
    await expect(resp, 400, "M_INVALID_PARAM")


async def test_activity_ends_idle(client: TestClient, register: Register,
                                  create_room: Callable[..., Awaitable[str]],
                                  spec: MatrixSpec) -> None:
    alice, bob, room_id = await pair(client, register, create_room)
    await sync_with(client, alice, set_presence="unavailable")
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/t1",
                            json={"msgtype": "m.text", "body": "back"}, headers=alice.auth)
    assert resp.status == 200
    assert (await get_status(client, bob, alice, spec))["presence"] == "online"


async def test_timers_idle_then_offline(client: TestClient, register: Register,
                                        create_room: Callable[..., Awaitable[str]],
                                        spec: MatrixSpec) -> None:
    """The sweep with a moved clock: idle after IDLE_MS, offline once syncs stopped."""
    alice, bob, _ = await pair(client, register, create_room)
    presence = client.app[HS_KEY].presence
    now = [1_000_000.0]
    presence.clock = lambda: now[0]
    await sync_with(client, alice)
    since = (await sync_with(client, bob))["next_batch"]
    now[0] += (OFFLINE_MS - 1000) / 1000  # alice's sync ended; within the grace period
    presence.sweep()
    assert (await get_status(client, bob, alice, spec))["presence"] == "online"
    now[0] += 2.0
    presence.sweep()
    sync = await sync_with(client, bob, since=since)
    assert presence_of(sync, spec)[alice.user_id]["presence"] == "offline"
    # Idle: a long-poll in flight keeps alice from going offline; no activity makes her idle.
    await put_status(client, alice, {"presence": "online"}, spec)
    token = (await sync_with(client, alice, since=sync["next_batch"]))["next_batch"]
    waiting = asyncio.create_task(sync_with(client, alice, timeout="20000", since=token))
    await parked(client)
    now[0] += IDLE_MS / 1000 + 1
    presence.sweep()
    woken = await asyncio.wait_for(waiting, 20)
    assert presence_of(woken, spec)[alice.user_id]["presence"] == "unavailable"


async def test_presence_filter(client: TestClient, register: Register,
                               create_room: Callable[..., Awaitable[str]],
                               spec: MatrixSpec) -> None:
    alice, bob, _ = await pair(client, register, create_room)
    await sync_with(client, alice)
    none = await sync_with(client, bob, filter=json.dumps({"presence": {"not_types": ["*"]}}))
    assert none["presence"]["events"] == []
    only = await sync_with(client, bob, filter=json.dumps({"presence": {
        "senders": [alice.user_id]}}))
    assert set(presence_of(only, spec)) == {alice.user_id}


async def test_sync_loop_writes_nothing(client: TestClient, register: Register,
                                        create_room: Callable[..., Awaitable[str]],
                                        spec: MatrixSpec) -> None:
    """SD-card friendly: syncing (coming online included) causes no database write; an
    explicit status change writes one row, repeating it writes nothing."""
    alice, bob, _ = await pair(client, register, create_room)
    db = client.app[HS_KEY].db
    writes = 0
    real_write = db.write

    async def counting(fn: Any) -> Any:
        nonlocal writes
        writes += 1
        return await real_write(fn)

    db.write = counting  # type: ignore[method-assign]
    token = (await sync_with(client, alice))["next_batch"]
    for _ in range(20):
        token = (await sync_with(client, alice, since=token))["next_batch"]
        await sync_with(client, bob)
    assert writes == 0
    await put_status(client, alice, {"presence": "online", "status_msg": "hi"}, spec)
    assert writes == 1
    await put_status(client, alice, {"presence": "online", "status_msg": "hi"}, spec)
    assert writes == 1
    db.write = real_write  # type: ignore[method-assign]
    assert await count(client, "presence") == 1


async def test_old_tokens_still_parse(client: TestClient, register: Register) -> None:
    alice = await register("alice")
    sync = await sync_with(client, alice)
    position = SyncToken.parse(sync["next_batch"]).position
    for token in (f"s{position}_0", f"s{position}_0_0", f"s{position}_0_0_999"):
        resp = await client.get(f"{V3}/sync", params={"since": token, "timeout": "0"},
                                headers=alice.auth)
        assert resp.status == 200, (token, await resp.text())
    assert str(SyncToken(5, 2)) == "s5_2"
    assert str(SyncToken(5, 2, 0, 3)) == "s5_2_0_3"
    assert SyncToken.parse("s5_2_0_3") == SyncToken(5, 2, 0, 3)
    resp = await client.get(f"{V3}/sync", params={"since": "s1_2_3_4_5"}, headers=alice.auth)
    await expect(resp, 400, "M_INVALID_PARAM")


async def test_presence_disabled(aiohttp_client: Callable[..., Awaitable[TestClient]],
                                 tmp_path: Any, spec: MatrixSpec) -> None:
    """presence_enabled: false — PUT is accepted and ignored, GET answers offline, /sync
    carries no presence (Synapse's behaviour with presence.enabled: false)."""
    from support import make_config

    from edgehs.app import init_app
    client = await aiohttp_client(init_app(make_config(tmp_path / "data",
                                                       presence_enabled=False)))
    resp = await client.post(f"{V3}/register", json={
        "username": "alice", "password": "pw", "auth": {"type": "m.login.dummy"}})
    body = await resp.json()
    alice = User(body["user_id"], body["access_token"], body["device_id"])
    await put_status(client, alice, {"presence": "online", "status_msg": "x"}, spec)
    assert await get_status(client, alice, alice, spec) == {"presence": "offline"}
    assert await get_status(client, alice, "@nobody:test.local", spec) == {
        "presence": "offline"}
    sync = await sync_with(client, alice)
    assert sync["presence"]["events"] == []
    assert len(sync["next_batch"].split("_")) == 2
    resp = await client.put(status_url(alice), json={"presence": "away"}, headers=alice.auth)
    await expect(resp, 400, "M_INVALID_PARAM")
    assert await count(client, "presence") == 0
