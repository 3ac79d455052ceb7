"""``edgehs rotate-key``: a new signing key becomes current, the previous one is published in
``old_verify_keys`` of /_matrix/key/v2/server; directly when edgehs is stopped, through the
running server's admin API (POST /_edgehs/admin/v1/rotate_key) when it runs.
"""

import asyncio
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json
from support import V3, free_port, make_config
from unpaddedbase64 import decode_base64

from edgehs.api.keys import HS_KEY
from edgehs.app import init_app
from edgehs.cli import main
from edgehs.config import Config, ConfigError, load_config
from edgehs.homeserver import load_or_create_signing_key
from edgehs.protocol.events import verify_event_signature
from edgehs.protocol.room_versions import get_room_version
from edgehs.protocol.signing import key_id, verify_key_base64

Client = Callable[..., Awaitable[TestClient]]
KEYS = "/_matrix/key/v2/server"


@pytest.fixture
def key_config(tmp_path: Path) -> Config:
    # A port nothing listens on: rotate-key looks there for a running edgehs.
    return make_config(tmp_path / "data", listen=f"127.0.0.1:{free_port()}")


def rotate(capsys: pytest.CaptureFixture[str], config: Config, *extra: str
           ) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["rotate-key", "-c", str(config.data_dir / "edgehs.yaml"), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def printed_key_id(out: str) -> str:
    assert out.startswith("New signing key ed25519:"), out
    return out.split()[3]


def check_signed_by(body: dict[str, object], kid: str) -> None:
    keys = body["verify_keys"]
    assert isinstance(keys, dict) and list(keys) == [kid]
    verify = decode_verify_key_bytes(kid, decode_base64(keys[kid]["key"]))
    verify_signed_json(body, "test.local", verify)


async def test_rotate_key_offline_then_published(
    key_config: Config, aiohttp_client: Client, capsys: pytest.CaptureFixture[str],
) -> None:
    old = load_or_create_signing_key(key_config.signing_key_path)
    before = int(time.time() * 1000)
    code, out, err = await asyncio.to_thread(rotate, capsys, key_config)
    after = int(time.time() * 1000)
    assert code == 0, err
    new_id = printed_key_id(out)
    assert "running" not in out
    # The key file holds the new key, mode 0600, and no temporary file is left behind.
    new = load_or_create_signing_key(key_config.signing_key_path)
    assert key_id(new) == new_id != key_id(old)
    assert stat.S_IMODE(key_config.signing_key_path.stat().st_mode) == 0o600
    assert not list(key_config.data_dir.glob("*.tmp"))

    # A server started afterwards signs with the new key and publishes the old one.
    client = await aiohttp_client(init_app(key_config))
    resp = await client.get(KEYS)
    body = await resp.json()
    assert resp.status == 200, body
    check_signed_by(body, new_id)
    assert list(body["old_verify_keys"]) == [key_id(old)]
    entry = body["old_verify_keys"][key_id(old)]
    assert entry["key"] == verify_key_base64(old)
    assert before <= entry["expired_ts"] <= after


def test_rotate_key_twice_offline_keeps_both_old_keys(
    key_config: Config, capsys: pytest.CaptureFixture[str],
) -> None:
    first = key_id(load_or_create_signing_key(key_config.signing_key_path))
    code, out, _ = rotate(capsys, key_config)
    second = printed_key_id(out)
    code, out, err = rotate(capsys, key_config)
    assert code == 0, err
    third = printed_key_id(out)
    assert len({first, second, third}) == 3


async def test_rotate_key_while_the_server_runs(
    live_server: TestClient, live_config: Config, capsys: pytest.CaptureFixture[str],
) -> None:
    server = live_server.app[HS_KEY]
    old_id = key_id(server.signing_key)
    user = await server.users.register("alice", "pw")
    token, _ = await server.users.login(user, None, None)
    auth = {"Authorization": f"Bearer {token}"}
    resp = await live_server.post(f"{V3}/createRoom", json={}, headers=auth)
    room_id = (await resp.json())["room_id"]

    code, out, err = await asyncio.to_thread(rotate, capsys, live_config)
    assert code == 0, err
    new_id = printed_key_id(out)
    assert "(in use by the running edgehs)" in out
    assert new_id != old_id and key_id(server.signing_key) == new_id
    assert key_id(load_or_create_signing_key(live_config.signing_key_path)) == new_id

    # New events are signed with the new key, at once.
    resp = await live_server.put(f"{V3}/rooms/{room_id}/send/m.room.message/t1",
                                 json={"msgtype": "m.text", "body": "after"}, headers=auth)
    event_id = (await resp.json())["event_id"]
    stored = await server.event_store.get_event(event_id)
    assert stored is not None
    pdu = {k: v for k, v in stored.pdu.items() if k != "event_id"}
    assert list(pdu["signatures"]["test.local"]) == [new_id]
    rv = get_room_version(str(await server.room_store.get_room_version_id(room_id)))
    verify_event_signature(pdu, "test.local", new_id, verify_key_base64(server.signing_key), rv)

    resp = await live_server.get(KEYS)
    body = await resp.json()
    check_signed_by(body, new_id)
    assert list(body["old_verify_keys"]) == [old_id]


async def test_rotate_key_admin_api_refuses_bad_requests(live_server: TestClient,
                                                         live_config: Config) -> None:
    path = "/_edgehs/admin/v1/rotate_key"
    resp = await live_server.post(path, json={})
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_MISSING_TOKEN"
    resp = await live_server.post(path, json={}, headers={"Authorization": "Bearer nope"})
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_UNKNOWN_TOKEN"
    secret = (live_config.data_dir / "admin.secret").read_text().strip()
    auth = {"Authorization": f"Bearer {secret}"}
    before = key_id(live_server.app[HS_KEY].signing_key)
    for body in (b"not json", b"[1]"):
        resp = await live_server.post(path, data=body, headers=auth)
        assert resp.status == 400, await resp.text()
    assert key_id(live_server.app[HS_KEY].signing_key) == before
    resp = await live_server.post(path, headers=auth)
    assert resp.status == 200
    assert (await resp.json())["key_id"] == key_id(live_server.app[HS_KEY].signing_key) != before


def test_key_validity_period_must_be_positive(key_config: Config) -> None:
    path = key_config.data_dir / "edgehs.yaml"
    text = path.read_text()
    for bad in ("0", "-5", "'1d'", "true"):
        path.write_text(text + f"\nkey_validity_period_ms: {bad}\n")
        with pytest.raises(ConfigError, match="key_validity_period_ms"):
            load_config(path)
    path.write_text(text + "\nkey_validity_period_ms: 60000\n")
    assert load_config(path).key_validity_period_ms == 60000
