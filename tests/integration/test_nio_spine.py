"""The spine end to end: edgehs as a process, two matrix-nio clients talking through a room.

Each test starts its own server (see conftest.py) so one missing feature does not hide the rest.
"""

import asyncio
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import nio
import pytest
from PIL import Image

pytestmark = pytest.mark.integration

MIDI = {"note": 71, "velocity": 68, "state": "on", "channel": 1, "midi_ts": 374023441}
ALIAS_NAME = "spine"
ALIAS = f"#{ALIAS_NAME}:test.local"


@dataclass
class Pair:
    alice: nio.AsyncClient
    bob: nio.AsyncClient
    room_id: str


async def sync_ok(client: nio.AsyncClient, **kwargs: Any) -> nio.SyncResponse:
    """One /sync through nio (since = the client's last next_batch, if any)."""
    kwargs.setdefault("timeout", 0)
    resp = await client.sync(**kwargs)
    assert isinstance(resp, nio.SyncResponse), f"sync failed: {resp}"
    return resp


async def sync_until(
    client: nio.AsyncClient, room_id: str,
    done: Callable[[list[nio.Event], list[Any]], bool], *, rounds: int = 6,
) -> tuple[list[nio.Event], list[Any]]:
    """Incremental syncs (each since the previous next_batch, long-polling up to 5 s) until
    ``done(timeline, ephemeral)`` holds for what this room has delivered so far."""
    timeline: list[nio.Event] = []
    ephemeral: list[Any] = []
    for _ in range(rounds):
        before = client.next_batch
        resp = await sync_ok(client, timeout=5000)
        assert before is None or resp.next_batch, "incremental sync returned no next_batch"
        room = resp.rooms.join.get(room_id)
        if room is not None:
            timeline += room.timeline.events
            ephemeral += room.ephemeral
        if done(timeline, ephemeral):
            return timeline, ephemeral
    pytest.fail(f"{client.user_id} never saw what was expected in {room_id}; timeline: "
                f"{[e.source for e in timeline]}; ephemeral: {ephemeral}")


def by_id(events: list[nio.Event], event_id: str) -> nio.Event | None:
    return next((e for e in events if getattr(e, "event_id", None) == event_id), None)


async def send(client: nio.AsyncClient, room_id: str, event_type: str,
               content: dict[str, Any]) -> str:
    resp = await client.room_send(room_id, event_type, content)
    assert isinstance(resp, nio.RoomSendResponse), f"send {event_type} failed: {resp}"
    return str(resp.event_id)


async def text(client: nio.AsyncClient, room_id: str, body: str) -> str:
    return await send(client, room_id, "m.room.message", {"msgtype": "m.text", "body": body})


@pytest.fixture
async def pair(nio_user: Callable[[str], Awaitable[nio.AsyncClient]]) -> Pair:
    """alice creates #spine:test.local, invites bob, bob sees the invite and joins by alias;
    both have synced once, so their next syncs are incremental."""
    alice = await nio_user("alice")
    bob = await nio_user("bob")
    created = await alice.room_create(alias=ALIAS_NAME, name="Spine", topic="first topic")
    assert isinstance(created, nio.RoomCreateResponse), created
    room_id = created.room_id
    invited = await alice.room_invite(room_id, bob.user_id)
    assert isinstance(invited, nio.RoomInviteResponse), invited
    first = await sync_ok(bob)
    assert room_id in first.rooms.invite, f"bob's sync has no invite: {first.rooms}"
    invite_state = first.rooms.invite[room_id].invite_state
    assert any(isinstance(e, nio.InviteMemberEvent) and e.state_key == bob.user_id
               and e.membership == "invite" for e in invite_state), invite_state
    joined = await bob.join(ALIAS)
    assert isinstance(joined, nio.JoinResponse), f"join by alias failed: {joined}"
    assert joined.room_id == room_id
    await sync_ok(alice)
    await sync_ok(bob)
    return Pair(alice, bob, room_id)


async def test_two_users_share_a_room(pair: Pair) -> None:
    """Register, log in, create with alias, invite, join by alias: both see the same room."""
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    rooms = await bob.joined_rooms()
    assert isinstance(rooms, nio.JoinedRoomsResponse), rooms
    assert rooms.rooms == [room_id]
    members = await alice.joined_members(room_id)
    assert isinstance(members, nio.JoinedMembersResponse), members
    assert sorted(m.user_id for m in members.members) == sorted([alice.user_id, bob.user_id])
    room = bob.rooms[room_id]  # nio's own room model, built from bob's syncs
    assert room.name == "Spine"
    assert room.topic == "first topic"
    assert room.canonical_alias == ALIAS
    assert set(room.users) == {alice.user_id, bob.user_id}
    who = await bob.whoami()
    assert isinstance(who, nio.WhoamiResponse), who
    assert who.user_id == bob.user_id and who.device_id == bob.device_id


async def test_text_and_midi_arrive_by_incremental_sync(pair: Pair) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    since = bob.next_batch
    text_id = await text(alice, room_id, "hello bob")
    midi_id = await send(alice, room_id, "org.edgehs.midi", MIDI)
    timeline, _ = await sync_until(
        bob, room_id, lambda t, _e: by_id(t, midi_id) is not None and by_id(t, text_id) is not None
    )
    assert bob.next_batch != since
    ids = [e.event_id for e in timeline]
    assert ids.index(text_id) < ids.index(midi_id), "events out of order"
    got_text = by_id(timeline, text_id)
    assert isinstance(got_text, nio.RoomMessageText), got_text
    assert got_text.body == "hello bob" and got_text.sender == alice.user_id
    got_midi = by_id(timeline, midi_id)
    assert isinstance(got_midi, nio.UnknownEvent), got_midi
    assert got_midi.type == "org.edgehs.midi"
    assert got_midi.source["content"] == MIDI
    assert got_midi.source["sender"] == alice.user_id
    # Nothing is delivered twice: the next incremental sync has no old events.
    again = await sync_ok(bob, timeout=0)
    room = again.rooms.join.get(room_id)
    assert room is None or not room.timeline.events, [e.source for e in room.timeline.events]


async def test_long_poll_wakes_on_send(pair: Pair) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    poll = asyncio.create_task(bob.sync(timeout=25000))
    await asyncio.sleep(0.5)
    assert not poll.done(), f"the long-poll returned early with nothing to say: {poll.result()}"
    started = asyncio.get_running_loop().time()
    event_id = await send(alice, room_id, "org.edgehs.midi", MIDI)
    resp = await asyncio.wait_for(poll, 20)
    waited = asyncio.get_running_loop().time() - started
    assert isinstance(resp, nio.SyncResponse), resp
    assert waited < 15, f"the long-poll was not woken by the send (took {waited:.1f}s)"
    events = resp.rooms.join[room_id].timeline.events
    assert [e.event_id for e in events] == [event_id]


async def test_typing_is_seen_by_the_other_user(pair: Pair) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    typing = await alice.room_typing(room_id, True, timeout=30000)
    assert isinstance(typing, nio.RoomTypingResponse), typing
    await sync_until(
        bob, room_id, lambda _t, eph: any(
            isinstance(e, nio.TypingNoticeEvent) and alice.user_id in e.users for e in eph)
    )
    stopped = await alice.room_typing(room_id, False)
    assert isinstance(stopped, nio.RoomTypingResponse), stopped
    await sync_until(
        bob, room_id, lambda _t, eph: any(
            isinstance(e, nio.TypingNoticeEvent) and e.users == [] for e in eph)
    )
    assert alice.user_id not in bob.rooms[room_id].typing_users


async def test_read_receipt_and_read_markers(pair: Pair) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    first = await text(alice, room_id, "read me")
    second = await text(alice, room_id, "and me")
    await sync_until(bob, room_id, lambda t, _e: by_id(t, second) is not None)
    receipt = await bob.update_receipt_marker(room_id, first)
    assert isinstance(receipt, nio.UpdateReceiptMarkerResponse), receipt

    def has_receipt(event_id: str) -> Callable[[list[nio.Event], list[Any]], bool]:
        return lambda _t, eph: any(
            isinstance(e, nio.ReceiptEvent) and any(
                r.event_id == event_id and r.user_id == bob.user_id and r.receipt_type == "m.read"
                for r in e.receipts)
            for e in eph)

    await sync_until(alice, room_id, has_receipt(first))
    markers = await bob.room_read_markers(room_id, fully_read_event=second, read_event=second)
    assert isinstance(markers, nio.RoomReadMarkersResponse), markers
    await sync_until(alice, room_id, has_receipt(second))
    # m.fully_read is bob's private room account data.
    resp = await sync_ok(bob, timeout=5000)
    room = resp.rooms.join.get(room_id)
    assert room is not None, "bob's sync did not carry his m.fully_read marker"
    fully = [e for e in room.account_data if isinstance(e, nio.FullyReadEvent)]
    assert fully and fully[-1].event_id == second, room.account_data


async def test_topic_change_arrives_as_state(pair: Pair) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    put = await alice.room_put_state(room_id, "m.room.topic", {"topic": "MIDI on Tuesdays"})
    assert isinstance(put, nio.RoomPutStateResponse), put
    timeline, _ = await sync_until(bob, room_id, lambda t, _e: by_id(t, put.event_id) is not None)
    event = by_id(timeline, put.event_id)
    assert isinstance(event, nio.RoomTopicEvent), event
    assert event.topic == "MIDI on Tuesdays" and event.source["state_key"] == ""
    assert bob.rooms[room_id].topic == "MIDI on Tuesdays"
    state = await bob.room_get_state(room_id)
    assert isinstance(state, nio.RoomGetStateResponse), state
    by_type = {(e["type"], e["state_key"]): e for e in state.events}
    assert by_type[("m.room.topic", "")]["content"] == {"topic": "MIDI on Tuesdays"}
    assert ("m.room.create", "") in by_type
    assert by_type[("m.room.member", bob.user_id)]["content"]["membership"] == "join"
    one = await bob.room_get_state_event(room_id, "m.room.topic")
    assert isinstance(one, nio.RoomGetStateEventResponse), one
    assert one.content == {"topic": "MIDI on Tuesdays"}


async def test_messages_paginate_back_to_the_create_event(
    pair: Pair, nio_client: Callable[..., nio.AsyncClient]
) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    sent = [await text(alice, room_id, f"message {i}") for i in range(25)]
    fresh = nio_client(bob.user_id)  # bob again, on the same token, syncing from scratch
    fresh.restore_login(bob.user_id, bob.device_id, bob.access_token)
    resp = await sync_ok(fresh, sync_filter={"room": {"timeline": {"limit": 5}}})
    timeline = resp.rooms.join[room_id].timeline
    assert [e.event_id for e in timeline.events] == sent[-5:]
    assert timeline.limited
    token = timeline.prev_batch
    assert token, "a limited timeline needs a prev_batch"
    seen: list[nio.Event] = []
    for _ in range(30):
        page = await bob.room_messages(room_id, start=token, limit=7)
        assert isinstance(page, nio.RoomMessagesResponse), f"/messages failed: {page}"
        assert len(page.chunk) <= 7
        seen += page.chunk
        if any(isinstance(e, nio.RoomCreateEvent) for e in page.chunk) or not page.end:
            break
        assert page.end != token, "pagination does not advance"
        token = page.end
    types = [e.source["type"] for e in seen]
    assert types[-1] == "m.room.create", f"never reached the create event: {types}"
    ids = [e.event_id for e in seen]
    assert len(ids) == len(set(ids)), "duplicated events across pages"
    older = [e.event_id for e in seen if e.event_id in sent]
    assert older == list(reversed(sent[:-5])), "pages are not the messages before the timeline"
    assert any(t == "m.room.member" for t in types)


async def test_redaction_removes_content_for_bob(
    pair: Pair, nio_client: Callable[..., nio.AsyncClient]
) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    secret = await text(alice, room_id, "my password is hunter2")
    await sync_until(bob, room_id, lambda t, _e: by_id(t, secret) is not None)
    redacted = await alice.room_redact(room_id, secret, reason="oops")
    assert isinstance(redacted, nio.RoomRedactResponse), redacted
    timeline, _ = await sync_until(bob, room_id,
                                   lambda t, _e: by_id(t, redacted.event_id) is not None)
    redaction = by_id(timeline, redacted.event_id)
    assert redaction is not None
    assert redaction.source["type"] == "m.room.redaction"
    assert redaction.source["content"].get("redacts", redaction.source.get("redacts")) == secret
    assert isinstance(redaction, nio.RedactionEvent), (
        f"nio could not parse the redaction (it reads the top-level 'redacts'): "
        f"{redaction.source}")
    assert redaction.redacts == secret and redaction.reason == "oops"
    got = await bob.room_get_event(room_id, secret)
    assert isinstance(got, nio.RoomGetEventResponse), got
    assert isinstance(got.event, nio.RedactedEvent), got.event
    assert got.event.source["content"] == {}
    because = got.event.source["unsigned"]["redacted_because"]
    assert because["event_id"] == redacted.event_id and because["sender"] == alice.user_id
    # A cold start (initial sync) shows the original redacted, too.
    fresh = nio_client(bob.user_id)
    fresh.restore_login(bob.user_id, bob.device_id, bob.access_token)
    cold = await sync_ok(fresh)
    in_sync = by_id(cold.rooms.join[room_id].timeline.events, secret)
    assert isinstance(in_sync, nio.RedactedEvent), in_sync
    assert in_sync.source["content"] == {}
    assert in_sync.source["unsigned"]["redacted_because"]["event_id"] == redacted.event_id
    page = await bob.room_messages(room_id, start=bob.next_batch, limit=5)
    assert isinstance(page, nio.RoomMessagesResponse), page
    original = by_id(page.chunk, secret)
    assert original is not None, [e.source for e in page.chunk]
    assert original.source["content"] == {}
    assert "redacted_because" in original.source["unsigned"]
    assert "hunter2" not in repr(original.source)


async def test_edit_is_delivered(pair: Pair) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    original = await text(alice, room_id, "teh note")
    edit_content = {
        "msgtype": "m.text", "body": "* the note",
        "m.new_content": {"msgtype": "m.text", "body": "the note"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }
    edit = await send(alice, room_id, "m.room.message", edit_content)
    timeline, _ = await sync_until(bob, room_id, lambda t, _e: by_id(t, edit) is not None)
    got = by_id(timeline, edit)
    assert isinstance(got, nio.RoomMessageText), got
    assert got.source["content"] == edit_content
    assert by_id(timeline, original) is not None


async def test_aliases_resolve_to_the_room(pair: Pair, http: aiohttp.ClientSession) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    resolved = await bob.room_resolve_alias(ALIAS)
    assert isinstance(resolved, nio.RoomResolveAliasResponse), resolved
    assert resolved.room_id == room_id and "test.local" in resolved.servers
    extra = "#spine-extra:test.local"
    put = await alice.room_put_alias(extra, room_id)
    assert isinstance(put, nio.RoomPutAliasResponse), put
    again = await bob.room_resolve_alias(extra)
    assert isinstance(again, nio.RoomResolveAliasResponse), again
    assert again.room_id == room_id
    async with http.get(f"/_matrix/client/v3/rooms/{room_id}/aliases",
                        headers={"Authorization": f"Bearer {bob.access_token}"}) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        assert sorted(body["aliases"]) == sorted([ALIAS, extra])
    gone = await alice.room_delete_alias(extra)
    assert isinstance(gone, nio.RoomDeleteAliasResponse), gone
    missing = await bob.room_resolve_alias(extra)
    assert isinstance(missing, nio.RoomResolveAliasError), missing
    assert missing.status_code == "M_NOT_FOUND"


def make_png() -> bytes:
    image = Image.new("RGB", (64, 48), (20, 120, 200))
    for x in range(64):
        image.putpixel((x, x * 48 // 64), (255, 255, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def test_image_upload_and_download(pair: Pair) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    png = make_png()
    uploaded, keys = await alice.upload(io.BytesIO(png), content_type="image/png",
                                        filename="line.png", filesize=len(png))
    assert keys is None
    assert isinstance(uploaded, nio.UploadResponse), f"upload failed: {uploaded}"
    assert uploaded.content_uri.startswith("mxc://test.local/")
    event_id = await send(alice, room_id, "m.room.message", {
        "msgtype": "m.image", "body": "line.png", "url": uploaded.content_uri,
        "info": {"mimetype": "image/png", "size": len(png), "w": 64, "h": 48},
    })
    timeline, _ = await sync_until(bob, room_id, lambda t, _e: by_id(t, event_id) is not None)
    image = by_id(timeline, event_id)
    assert isinstance(image, nio.RoomMessageImage), image
    downloaded = await bob.download(mxc=image.url)
    assert isinstance(downloaded, nio.MemoryDownloadResponse), f"download failed: {downloaded}"
    assert downloaded.body == png
    assert downloaded.content_type.split(";")[0] == "image/png"
    with Image.open(io.BytesIO(downloaded.body)) as back:
        assert back.size == (64, 48)


async def test_profile_displayname(pair: Pair) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    done = await alice.set_displayname("Alice Liddell")
    assert isinstance(done, nio.ProfileSetDisplayNameResponse), done
    name = await bob.get_displayname(alice.user_id)
    assert isinstance(name, nio.ProfileGetDisplayNameResponse), name
    assert name.displayname == "Alice Liddell"
    # The new name reaches the room as alice's member event.
    await sync_until(bob, room_id, lambda t, _e: any(
        isinstance(e, nio.RoomMemberEvent) and e.state_key == alice.user_id
        and e.content.get("displayname") == "Alice Liddell" for e in t))
    assert bob.rooms[room_id].user_name(alice.user_id) == "Alice Liddell"


async def test_leave_and_forget(pair: Pair) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id
    left = await bob.room_leave(room_id)
    assert isinstance(left, nio.RoomLeaveResponse), left
    resp = await sync_ok(bob, timeout=5000)
    assert room_id in resp.rooms.leave, f"the leave is not in bob's sync: {resp.rooms}"
    assert room_id not in resp.rooms.join
    leaves = [e for e in resp.rooms.leave[room_id].timeline.events
              if isinstance(e, nio.RoomMemberEvent) and e.state_key == bob.user_id]
    assert leaves and leaves[-1].membership == "leave"
    await sync_until(alice, room_id, lambda t, _e: any(
        isinstance(e, nio.RoomMemberEvent) and e.state_key == bob.user_id
        and e.membership == "leave" for e in t))
    forgot = await bob.room_forget(room_id)
    assert isinstance(forgot, nio.RoomForgetResponse), forgot
    rooms = await bob.joined_rooms()
    assert isinstance(rooms, nio.JoinedRoomsResponse), rooms
    assert room_id not in rooms.rooms
    # Alice carries on; bob no longer hears about the room.
    await text(alice, room_id, "bob has gone")
    quiet = await sync_ok(bob, timeout=1000)
    assert room_id not in quiet.rooms.join and room_id not in quiet.rooms.leave
