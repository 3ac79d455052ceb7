"""Push notifications over HTTP: /notifications and the unread counts in /sync.

https://spec.matrix.org/v1.19/client-server-api/#listing-notifications
https://spec.matrix.org/v1.19/client-server-api/#receiving-notifications
"""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User, expect, get_sync

RULES = f"{V3}/pushrules/global"


async def _json(resp: Any, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def _send(client: TestClient, user: User, room_id: str, txn: str,
                content: dict[str, Any] | None = None) -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/{txn}",
                            json=content or {"msgtype": "m.text", "body": txn},
                            headers=user.auth)
    return str((await _json(resp))["event_id"])


async def _two_in_a_room(client: TestClient, register: Any, create_room: Any
                         ) -> tuple[User, User, str]:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await _json(await client.post(f"{V3}/join/{room_id}", json={}, headers=bob.auth))
    return alice, bob, room_id


async def test_counts_in_sync_and_receipt_resets(client: TestClient, register: Any,
                                                 create_room: Any, spec: MatrixSpec) -> None:
    alice, bob, room_id = await _two_in_a_room(client, register, create_room)
    first = await get_sync(client, bob)
    assert first["rooms"]["join"][room_id]["unread_notifications"] == {
        "notification_count": 0, "highlight_count": 0}
    await _send(client, alice, room_id, "one")
    mention = await _send(client, alice, room_id, "two", {
        "msgtype": "m.text", "body": "bob!", "m.mentions": {"user_ids": [bob.user_id]}})
    await _send(client, alice, room_id, "notice", {"msgtype": "m.notice", "body": "bot"})
    sync = await get_sync(client, bob, first["next_batch"])
    spec.check_response("sync", "GET", "/sync", 200, sync)
    assert sync["rooms"]["join"][room_id]["unread_notifications"] == {
        "notification_count": 2, "highlight_count": 1}
    # the sender's own messages never count for her
    own = await get_sync(client, alice)
    assert own["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 0
    # a private receipt at the mention: what came after it (a notice) does not notify
    resp = await client.post(f"{V3}/rooms/{room_id}/receipt/m.read.private/{mention}",
                             json={}, headers=bob.auth)
    await _json(resp)
    after = await get_sync(client, bob, sync["next_batch"])
    assert after["rooms"]["join"][room_id]["unread_notifications"] == {
        "notification_count": 0, "highlight_count": 0}


async def test_muted_room_and_thread_receipts(client: TestClient, register: Any,
                                              create_room: Any) -> None:
    alice, bob, room_id = await _two_in_a_room(client, register, create_room)
    resp = await client.put(f"{RULES}/room/{room_id}", json={"actions": ["dont_notify"]},
                            headers=bob.auth)
    await _json(resp)
    await _send(client, alice, room_id, "muted")
    sync = await get_sync(client, bob)
    assert sync["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 0
    resp = await client.delete(f"{RULES}/room/{room_id}", headers=bob.auth)
    await _json(resp)
    root = await _send(client, alice, room_id, "root")
    reply = await _send(client, alice, room_id, "reply", {
        "msgtype": "m.text", "body": "in thread",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    sync = await get_sync(client, bob)
    assert sync["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 2
    # a receipt in the thread reads the thread only
    resp = await client.post(f"{V3}/rooms/{room_id}/receipt/m.read/{reply}",
                             json={"thread_id": root}, headers=bob.auth)
    await _json(resp)
    sync = await get_sync(client, bob)
    assert sync["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 1


async def test_notifications(client: TestClient, register: Any, create_room: Any,
                             spec: MatrixSpec) -> None:
    alice, bob, room_id = await _two_in_a_room(client, register, create_room)
    ids = [await _send(client, alice, room_id, f"m{i}") for i in range(3)]
    mention = await _send(client, alice, room_id, "hey", {
        "msgtype": "m.text", "body": "hey", "m.mentions": {"user_ids": [bob.user_id]}})
    resp = await client.post(f"{V3}/rooms/{room_id}/receipt/m.read/{ids[0]}", json={},
                             headers=bob.auth)
    await _json(resp)
    resp = await client.get(f"{V3}/notifications", params={"limit": "3"}, headers=bob.auth)
    page = await _json(resp)
    spec.check_response("notifications", "GET", "/notifications", 200, page)
    assert [n["event"]["event_id"] for n in page["notifications"]] == [mention, ids[2], ids[1]]
    first = page["notifications"][0]
    assert first["room_id"] == room_id and first["read"] is False
    assert {"set_tweak": "highlight"} in first["actions"] and "room_id" not in first["event"]
    resp = await client.get(f"{V3}/notifications", headers=bob.auth,
                            params={"limit": "3", "from": page["next_token"]})
    rest = await _json(resp)
    spec.check_response("notifications", "GET", "/notifications", 200, rest)
    assert [(n["event"]["event_id"], n["read"]) for n in rest["notifications"]] == [
        (ids[0], True)]
    assert "next_token" not in rest
    resp = await client.get(f"{V3}/notifications", params={"only": "highlight"},
                            headers=bob.auth)
    assert [n["event"]["event_id"] for n in (await _json(resp))["notifications"]] == [mention]
    resp = await client.get(f"{V3}/notifications", headers=alice.auth)
    assert (await _json(resp))["notifications"] == []


@pytest.mark.parametrize("params", [{"from": "abc"}, {"limit": "x"}, {"limit": "0"},
                                    {"from": "-1"}])
async def test_notifications_bad_input(client: TestClient, register: Any, spec: MatrixSpec,
                                       params: dict[str, str]) -> None:
    alice = await register("alice")
    resp = await client.get(f"{V3}/notifications", params=params, headers=alice.auth)
    error = await expect(resp, 400, "M_INVALID_PARAM")
    spec.check_response("notifications", "GET", "/notifications", 400, error)


async def test_invite_notifies_the_invitee(client: TestClient, register: Any,
                                           create_room: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, invite=[bob.user_id])
    resp = await client.get(f"{V3}/notifications", headers=bob.auth)
    [note] = (await _json(resp))["notifications"]
    assert note["room_id"] == room_id and note["event"]["type"] == "m.room.member"
    assert note["event"]["state_key"] == bob.user_id
    # after joining, the invite is not an unread notification of the room
    await _json(await client.post(f"{V3}/join/{room_id}", json={}, headers=bob.auth))
    sync = await get_sync(client, bob)
    assert sync["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 0
