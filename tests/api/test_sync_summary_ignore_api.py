"""/sync: the room summary, ignored users and the presence of new room members.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync (RoomSummary)
https://spec.matrix.org/v1.19/client-server-api/#ignoring-users
https://spec.matrix.org/v1.19/client-server-api/#presence
"""

from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User
from sync_helpers import invite, join, leave, put_state, send, sync

Register = Callable[[str], Awaitable[User]]
CreateRoom = Callable[..., Awaitable[str]]


async def test_summary_of_unnamed_room(client: TestClient, register: Register,
                                       create_room: CreateRoom, spec: MatrixSpec) -> None:
    alice = await register("alice")
    others = [await register(f"user{i}") for i in range(6)]
    room_id = await create_room(alice, preset="public_chat")
    # Joined in an order other than that of their ids: heroes follow the joins.
    for user in reversed(others):
        await join(client, user, room_id)
    body = await sync(client, alice, spec)
    assert body["rooms"]["join"][room_id]["summary"] == {
        "m.joined_member_count": 7, "m.invited_member_count": 0,
        "m.heroes": [u.user_id for u in reversed(others)][:5],
    }
    # Nothing about membership changed: no summary in the next incremental sync.
    await send(client, alice, room_id)
    again = await sync(client, alice, spec, since=body["next_batch"])
    assert again["rooms"]["join"][room_id]["summary"] == {}


async def test_summary_counts_follow_membership(client: TestClient, register: Register,
                                                create_room: CreateRoom,
                                                spec: MatrixSpec) -> None:
    alice, bob, carol = [await register(n) for n in ("alice", "bob", "carol")]
    room_id = await create_room(alice, preset="public_chat")
    await put_state(client, alice, room_id, "m.room.name", {"name": "A room name"})
    await join(client, bob, room_id)
    first = await sync(client, alice, spec)
    assert first["rooms"]["join"][room_id]["summary"] == {
        "m.joined_member_count": 2, "m.invited_member_count": 0}  # named: no heroes
    await invite(client, alice, room_id, carol)
    body = await sync(client, alice, spec, since=first["next_batch"])
    assert body["rooms"]["join"][room_id]["summary"] == {
        "m.joined_member_count": 2, "m.invited_member_count": 1}
    await leave(client, bob, room_id)
    body = await sync(client, alice, spec, since=body["next_batch"])
    assert body["rooms"]["join"][room_id]["summary"] == {
        "m.joined_member_count": 1, "m.invited_member_count": 1}


async def test_heroes_of_an_abandoned_room(client: TestClient, register: Register,
                                           create_room: CreateRoom, spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await join(client, bob, room_id)
    await leave(client, bob, room_id)
    body = await sync(client, alice, spec)
    assert body["rooms"]["join"][room_id]["summary"]["m.heroes"] == [bob.user_id]


async def ignore(client: TestClient, user: User, *others: User) -> None:
    resp = await client.put(f"{V3}/user/{user.user_id}/account_data/m.ignored_user_list",
                            json={"ignored_users": {o.user_id: {} for o in others}},
                            headers=user.auth)
    assert resp.status == 200


async def test_ignored_users_messages_are_left_out(client: TestClient, register: Register,
                                                   create_room: CreateRoom,
                                                   spec: MatrixSpec) -> None:
    alice, bob, carol = [await register(n) for n in ("alice", "bob", "carol")]
    room_id = await create_room(alice, preset="public_chat")
    await join(client, bob, room_id)
    await join(client, carol, room_id)
    for user in (alice, bob, carol):
        await send(client, user, room_id, f"from {user.user_id}")
    await ignore(client, alice, bob)
    flt = {"room": {"timeline": {"types": ["m.room.message"]},
                    "state": {"types": ["m.room.member"]}}}
    body = await sync(client, alice, spec, flt=flt)
    room = body["rooms"]["join"][room_id]
    assert [e["sender"] for e in room["timeline"]["events"]] == [alice.user_id, carol.user_id]
    assert len(room["state"]["events"]) == 3  # bob's membership is still state
    await send(client, bob, room_id, "ignored")
    again = await sync(client, alice, spec, since=body["next_batch"], flt=flt)
    assert again["rooms"]["join"] == {}
    await send(client, carol, room_id, "seen")
    again = await sync(client, alice, spec, since=again["next_batch"], flt=flt)
    assert [e["content"]["body"] for e in again["rooms"]["join"][room_id]["timeline"]["events"]
            ] == ["seen"]


async def test_ignore_list_changes_apply_from_the_next_sync(
        client: TestClient, register: Register, create_room: CreateRoom,
        spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await join(client, bob, room_id)
    body = await sync(client, alice, spec)

    async def bodies_after(token: str, text: str) -> tuple[list[str], str]:
        await send(client, bob, room_id, text)
        got = await sync(client, alice, spec, since=token)
        room = got["rooms"]["join"].get(room_id, {"timeline": {"events": []}})
        return [e["content"].get("body") for e in room["timeline"]["events"]
                if e["type"] == "m.room.message"], got["next_batch"]

    seen, token = await bodies_after(body["next_batch"], "one")
    assert seen == ["one"]
    # None: the list is left as it is (the remembered one applies).
    for ignoring, text, expected in ((True, "two", []), (None, "three", []),
                                     (False, "four", ["four"]), (None, "five", ["five"])):
        if ignoring is not None:
            await ignore(client, alice, *([bob] if ignoring else []))
        seen, token = await bodies_after(token, text)
        assert seen == expected, text


async def test_invites_from_ignored_users_are_left_out(client: TestClient, register: Register,
                                                       create_room: CreateRoom,
                                                       spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_a = await create_room(bob)
    room_b = await create_room(bob)
    first = await sync(client, alice, spec)
    await invite(client, bob, room_a, alice)
    await ignore(client, alice, bob)
    await invite(client, bob, room_b, alice)
    assert (await sync(client, alice, spec))["rooms"]["invite"] == {}
    assert (await sync(client, alice, spec, since=first["next_batch"]))["rooms"]["invite"] == {}


async def test_new_room_members_presence(client: TestClient, register: Register,
                                         create_room: CreateRoom, spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    first_alice = await sync(client, alice, spec)  # alice is online
    first_bob = await sync(client, bob, spec)  # and so is bob
    again = await sync(client, alice, spec, since=first_alice["next_batch"])
    await join(client, bob, room_id)
    # bob joined alice's room: alice gets bob's presence, though it did not change...
    body = await sync(client, alice, spec, since=again["next_batch"])
    assert [e["sender"] for e in body["presence"]["events"]] == [bob.user_id]
    # ... and bob gets alice's, with the newly joined room.
    body_bob = await sync(client, bob, spec, since=first_bob["next_batch"])
    assert room_id in body_bob["rooms"]["join"]
    assert alice.user_id in [e["sender"] for e in body_bob["presence"]["events"]]
    assert (await sync(client, bob, spec, since=body_bob["next_batch"]))["presence"][
        "events"] == []
    # carol never synced: her presence comes too, as offline.
    carol = await register("carol")
    await join(client, carol, room_id)
    body = await sync(client, alice, spec, since=body["next_batch"])
    assert [(e["sender"], e["content"]["presence"]) for e in body["presence"]["events"]] == [
        (carol.user_id, "offline")]


async def test_event_stream(client: TestClient, register: Register, create_room: CreateRoom,
                            spec: MatrixSpec) -> None:
    """GET /events (deprecated): the new events of the joined rooms."""
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await join(client, bob, room_id)
    resp = await client.get(f"{V3}/events", params={"timeout": "0"}, headers=bob.auth)
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response("old_sync", "GET", "/events", 200, body)
    assert body["chunk"] == []
    event_id = await send(client, alice, room_id, "streamed")
    resp = await client.get(f"{V3}/events", params={"timeout": "0", "from": body["end"]},
                            headers=bob.auth)
    later = await resp.json()
    assert resp.status == 200, later
    spec.check_response("old_sync", "GET", "/events", 200, later)
    assert later["start"] == body["end"]
    assert [(e["type"], e.get("event_id"), e.get("room_id")) for e in later["chunk"]] == [
        ("m.room.message", event_id, room_id)]
    resp = await client.get(f"{V3}/events", params={"from": "nonsense"}, headers=bob.auth)
    assert resp.status == 400


async def test_event_stream_limit(client: TestClient, register: Register,
                                  create_room: CreateRoom) -> None:
    """``limit`` cuts the stream short without skipping anything; bad values are a 400."""
    alice = await register("alice")
    room_id = await create_room(alice)
    resp = await client.get(f"{V3}/events", params={"timeout": "0"}, headers=alice.auth)
    token = (await resp.json())["end"]
    sent = [await send(client, alice, room_id, f"m{i}") for i in range(5)]
    seen: list[str] = []
    for _ in range(3):
        resp = await client.get(f"{V3}/events", params={"from": token, "limit": "2"},
                                headers=alice.auth)
        body = await resp.json()
        assert resp.status == 200 and len(body["chunk"]) <= 2, body
        seen += [e["event_id"] for e in body["chunk"]]
        token = body["end"]
    assert seen == sent
    for bad in ("hello", "-2", "0"):
        resp = await client.get(f"{V3}/events", params={"limit": bad}, headers=alice.auth)
        assert resp.status == 400
