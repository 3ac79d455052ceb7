"""Server-side key backups end to end, with real megolm and real backup encryption.

matrix-nio 0.26 has no key-backup API (no ``/room_keys`` call anywhere in nio), so nio does
what it can (register, log in, create the room, send and fetch the encrypted event) and the
``/room_keys`` calls are plain HTTP with nio's access tokens. The cryptography is vodozemac's
(the library nio's successor stacks use): a megolm ``GroupSession`` encrypts the message, and
the session key is backed up with ``m.megolm_backup.v1.curve25519-aes-sha2`` (``PkEncryption``).
A second device of the same user that only knows the backup's private key restores the session
from edgehs and decrypts the message.

https://spec.matrix.org/v1.19/client-server-api/#server-side-key-backups
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import nio
import pytest
import vodozemac

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
V3 = "/_matrix/client/v3"


async def call(http: aiohttp.ClientSession, client: nio.AsyncClient, method: str, path: str,
               body: Any = None, status: int = 200, **params: str) -> Any:
    async with http.request(method, V3 + path, json=body, params=params,
                            headers={"Authorization": f"Bearer {client.access_token}"}) as resp:
        data = await resp.json()
        assert resp.status == status, data
        return data


async def test_backup_restores_a_megolm_session(
        nio_user: Callable[[str], Awaitable[nio.AsyncClient]],
        nio_client: Callable[..., nio.AsyncClient], http: aiohttp.ClientSession) -> None:
    alice = await nio_user("alice")
    created = await alice.room_create(name="secret")
    assert isinstance(created, nio.RoomCreateResponse), created
    room_id = created.room_id

    # Device 1: a megolm session; its key exported before the first message (index 0).
    outbound = vodozemac.GroupSession()
    exported = vodozemac.InboundGroupSession(outbound.session_key).export_at(0)
    assert exported is not None
    ciphertext = outbound.encrypt(json.dumps({
        "type": "m.room.message", "room_id": room_id,
        "content": {"msgtype": "m.text", "body": "the wifi password is hunter2"},
    }).encode()).to_base64()
    sent = await alice.room_send(room_id, "m.room.encrypted", {
        "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": ciphertext,
        "session_id": outbound.session_id, "sender_key": "c", "device_id": alice.device_id})
    assert isinstance(sent, nio.RoomSendResponse), sent

    # Device 1 backs the session key up, encrypted to the backup key.
    recovery = vodozemac.PkDecryption()
    version = (await call(http, alice, "POST", "/room_keys/version", {
        "algorithm": ALGORITHM,
        "auth_data": {"public_key": recovery.public_key.to_base64()}}))["version"]
    ephemeral, mac, encrypted = vodozemac.PkEncryption.from_key(recovery.public_key).encrypt(
        json.dumps({"algorithm": "m.megolm.v1.aes-sha2", "sender_key": "c",
                    "session_key": exported.to_base64(), "sender_claimed_keys": {},
                    "forwarding_curve25519_key_chain": []}).encode()).to_base64()
    key_data = {"first_message_index": 0, "forwarded_count": 0, "is_verified": True,
                "session_data": {"ephemeral": ephemeral, "mac": mac, "ciphertext": encrypted}}
    # Session ids are standard base64 and may hold '/': quote it as a client does.
    room_part, session_part = quote(room_id, safe=""), quote(outbound.session_id, safe="")
    session_path = f"/room_keys/keys/{room_part}/{session_part}"
    stored = await call(http, alice, "PUT", session_path, key_data, version=version)
    assert stored["count"] == 1

    # Device 2: a fresh login that knows only the backup's private key.
    laptop = nio_client(alice.user_id)
    login = await laptop.login(PASSWORD, device_name="laptop")
    assert isinstance(login, nio.LoginResponse), login
    current = await call(http, laptop, "GET", "/room_keys/version")
    assert current["version"] == version and current["count"] == 1
    restorer = vodozemac.PkDecryption.from_key(recovery.key)
    assert current["auth_data"]["public_key"] == restorer.public_key.to_base64()
    backup = await call(http, laptop, "GET", "/room_keys/keys", version=version)
    session = backup["rooms"][room_id]["sessions"][outbound.session_id]
    data = session["session_data"]
    plain = json.loads(restorer.decrypt(vodozemac.Message.from_base64(
        data["ciphertext"], data["mac"], data["ephemeral"])))
    inbound = vodozemac.InboundGroupSession.import_session(
        vodozemac.ExportedSessionKey(plain["session_key"]))

    # The laptop reads the room's history with nio and decrypts the message.
    history = await laptop.room_messages(room_id, start="", limit=20)
    assert isinstance(history, nio.RoomMessagesResponse), history
    [event] = [e.source for e in history.chunk if e.source.get("type") == "m.room.encrypted"]
    assert event["content"]["session_id"] == outbound.session_id
    decrypted = inbound.decrypt(vodozemac.MegolmMessage.from_base64(
        event["content"]["ciphertext"]))
    assert json.loads(decrypted.plaintext)["content"]["body"] == "the wifi password is hunter2"

    # A newer backup makes the old one read-only; deleting the new one is final.
    newer = (await call(http, laptop, "POST", "/room_keys/version", {
        "algorithm": ALGORITHM, "auth_data": {"public_key": "other"}}))["version"]
    refused = await call(http, alice, "PUT", f"/room_keys/keys/{quote(room_id, safe='')}/s2",
                         key_data, 403, version=version)
    assert (refused["errcode"], refused["current_version"]) == (
        "M_WRONG_ROOM_KEYS_VERSION", newer)
    await call(http, laptop, "DELETE", f"/room_keys/version/{newer}")
    gone = await call(http, laptop, "GET", f"/room_keys/version/{newer}", status=404)
    assert gone["errcode"] == "M_NOT_FOUND"
    assert (await call(http, alice, "GET", "/room_keys/version"))["version"] == version
