"""Restarts: a clean SIGTERM and a hard SIGKILL, then everything is still there.

The same data dir and port are reused; clients keep their access tokens and sync tokens across
the restart, as a phone would.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import nio
import pytest

pytestmark = pytest.mark.integration

MIDI = {"note": 71, "velocity": 68, "state": "on", "channel": 1, "midi_ts": 374023441}
BIG_TIMELINE = {"room": {"timeline": {"limit": 200}}}

NioUser = Callable[[str], Awaitable[nio.AsyncClient]]
NioFactory = Callable[..., nio.AsyncClient]


async def sync_ok(client: nio.AsyncClient, **kwargs: Any) -> nio.SyncResponse:
    kwargs.setdefault("timeout", 0)
    resp = await client.sync(**kwargs)
    assert isinstance(resp, nio.SyncResponse), f"sync failed: {resp}"
    return resp


async def send(client: nio.AsyncClient, room_id: str, event_type: str,
               content: dict[str, Any]) -> str:
    resp = await client.room_send(room_id, event_type, content)
    assert isinstance(resp, nio.RoomSendResponse), f"send {event_type} failed: {resp}"
    return str(resp.event_id)


async def text(client: nio.AsyncClient, room_id: str, body: str) -> str:
    return await send(client, room_id, "m.room.message", {"msgtype": "m.text", "body": body})


def same_session(make: NioFactory, client: nio.AsyncClient) -> nio.AsyncClient:
    """A new nio client on an existing access token, with no sync token: a cold start."""
    fresh = make(client.user_id)
    fresh.restore_login(client.user_id, client.device_id, client.access_token)
    return fresh


async def shared_room(nio_user: NioUser) -> tuple[nio.AsyncClient, nio.AsyncClient, str]:
    alice = await nio_user("alice")
    bob = await nio_user("bob")
    created = await alice.room_create(name="Durable", invite=[bob.user_id])
    assert isinstance(created, nio.RoomCreateResponse), created
    joined = await bob.join(created.room_id)
    assert isinstance(joined, nio.JoinResponse), joined
    return alice, bob, created.room_id


async def page_back_to_create(client: nio.AsyncClient, room_id: str, start: str) -> list[str]:
    """Event ids from /messages, newest first, down to the m.room.create event."""
    ids: list[str] = []
    token = start
    for _ in range(40):
        page = await client.room_messages(room_id, start=token, limit=10)
        assert isinstance(page, nio.RoomMessagesResponse), f"/messages failed: {page}"
        ids += [e.event_id for e in page.chunk]
        if any(e.source["type"] == "m.room.create" for e in page.chunk) or not page.end:
            assert page.chunk and page.chunk[-1].source["type"] == "m.room.create", (
                f"pagination ended before the create event: {[e.source for e in page.chunk]}")
            return ids
        token = page.end
    pytest.fail("/messages never reached the create event")


async def test_clean_restart_keeps_everything(server: Any, nio_user: NioUser,
                                              nio_client: NioFactory) -> None:
    alice, bob, room_id = await shared_room(nio_user)
    sent = [await text(alice, room_id, f"before restart {i}") for i in range(10)]
    sent.append(await send(alice, room_id, "org.edgehs.midi", MIDI))
    topic = await alice.room_put_state(room_id, "m.room.topic", {"topic": "survives"})
    assert isinstance(topic, nio.RoomPutStateResponse), topic
    caught_up = await sync_ok(bob)
    bob_token = caught_up.next_batch
    before = await sync_ok(same_session(nio_client, alice), sync_filter=BIG_TIMELINE)
    ids_before = [e.event_id for e in before.rooms.join[room_id].timeline.events]

    await server.stop()  # SIGTERM; asserts exit code 0
    await server.start()

    # The same access tokens still work.
    who = await alice.whoami()
    assert isinstance(who, nio.WhoamiResponse), f"alice's token died with the restart: {who}"
    assert who.user_id == alice.user_id and who.device_id == alice.device_id
    # A sync from scratch sees every event, in the same order as before the restart.
    cold = await sync_ok(same_session(nio_client, alice), sync_filter=BIG_TIMELINE)
    room = cold.rooms.join[room_id]
    ids_after = [e.event_id for e in room.timeline.events]
    assert ids_after == ids_before
    assert all(event_id in ids_after for event_id in [*sent, topic.event_id])
    midi = next(e for e in room.timeline.events if e.event_id == sent[-1])
    assert midi.source["content"] == MIDI
    assert room.timeline.events[0].source["type"] == "m.room.create"
    state = await bob.room_get_state_event(room_id, "m.room.topic")
    assert isinstance(state, nio.RoomGetStateEventResponse), state
    assert state.content == {"topic": "survives"}
    # Sending continues, and bob's pre-restart sync token picks up exactly the new event.
    after = await text(alice, room_id, "after restart")
    resp = await sync_ok(bob, since=bob_token, timeout=5000)
    assert [e.event_id for e in resp.rooms.join[room_id].timeline.events] == [after]
    # /messages pages from the newest event down to the create event.
    back = await page_back_to_create(bob, room_id, resp.next_batch)
    assert back == list(reversed([*ids_before, after]))

    await server.stop()


async def test_old_sync_token_long_polls_after_restart(server: Any, nio_user: NioUser) -> None:
    """A long-poll with a pre-restart since-token waits, then is woken by a new event."""
    alice, bob, room_id = await shared_room(nio_user)
    await text(alice, room_id, "before")
    token = (await sync_ok(bob)).next_batch

    await server.restart()

    poll = asyncio.create_task(bob.sync(since=token, timeout=20000))
    await asyncio.sleep(0.5)
    assert not poll.done(), f"the long-poll returned at once: {poll.result()}"
    event_id = await text(alice, room_id, "after")
    resp = await asyncio.wait_for(poll, 25)
    assert isinstance(resp, nio.SyncResponse), resp
    assert [e.event_id for e in resp.rooms.join[room_id].timeline.events] == [event_id]

    await server.stop()


async def test_typing_reaches_a_pre_restart_sync_token(server: Any, nio_user: NioUser) -> None:
    """Typing lives in memory with its own counter in the sync token; a client whose token
    carries a counter from before the restart must still see typing started after it."""
    alice, bob, room_id = await shared_room(nio_user)
    await sync_ok(bob)
    for _ in range(3):  # move the typing counter on, as a chatty room would have
        typing = await alice.room_typing(room_id, True, timeout=30000)
        assert isinstance(typing, nio.RoomTypingResponse), typing
        stopped = await alice.room_typing(room_id, False)
        assert isinstance(stopped, nio.RoomTypingResponse), stopped
        await sync_ok(bob, timeout=2000)
    token = bob.next_batch

    await server.restart()

    typing = await alice.room_typing(room_id, True, timeout=30000)
    assert isinstance(typing, nio.RoomTypingResponse), typing
    seen = await sync_ok(bob, since=token, timeout=5000)
    room = seen.rooms.join.get(room_id)
    assert room is not None and any(
        isinstance(e, nio.TypingNoticeEvent) and alice.user_id in e.users
        for e in room.ephemeral), (
        f"typing after the restart is not delivered to since={token} "
        f"(next_batch={seen.next_batch}): {room and room.ephemeral}")

    await server.stop()


async def test_sigkill_right_after_send_is_durable(server: Any, nio_user: NioUser,
                                                   nio_client: NioFactory) -> None:
    alice, bob, room_id = await shared_room(nio_user)
    await text(alice, room_id, "warm-up")
    # Several sends in flight at once (group commit), then the kill right after the last 200.
    burst = await asyncio.gather(*(text(alice, room_id, f"burst {i}") for i in range(5)))
    last = await send(alice, room_id, "org.edgehs.midi", MIDI)
    await server.kill()

    await server.start()

    got = await bob.room_get_event(room_id, last)
    assert isinstance(got, nio.RoomGetEventResponse), f"the acknowledged event is gone: {got}"
    assert got.event.source["content"] == MIDI
    cold = await sync_ok(same_session(nio_client, bob), sync_filter=BIG_TIMELINE)
    ids = [e.event_id for e in cold.rooms.join[room_id].timeline.events]
    for event_id in [*burst, last]:
        assert event_id in ids, f"{event_id} was acknowledged with 200 but lost in the kill"
    assert ids[-1] == last
    # The server keeps working on the recovered database.
    after = await text(alice, room_id, "after the crash")
    resp = await sync_ok(bob, timeout=5000)
    assert after in [e.event_id for e in resp.rooms.join[room_id].timeline.events]
    back = await page_back_to_create(bob, room_id, cold.next_batch)
    assert last in back and after not in back

    await server.stop()


async def test_sigterm_releases_a_held_long_poll(server: Any, nio_user: NioUser) -> None:
    """SIGTERM while a client holds a /sync long-poll: the poll is answered and the server exits
    0 well inside its 10 s shutdown_timeout, instead of waiting the poll out."""
    _, bob, _ = await shared_room(nio_user)
    await sync_ok(bob)
    poll = asyncio.create_task(bob.sync(timeout=30000))
    await asyncio.sleep(0.5)
    assert not poll.done(), f"the long-poll returned at once: {poll.result()}"
    loop = asyncio.get_running_loop()
    started = loop.time()
    await server.stop()  # asserts exit code 0
    took = loop.time() - started
    assert took < 8, f"shutdown waited {took:.1f}s: the long-poll was not released"
    resp = await asyncio.wait_for(poll, 5)
    assert isinstance(resp, nio.SyncResponse), f"the held /sync was not answered: {resp}"
