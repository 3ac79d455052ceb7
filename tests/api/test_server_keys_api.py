"""GET /_matrix/key/v2/server: this server's signing keys, signed, with old_verify_keys after
a rotation.

https://spec.matrix.org/v1.19/server-server-api/#get_matrixkeyv2server
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json
from spec_schema import MatrixSpec
from unpaddedbase64 import decode_base64

from edgehs.api.keys import HS_KEY
from edgehs.app import init_app
from edgehs.config import Config
from edgehs.errors import MatrixError
from edgehs.homeserver import load_or_create_signing_key
from edgehs.protocol.signing import key_id, verify_key_base64
from edgehs.service.federation.keys import ServerKeys
from edgehs.store.server_keys import OldVerifyKey

KEYS = "/_matrix/key/v2/server"
DAY_MS = 86_400_000


async def get_keys(client: TestClient, spec: MatrixSpec) -> dict[str, Any]:
    resp = await client.get(KEYS)
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response("keys_server", "GET", "/server", 200, body, api="server-server")
    return dict(body)


def check_signed_by(body: dict[str, Any], key_id_: str) -> None:
    """The response verifies with the verify key it publishes under ``key_id_``, and that is
    its only signature."""
    assert list(body["signatures"]) == ["test.local"]
    assert list(body["signatures"]["test.local"]) == [key_id_]
    published = decode_base64(body["verify_keys"][key_id_]["key"])
    verify_signed_json(body, "test.local", decode_verify_key_bytes(key_id_, published))


async def test_server_keys_published_and_signed(client: TestClient, config: Config,
                                                spec: MatrixSpec) -> None:
    before = int(time.time() * 1000)
    body = await get_keys(client, spec)
    after = int(time.time() * 1000)
    key = load_or_create_signing_key(config.signing_key_path)  # the file the server uses
    assert body["server_name"] == "test.local"
    assert body["verify_keys"] == {key_id(key): {"key": verify_key_base64(key)}}
    assert body["old_verify_keys"] == {}
    assert before + DAY_MS <= body["valid_until_ts"] <= after + DAY_MS
    check_signed_by(body, key_id(key))


async def test_validity_period_is_configurable(
    aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config, spec: MatrixSpec,
) -> None:
    hour = 3_600_000
    client = await aiohttp_client(init_app(replace(config, key_validity_period_ms=hour)))
    before = int(time.time() * 1000)
    body = await get_keys(client, spec)
    assert before + hour <= body["valid_until_ts"] <= int(time.time() * 1000) + hour


async def test_rotation_publishes_the_old_key(client: TestClient, spec: MatrixSpec) -> None:
    server = client.app[HS_KEY]
    first = key_id(server.signing_key)
    first_public = verify_key_base64(server.signing_key)
    before = int(time.time() * 1000)
    second = await server.server_keys.rotate()
    third = await server.server_keys.rotate()
    after = int(time.time() * 1000)
    assert len({first, second, third}) == 3
    body = await get_keys(client, spec)
    assert list(body["verify_keys"]) == [third]
    assert set(body["old_verify_keys"]) == {first, second}
    old = body["old_verify_keys"][first]
    assert old["key"] == first_public
    assert before <= old["expired_ts"] <= body["old_verify_keys"][second]["expired_ts"] <= after
    check_signed_by(body, third)


async def test_keys_need_no_auth_and_ignore_junk(client: TestClient, spec: MatrixSpec) -> None:
    resp = await client.get(KEYS + "?minimum_valid_until_ts=junk",
                            headers={"Authorization": "Bearer nonsense"})
    assert resp.status == 200
    resp = await client.post(KEYS, json={})
    assert resp.status in (404, 405)


async def test_current_key_never_listed_as_old(client: TestClient, spec: MatrixSpec) -> None:
    """A rotation that stopped after recording the old key but before replacing the key file
    leaves that key current: it is published as current only."""
    keys = client.app[HS_KEY].server_keys
    current = key_id(keys.signing_key)
    await keys.store.add_old_key(OldVerifyKey(current, verify_key_base64(keys.signing_key), 1))
    body = await get_keys(client, spec)
    assert list(body["verify_keys"]) == [current]
    assert body["old_verify_keys"] == {}
    check_signed_by(body, current)


async def test_rotation_that_cannot_write_changes_nothing(client: TestClient, tmp_path: Path,
                                                          spec: MatrixSpec) -> None:
    """The new key file cannot be written (here: its folder is missing): a MatrixError, the
    current key stays, no key is retired."""
    server = client.app[HS_KEY]
    keys = ServerKeys("test.local", server.signing_key, tmp_path / "missing" / "signing.key",
                      server.server_keys.store, DAY_MS)
    with pytest.raises(MatrixError) as caught:
        await keys.rotate()
    assert caught.value.errcode == "M_UNKNOWN" and "missing" in caught.value.msg
    assert keys.signing_key is server.signing_key
    body = await get_keys(client, spec)
    assert body["old_verify_keys"] == {}
