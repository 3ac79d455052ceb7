"""/messages and /context: paging to the create event and back, filters, visibility.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidmessages
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidcontexteventid
"""

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec

V3 = "/_matrix/client/v3"


async def send(client: TestClient, user: Any, room_id: str, body: str, txn: str,
               **extra: Any) -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/{txn}",
                            json={"msgtype": "m.text", "body": body, **extra},
                            headers=user.auth)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["event_id"])


async def get_messages(client: TestClient, user: Any, room_id: str, status: int = 200,
                       **params: Any) -> dict[str, Any]:
    resp = await client.get(f"{V3}/rooms/{room_id}/messages", params=params, headers=user.auth)
    body = await resp.json()
    assert resp.status == status, body
    return dict(body)


async def page_all(client: TestClient, user: Any, room_id: str, **params: Any
                   ) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for _ in range(100):
        body = await get_messages(client, user, room_id, **params)
        events += body["chunk"]
        if "end" not in body or (params.get("dir") == "f" and not body["chunk"]):
            return events  # forwards, `end` stays: the live edge gives an empty chunk
        params["from"] = body["end"]
    raise AssertionError("pagination never ended")


async def test_back_from_sync_prev_batch_to_create_and_forward_again(
        client: TestClient, register, create_room) -> None:
    alice = await register("alice")
    room_id = await create_room(alice, name="History")
    sent = [await send(client, alice, room_id, f"m{i}", f"t{i}") for i in range(25)]
    sync = await (await client.get(f"{V3}/sync", params={
        "filter": json.dumps({"room": {"timeline": {"limit": 5}}})}, headers=alice.auth)).json()
    timeline = sync["rooms"]["join"][room_id]["timeline"]
    assert timeline["limited"] is True
    assert [e["event_id"] for e in timeline["events"]] == sent[-5:]

    back = await page_all(client, alice, room_id, dir="b", limit=7,
                          **{"from": timeline["prev_batch"]})
    assert back[-1]["type"] == "m.room.create"
    assert [e["event_id"] for e in back[:20]] == list(reversed(sent[:20]))
    assert all(e["room_id"] == room_id and "unsigned" in e for e in back)

    forward = await page_all(client, alice, room_id, dir="f", limit=6)
    history = [e["event_id"] for e in reversed(back)] + sent[-5:]
    assert [e["event_id"] for e in forward] == history

    # Without `from`, dir=b starts at the newest event; `start` echoes the client's `from`.
    newest = await get_messages(client, alice, room_id, dir="b", limit=2)
    assert [e["event_id"] for e in newest["chunk"]] == [sent[-1], sent[-2]]
    again = await get_messages(client, alice, room_id, dir="b", limit=2,
                               **{"from": newest["end"]})
    assert again["start"] == newest["end"]
    assert [e["event_id"] for e in again["chunk"]] == [sent[-3], sent[-4]]
    # `to` stops the page early: nothing further, so no `end`.
    bounded = await get_messages(client, alice, room_id, dir="b", limit=10,
                                 to=newest["end"])
    assert [e["event_id"] for e in bounded["chunk"]] == [sent[-1], sent[-2]]
    assert "end" not in bounded
    # dir defaults to b.
    default = await get_messages(client, alice, room_id, limit=1)
    assert default["chunk"][0]["event_id"] == sent[-1]
    # The transaction id is shown to the sender.
    assert default["chunk"][0]["unsigned"]["transaction_id"] == "t24"


async def test_limit_and_filters(client: TestClient, register, create_room) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    assert (await client.post(f"{V3}/join/{room_id}", headers=bob.auth)).status == 200
    a1 = await send(client, alice, room_id, "a1", "a1")
    b1 = await send(client, bob, room_id, "b1", "b1")
    img = await send(client, alice, room_id, "pic", "a2", url="mxc://test.local/abc")
    b2 = await send(client, bob, room_id, "b2", "b2")

    assert len((await get_messages(client, alice, room_id, dir="b", limit=3))["chunk"]) == 3
    big = await get_messages(client, alice, room_id, dir="b", limit=5000)
    assert "end" not in big and big["chunk"][-1]["type"] == "m.room.create"
    # limit=0: an empty chunk, and an end token because more events exist.
    zero = await get_messages(client, alice, room_id, dir="b", limit=0)
    assert zero["chunk"] == [] and "end" in zero

    by_bob = await get_messages(client, alice, room_id, dir="b", filter=json.dumps(
        {"senders": [bob.user_id], "types": ["m.room.message"]}))
    assert [e["event_id"] for e in by_bob["chunk"]] == [b2, b1]
    assert "end" not in by_bob
    not_state = await get_messages(client, alice, room_id, dir="b", filter=json.dumps(
        {"not_types": ["m.room.*"]}))
    assert not_state["chunk"] == []
    wildcard = await get_messages(client, alice, room_id, dir="b", filter=json.dumps(
        {"types": ["m.room.mem*"]}))
    assert {e["type"] for e in wildcard["chunk"]} == {"m.room.member"}
    with_url = await get_messages(client, alice, room_id, dir="b", filter=json.dumps(
        {"contains_url": True}))
    assert [e["event_id"] for e in with_url["chunk"]] == [img]
    not_bob = await get_messages(client, alice, room_id, dir="b", limit=2, filter=json.dumps(
        {"not_senders": [bob.user_id], "types": ["m.room.message"]}))
    assert [e["event_id"] for e in not_bob["chunk"]] == [img, a1]
    other_room = await get_messages(client, alice, room_id, dir="b", filter=json.dumps(
        {"rooms": ["!elsewhere:test.local"]}))
    assert other_room["chunk"] == []

    lazy = await get_messages(client, alice, room_id, dir="b", limit=1, filter=json.dumps(
        {"lazy_load_members": True}))
    assert [e["event_id"] for e in lazy["chunk"]] == [b2]
    assert [(e["type"], e["state_key"]) for e in lazy["state"]] == [
        ("m.room.member", bob.user_id)]
    assert "state" not in big


async def test_former_member_sees_history_only_until_leave(
        client: TestClient, register, create_room) -> None:
    alice, bob, eve = await register("alice"), await register("bob"), await register("eve")
    room_id = await create_room(alice, preset="public_chat")
    assert (await client.post(f"{V3}/join/{room_id}", headers=bob.auth)).status == 200
    before = await send(client, alice, room_id, "while bob is here", "t1")
    sync = await (await client.get(f"{V3}/sync", headers=bob.auth)).json()
    assert (await client.post(f"{V3}/rooms/{room_id}/leave", headers=bob.auth)).status == 200
    secret = await send(client, alice, room_id, "after bob left", "t2")

    seen = await page_all(client, bob, room_id, dir="b")
    ids = [e["event_id"] for e in seen]
    assert secret not in ids and before in ids
    assert seen[0]["type"] == "m.room.member" and seen[0]["content"]["membership"] == "leave"
    forward = await page_all(client, bob, room_id, dir="f",
                             **{"from": sync["next_batch"]})
    assert [e["content"].get("membership") for e in forward] == ["leave"]

    # A user who was never in the room, and an unknown room: 403.
    body = await get_messages(client, eve, room_id, 403, dir="b")
    assert body["errcode"] == "M_FORBIDDEN"
    body = await get_messages(client, eve, "!nowhere:test.local", 403, dir="b")
    assert body["errcode"] == "M_FORBIDDEN"

    # /context of an event after the leave is not found for bob; before it is fine.
    resp = await client.get(f"{V3}/rooms/{room_id}/context/{secret}", headers=bob.auth)
    assert resp.status == 404 and (await resp.json())["errcode"] == "M_NOT_FOUND"
    resp = await client.get(f"{V3}/rooms/{room_id}/context/{before}", headers=bob.auth)
    ctx = await resp.json()
    assert resp.status == 200, ctx
    assert secret not in [e["event_id"] for e in ctx["events_after"]]


@pytest.mark.parametrize(("params", "status", "errcode"), [
    ({"dir": "x"}, 400, "M_INVALID_PARAM"),
    ({"dir": "b", "limit": "ten"}, 400, "M_INVALID_PARAM"),
    ({"dir": "b", "limit": "-1"}, 400, "M_INVALID_PARAM"),
    ({"dir": "b", "from": "garbage"}, 400, "M_INVALID_PARAM"),
    ({"dir": "b", "from": "s-4_0"}, 400, "M_INVALID_PARAM"),
    ({"dir": "f", "to": "nope"}, 400, "M_INVALID_PARAM"),
    ({"dir": "b", "filter": "{not json"}, 400, "M_NOT_JSON"),
    ({"dir": "b", "filter": "[1]"}, 400, "M_BAD_JSON"),
    ({"dir": "b", "filter": '{"types": "m.room.message"}'}, 400, "M_BAD_JSON"),
    ({"dir": "b", "filter": '{"contains_url": "yes"}'}, 400, "M_BAD_JSON"),
])
async def test_messages_bad_input(client: TestClient, register, create_room,
                                  params: dict[str, str], status: int, errcode: str) -> None:
    alice = await register("alice")
    room_id = await create_room(alice)
    body = await get_messages(client, alice, room_id, status, **params)
    assert body["errcode"] == errcode


async def test_messages_and_context_need_auth(client: TestClient, register, create_room
                                              ) -> None:
    alice = await register("alice")
    room_id = await create_room(alice)
    event_id = await send(client, alice, room_id, "x", "t1")
    for path in (f"rooms/{room_id}/messages?dir=b", f"rooms/{room_id}/context/{event_id}"):
        resp = await client.get(f"{V3}/{path}")
        assert resp.status == 401
        assert (await resp.json())["errcode"] == "M_MISSING_TOKEN"


async def test_context(client: TestClient, register, create_room) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    sent = [await send(client, alice, room_id, f"m{i}", f"t{i}") for i in range(9)]
    resp = await client.get(f"{V3}/rooms/{room_id}/context/{sent[4]}", params={"limit": "4"},
                            headers=alice.auth)
    ctx = await resp.json()
    assert resp.status == 200, ctx
    assert ctx["event"]["event_id"] == sent[4]
    assert [e["event_id"] for e in ctx["events_before"]] == [sent[3], sent[2]]
    assert [e["event_id"] for e in ctx["events_after"]] == [sent[5], sent[6]]
    assert ("m.room.create", "") in {(e["type"], e["state_key"]) for e in ctx["state"]}
    # start/end continue with /messages.
    older = await get_messages(client, alice, room_id, dir="b", limit=2,
                               **{"from": ctx["start"]})
    assert [e["event_id"] for e in older["chunk"]] == [sent[1], sent[0]]
    newer = await get_messages(client, alice, room_id, dir="f", limit=5,
                               **{"from": ctx["end"]})
    assert [e["event_id"] for e in newer["chunk"]] == sent[7:]

    # limit=0 still returns the event; the filter narrows before/after/state, not the event.
    resp = await client.get(f"{V3}/rooms/{room_id}/context/{sent[4]}", params={
        "limit": "0"}, headers=alice.auth)
    zero = await resp.json()
    assert zero["events_before"] == [] and zero["events_after"] == []
    assert zero["event"]["event_id"] == sent[4]
    resp = await client.get(f"{V3}/rooms/{room_id}/context/{sent[4]}", params={
        "filter": json.dumps({"types": ["m.room.member"], "lazy_load_members": True})},
        headers=alice.auth)
    lazy = await resp.json()
    assert [e["type"] for e in lazy["events_before"]] == ["m.room.member"]
    assert lazy["events_after"] == []
    assert [(e["type"], e["state_key"]) for e in lazy["state"]] == [
        ("m.room.member", alice.user_id)]

    # Unknown event, event of another room, non-member, bad limit, bad filter.
    other = await create_room(alice)
    for path, who, status, errcode in (
        (f"rooms/{room_id}/context/$nope", alice, 404, "M_NOT_FOUND"),
        (f"rooms/{other}/context/{sent[0]}", alice, 404, "M_NOT_FOUND"),
        (f"rooms/{room_id}/context/{sent[0]}", bob, 403, "M_FORBIDDEN"),
        (f"rooms/{room_id}/context/{sent[0]}?limit=x", alice, 400, "M_INVALID_PARAM"),
        (f"rooms/{room_id}/context/{sent[0]}?limit=-2", alice, 400, "M_INVALID_PARAM"),
        (f"rooms/{room_id}/context/{sent[0]}?filter=%7B", alice, 400, "M_NOT_JSON"),
    ):
        resp = await client.get(f"{V3}/{path}", headers=who.auth)
        assert resp.status == status, path
        assert (await resp.json())["errcode"] == errcode, path


async def test_responses_match_the_spec_schema(client: TestClient, register, create_room
                                               ) -> None:
    spec = MatrixSpec.load()
    alice = await register("alice")
    room_id = await create_room(alice, name="Schema", topic="t")
    event_id = await send(client, alice, room_id, "x", "t1")
    page = await get_messages(client, alice, room_id, dir="b", limit=3, filter=json.dumps(
        {"lazy_load_members": True}))
    spec.check_response("message_pagination", "GET", "/rooms/{roomId}/messages", 200, page)
    for event in [*page["chunk"], *page["state"]]:
        spec.check_event(event)
    forbidden = await get_messages(client, await register("eve"), room_id, 403, dir="b")
    spec.check_response("message_pagination", "GET", "/rooms/{roomId}/messages", 403, forbidden)
    resp = await client.get(f"{V3}/rooms/{room_id}/context/{event_id}", headers=alice.auth)
    ctx = await resp.json()
    spec.check_response("event_context", "GET", "/rooms/{roomId}/context/{eventId}", 200, ctx)
    for event in [*ctx["events_before"], ctx["event"], *ctx["events_after"], *ctx["state"]]:
        spec.check_event(event)
