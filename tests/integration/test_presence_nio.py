"""Presence end to end: two matrix-nio clients and edgehs as a process.

nio sets presence with ``AsyncClient.set_presence`` (PUT /presence/{userId}/status), reads it
with ``get_presence`` and receives others' changes in /sync (``SyncResponse.presence_events``,
``set_presence`` on its sync). https://spec.matrix.org/v1.19/client-server-api/#presence
"""

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import nio
import pytest

pytestmark = pytest.mark.integration

NioUser = Callable[[str], Awaitable[nio.AsyncClient]]


async def sync_ok(client: nio.AsyncClient, timeout: int = 0,
                  set_presence: str | None = None) -> nio.SyncResponse:
    resp = await client.sync(timeout=timeout, set_presence=set_presence)
    assert isinstance(resp, nio.SyncResponse), f"sync failed: {resp}"
    return resp


def seen(resp: nio.SyncResponse) -> dict[str, nio.PresenceEvent]:
    return {e.user_id: e for e in resp.presence_events}


async def shared_room(alice: nio.AsyncClient, bob: nio.AsyncClient) -> str:
    created = await alice.room_create(name="Home", preset=nio.RoomPreset.public_chat)
    assert isinstance(created, nio.RoomCreateResponse), created
    joined = await bob.join(created.room_id)
    assert isinstance(joined, nio.JoinResponse), joined
    return str(created.room_id)


async def test_two_nio_clients_see_each_others_presence(nio_user: NioUser) -> None:
    alice = await nio_user("alice")
    bob = await nio_user("bob")
    await shared_room(alice, bob)
    # Both come online by syncing; each sees the other (and itself).
    await sync_ok(alice)
    first = seen(await sync_ok(bob))
    assert first[alice.user_id].presence == "online"
    assert first[alice.user_id].currently_active is True
    assert first[bob.user_id].presence == "online"
    await sync_ok(alice)

    # alice sets a status; bob's long-poll wakes with it.
    set_resp = await alice.set_presence("unavailable", "walking the dog")
    assert isinstance(set_resp, nio.PresenceSetResponse), set_resp
    got = seen(await sync_ok(bob, timeout=10000))
    assert got[alice.user_id].presence == "unavailable"
    assert got[alice.user_id].status_msg == "walking the dog"

    # And back: bob's explicit change reaches alice.
    set_resp = await bob.set_presence("online", "home")
    assert isinstance(set_resp, nio.PresenceSetResponse), set_resp
    got = seen(await sync_ok(alice, timeout=10000, set_presence="offline"))
    assert got[bob.user_id].presence == "online" and got[bob.user_id].status_msg == "home"

    # GET through nio.
    get_resp = await bob.get_presence(alice.user_id)
    assert isinstance(get_resp, nio.PresenceGetResponse), get_resp
    assert get_resp.presence == "unavailable" and get_resp.status_msg == "walking the dog"


async def test_presence_errors_through_nio(nio_user: NioUser,
                                           http: aiohttp.ClientSession) -> None:
    alice = await nio_user("alice")
    carol = await nio_user("carol")  # shares no room with alice
    resp = await carol.get_presence(alice.user_id)
    assert isinstance(resp, nio.PresenceGetError) and resp.status_code == "M_FORBIDDEN", resp
    resp = await carol.get_presence("@nobody:test.local")
    assert isinstance(resp, nio.PresenceGetError) and resp.status_code == "M_NOT_FOUND", resp
    bad = await alice.set_presence("away")
    assert isinstance(bad, nio.PresenceSetError) and bad.status_code == "M_INVALID_PARAM", bad
    auth = {"Authorization": f"Bearer {carol.access_token}"}
    async with http.put(f"/_matrix/client/v3/presence/{alice.user_id}/status",
                        json={"presence": "online"}, headers=auth) as put:
        assert put.status == 403 and (await put.json())["errcode"] == "M_FORBIDDEN"


async def test_status_message_survives_restart(nio_user: NioUser, server: Any) -> None:
    """Only explicit changes are persisted: the status message is back after a restart."""
    alice = await nio_user("alice")
    bob = await nio_user("bob")
    await shared_room(alice, bob)
    assert isinstance(await alice.set_presence("unavailable", "on holiday"),
                      nio.PresenceSetResponse)
    await server.restart()
    got = await bob.get_presence(alice.user_id)
    assert isinstance(got, nio.PresenceGetResponse), got
    assert got.status_msg == "on holiday"
    first = seen(await sync_ok(bob))
    assert first[alice.user_id].status_msg == "on holiday"
