"""Typing notifications, receipts and read markers, and how /sync delivers them.

https://spec.matrix.org/v1.19/client-server-api/#typing-notifications
https://spec.matrix.org/v1.19/client-server-api/#receipts
https://spec.matrix.org/v1.19/client-server-api/#fully-read-markers
"""

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from support import expect, get_sync, parked

V3 = "/_matrix/client/v3"



def _ephemeral(sync: dict[str, Any], room_id: str, kind: str) -> list[dict[str, Any]]:
    room = sync["rooms"]["join"].get(room_id)
    if room is None:
        return []
    return [e["content"] for e in room["ephemeral"]["events"] if e["type"] == kind]



async def _room_with_bob(client: TestClient, register, create_room) -> tuple[Any, Any, str]:
    alice = await register("alice")
    bob = await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    resp = await client.post(f"{V3}/join/{room_id}", json={}, headers=bob.auth)
    assert resp.status == 200
    return alice, bob, room_id


async def _send(client: TestClient, user: Any, room_id: str, txn: str,
                content: dict[str, Any] | None = None) -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/{txn}",
                            json=content or {"msgtype": "m.text", "body": txn},
                            headers=user.auth)
    assert resp.status == 200
    return str((await resp.json())["event_id"])


# --- typing -------------------------------------------------------------------------------------

async def test_typing_reaches_sync(client: TestClient, register, create_room) -> None:
    alice, bob, room_id = await _room_with_bob(client, register, create_room)
    since = (await get_sync(client, bob))["next_batch"]
    url = f"{V3}/rooms/{room_id}/typing/{alice.user_id}"
    resp = await client.put(url, json={"typing": True, "timeout": 30000}, headers=alice.auth)
    assert resp.status == 200 and await resp.json() == {}
    sync = await get_sync(client, bob, since)
    assert _ephemeral(sync, room_id, "m.typing") == [{"user_ids": [alice.user_id]}]
    resp = await client.put(url, json={"typing": False}, headers=alice.auth)
    assert resp.status == 200
    sync = await get_sync(client, bob, sync["next_batch"])
    assert _ephemeral(sync, room_id, "m.typing") == [{"user_ids": []}]


async def test_typing_wakes_long_poll(client: TestClient, register, create_room) -> None:
    alice, bob, room_id = await _room_with_bob(client, register, create_room)
    since = (await get_sync(client, bob))["next_batch"]
    waiting = asyncio.create_task(get_sync(client, bob, since, timeout=10000))
    await parked(client)
    resp = await client.put(f"{V3}/rooms/{room_id}/typing/{alice.user_id}",
                            json={"typing": True, "timeout": 30000}, headers=alice.auth)
    assert resp.status == 200
    sync = await asyncio.wait_for(waiting, 10)
    assert _ephemeral(sync, room_id, "m.typing") == [{"user_ids": [alice.user_id]}]


async def test_typing_expiry_wakes_long_poll(client: TestClient, register, create_room) -> None:
    alice, bob, room_id = await _room_with_bob(client, register, create_room)
    resp = await client.put(f"{V3}/rooms/{room_id}/typing/{alice.user_id}",
                            json={"typing": True, "timeout": 200}, headers=alice.auth)
    assert resp.status == 200
    sync = await get_sync(client, bob)
    assert _ephemeral(sync, room_id, "m.typing") == [{"user_ids": [alice.user_id]}]
    # Nothing else happens: only the expiry can end this long-poll with a typing change
    # (without the timer it would time out with an empty response).
    sync = await get_sync(client, bob, sync["next_batch"], timeout=10000)
    assert _ephemeral(sync, room_id, "m.typing") == [{"user_ids": []}]


async def test_typing_bad_input(client: TestClient, register, create_room) -> None:
    alice, bob, room_id = await _room_with_bob(client, register, create_room)
    carol = await register("carol")
    url = f"{V3}/rooms/{room_id}/typing/{alice.user_id}"
    await expect(await client.put(url, json={"typing": True}, headers=bob.auth),
                 403, "M_FORBIDDEN")
    await expect(await client.put(f"{V3}/rooms/{room_id}/typing/{carol.user_id}",
                                  json={"typing": True}, headers=carol.auth), 403, "M_FORBIDDEN")
    await expect(await client.put(f"{V3}/rooms/!nope:test.local/typing/{alice.user_id}",
                                  json={"typing": True}, headers=alice.auth), 404, "M_NOT_FOUND")
    await expect(await client.put(url, json={"typing": "yes"}, headers=alice.auth),
                 400, "M_BAD_JSON")
    await expect(await client.put(url, json={"typing": True, "timeout": "10"},
                                  headers=alice.auth), 400, "M_BAD_JSON")
    await expect(await client.put(url, json={"typing": True, "timeout": -1},
                                  headers=alice.auth), 400, "M_INVALID_PARAM")
    await expect(await client.put(url, json={"timeout": 100}, headers=alice.auth),
                 400, "M_MISSING_PARAM")
    await expect(await client.put(url, data=b"not json", headers=alice.auth), 400, "M_NOT_JSON")
    await expect(await client.put(url, json={"typing": True}), 401, "M_MISSING_TOKEN")


# --- receipts -----------------------------------------------------------------------------------

async def test_public_and_private_receipts_in_sync(client: TestClient, register,
                                                   create_room) -> None:
    alice, bob, room_id = await _room_with_bob(client, register, create_room)
    first = await _send(client, alice, room_id, "t1")
    second = await _send(client, alice, room_id, "t2")
    alice_since = (await get_sync(client, alice))["next_batch"]
    bob_since = (await get_sync(client, bob))["next_batch"]

    resp = await client.post(f"{V3}/rooms/{room_id}/receipt/m.read/{first}", json={},
                             headers=bob.auth)
    assert resp.status == 200 and await resp.json() == {}
    sync = await get_sync(client, alice, alice_since)
    [receipts] = _ephemeral(sync, room_id, "m.receipt")
    assert set(receipts) == {first}
    assert list(receipts[first]["m.read"]) == [bob.user_id]
    assert isinstance(receipts[first]["m.read"][bob.user_id]["ts"], int)
    alice_since = sync["next_batch"]

    # A private receipt: bob sees it, alice does not.
    resp = await client.post(f"{V3}/rooms/{room_id}/receipt/m.read.private/{second}",
                             headers=bob.auth)  # no body at all is accepted too
    assert resp.status == 200
    assert _ephemeral(await get_sync(client, alice, alice_since), room_id, "m.receipt") == []
    own = _ephemeral(await get_sync(client, bob, bob_since), room_id, "m.receipt")
    assert own[0][second]["m.read.private"][bob.user_id]["ts"] > 0
    initial = _ephemeral(await get_sync(client, alice), room_id, "m.receipt")
    assert "m.read.private" not in str(initial)


async def test_receipt_wakes_long_poll_and_only_moves_forward(client: TestClient, register,
                                                              create_room) -> None:
    alice, bob, room_id = await _room_with_bob(client, register, create_room)
    first = await _send(client, alice, room_id, "t1")
    second = await _send(client, alice, room_id, "t2")
    since = (await get_sync(client, alice))["next_batch"]
    waiting = asyncio.create_task(get_sync(client, alice, since, timeout=10000))
    await parked(client)
    resp = await client.post(f"{V3}/rooms/{room_id}/receipt/m.read/{second}", json={},
                             headers=bob.auth)
    assert resp.status == 200
    sync = await asyncio.wait_for(waiting, 10)
    assert second in _ephemeral(sync, room_id, "m.receipt")[0]
    # An older event does not move the receipt back.
    resp = await client.post(f"{V3}/rooms/{room_id}/receipt/m.read/{first}", json={},
                             headers=bob.auth)
    assert resp.status == 200
    [receipts] = _ephemeral(await get_sync(client, alice), room_id, "m.receipt")
    assert bob.user_id in receipts[second]["m.read"]
    assert first not in receipts


async def test_threaded_receipts(client: TestClient, register, create_room) -> None:
    alice, bob, room_id = await _room_with_bob(client, register, create_room)
    root = await _send(client, alice, room_id, "root")
    reply = await _send(client, alice, room_id, "reply", {
        "msgtype": "m.text", "body": "in thread",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    })
    other = await _send(client, alice, room_id, "other")
    url = f"{V3}/rooms/{room_id}/receipt/m.read"
    for event_id, thread in ((reply, root), (root, "main"), (root, root), (other, "main")):
        resp = await client.post(f"{url}/{event_id}", json={"thread_id": thread},
                                 headers=bob.auth)
        assert resp.status == 200, await resp.json()
    [receipts] = _ephemeral(await get_sync(client, bob), room_id, "m.receipt")
    assert receipts[other]["m.read"][bob.user_id]["thread_id"] == "main"
    # (root, root) came after the newer reply in the same thread: ignored.
    assert receipts[reply]["m.read"][bob.user_id]["thread_id"] == root
    assert root not in receipts
    # The reply is not in the main timeline, nor `other` in the thread.
    for event_id, thread in ((reply, "main"), (other, root)):
        await expect(await client.post(f"{url}/{event_id}", json={"thread_id": thread},
                                       headers=bob.auth), 400, "M_INVALID_PARAM")
    for bad in ("", 5, "not-an-event"):
        await expect(await client.post(f"{url}/{other}", json={"thread_id": bad},
                                       headers=bob.auth), 400, "M_INVALID_PARAM")
    await expect(await client.post(f"{V3}/rooms/{room_id}/receipt/m.fully_read/{other}",
                                   json={"thread_id": "main"}, headers=bob.auth),
                 400, "M_INVALID_PARAM")


async def test_receipt_bad_input(client: TestClient, register, create_room) -> None:
    alice, bob, room_id = await _room_with_bob(client, register, create_room)
    carol = await register("carol")
    event_id = await _send(client, alice, room_id, "t1")
    elsewhere = await create_room(alice)
    foreign = await _send(client, alice, elsewhere, "t2")
    url = f"{V3}/rooms/{room_id}/receipt"
    await expect(await client.post(f"{url}/m.unknown/{event_id}", json={}, headers=bob.auth),
                 400, "M_INVALID_PARAM")
    await expect(await client.post(f"{url}/m.read/$nope", json={}, headers=bob.auth),
                 404, "M_NOT_FOUND")
    await expect(await client.post(f"{url}/m.read/{foreign}", json={}, headers=bob.auth),
                 404, "M_NOT_FOUND")
    await expect(await client.post(f"{url}/m.read/{event_id}", json={}, headers=carol.auth),
                 403, "M_FORBIDDEN")
    await expect(await client.post(f"{V3}/rooms/!nope:test.local/receipt/m.read/{event_id}",
                                   json={}, headers=bob.auth), 404, "M_NOT_FOUND")
    await expect(await client.post(f"{url}/m.read/{event_id}", data=b"{", headers=bob.auth),
                 400, "M_NOT_JSON")
    await expect(await client.post(f"{url}/m.read/{event_id}", json={}), 401, "M_MISSING_TOKEN")


# --- the fully read marker ----------------------------------------------------------------------

async def test_fully_read_receipt_is_room_account_data(client: TestClient, register,
                                                       create_room) -> None:
    alice, bob, room_id = await _room_with_bob(client, register, create_room)
    event_id = await _send(client, alice, room_id, "t1")
    since = (await get_sync(client, bob))["next_batch"]
    resp = await client.post(f"{V3}/rooms/{room_id}/receipt/m.fully_read/{event_id}", json={},
                             headers=bob.auth)
    assert resp.status == 200
    sync = await get_sync(client, bob, since)
    room = sync["rooms"]["join"][room_id]
    assert room["account_data"]["events"] == [
        {"type": "m.fully_read", "content": {"event_id": event_id}}
    ]
    assert _ephemeral(sync, room_id, "m.receipt") == []
    resp = await client.get(
        f"{V3}/user/{bob.user_id}/rooms/{room_id}/account_data/m.fully_read", headers=bob.auth
    )
    assert await resp.json() == {"event_id": event_id}


async def test_read_markers(client: TestClient, register, create_room) -> None:
    alice, bob, room_id = await _room_with_bob(client, register, create_room)
    first = await _send(client, alice, room_id, "t1")
    second = await _send(client, alice, room_id, "t2")
    alice_since = (await get_sync(client, alice))["next_batch"]
    bob_since = (await get_sync(client, bob))["next_batch"]
    resp = await client.post(f"{V3}/rooms/{room_id}/read_markers", json={
        "m.fully_read": first, "m.read": first, "m.read.private": second,
    }, headers=bob.auth)
    assert resp.status == 200 and await resp.json() == {}
    sync = await get_sync(client, bob, bob_since)
    room = sync["rooms"]["join"][room_id]
    assert room["account_data"]["events"] == [
        {"type": "m.fully_read", "content": {"event_id": first}}
    ]
    [receipts] = _ephemeral(sync, room_id, "m.receipt")
    assert bob.user_id in receipts[first]["m.read"]
    assert bob.user_id in receipts[second]["m.read.private"]
    [others_view] = _ephemeral(await get_sync(client, alice, alice_since), room_id, "m.receipt")
    assert set(others_view) == {first}
    # The marker does not move backwards; an empty body changes nothing.
    for body in ({"m.fully_read": second}, {"m.fully_read": first}, {}):
        resp = await client.post(f"{V3}/rooms/{room_id}/read_markers", json=body,
                                 headers=bob.auth)
        assert resp.status == 200
    resp = await client.get(
        f"{V3}/user/{bob.user_id}/rooms/{room_id}/account_data/m.fully_read", headers=bob.auth
    )
    assert await resp.json() == {"event_id": second}


async def test_read_markers_bad_input(client: TestClient, register, create_room) -> None:
    alice, bob, room_id = await _room_with_bob(client, register, create_room)
    carol = await register("carol")
    event_id = await _send(client, alice, room_id, "t1")
    url = f"{V3}/rooms/{room_id}/read_markers"
    await expect(await client.post(url, json={"m.fully_read": 5}, headers=bob.auth),
                 400, "M_BAD_JSON")
    await expect(await client.post(url, json={"m.read": ["x"]}, headers=bob.auth),
                 400, "M_BAD_JSON")
    await expect(await client.post(url, json={"m.fully_read": "$missing"}, headers=bob.auth),
                 404, "M_NOT_FOUND")
    await expect(await client.post(url, json={"m.fully_read": event_id}, headers=carol.auth),
                 403, "M_FORBIDDEN")
    await expect(await client.post(f"{V3}/rooms/!nope:test.local/read_markers",
                                   json={"m.fully_read": event_id}, headers=bob.auth),
                 404, "M_NOT_FOUND")
    await expect(await client.post(url, data=b"[", headers=bob.auth), 400, "M_NOT_JSON")
    await expect(await client.post(url, json={"m.fully_read": event_id}),
                 401, "M_MISSING_TOKEN")
    # Nothing of a refused request was written.
    resp = await client.post(url, json={"m.read": event_id, "m.fully_read": "$missing"},
                             headers=bob.auth)
    assert resp.status == 404
    assert _ephemeral(await get_sync(client, bob), room_id, "m.receipt") == []
