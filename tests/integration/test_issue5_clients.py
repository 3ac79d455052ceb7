"""matrix-nio's own calls for the parts of issue 5 the other nio tests leave out, against edgehs
as a process:

- device management with user-interactive auth (``delete_devices``: a 401 with the password
  flow, then the deletion) and what it does to the other household member's /sync:
  ``device_lists.changed``, later ``device_lists.left`` once no room is shared;
- notification counts in /sync (``unread_notifications`` with the highlight count of a
  mention, per thread in ``unread_thread_notifications`` when the filter asks for them) and
  their reset by thread-aware read receipts (nio sends ``thread_id``);
- a thread read back through nio's relations call.

https://spec.matrix.org/v1.19/client-server-api/#device-management
https://spec.matrix.org/v1.19/client-server-api/#receiving-notifications
https://spec.matrix.org/v1.19/client-server-api/#threaded-read-receipts
"""

from collections.abc import Awaitable, Callable
from typing import Any

import nio
import pytest

pytestmark = pytest.mark.integration

NioUser = Callable[[str], Awaitable[nio.AsyncClient]]
PASSWORD = "correct horse battery staple"  # the integration fixtures' password
THREAD_FILTER = {"room": {"timeline": {"limit": 10, "unread_thread_notifications": True}}}


async def sync_ok(client: nio.AsyncClient, **kwargs: Any) -> nio.SyncResponse:
    kwargs.setdefault("timeout", 0)
    resp = await client.sync(**kwargs)
    assert isinstance(resp, nio.SyncResponse), f"sync failed: {resp}"
    return resp


async def sent(resp: Any) -> str:
    assert isinstance(resp, nio.RoomSendResponse), resp
    return str(resp.event_id)


async def shared_room(alice: nio.AsyncClient, bob: nio.AsyncClient) -> str:
    created = await alice.room_create(name="Hall", invite=[bob.user_id])
    assert isinstance(created, nio.RoomCreateResponse), created
    joined = await bob.join(created.room_id)
    assert isinstance(joined, nio.JoinResponse), joined
    return str(created.room_id)


async def test_nio_delete_devices_and_device_list_changes(
        nio_user: NioUser, nio_client: Callable[..., nio.AsyncClient]) -> None:
    alice, bob = await nio_user("alice"), await nio_user("bob")
    room_id = await shared_room(alice, bob)
    since = (await sync_ok(alice)).next_batch
    phone = nio_client(bob.user_id)
    login = await phone.login(PASSWORD, device_name="bob's phone")
    assert isinstance(login, nio.LoginResponse), login
    listed = await bob.devices()
    assert isinstance(listed, nio.DevicesResponse), listed
    before = {d.id for d in listed.devices}  # registration's device, bob's, the phone
    assert {bob.device_id, phone.device_id} <= before
    assert all(d.last_seen_ip == "127.0.0.1" for d in listed.devices if d.id == phone.device_id)

    # (A new device is a device list change once it uploads keys: test_e2ee_nio.py.)
    since = (await sync_ok(alice, since=since)).next_batch

    # Deleting it: first the user-interactive auth challenge, then the deletion.
    challenge = await bob.delete_devices([phone.device_id])
    assert isinstance(challenge, nio.DeleteDevicesAuthResponse), challenge
    assert ["m.login.password"] in [f["stages"] for f in challenge.flows]
    done = await bob.delete_devices([phone.device_id], auth={
        "type": "m.login.password", "session": challenge.session, "password": PASSWORD,
        "identifier": {"type": "m.id.user", "user": bob.user_id}})
    assert isinstance(done, nio.DeleteDevicesResponse), done
    listed = await bob.devices()
    assert isinstance(listed, nio.DevicesResponse), listed
    assert {d.id for d in listed.devices} == before - {phone.device_id}
    dead = await phone.whoami()
    assert isinstance(dead, nio.WhoamiError) and dead.status_code == "M_UNKNOWN_TOKEN", dead
    changed = await sync_ok(alice, since=since)
    assert bob.user_id in changed.device_list.changed
    since = changed.next_batch

    # The session was bound to deleting the phone: it cannot delete another device.
    reused = await bob.delete_devices([bob.device_id], auth={
        "type": "m.login.password", "session": challenge.session, "password": PASSWORD,
        "identifier": {"type": "m.id.user", "user": bob.user_id}})
    assert isinstance(reused, nio.DeleteDevicesError), reused
    assert reused.status_code == "M_FORBIDDEN", reused

    # Bad input: a wrong password is another 401 challenge (nio keeps no errcode for it).
    second = await bob.delete_devices([bob.device_id])
    assert isinstance(second, nio.DeleteDevicesAuthResponse), second
    wrong = await bob.delete_devices([bob.device_id], auth={
        "type": "m.login.password", "session": second.session, "password": "wrong",
        "identifier": {"type": "m.id.user", "user": bob.user_id}})
    assert isinstance(wrong, nio.DeleteDevicesAuthResponse), wrong
    assert wrong.transport_response is not None and wrong.transport_response.status == 401

    # Once bob leaves the only room they share, alice stops tracking him: device_lists.left.
    left = await bob.room_leave(room_id)
    assert isinstance(left, nio.RoomLeaveResponse), left
    after = await sync_ok(alice, since=since)
    assert bob.user_id in after.device_list.left


async def test_nio_notification_counts_and_thread_receipts(nio_user: NioUser) -> None:
    alice, bob = await nio_user("alice"), await nio_user("bob")
    room_id = await shared_room(alice, bob)
    root = await sent(await alice.room_send(room_id, "m.room.message",
                                            {"msgtype": "m.text", "body": "shopping list?"}))
    since = (await sync_ok(alice, sync_filter=THREAD_FILTER)).next_batch
    # bob: one plain message, one mention of alice (a highlight), one reply in the thread.
    await sent(await bob.room_send(room_id, "m.room.message",
                                   {"msgtype": "m.text", "body": "milk"}))
    mention = await sent(await bob.room_send(room_id, "m.room.message", {
        "msgtype": "m.text", "body": "alice: eggs?", "m.mentions": {"user_ids": [alice.user_id]}}))
    reply = await sent(await bob.room_send(room_id, "m.room.message", {
        "msgtype": "m.text", "body": "and bread",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root}}))
    got = await sync_ok(alice, since=since, sync_filter=THREAD_FILTER)
    room = got.rooms.join[room_id]
    assert room.unread_notifications.notification_count == 2
    assert room.unread_notifications.highlight_count == 1
    assert room.unread_thread_notifications[root].notification_count == 1
    assert room.unread_thread_notifications[root].highlight_count == 0

    # A receipt on the main timeline (nio's default thread_id "main") clears the main counts
    # and leaves the thread's; a receipt in the thread clears that one.
    receipt = await alice.update_receipt_marker(room_id, mention)
    assert isinstance(receipt, nio.UpdateReceiptMarkerResponse), receipt
    got = await sync_ok(alice, since=got.next_batch, sync_filter=THREAD_FILTER)
    room = got.rooms.join[room_id]
    assert (room.unread_notifications.notification_count,
            room.unread_notifications.highlight_count) == (0, 0)
    assert room.unread_thread_notifications[root].notification_count == 1
    receipt = await alice.update_receipt_marker(room_id, reply, thread_id=root)
    assert isinstance(receipt, nio.UpdateReceiptMarkerResponse), receipt
    got = await sync_ok(alice, since=got.next_batch, sync_filter=THREAD_FILTER)
    counts = got.rooms.join[room_id].unread_thread_notifications
    assert root not in counts or counts[root].notification_count == 0

    # The thread, through nio's relations call; a receipt on an unknown thread is rejected.
    in_thread = [e.event_id async for e in alice.room_get_event_relations(
        room_id, root, rel_type=nio.api.RelationshipType.thread)]
    assert in_thread == [reply]
    bad = await alice.update_receipt_marker(room_id, reply, thread_id="not-an-event-id")
    assert isinstance(bad, nio.UpdateReceiptMarkerError), bad
    assert bad.status_code == "M_INVALID_PARAM", bad
