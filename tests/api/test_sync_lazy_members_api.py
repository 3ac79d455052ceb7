"""/sync with lazy-loaded members, in initial, gapless and gappy incremental syncs.

https://spec.matrix.org/v1.19/client-server-api/#lazy-loading-room-members
"""

from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import User
from sync_helpers import join, leave, members, put_state, send, sync

Register = Callable[[str], Awaitable[User]]
CreateRoom = Callable[..., Awaitable[str]]
LAZY = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 10}}}
REDUNDANT = {"room": {"state": {"lazy_load_members": True, "include_redundant_members": True},
                      "timeline": {"limit": 10}}}


async def setup(client: TestClient, register: Register, create_room: CreateRoom,
                n: int) -> tuple[list[User], str]:
    users = [await register(name) for name in ("alice", "bob", "charlie", "dave")[:n]]
    room_id = await create_room(users[0], preset="public_chat")
    await put_state(client, users[0], room_id, "m.room.name", {"name": "A room name"})
    for user in users[1:3]:
        await join(client, user, room_id)
    return users, room_id


async def fill(client: TestClient, user: User, room_id: str, n: int) -> None:
    for i in range(n):
        await send(client, user, room_id, f"filler {i}")


async def test_gapless_incremental_sends_new_senders_once(
        client: TestClient, register: Register, create_room: CreateRoom,
        spec: MatrixSpec) -> None:
    (alice, bob, charlie), room_id = await setup(client, register, create_room, 3)
    await fill(client, bob, room_id, 10)
    first = await sync(client, alice, spec, flt=LAZY)
    assert members(first["rooms"]["join"][room_id]) == {alice.user_id: "join",
                                                        bob.user_id: "join"}
    await send(client, charlie, room_id, "from charlie")
    body = await sync(client, alice, spec, since=first["next_batch"], flt=LAZY)
    room = body["rooms"]["join"][room_id]
    assert [(e["type"], e["state_key"]) for e in room["state"]["events"]] == [
        ("m.room.member", charlie.user_id)]
    await send(client, charlie, room_id, "again")
    await send(client, bob, room_id, "and bob")
    again = await sync(client, alice, spec, since=body["next_batch"], flt=LAZY)
    assert members(again["rooms"]["join"][room_id]) == {}  # both were sent already


async def test_redundant_members_when_asked(client: TestClient, register: Register,
                                            create_room: CreateRoom, spec: MatrixSpec) -> None:
    (alice, bob, charlie), room_id = await setup(client, register, create_room, 3)
    await fill(client, bob, room_id, 10)
    await fill(client, charlie, room_id, 5)
    first = await sync(client, alice, spec, flt=REDUNDANT)
    assert set(members(first["rooms"]["join"][room_id])) == {
        alice.user_id, bob.user_id, charlie.user_id}
    await send(client, bob, room_id)
    await send(client, charlie, room_id)
    body = await sync(client, alice, spec, since=first["next_batch"], flt=REDUNDANT)
    assert set(members(body["rooms"]["join"][room_id])) == {bob.user_id, charlie.user_id}


async def test_gappy_sync_has_speakers_and_changes_from_the_gap(
        client: TestClient, register: Register, create_room: CreateRoom,
        spec: MatrixSpec) -> None:
    (alice, bob, charlie, dave), room_id = await setup(client, register, create_room, 4)
    await fill(client, bob, room_id, 10)
    first = await sync(client, alice, spec, flt=LAZY)
    await join(client, dave, room_id)
    await fill(client, charlie, room_id, 20)
    body = await sync(client, alice, spec, since=first["next_batch"], flt=LAZY)
    room = body["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    # charlie speaks in the timeline, dave joined in the gap without a word.
    assert members(room) == {charlie.user_id: "join", dave.user_id: "join"}
    await leave(client, dave, room_id)
    await fill(client, charlie, room_id, 20)
    again = await sync(client, alice, spec, since=body["next_batch"], flt=LAZY)
    assert members(again["rooms"]["join"][room_id]) == {dave.user_id: "leave"}


async def test_lost_response_is_sent_again(client: TestClient, register: Register,
                                           create_room: CreateRoom, spec: MatrixSpec) -> None:
    """A member event counts as known to the device only once it syncs from the token of the
    response that carried it: a retry from the older token gets it again."""
    (alice, bob, charlie), room_id = await setup(client, register, create_room, 3)
    await fill(client, bob, room_id, 10)
    first = await sync(client, alice, spec, flt=LAZY)
    await send(client, charlie, room_id, "from charlie")
    for _ in range(2):
        body = await sync(client, alice, spec, since=first["next_batch"], flt=LAZY)
        assert members(body["rooms"]["join"][room_id]) == {charlie.user_id: "join"}


async def test_each_device_has_its_own_members(client: TestClient, register: Register,
                                               create_room: CreateRoom, spec: MatrixSpec) -> None:
    (alice, bob, charlie), room_id = await setup(client, register, create_room, 3)
    await fill(client, bob, room_id, 10)
    resp = await client.post("/_matrix/client/v3/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "secret-pw"})
    login = await resp.json()
    assert resp.status == 200, login
    laptop = User(alice.user_id, login["access_token"], login["device_id"])
    phone_first = await sync(client, alice, spec, flt=LAZY)
    laptop_first = await sync(client, laptop, spec, flt=LAZY)
    await send(client, charlie, room_id)
    phone = await sync(client, alice, spec, since=phone_first["next_batch"], flt=LAZY)
    assert charlie.user_id in members(phone["rooms"]["join"][room_id])
    laptop_body = await sync(client, laptop, spec, since=laptop_first["next_batch"], flt=LAZY)
    assert charlie.user_id in members(laptop_body["rooms"]["join"][room_id])


async def test_heroes_members_come_with_lazy_loading(client: TestClient, register: Register,
                                                     create_room: CreateRoom,
                                                     spec: MatrixSpec) -> None:
    """An unnamed room: the heroes' member events come in state, though they said nothing,
    so that the client can name the room; once only."""
    alice, bob, charlie = [await register(n) for n in ("alice", "bob", "charlie")]
    room_id = await create_room(alice, preset="public_chat")
    await join(client, bob, room_id)
    await join(client, charlie, room_id)
    await fill(client, alice, room_id, 10)
    first = await sync(client, alice, spec, flt=LAZY)
    room = first["rooms"]["join"][room_id]
    assert room["summary"]["m.heroes"] == [bob.user_id, charlie.user_id]
    assert set(members(room)) == {alice.user_id, bob.user_id, charlie.user_id}
    dave = await register("dave")
    await join(client, dave, room_id)
    body = await sync(client, alice, spec, since=first["next_batch"], flt=LAZY)
    room = body["rooms"]["join"][room_id]
    assert room["summary"]["m.heroes"] == [bob.user_id, charlie.user_id, dave.user_id]
    assert members(room) == {}  # dave's join is in the timeline; bob and charlie were sent
