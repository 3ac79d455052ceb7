"""Deactivation with ``erase``: users who could not see the account's events before the
erasure are served redacted copies; those who could still see them as they were.

https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3accountdeactivate
"""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User, get_sync

from edgehs.api.keys import HS_KEY

BODY = {"msgtype": "m.text", "body": "body1"}


async def _join(client: TestClient, user: User, room_id: str) -> None:
    resp = await client.post(f"{V3}/join/{room_id}", json={}, headers=user.auth)
    assert resp.status == 200, await resp.text()


async def _seen(client: TestClient, user: User, room_id: str, event_id: str,
                spec: MatrixSpec) -> list[dict[str, Any]]:
    """The event's content as /event, /messages, /context and /sync serve it to ``user``."""
    out = []
    resp = await client.get(f"{V3}/rooms/{room_id}/event/{event_id}", headers=user.auth)
    assert resp.status == 200, await resp.text()
    out.append((await resp.json())["content"])
    resp = await client.get(f"{V3}/rooms/{room_id}/messages", params={"dir": "b"},
                            headers=user.auth)
    body = await resp.json()
    spec.check_response("message_pagination", "GET", "/rooms/{roomId}/messages", 200, body)
    out += [e["content"] for e in body["chunk"] if e["event_id"] == event_id]
    resp = await client.get(f"{V3}/rooms/{room_id}/context/{event_id}", headers=user.auth)
    out.append((await resp.json())["event"]["content"])
    sync = await get_sync(client, user)
    out += [e["content"] for e in sync["rooms"]["join"][room_id]["timeline"]["events"]
            if e["event_id"] == event_id]
    assert len(out) == 4, out
    return out


@pytest.mark.parametrize("erase", [True, False])
async def test_erased_sender_hidden_from_later_joiners(
    client: TestClient, register: Any, create_room: Any, spec: MatrixSpec, erase: bool
) -> None:
    alice, bob, carol, dave = [await register(n) for n in ("alice", "bob", "carol", "dave")]
    room_id = await create_room(alice, preset="public_chat", name="Hall")
    await _join(client, bob, room_id)
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/t1", json=BODY,
                            headers=alice.auth)
    event_id = (await resp.json())["event_id"]
    await _join(client, carol, room_id)  # after the message, before the erasure: saw it
    resp = await client.post(f"{V3}/account/deactivate", json={
        "erase": erase, "auth": {"type": "m.login.password", "password": "secret-pw",
                                 "identifier": {"type": "m.id.user", "user": alice.user_id}}},
        headers=alice.auth)
    assert resp.status == 200, await resp.text()
    await _join(client, dave, room_id)
    for user in (bob, carol):
        assert await _seen(client, user, room_id, event_id, spec) == [BODY] * 4
    assert await _seen(client, dave, room_id, event_id, spec) == ([{}] if erase else [BODY]) * 4
    # The room's name, set by alice, is redacted as well for dave.
    resp = await client.get(f"{V3}/rooms/{room_id}/state/m.room.name/", headers=dave.auth)
    assert await resp.json() == ({} if erase else {"name": "Hall"})
    # The erasure is stored: a restarted server (an empty cache) still knows it.
    users = client.app[HS_KEY].user_store
    users._erased, users._noted_erased = None, {}
    resp = await client.get(f"{V3}/rooms/{room_id}/event/{event_id}", headers=dave.auth)
    assert (await resp.json())["content"] == ({} if erase else BODY)
