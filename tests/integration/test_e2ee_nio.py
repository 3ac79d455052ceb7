"""Real end-to-end encryption through edgehs: two matrix-nio clients with encryption on
(matrix-nio[e2e], vodozemac) in an encrypted room exchange messages and decrypt them.

What edgehs must get right for this: /keys/upload (device, one-time and fallback keys) and the
one-time key counts in /sync, /keys/query, /keys/claim, /sendToDevice for the olm-encrypted
m.room_key, to-device delivery in /sync, and device_lists.changed.
https://spec.matrix.org/v1.19/client-server-api/#end-to-end-encryption
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import nio
import pytest

pytestmark = pytest.mark.integration

SERVER_NAME = "test.local"
PASSWORD = "correct horse battery staple"
E2E_CONFIG = nio.AsyncClientConfig(
    encryption_enabled=True,
    store_sync_tokens=False,
    max_timeouts=2,
    max_limit_exceeded=0,
    max_timeout_retry_wait_time=1,
    request_timeout=30,
)
ENCRYPTION = {"type": "m.room.encryption", "state_key": "",
              "content": {"algorithm": "m.megolm.v1.aes-sha2"}}

MakeClient = Callable[[str], Awaitable[nio.AsyncClient]]


@pytest.fixture
async def e2e_user(server: Any, tmp_path: Path) -> AsyncIterator[MakeClient]:
    """``await e2e_user("alice")``: registered, logged in, encryption on, keys uploaded."""
    made: list[nio.AsyncClient] = []

    async def make(name: str) -> nio.AsyncClient:
        registrar = nio.AsyncClient(server.base_url, config=E2E_CONFIG)
        made.append(registrar)
        reg = await registrar.register(name, PASSWORD, device_name="registration")
        assert isinstance(reg, nio.RegisterResponse), reg
        store = tmp_path / f"nio-{name}"
        store.mkdir()
        client = nio.AsyncClient(server.base_url, f"@{name}:{SERVER_NAME}",
                                 store_path=str(store), config=E2E_CONFIG)
        made.append(client)
        login = await client.login(PASSWORD, device_name=f"{name}'s encrypted nio")
        assert isinstance(login, nio.LoginResponse), login
        assert client.olm is not None, "nio has no olm machine: matrix-nio[e2e] missing?"
        await tick(client)
        return client

    yield make
    for client in made:
        await client.close()


async def tick(client: nio.AsyncClient, timeout: int = 0) -> nio.SyncResponse:
    """One sync, then what nio's sync_forever does after each: upload keys, query keys."""
    resp = await client.sync(timeout=timeout, full_state=client.next_batch is None)
    assert isinstance(resp, nio.SyncResponse), f"sync failed: {resp}"
    if client.should_upload_keys:
        up = await client.keys_upload()
        assert isinstance(up, nio.KeysUploadResponse), up
    if client.should_query_keys:
        query = await client.keys_query()
        assert isinstance(query, nio.KeysQueryResponse), query
    return resp


async def send_encrypted(client: nio.AsyncClient, room_id: str, body: str) -> str:
    resp = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body},
                                  ignore_unverified_devices=True)
    assert isinstance(resp, nio.RoomSendResponse), f"encrypted send failed: {resp}"
    return str(resp.event_id)


async def receive(client: nio.AsyncClient, room_id: str, event_id: str,
                  rounds: int = 8) -> nio.Event:
    """Sync until the event arrives; return it as nio parsed (and decrypted) it."""
    for _ in range(rounds):
        resp = await tick(client, timeout=3000)
        room = resp.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            if event.event_id == event_id:
                return event
    pytest.fail(f"{client.user_id} never received {event_id}")


async def raw_event(http: aiohttp.ClientSession, client: nio.AsyncClient, room_id: str,
                    event_id: str) -> dict[str, Any]:
    """The event as edgehs stores and serves it, without nio in between."""
    async with http.get(f"/_matrix/client/v3/rooms/{room_id}/event/{event_id}",
                        headers={"Authorization": f"Bearer {client.access_token}"}) as resp:
        assert resp.status == 200
        return dict(await resp.json())


async def test_encrypted_messages_both_ways(e2e_user: MakeClient,
                                            http: aiohttp.ClientSession) -> None:
    alice = await e2e_user("alice")
    bob = await e2e_user("bob")
    created = await alice.room_create(name="Secret", invite=[bob.user_id],
                                      initial_state=[ENCRYPTION])
    assert isinstance(created, nio.RoomCreateResponse), created
    room_id = created.room_id
    await tick(bob)
    joined = await bob.join(room_id)
    assert isinstance(joined, nio.JoinResponse), joined
    await tick(bob)
    await tick(alice)  # sees bob join: device_lists / membership -> queries bob's keys
    await tick(alice)
    assert alice.rooms[room_id].encrypted and bob.rooms[room_id].encrypted
    assert bob.device_id in alice.device_store[bob.user_id], "alice never got bob's device"

    first = await send_encrypted(alice, room_id, "hello bob, this is secret")
    got = await receive(bob, room_id, first)
    assert isinstance(got, nio.RoomMessageText), f"bob could not decrypt: {got}"
    assert got.decrypted and got.body == "hello bob, this is secret"
    stored = await raw_event(http, bob, room_id, first)
    assert stored["type"] == "m.room.encrypted", "the server saw plaintext"
    assert stored["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
    assert "secret" not in str(stored["content"])

    await tick(bob)
    reply = await send_encrypted(bob, room_id, "hi alice, got it")
    got = await receive(alice, room_id, reply)
    assert isinstance(got, nio.RoomMessageText), f"alice could not decrypt: {got}"
    assert got.decrypted and got.body == "hi alice, got it"


async def test_one_time_keys_are_consumed(e2e_user: MakeClient) -> None:
    """bob claims one of alice's one-time keys through nio; alice's next sync reports one
    less (nio uploads more when the count drops), and a second claim gets another key."""
    alice = await e2e_user("alice")
    bob = await e2e_user("bob")
    first = await alice.sync(timeout=0)
    assert isinstance(first, nio.SyncResponse), first
    before = first.device_key_count.signed_curve25519
    assert before, "alice uploaded no one-time keys"
    claims = []
    for _ in range(2):
        claim = await bob.keys_claim({alice.user_id: [alice.device_id]})
        assert isinstance(claim, nio.KeysClaimResponse), claim
        claims.append(claim.one_time_keys[alice.user_id][alice.device_id])
    assert claims[0] != claims[1], "the same one-time key was handed out twice"
    after = await alice.sync(timeout=0)
    assert isinstance(after, nio.SyncResponse), after
    assert after.device_key_count.signed_curve25519 == before - 2
