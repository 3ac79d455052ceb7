"""Content repository: asynchronous uploads (create + PUT) and the upload size limit.

https://spec.matrix.org/v1.19/client-server-api/#post_matrixmediav1create
https://spec.matrix.org/v1.19/client-server-api/#put_matrixmediav3uploadservernamemediaid
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import User, make_config

from edgehs.api.keys import CONFIG_KEY, HS_KEY
from edgehs.app import init_app

UPLOAD = "/_matrix/media/v3/upload"
CREATE = "/_matrix/media/v1/create"
AUTHED = "/_matrix/client/v1/media"
LIMIT = 1024


async def error(resp: Any, status: int, errcode: str) -> None:
    body = await resp.json()
    assert resp.status == status, body
    assert body["errcode"] == errcode, body


async def register_on(client: TestClient, name: str) -> User:
    resp = await client.post("/_matrix/client/v3/register", json={
        "username": name, "password": "secret-pw", "auth": {"type": "m.login.dummy"}})
    body = await resp.json()
    assert resp.status == 200, body
    return User(body["user_id"], body["access_token"], body["device_id"])


@pytest.fixture
async def small(aiohttp_client: Callable[..., Awaitable[TestClient]],
                tmp_path: Path) -> TestClient:
    """An app whose uploads may be at most LIMIT bytes."""
    return await aiohttp_client(init_app(make_config(tmp_path / "small",
                                                     max_upload_size=LIMIT)))


def stored(client: TestClient) -> list[Path]:
    root = client.app[CONFIG_KEY].media_store_path
    return [p for p in root.rglob("*") if p.is_file()]


async def rows(client: TestClient) -> int:
    return int(await client.app[HS_KEY].db.fetchval("SELECT COUNT(*) FROM media"))


async def test_oversize_upload_leaves_nothing(small: TestClient) -> None:
    alice = await register_on(small, "alice")
    await error(await small.post(UPLOAD, data=b"x" * (LIMIT + 1), headers=alice.auth),
                413, "M_TOO_LARGE")

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while streamed
        for _ in range(8):
            yield b"y" * 300

    await error(await small.post(UPLOAD, data=chunked(), headers=alice.auth), 413, "M_TOO_LARGE")
    assert stored(small) == []
    assert await rows(small) == 0
    # Exactly at the limit is fine.
    resp = await small.post(UPLOAD, data=b"z" * LIMIT, headers=alice.auth)
    assert resp.status == 200
    assert len(stored(small)) == 1


async def test_oversize_content_length_refused_unread(small: TestClient) -> None:
    """The 413 arrives although the body is never sent."""
    alice = await register_on(small, "alice")
    assert small.host is not None and small.port is not None
    reader, writer = await asyncio.open_connection(small.host, small.port)
    writer.write(f"POST {UPLOAD} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {alice.token}"
                 f"\r\nContent-Type: image/png\r\nContent-Length: {LIMIT * 1000}\r\n\r\n".encode())
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.split()[1] == b"413"
    length = 0
    while (line := await asyncio.wait_for(reader.readline(), 5)) != b"\r\n":
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    body = await asyncio.wait_for(reader.readexactly(length), 5)
    assert b"M_TOO_LARGE" in body
    writer.close()
    assert stored(small) == []
    assert await rows(small) == 0


async def test_async_create_upload_download(client: TestClient, register,
                                            spec: MatrixSpec) -> None:
    alice = await register("alice")
    resp = await client.post(CREATE, headers=alice.auth)
    body = await resp.json()
    spec.check_response("content-repo", "POST", "/media/v1/create", resp.status, body)
    assert body["unused_expires_at"] > time.time() * 1000
    mxc = body["content_uri"].removeprefix("mxc://")
    resp = await client.put(f"/_matrix/media/v3/upload/{mxc}", data=b"late bytes",
                            params={"filename": "late.txt"},
                            headers={**alice.auth, "Content-Type": "text/plain"})
    assert resp.status == 200
    spec.check_response("content-repo", "PUT", "/media/v3/upload/{serverName}/{mediaId}",
                        resp.status, await resp.json())
    got = await client.get(f"{AUTHED}/download/{mxc}", headers=alice.auth)
    assert await got.read() == b"late bytes"
    assert got.headers["Content-Disposition"] == "inline; filename=late.txt"
    # Once uploaded, it cannot be overwritten.
    await error(await client.put(f"/_matrix/media/v3/upload/{mxc}", data=b"again",
                                 headers=alice.auth), 409, "M_CANNOT_OVERWRITE_MEDIA")


async def test_async_upload_rules(client: TestClient, register) -> None:
    alice, bob = await register("alice"), await register("bob")
    mxc = (await (await client.post(CREATE, json={}, headers=alice.auth)).json())[
        "content_uri"].removeprefix("mxc://")
    await error(await client.put(f"/_matrix/media/v3/upload/{mxc}", data=b"mine",
                                 headers=bob.auth), 403, "M_FORBIDDEN")
    for other in ("test.local/neverCreated", "elsewhere.org/" + mxc.split("/")[1]):
        await error(await client.put(f"/_matrix/media/v3/upload/{other}", data=b"x",
                                     headers=alice.auth), 404, "M_NOT_FOUND")
    await error(await client.post(CREATE, data=b"{nope", headers=alice.auth), 400, "M_NOT_JSON")


async def test_not_yet_uploaded(client: TestClient, register) -> None:
    alice = await register("alice")
    mxc = (await (await client.post(CREATE, headers=alice.auth)).json())[
        "content_uri"].removeprefix("mxc://")
    await error(await client.get(f"{AUTHED}/download/{mxc}", params={"timeout_ms": "50"},
                                 headers=alice.auth), 504, "M_NOT_YET_UPLOADED")
    await error(await client.get(f"{AUTHED}/thumbnail/{mxc}", params={
        "timeout_ms": "0", "width": "32", "height": "32"}, headers=alice.auth),
        504, "M_NOT_YET_UPLOADED")
    # A download that waits is answered as soon as the upload lands.
    waiting = asyncio.create_task(client.get(f"{AUTHED}/download/{mxc}",
                                             params={"timeout_ms": "5000"}, headers=alice.auth))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    resp = await client.put(f"/_matrix/media/v3/upload/{mxc}", data=b"now", headers=alice.auth)
    assert resp.status == 200
    got = await asyncio.wait_for(waiting, 5)
    assert got.status == 200
    assert await got.read() == b"now"


async def test_expired_and_pending_limit(client: TestClient, register) -> None:
    alice = await register("alice")
    uris = []
    for _ in range(5):
        resp = await client.post(CREATE, headers=alice.auth)
        assert resp.status == 200
        uris.append((await resp.json())["content_uri"].removeprefix("mxc://"))
    await error(await client.post(CREATE, headers=alice.auth), 429, "M_LIMIT_EXCEEDED")
    # Let one reservation expire: it is gone, and a new one may be created.
    media_id = uris[0].split("/")[1]

    async def expire(conn: Any) -> None:
        await conn.execute("UPDATE media SET unused_expires_at = 1 WHERE media_id = ?",
                           (media_id,))
    await client.app[HS_KEY].db.write(expire)
    await error(await client.get(f"{AUTHED}/download/{uris[0]}", params={"timeout_ms": "0"},
                                 headers=alice.auth), 404, "M_NOT_FOUND")
    await error(await client.put(f"/_matrix/media/v3/upload/{uris[0]}", data=b"x",
                                 headers=alice.auth), 404, "M_NOT_FOUND")
    resp = await client.post(CREATE, headers=alice.auth)
    assert resp.status == 200


async def test_async_upload_over_limit(small: TestClient) -> None:
    alice = await register_on(small, "alice")
    mxc = (await (await small.post(CREATE, headers=alice.auth)).json())[
        "content_uri"].removeprefix("mxc://")
    await error(await small.put(f"/_matrix/media/v3/upload/{mxc}", data=b"x" * (LIMIT + 1),
                                headers=alice.auth), 413, "M_TOO_LARGE")
    assert stored(small) == []
    # Still pending: the owner may retry with a smaller file.
    resp = await small.put(f"/_matrix/media/v3/upload/{mxc}", data=b"ok", headers=alice.auth)
    assert resp.status == 200
