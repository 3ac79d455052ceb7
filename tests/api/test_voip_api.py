"""GET /voip/turnServer: {} without TURN, time-limited coturn credentials with a secret.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3voipturnserver
"""

import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User, expect, make_config

from edgehs.app import init_app

OP = ("voip", "GET", "/voip/turnServer")
URIS = ["turn:192.168.1.2:3478?transport=udp", "turn:192.168.1.2:3478?transport=tcp"]
Factory = Callable[..., Awaitable[TestClient]]


async def app_with(aiohttp_client: Factory, tmp_path: Path, **config: Any
                   ) -> tuple[TestClient, User]:
    client = await aiohttp_client(init_app(make_config(tmp_path / "data", **config)))
    resp = await client.post(f"{V3}/register", json={
        "username": "alice", "password": "pw", "auth": {"type": "m.login.dummy"}})
    body = await resp.json()
    assert resp.status == 200, body
    return client, User(body["user_id"], body["access_token"], body["device_id"])


async def test_unconfigured_answers_empty(client: TestClient, register: Any,
                                          spec: MatrixSpec) -> None:
    alice = await register("alice")
    resp = await client.get(f"{V3}/voip/turnServer", headers=alice.auth)
    assert resp.status == 200 and await resp.json() == {}
    resp = await client.get(f"{V3}/voip/turnServer")
    spec.check_response(*OP, 401, await expect(resp, 401, "M_MISSING_TOKEN"))
    resp = await client.get(f"{V3}/voip/turnServer", headers={"Authorization": "Bearer nope"})
    await expect(resp, 401, "M_UNKNOWN_TOKEN")


async def test_shared_secret_credentials(aiohttp_client: Factory, tmp_path: Path,
                                         spec: MatrixSpec) -> None:
    client, alice = await app_with(aiohttp_client, tmp_path, turn_uris=URIS,
                                   turn_shared_secret="s3cret", turn_user_lifetime="1h")
    before = int(time.time())
    resp = await client.get(f"{V3}/voip/turnServer", headers=alice.auth)
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response(*OP, 200, body)
    assert body["uris"] == URIS and body["ttl"] == 3600
    expiry, _, user = body["username"].partition(":")
    assert user == alice.user_id and before + 3600 <= int(expiry) <= int(time.time()) + 3600
    digest = hmac.new(b"s3cret", body["username"].encode(), hashlib.sha1).digest()
    assert body["password"] == base64.b64encode(digest).decode()


async def test_static_credentials_and_rate_limit(aiohttp_client: Factory, tmp_path: Path,
                                                 spec: MatrixSpec) -> None:
    client, alice = await app_with(
        aiohttp_client, tmp_path, turn_uris=URIS[:1], turn_username="household",
        turn_password="pw", rate_limits={"enabled": True,
                                         "message": {"per_second": 0.01, "burst_count": 2}})
    for _ in range(2):
        resp = await client.get(f"{V3}/voip/turnServer", headers=alice.auth)
        body = await resp.json()
        assert resp.status == 200, body
        spec.check_response(*OP, 200, body)
        assert body == {"username": "household", "password": "pw", "uris": URIS[:1],
                        "ttl": 86400}
    resp = await client.get(f"{V3}/voip/turnServer", headers=alice.auth)
    err = await expect(resp, 429, "M_LIMIT_EXCEEDED")
    spec.check_response(*OP, 429, err)
