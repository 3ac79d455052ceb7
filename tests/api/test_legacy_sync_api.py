"""The deprecated event stream and initial syncs, and room previews.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3events
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3initialsync
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidinitialsync
https://spec.matrix.org/v1.19/client-server-api/#room-previews
"""

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User, expect, get_sync, make_config, parked

from edgehs.config import Config

R0 = "/_matrix/client/r0"
# Kept from the historic API (clients of it read them), not in the OpenAPI definitions:
# m.receipt events in both initial syncs, room members' presence in the room one.
EXTENSIONS = ("receipts", "presence")


def check(spec: MatrixSpec, api: str, path: str, body: dict[str, Any]) -> None:
    """The spec's schema, less the historic extension keys (``presence`` is declared by the
    global /initialSync, so only the room one drops it) and the ephemeral events of the
    /events stream (typing, receipts, presence and account data, as in the 2015 API)."""
    if path == "/events":
        body = {**body, "chunk": [e for e in body["chunk"] if "event_id" in e]}
    else:
        drop = EXTENSIONS if api == "room_initial_sync" else ("receipts",)
        body = {k: v for k, v in body.items() if k not in drop}
    spec.check_response(api, "GET", path, 200, body)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "data", allow_guest_access=True)


async def get(client: TestClient, user: User, path: str, status: int = 200,
              **params: Any) -> dict[str, Any]:
    resp = await client.get(path, params={k: str(v) for k, v in params.items()},
                            headers=user.auth)
    body = await resp.json()
    assert resp.status == status, body
    return dict(body)


async def send(client: TestClient, user: User, room_id: str, text: str) -> str:
    resp = await client.post(f"{R0}/rooms/{room_id}/send/m.room.message",
                             json={"msgtype": "m.text", "body": text}, headers=user.auth)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["event_id"])


async def put_state(client: TestClient, user: User, room_id: str, etype: str,
                    content: dict[str, Any]) -> None:
    resp = await client.put(f"{V3}/rooms/{room_id}/state/{etype}/", json=content,
                            headers=user.auth)
    assert resp.status == 200, await resp.text()


async def guest(client: TestClient) -> User:
    resp = await client.post(f"{V3}/register?kind=guest", json={})
    body = await resp.json()
    return User(body["user_id"], body["access_token"], body["device_id"])


async def test_event_stream_follows_and_continues(
        client: TestClient, spec: MatrixSpec, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    alice = await register("alice")
    room_id = await create_room(alice)
    first = await get(client, alice, f"{R0}/events", timeout=0)
    check(spec, "old_sync", "/events", first)
    sent = [await send(client, alice, room_id, f"m{i}") for i in range(5)]
    await client.put(f"{V3}/user/{alice.user_id}/account_data/org.example", json={"a": 1},
                     headers=alice.auth)
    token, seen = first["end"], []
    for _ in range(5):
        body = await get(client, alice, f"{R0}/events", timeout=0, limit=2, **{"from": token})
        assert body["start"] == token
        seen += body["chunk"]
        token = body["end"]
    messages = [e for e in seen if e["type"] == "m.room.message"]
    assert [e["event_id"] for e in messages] == sent
    assert all(e["room_id"] == room_id for e in messages)
    assert {"type": "org.example", "content": {"a": 1}} in seen
    # The stream tokens are /sync tokens, both ways.
    since = (await get_sync(client, alice))["next_batch"]
    later = await send(client, alice, room_id, "after sync")
    body = await get(client, alice, f"{V3}/events", timeout=0, **{"from": since})
    assert [e["event_id"] for e in body["chunk"] if e["type"] == "m.room.message"] == [later]
    assert "m.room.message" not in str((await get_sync(client, alice, body["end"]))["rooms"])


async def test_event_stream_long_poll_wakes(
        client: TestClient, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    import asyncio
    alice = await register("alice")
    room_id = await create_room(alice)
    token = (await get(client, alice, f"{R0}/events", timeout=0))["end"]
    poll = asyncio.ensure_future(get(client, alice, f"{R0}/events", timeout=5000,
                                     **{"from": token}))
    await parked(client)
    event_id = await send(client, alice, room_id, "wake up")
    body = await asyncio.wait_for(poll, 5)
    assert event_id in [e.get("event_id") for e in body["chunk"]]


async def test_initial_sync(client: TestClient, spec: MatrixSpec,
                            register: Callable[[str], Awaitable[User]],
                            create_room: Callable[..., Awaitable[str]]) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat", topic="T", visibility="public")
    event_id = await send(client, alice, room_id, "hello")
    resp = await client.post(f"{V3}/rooms/{room_id}/receipt/m.read/{event_id}", json={},
                             headers=alice.auth)
    assert resp.status == 200
    await client.put(f"{V3}/user/{alice.user_id}/rooms/{room_id}/tags/work", json={},
                     headers=alice.auth)
    invited = await create_room(bob)
    resp = await client.post(f"{V3}/rooms/{invited}/invite", json={"user_id": alice.user_id},
                             headers=bob.auth)
    assert resp.status == 200
    body = await get(client, alice, f"{V3}/initialSync", limit=3)
    check(spec, "old_sync", "/initialSync", body)
    rooms = {r["room_id"]: r for r in body["rooms"]}
    joined = rooms[room_id]
    assert (joined["membership"], joined["visibility"]) == ("join", "public")
    assert len(joined["messages"]["chunk"]) == 3
    assert joined["messages"]["chunk"][-1]["event_id"] == event_id
    assert {"m.room.topic", "m.room.create", "m.room.power_levels"} <= {
        e["type"] for e in joined["state"]}
    assert joined["account_data"] == [{"type": "m.tag", "content": {"tags": {"work": {}}}}]
    assert rooms[invited]["membership"] == "invite"
    assert rooms[invited]["invite"]["sender"] == bob.user_id
    receipts = {r["room_id"]: r for r in body["receipts"]}
    assert alice.user_id in receipts[room_id]["content"][event_id]["m.read"]
    # The 2015 event format: user_id beside sender. Polling counts as being online.
    assert all(e["user_id"] == e["sender"] for e in joined["state"] + joined["messages"]["chunk"])
    mine = [p["content"] for p in body["presence"] if p["content"]["user_id"] == alice.user_id]
    assert mine[0]["presence"] == "online" and "last_active_ago" in mine[0]
    empty = await get(client, alice, f"{V3}/initialSync", limit=0)
    assert [r["messages"]["chunk"] for r in empty["rooms"] if r["room_id"] == room_id] == [[]]


async def test_departed_room_spec_216(client: TestClient, spec: MatrixSpec,
                                      register: Callable[[str], Awaitable[User]],
                                      create_room: Callable[..., Awaitable[str]]) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(bob, preset="public_chat")
    resp = await client.post(f"{V3}/join/{room_id}", json={}, headers=alice.auth)
    assert resp.status == 200
    await put_state(client, bob, room_id, "madeup.test.state", {"body": "S1"})
    await send(client, bob, room_id, "M1")
    await send(client, bob, room_id, "M2")
    resp = await client.post(f"{V3}/rooms/{room_id}/leave", json={}, headers=alice.auth)
    assert resp.status == 200
    await send(client, bob, room_id, "M3")
    await put_state(client, bob, room_id, "madeup.test.state", {"body": "S2"})

    def check_left(room: dict[str, Any]) -> None:
        assert room["membership"] == "leave"
        state = {e["type"]: e for e in room["state"]}
        assert state["madeup.test.state"]["content"]["body"] == "S1"
        chunk = room["messages"]["chunk"]
        assert chunk[0]["content"]["body"] == "M2"
        assert chunk[1]["content"]["membership"] == "leave"

    body = await get(client, alice, f"{V3}/initialSync", limit=2, archived="true")
    check_left(next(r for r in body["rooms"] if r["room_id"] == room_id))
    without = await get(client, alice, f"{V3}/initialSync")
    assert room_id not in [r["room_id"] for r in without["rooms"]]
    room = await get(client, alice, f"{V3}/rooms/{room_id}/initialSync", limit=2)
    check(spec, "room_initial_sync", "/rooms/{roomId}/initialSync", room)
    check_left(room)
    assert room["presence"] == [] and room["receipts"] == []


async def test_room_initial_sync_and_previews(
        client: TestClient, spec: MatrixSpec, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await send(client, alice, room_id, "private")
    joined = await get(client, alice, f"{V3}/rooms/{room_id}/initialSync")
    check(spec, "room_initial_sync", "/rooms/{roomId}/initialSync", joined)
    assert joined["membership"] == "join" and joined["messages"]["chunk"]
    assert alice.user_id in [p["content"]["user_id"] for p in joined["presence"]]
    visitor = await guest(client)
    for user in (bob, visitor):  # not world_readable: no preview
        resp = await client.get(f"{V3}/rooms/{room_id}/initialSync", headers=user.auth)
        await expect(resp, 403, "M_FORBIDDEN")
        resp = await client.get(f"{R0}/events", params={"room_id": room_id, "timeout": "0"},
                                headers=user.auth)
        await expect(resp, 403, "M_FORBIDDEN")
    await put_state(client, alice, room_id, "m.room.history_visibility",
                    {"history_visibility": "world_readable"})
    public_id = await send(client, alice, room_id, "public")
    for user in (bob, visitor):
        body = await get(client, user, f"{V3}/rooms/{room_id}/initialSync")
        check(spec, "room_initial_sync", "/rooms/{roomId}/initialSync", body)
        chunk = body["messages"]["chunk"]
        # Only what happened since the room became world_readable.
        assert chunk[0]["type"] == "m.room.history_visibility"
        assert [e["content"]["body"] for e in chunk[1:]][:1] == ["public"]
        assert "membership" not in body
        stream = await get(client, user, f"{R0}/events", room_id=room_id, timeout=0,
                           **{"from": body["messages"]["end"]})
        assert stream["chunk"] == []
        later = await send(client, alice, room_id, f"for {user.user_id}")
        stream = await get(client, user, f"{R0}/events", room_id=room_id, timeout=0,
                           **{"from": stream["end"]})
        assert [e["event_id"] for e in stream["chunk"]] == [later]
        event = await get(client, user, f"{R0}/events/{public_id}")
        assert event["content"]["body"] == "public"


async def test_get_single_event_needs_visibility(
        client: TestClient, spec: MatrixSpec, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice)
    event_id = await send(client, alice, room_id, "secret")
    body = await get(client, alice, f"/_matrix/client/api/v1/events/{event_id}")
    spec.check_response("old_sync", "GET", "/events/{eventId}", 200, body)
    assert body["room_id"] == room_id
    for who, path in ((bob, event_id), (alice, "$nope")):
        resp = await client.get(f"{V3}/events/{path}", headers=who.auth)
        await expect(resp, 404, "M_NOT_FOUND")


async def test_next_batch_pages_forwards_in_v1_messages(
        client: TestClient, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    alice = await register("alice")
    room_id = await create_room(alice)
    since = (await get_sync(client, alice))["next_batch"]
    event_id = await send(client, alice, room_id, "2")
    path = f"/_matrix/client/api/v1/rooms/{room_id}/messages"
    body = await get(client, alice, path, dir="f", **{"from": since})
    assert [e["event_id"] for e in body["chunk"]] == [event_id]
    # At the live edge the token to continue from is still given, and leads to what comes.
    edge = await get(client, alice, path, dir="f", **{"from": body["end"]})
    assert edge["chunk"] == [] and "end" in edge
    later = await send(client, alice, room_id, "3")
    body = await get(client, alice, path, dir="f", **{"from": edge["end"]})
    assert [e["event_id"] for e in body["chunk"]] == [later]


async def test_event_stream_rejects_bad_parameters(
        client: TestClient, register: Callable[[str], Awaitable[User]]) -> None:
    alice = await register("alice")
    for params in ({"limit": "0"}, {"from": "nonsense"}, {"from": "s999999_0"},
                   {"timeout": "soon"}):
        resp = await client.get(f"{R0}/events", params={"timeout": "0", **params},
                                headers=alice.auth)
        await expect(resp, 400, "M_INVALID_PARAM")
