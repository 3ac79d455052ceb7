"""Simplified sliding sync (MSC4186): lists, subscriptions, incremental responses, long-poll,
extensions and bad input.

https://github.com/matrix-org/matrix-spec-proposals/pull/4186
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from support import V3, User, expect, parked

from edgehs.api.keys import HS_KEY

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
Json = dict[str, Any]

# The room list request Element X (matrix-rust-sdk's RoomListService) sends, trimmed.
REQUIRED_STATE = [
    ["m.room.encryption", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"],
    ["m.room.name", ""], ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
    ["m.room.join_rules", ""], ["m.room.tombstone", ""], ["m.room.create", ""],
    ["m.room.history_visibility", ""], ["m.room.topic", ""], ["m.room.avatar", ""],
    ["m.space.parent", "*"], ["org.matrix.msc3401.call.member", "*"],
]


def room_list(end: int = 19, timeline_limit: int = 1, **extra: Any) -> Json:
    return {"conn_id": "room-list", "lists": {"all_rooms": {
        "ranges": [[0, end]], "timeline_limit": timeline_limit,
        "required_state": REQUIRED_STATE, **extra}}}


async def ss(client: TestClient, user: User, body: Json, pos: str | None = None,
             timeout: int = 0, status: int = 200) -> Json:
    params = {"timeout": str(timeout), **({"pos": pos} if pos else {})}
    resp = await client.post(SS, json=body, params=params, headers=user.auth)
    data = await resp.json()
    assert resp.status == status, data
    return dict(data)


async def send(client: TestClient, user: User, room_id: str, body: str,
               etype: str = "m.room.message") -> str:
    resp = await client.post(f"{V3}/rooms/{room_id}/send/{etype}",
                             json={"msgtype": "m.text", "body": body}, headers=user.auth)
    data = await resp.json()
    assert resp.status == 200, data
    return str(data["event_id"])


def state_types(room: Json) -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in room["required_state"]}


Register = Callable[[str], Awaitable[User]]
Create = Callable[..., Awaitable[str]]


async def test_versions_advertises_msc(client: TestClient) -> None:
    body = await (await client.get("/_matrix/client/versions")).json()
    assert body["unstable_features"]["org.matrix.simplified_msc3575"] is True


async def test_initial_list_order_window_and_room_data(
        client: TestClient, register: Register, create_room: Create) -> None:
    alice, bob = await register("alice"), await register("bob")
    rooms = [await create_room(alice, name=f"room {i}", preset="public_chat") for i in range(3)]
    dm = await create_room(alice, preset="trusted_private_chat", invite=[bob.user_id],
                           is_direct=True)
    for r in rooms:
        await client.post(f"{V3}/join/{r}", headers=bob.auth)
    await send(client, bob, rooms[1], "newest")  # room 1 goes to the top
    resp = await ss(client, alice, room_list(end=1))
    assert resp["lists"] == {"all_rooms": {"count": 4}}
    assert isinstance(resp["pos"], str) and resp["extensions"] == {}
    assert list(resp["rooms"]) == [rooms[1], dm]
    top = resp["rooms"][rooms[1]]
    assert top["initial"] is True and top["name"] == "room 1"
    assert [e["content"].get("body") for e in top["timeline"]] == ["newest"]
    assert top["limited"] is True and top["num_live"] == 0 and top["prev_batch"]
    assert top["joined_count"] == 2 and top["invited_count"] == 0
    assert top["notification_count"] == 1 and top["highlight_count"] == 0
    # $ME and $LAZY: alice's own member event and the timeline sender's (bob).
    types = state_types(top)
    assert ("m.room.member", alice.user_id) in types and ("m.room.member", bob.user_id) in types
    assert ("m.room.create", "") in types and ("m.room.name", "") in types
    assert all("room_id" not in e for e in top["timeline"] + top["required_state"])
    dm_room = resp["rooms"][dm]
    assert "name" not in dm_room and dm_room["heroes"][0]["user_id"] == bob.user_id
    assert dm_room["bump_stamp"] < top["bump_stamp"]
    # The invitee sees the room as an invite with stripped state, flagged as a DM.
    invited = await ss(client, bob, room_list())
    inv = invited["rooms"][dm]
    assert inv["initial"] is True and inv["is_dm"] is True
    assert any(e["type"] == "m.room.member" and e["state_key"] == bob.user_id
               for e in inv["invite_state"])


async def test_incremental_only_rooms_with_news(
        client: TestClient, register: Register, create_room: Create) -> None:
    alice = await register("alice")
    a, b = await create_room(alice, name="a"), await create_room(alice, name="b")
    first = await ss(client, alice, room_list())
    assert set(first["rooms"]) == {a, b}
    again = await ss(client, alice, room_list(), first["pos"])
    assert again["rooms"] == {} and again["lists"]["all_rooms"]["count"] == 2
    event_id = await send(client, alice, a, "hello")
    nxt = await ss(client, alice, room_list(), again["pos"])
    assert list(nxt["rooms"]) == [a]
    room = nxt["rooms"][a]
    assert "initial" not in room and room["num_live"] == 1 and room["limited"] is False
    assert [e["event_id"] for e in room["timeline"]] == [event_id]
    assert room["required_state"] == []  # nothing changed; $LAZY alice was sent already
    # The older pos still answers (a retried request); an unknown one does not.
    retry = await ss(client, alice, room_list(), again["pos"])
    assert list(retry["rooms"]) == [a]
    bad = await client.post(SS, json=room_list(), params={"pos": "nope_1"},
                            headers=alice.auth)
    await expect(bad, 400, "M_UNKNOWN_POS")
    # Another connection's pos is unknown too.
    other = await client.post(SS, json={**room_list(), "conn_id": "other"},
                              params={"pos": nxt["pos"]}, headers=alice.auth)
    await expect(other, 400, "M_UNKNOWN_POS")


async def test_state_change_and_wildcards(
        client: TestClient, register: Register, create_room: Create) -> None:
    alice = await register("alice")
    room = await create_room(alice, name="before")
    body = {"lists": {"l": {"ranges": [[0, 9]], "timeline_limit": 0,
                            "required_state": [["*", "*"]]}}}
    first = await ss(client, alice, body)
    everything = state_types(first["rooms"][room])
    assert {("m.room.create", ""), ("m.room.power_levels", ""),
            ("m.room.member", alice.user_id)} <= everything
    assert first["rooms"][room]["timeline"] == []
    resp = await client.put(f"{V3}/rooms/{room}/state/m.room.name/", json={"name": "after"},
                            headers=alice.auth)
    assert resp.status == 200
    nxt = await ss(client, alice, body, first["pos"])
    changed = nxt["rooms"][room]
    assert [e["content"] for e in changed["required_state"]] == [{"name": "after"}]
    assert changed["name"] == "after"


async def test_filters(client: TestClient, register: Register, create_room: Create) -> None:
    alice, bob = await register("alice"), await register("bob")
    plain = await create_room(alice)
    encrypted = await create_room(alice, initial_state=[
        {"type": "m.room.encryption", "state_key": "",
         "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    space = await create_room(alice, creation_content={"type": "m.space"})
    invite = await create_room(bob, invite=[alice.user_id], is_direct=True)

    async def names(filters: Json) -> set[str]:
        resp = await ss(client, alice, {"lists": {"x": {"ranges": [[0, 99]],
                                                        "filters": filters}}})
        assert resp["lists"]["x"]["count"] == len(resp["rooms"])
        return set(resp["rooms"])

    assert await names({}) == {plain, encrypted, space, invite}
    assert await names({"is_encrypted": True}) == {encrypted}
    assert await names({"is_invite": True}) == {invite}
    assert await names({"is_dm": True}) == {invite}
    assert await names({"not_room_types": ["m.space"]}) == {plain, encrypted, invite}
    assert await names({"room_types": ["m.space"]}) == {space}
    assert await names({"room_types": [None]}) == {plain, encrypted, invite}


async def test_room_subscription_and_lists_merge(
        client: TestClient, register: Register, create_room: Create) -> None:
    alice = await register("alice")
    room = await create_room(alice)
    for i in range(5):
        await send(client, alice, room, f"m{i}")
    body = {"room_subscriptions": {room: {"timeline_limit": 3,
                                          "required_state": [["m.room.create", ""]]}},
            "lists": {}}
    resp = await ss(client, alice, body)
    sub = resp["rooms"][room]
    assert [e["content"]["body"] for e in sub["timeline"]] == ["m2", "m3", "m4"]
    assert state_types(sub) == {("m.room.create", "")}
    # A subscription to a room the user is not in gives nothing.
    stranger = await register("stranger")
    none = await ss(client, stranger, body)
    assert none["rooms"] == {}


async def test_long_poll_wakes_on_message(
        client: TestClient, register: Register, create_room: Create) -> None:
    alice = await register("alice")
    room = await create_room(alice)
    first = await ss(client, alice, room_list())
    poll = asyncio.create_task(ss(client, alice, room_list(), first["pos"], timeout=20000))
    await parked(client)
    assert not poll.done()
    await send(client, alice, room, "wake up")
    woken = await asyncio.wait_for(poll, 15)
    assert [e["content"]["body"] for e in woken["rooms"][room]["timeline"]] == ["wake up"]
    # A timeout with nothing new still answers, with a new pos and no rooms.
    idle = await ss(client, alice, room_list(), woken["pos"], timeout=50)
    assert idle["rooms"] == {} and idle["pos"] != woken["pos"]


async def test_extensions(client: TestClient, register: Register, create_room: Create) -> None:
    alice, bob = await register("alice"), await register("bob")
    room = await create_room(alice, preset="public_chat")
    await client.post(f"{V3}/join/{room}", headers=bob.auth)
    event_id = await send(client, bob, room, "read me")
    await client.put(f"{V3}/user/{alice.user_id}/account_data/org.example.g",
                     json={"g": 1}, headers=alice.auth)
    await client.put(f"{V3}/user/{alice.user_id}/rooms/{room}/account_data/org.example.r",
                     json={"r": 1}, headers=alice.auth)
    await client.post(f"{V3}/rooms/{room}/receipt/m.read/{event_id}", json={},
                      headers=bob.auth)
    await client.put(f"{V3}/rooms/{room}/typing/{bob.user_id}",
                     json={"typing": True, "timeout": 30000}, headers=bob.auth)
    await client.put(f"{V3}/sendToDevice/org.example.ping/t1", json={
        "messages": {alice.user_id: {alice.device_id: {"n": 1}}}}, headers=bob.auth)
    all_on = {"enabled": True}
    body = {**room_list(), "extensions": {
        "to_device": all_on, "e2ee": all_on, "account_data": all_on,
        "receipts": all_on, "typing": all_on}}
    first = await ss(client, alice, body)
    ext = first["extensions"]
    assert [m["content"] for m in ext["to_device"]["events"]] == [{"n": 1}]
    assert ext["e2ee"]["device_one_time_keys_count"].get("signed_curve25519", 0) == 0
    assert ext["e2ee"]["device_lists"] == {"changed": [], "left": []}
    global_types = {e["type"] for e in ext["account_data"]["global"]}
    assert {"org.example.g", "m.push_rules"} <= global_types
    assert ext["account_data"]["rooms"][room] == [{"type": "org.example.r",
                                                   "content": {"r": 1}}]
    receipt = ext["receipts"]["rooms"][room]
    assert receipt["type"] == "m.receipt"
    assert bob.user_id in receipt["content"][event_id]["m.read"]
    assert ext["typing"]["rooms"][room]["content"]["user_ids"] == [bob.user_id]
    # Acknowledge the to-device message with its next_batch: it is gone, not sent again.
    since = ext["to_device"]["next_batch"]
    body["extensions"]["to_device"] = {"enabled": True, "since": since}
    await client.put(f"{V3}/rooms/{room}/typing/{bob.user_id}", json={"typing": False},
                     headers=bob.auth)
    nxt = await ss(client, alice, body, first["pos"])
    ext = nxt["extensions"]
    assert ext["to_device"]["events"] == []
    assert ext["account_data"] == {"global": [], "rooms": {}}
    assert ext["receipts"]["rooms"] == {}
    assert ext["typing"]["rooms"][room]["content"]["user_ids"] == []
    assert await client.app[HS_KEY].to_device_store.count_messages(
        alice.user_id, alice.device_id) == 0


async def test_leave_reaches_the_client(
        client: TestClient, register: Register, create_room: Create) -> None:
    alice, bob = await register("alice"), await register("bob")
    room = await create_room(alice, preset="public_chat")
    await client.post(f"{V3}/join/{room}", headers=bob.auth)
    first = await ss(client, bob, room_list())
    assert room in first["rooms"]
    await client.post(f"{V3}/rooms/{room}/leave", json={}, headers=bob.auth)
    nxt = await ss(client, bob, room_list(), first["pos"])
    left = nxt["rooms"][room]
    assert left["timeline"][-1]["content"]["membership"] == "leave"
    later = await ss(client, bob, room_list(), nxt["pos"])
    assert later["lists"]["all_rooms"]["count"] == 0


async def test_bad_input(client: TestClient, register: Register) -> None:
    alice = await register("alice")
    cases: list[tuple[Any, str]] = [
        ({"lists": []}, "M_BAD_JSON"),
        ({"lists": {"l": {"ranges": [[5, 1]]}}}, "M_INVALID_PARAM"),
        ({"lists": {"l": {"ranges": "all"}}}, "M_INVALID_PARAM"),
        ({"lists": {"l": {"timeline_limit": -1}}}, "M_INVALID_PARAM"),
        ({"lists": {"l": {"required_state": [["m.room.name"]]}}}, "M_INVALID_PARAM"),
        ({"lists": {"l": {"filters": {"is_dm": "yes"}}}}, "M_INVALID_PARAM"),
        ({"room_subscriptions": {"not-a-room": {}}}, "M_INVALID_PARAM"),
        ({"conn_id": 5}, "M_INVALID_PARAM"),
        ({"extensions": {"to_device": {"enabled": True, "since": "x"}}}, "M_INVALID_PARAM"),
        ({"extensions": {"e2ee": "on"}}, "M_BAD_JSON"),
    ]
    for body, errcode in cases:
        resp = await client.post(SS, json=body, headers=alice.auth)
        await expect(resp, 400, errcode)
    resp = await client.post(SS, data=b"{not json", headers=alice.auth)
    await expect(resp, 400, "M_NOT_JSON")
    resp = await client.post(SS, json={}, params={"timeout": "soon"}, headers=alice.auth)
    await expect(resp, 400, "M_INVALID_PARAM")
    resp = await client.post(SS, json={})
    await expect(resp, 401, "M_MISSING_TOKEN")


async def test_rejected_invite_and_rejoin(
        client: TestClient, register: Register, create_room: Create) -> None:
    alice, bob = await register("alice"), await register("bob")
    room = await create_room(alice, preset="public_chat", invite=[bob.user_id])
    await send(client, alice, room, "before bob")
    first = await ss(client, bob, room_list())
    invite = first["rooms"][room]
    assert invite["heroes"] == [{"user_id": alice.user_id, "displayname": "alice"}]
    await client.post(f"{V3}/rooms/{room}/leave", json={}, headers=bob.auth)
    rejected = (await ss(client, bob, room_list(timeline_limit=10), first["pos"]))
    room_data = rejected["rooms"][room]
    # Never joined: the membership event only, no history and no state of the room.
    assert [e["content"]["membership"] for e in room_data["timeline"]] == ["leave"]
    assert room_data["required_state"] == []
    # Joining later makes the room new to the connection again.
    await client.post(f"{V3}/join/{room}", headers=bob.auth)
    joined = await ss(client, bob, room_list(), rejected["pos"])
    assert joined["rooms"][room]["initial"] is True


async def test_space_and_tag_filters(
        client: TestClient, register: Register, create_room: Create) -> None:
    alice = await register("alice")
    space = await create_room(alice, creation_content={"type": "m.space"})
    child, other = await create_room(alice), await create_room(alice)
    resp = await client.put(f"{V3}/rooms/{space}/state/m.space.child/{child}",
                            json={"via": ["test.local"]}, headers=alice.auth)
    assert resp.status == 200
    resp = await client.put(f"{V3}/user/{alice.user_id}/rooms/{other}/tags/m.favourite",
                            json={"order": 0.5}, headers=alice.auth)
    assert resp.status == 200

    async def names(filters: Json) -> set[str]:
        body = {"lists": {"x": {"ranges": [[0, 9]], "filters": filters}}}
        return set((await ss(client, alice, body))["rooms"])

    assert await names({"spaces": [space]}) == {child}
    assert await names({"tags": ["m.favourite"]}) == {other}
    assert await names({"not_tags": ["m.favourite"]}) == {space, child}


async def test_connections_are_per_device_and_bounded(
        client: TestClient, register: Register) -> None:
    alice = await register("alice")
    first = await ss(client, alice, room_list())
    store = client.app[HS_KEY].sliding_sync.connections
    for i in range(12):
        await ss(client, alice, {"conn_id": f"c{i}"})
    assert len(store) == 10  # at most 10 connections per device: the oldest went first
    resp = await client.post(SS, json=room_list(), params={"pos": first["pos"]},
                             headers=alice.auth)
    await expect(resp, 400, "M_UNKNOWN_POS")


async def test_subscriptions_stay_until_unsubscribed(
        client: TestClient, register: Register, create_room: Create) -> None:
    alice = await register("alice")
    room = await create_room(alice)
    first = await ss(client, alice, {"room_subscriptions": {room: {"timeline_limit": 5}}})
    assert room in first["rooms"]
    await send(client, alice, room, "still subscribed")
    # No list and no subscription in this request: the one sent before still holds.
    nxt = await ss(client, alice, {}, first["pos"])
    assert nxt["rooms"][room]["timeline"][-1]["content"]["body"] == "still subscribed"
    await send(client, alice, room, "after unsubscribing")
    gone = await ss(client, alice, {"unsubscribe_rooms": [room]}, nxt["pos"])
    assert gone["rooms"] == {}


async def test_prev_batch_paginates_and_old_positions_expire(
        client: TestClient, register: Register, create_room: Create) -> None:
    alice = await register("alice")
    room = await create_room(alice)
    for i in range(3):
        await send(client, alice, room, f"m{i}")
    first = await ss(client, alice, room_list(timeline_limit=1))
    prev_batch = first["rooms"][room]["prev_batch"]
    resp = await client.get(f"{V3}/rooms/{room}/messages",
                            params={"dir": "b", "from": prev_batch, "limit": "2"},
                            headers=alice.auth)
    page = await resp.json()
    assert resp.status == 200, page
    assert [e["content"].get("body") for e in page["chunk"]] == ["m1", "m0"]
    # A few older positions stay usable (retries, abandoned long-polls); older ones expire.
    positions = [first["pos"]]
    for _ in range(6):
        positions.append((await ss(client, alice, room_list(), positions[-1]))["pos"])
    await ss(client, alice, room_list(), positions[-3])
    resp = await client.post(SS, json=room_list(), params={"pos": positions[0]},
                             headers=alice.auth)
    await expect(resp, 400, "M_UNKNOWN_POS")


async def test_odd_bodies_are_200_or_400(client: TestClient, register: Register) -> None:
    """Every field with values of the wrong kind: a 400 with an errcode, or ignored; never
    a 500."""
    alice = await register("alice")
    odd: list[Any] = [None, 5, 1.5, True, "x", [], {}, [[]], [["a"]], [[0, 10**30]],
                      [[True, 1]], {"a": 1}, ["!nope:test.local"], [None]]
    fields = ["lists", "room_subscriptions", "extensions", "conn_id", "txn_id",
              "unsubscribe_rooms"]
    list_fields = ["ranges", "timeline_limit", "required_state", "filters"]
    filter_fields = ["is_dm", "is_invite", "is_encrypted", "room_types", "not_room_types",
                     "spaces", "tags", "not_tags", "is_tombstoned"]
    ext_fields = ["enabled", "since", "limit", "lists", "rooms"]
    bodies: list[Json] = []
    for value in odd:
        bodies += [{f: value} for f in fields]
        bodies += [{"lists": {"l": {f: value}}} for f in list_fields]
        bodies += [{"lists": {"l": {"filters": {f: value}}}} for f in filter_fields]
        bodies += [{"room_subscriptions": {"!r:test.local": {f: value}}}
                   for f in ("timeline_limit", "required_state")]
        bodies += [{"extensions": {e: {f: value}}} for e in ("to_device", "e2ee", "typing")
                   for f in ext_fields]
    for body in bodies:
        resp = await client.post(SS, json=body, headers=alice.auth)
        data = await resp.json()
        assert resp.status in (200, 400), (body, data)
        if resp.status == 400:
            assert data["errcode"] in ("M_INVALID_PARAM", "M_BAD_JSON"), (body, data)
