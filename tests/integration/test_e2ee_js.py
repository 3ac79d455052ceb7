"""Real end-to-end encryption between two different client stacks through edgehs: matrix-nio
(python, vodozemac via matrix-nio[e2e]) and matrix-js-sdk in node with its Rust crypto
(@matrix-org/matrix-sdk-crypto-wasm), driven as ``node tests/js/e2ee.mjs``.

Both sides decrypt the other's megolm message; edgehs only ever stores ``m.room.encrypted``.
https://spec.matrix.org/v1.19/client-server-api/#end-to-end-encryption

Needs node and ``npm ci --prefix tests/js`` (``make test`` and ``.ci/run`` do it); outside CI the
test is skipped when either is missing, in CI (CI=true) it fails instead.
"""

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import nio
import pytest
from js_support import node_script, require_js
from test_e2ee_nio import (
    ENCRYPTION,
    PASSWORD,
    MakeClient,
    e2e_user,  # noqa: F401  (fixture)
    raw_event,
    receive,
    send_encrypted,
    tick,
)

pytestmark = pytest.mark.integration

async def test_nio_and_js_sdk_decrypt_each_other(e2e_user: MakeClient,  # noqa: F811
                                                 http: aiohttp.ClientSession,
                                                 server: Any, tmp_path: Path) -> None:
    require_js()
    alice = await e2e_user("alice")
    registrar = nio.AsyncClient(server.base_url)
    try:
        reg = await registrar.register("carol", PASSWORD, device_name="registration")
        assert isinstance(reg, nio.RegisterResponse), reg
    finally:
        await registrar.close()
    carol = reg.user_id
    created = await alice.room_create(name="Mixed clients", invite=[carol],
                                      initial_state=[ENCRYPTION])
    assert isinstance(created, nio.RoomCreateResponse), created
    room_id = created.room_id
    to_js, to_nio = "hello js-sdk, from nio", "hello nio, from js-sdk's rust crypto"

    async with node_script(tmp_path, "e2ee.mjs", "--base-url", server.base_url, "--user",
                           "carol", "--room", room_id, "--send", to_nio, "--expect", to_js,
                           "--timeout", "150", env={"EDGEHS_PASSWORD": PASSWORD}) as js:
        logged_in = await js.step("logged_in")
        assert logged_in["user_id"] == carol
        joined = await js.step("joined")
        assert joined["encrypted"] is True
        sent = await js.step("sent")

        # nio: decrypt js-sdk's message (the megolm key came as an olm to-device message).
        got = await receive(alice, room_id, sent["event_id"])
        assert isinstance(got, nio.RoomMessageText), f"nio could not decrypt js-sdk: {got}"
        assert got.decrypted and got.body == to_nio
        stored = await raw_event(http, alice, room_id, sent["event_id"])
        assert stored["type"] == "m.room.encrypted", "the server saw js-sdk's plaintext"
        assert stored["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
        assert "hello" not in json.dumps(stored["content"])

        # nio knows the js-sdk device (device_lists + /keys/query) and encrypts to it.
        for _ in range(5):
            if logged_in["device_id"] in alice.device_store[carol]:
                break
            await tick(alice, timeout=1000)
        assert logged_in["device_id"] in alice.device_store[carol], "nio never saw js-sdk's device"
        mine = await send_encrypted(alice, room_id, to_js)
        decrypted = await js.step("decrypted")
        assert decrypted == {"step": "decrypted", "event_id": mine, "sender": alice.user_id,
                             "body": to_js, "wire_type": "m.room.encrypted",
                             "algorithm": "m.megolm.v1.aes-sha2"}
        assert await asyncio.wait_for(js.proc.wait(), 30) == 0
