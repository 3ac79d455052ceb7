"""Threads: GET /threads, thread-aware receipts and per-thread unread counts in /sync.

https://spec.matrix.org/v1.19/client-server-api/#threading
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidthreads
https://spec.matrix.org/v1.19/client-server-api/#threaded-read-receipts
"""

import json
from typing import Any

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, expect, get_sync

V1 = "/_matrix/client/v1"
THREAD_FILTER = json.dumps({"room": {"timeline": {"unread_thread_notifications": True}}})


async def send(client: TestClient, user: Any, room_id: str, body: str,
               thread: str | None = None) -> str:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if thread is not None:
        content["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread}
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/{body}", json=content,
                            headers=user.auth)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["event_id"])


async def threads(client: TestClient, user: Any, room_id: str, spec: MatrixSpec | None = None,
                  **params: Any) -> dict[str, Any]:
    resp = await client.get(f"{V1}/rooms/{room_id}/threads", params=params, headers=user.auth)
    body = await resp.json()
    assert resp.status == 200, body
    if spec is not None:
        spec.check_response("threads_list", "GET", "/rooms/{roomId}/threads", 200, body)
        for event in body["chunk"]:
            spec.check_event(event)
    return dict(body)


async def two_in_a_room(client: TestClient, register: Any, create_room: Any
                        ) -> tuple[Any, Any, str]:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    assert (await client.post(f"{V3}/join/{room_id}", headers=bob.auth)).status == 200
    return alice, bob, room_id


async def test_threads_newest_reply_first_with_pages(client: TestClient, register: Any,
                                                    create_room: Any, spec: MatrixSpec) -> None:
    alice, bob, room_id = await two_in_a_room(client, register, create_room)
    first = await send(client, alice, room_id, "first-root")
    second = await send(client, alice, room_id, "second-root")
    await send(client, alice, room_id, "plain")
    await send(client, bob, room_id, "r1", thread=first)
    await send(client, alice, room_id, "r2", thread=second)
    await send(client, alice, room_id, "r3", thread=first)  # first has the newest reply
    body = await threads(client, alice, room_id, spec)
    assert [e["event_id"] for e in body["chunk"]] == [first, second]
    assert "next_batch" not in body
    summary = body["chunk"][0]["unsigned"]["m.relations"]["m.thread"]
    assert summary["count"] == 2 and summary["latest_event"]["content"]["body"] == "r3"
    # pages of one
    page = await threads(client, alice, room_id, spec, limit="1")
    assert [e["event_id"] for e in page["chunk"]] == [first]
    rest = await threads(client, alice, room_id, spec, limit="1", **{"from": page["next_batch"]})
    assert [e["event_id"] for e in rest["chunk"]] == [second]
    if "next_batch" in rest:
        last = await threads(client, alice, room_id, limit="1", **{"from": rest["next_batch"]})
        assert last["chunk"] == [] and "next_batch" not in last
    # bob took part in the first thread only (a reply); alice in both (roots and replies)
    mine = await threads(client, bob, room_id, spec, include="participated")
    assert [e["event_id"] for e in mine["chunk"]] == [first]
    assert [e["event_id"] for e in (await threads(
        client, alice, room_id, include="participated"))["chunk"]] == [first, second]


async def test_threads_bad_input(client: TestClient, register: Any, create_room: Any,
                                 spec: MatrixSpec) -> None:
    alice, _, room_id = await two_in_a_room(client, register, create_room)
    url = f"{V1}/rooms/{room_id}/threads"
    for params in ({"include": "mine"}, {"limit": "0"}, {"limit": "x"}, {"from": "nonsense"},
                   {"from": "t" + "9" * 30}):
        body = await expect(await client.get(url, params=params, headers=alice.auth), 400,
                            "M_INVALID_PARAM")
        spec.check_response("threads_list", "GET", "/rooms/{roomId}/threads", 400, body)
    carol = await register("carol")
    private = await create_room(alice, preset="private_chat")
    body = await expect(await client.get(f"{V1}/rooms/{private}/threads", headers=carol.auth),
                        403, "M_FORBIDDEN")
    spec.check_response("threads_list", "GET", "/rooms/{roomId}/threads", 403, body)
    await expect(await client.get(f"{V1}/rooms/!nowhere:test.local/threads",
                                  headers=carol.auth), 403, "M_FORBIDDEN")
    await expect(await client.get(url), 401, "M_MISSING_TOKEN")


async def test_thread_receipt_validation(client: TestClient, register: Any,
                                         create_room: Any) -> None:
    alice, bob, room_id = await two_in_a_room(client, register, create_room)
    root = await send(client, alice, room_id, "root")
    reply = await send(client, alice, room_id, "reply", thread=root)
    plain = await send(client, alice, room_id, "plain")

    async def receipt(kind: str, event_id: str, body: Any) -> Any:
        return await client.post(f"{V3}/rooms/{room_id}/receipt/{kind}/{event_id}",
                                 json=body, headers=bob.auth)

    await expect(await receipt("m.fully_read", reply, {"thread_id": root}), 400,
                 "M_INVALID_PARAM")
    await expect(await receipt("m.read", reply, {"thread_id": "elsewhere"}), 400,
                 "M_INVALID_PARAM")
    await expect(await receipt("m.read", reply, {"thread_id": ""}), 400, "M_INVALID_PARAM")
    await expect(await receipt("m.read", reply, {"thread_id": 5}), 400, "M_INVALID_PARAM")
    # an event of the main timeline is not in the thread, and the reply is not in "main"
    await expect(await receipt("m.read", plain, {"thread_id": root}), 400, "M_INVALID_PARAM")
    await expect(await receipt("m.read", reply, {"thread_id": "main"}), 400, "M_INVALID_PARAM")
    for kind, event_id, thread in (("m.read", reply, root), ("m.read", plain, "main"),
                                   ("m.read.private", root, root)):
        resp = await receipt(kind, event_id, {"thread_id": thread})
        assert resp.status == 200, await resp.text()
    sync = await get_sync(client, alice)
    [receipts] = [e for e in sync["rooms"]["join"][room_id]["ephemeral"]["events"]
                  if e["type"] == "m.receipt"]
    assert receipts["content"][reply]["m.read"][bob.user_id]["thread_id"] == root
    assert receipts["content"][plain]["m.read"][bob.user_id]["thread_id"] == "main"


async def test_unread_thread_notifications(client: TestClient, register: Any,
                                           create_room: Any, spec: MatrixSpec) -> None:
    alice, bob, room_id = await two_in_a_room(client, register, create_room)
    root = await send(client, bob, room_id, "root")
    await send(client, bob, room_id, "one", thread=root)
    two = await send(client, bob, room_id, "two", thread=root)
    other = await send(client, bob, room_id, "other-root")
    await send(client, bob, room_id, "three", thread=other)
    # without the filter flag: every notification counts for the room
    plain = await get_sync(client, alice)
    room = plain["rooms"]["join"][room_id]
    assert room["unread_notifications"]["notification_count"] == 5
    assert "unread_thread_notifications" not in room
    # with it: the main timeline (the two roots) and each thread apart
    resp = await client.get(f"{V3}/sync", params={"filter": THREAD_FILTER, "timeout": "0"},
                            headers=alice.auth)
    threaded = await resp.json()
    assert resp.status == 200, threaded
    spec.check_response("sync", "GET", "/sync", 200, threaded)
    room = threaded["rooms"]["join"][room_id]
    assert room["unread_notifications"] == {"notification_count": 2, "highlight_count": 0}
    assert room["unread_thread_notifications"] == {
        root: {"notification_count": 2, "highlight_count": 0},
        other: {"notification_count": 1, "highlight_count": 0},
    }
    # a receipt in the first thread reads that thread only
    resp = await client.post(f"{V3}/rooms/{room_id}/receipt/m.read/{two}",
                             json={"thread_id": root}, headers=alice.auth)
    assert resp.status == 200
    resp = await client.get(f"{V3}/sync", params={
        "filter": THREAD_FILTER, "timeout": "0", "since": threaded["next_batch"]},
        headers=alice.auth)
    after = (await resp.json())["rooms"]["join"][room_id]
    assert after["unread_notifications"]["notification_count"] == 2
    assert after["unread_thread_notifications"] == {
        other: {"notification_count": 1, "highlight_count": 0}}
    # a stored filter with the flag works the same, and the flag must be a boolean
    resp = await client.post(f"{V3}/user/{alice.user_id}/filter", data=THREAD_FILTER,
                             headers=alice.auth)
    filter_id = (await resp.json())["filter_id"]
    resp = await client.get(f"{V3}/sync", params={"filter": filter_id, "timeout": "0"},
                            headers=alice.auth)
    stored = (await resp.json())["rooms"]["join"][room_id]
    assert stored["unread_thread_notifications"] == after["unread_thread_notifications"]
    resp = await client.post(f"{V3}/user/{alice.user_id}/filter",
                             json={"room": {"timeline": {"unread_thread_notifications": 1}}},
                             headers=alice.auth)
    await expect(resp, 400, "M_BAD_JSON")
