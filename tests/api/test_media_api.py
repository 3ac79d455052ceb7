"""Content repository: upload, download, thumbnails, config, previews.

https://spec.matrix.org/v1.19/client-server-api/#content-repository
"""

import io
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient
from PIL import Image
from spec_schema import MatrixSpec

from edgehs.api.keys import CONFIG_KEY, HS_KEY

UPLOAD = "/_matrix/media/v3/upload"
AUTHED = "/_matrix/client/v1/media"
LEGACY = "/_matrix/media/v3"


def png(size: tuple[int, int] = (400, 200), color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, color).save(out, "PNG")
    return out.getvalue()


async def error(resp: Any, status: int, errcode: str) -> None:
    body = await resp.json()
    assert resp.status == status, body
    assert body["errcode"] == errcode, body


async def upload(client: TestClient, user: Any, data: bytes, content_type: str = "image/png",
                 filename: str | None = None) -> str:
    """Upload; returns "server/mediaId" of the new mxc URI."""
    params = {"filename": filename} if filename is not None else {}
    resp = await client.post(UPLOAD, data=data, params=params,
                             headers={**user.auth, "Content-Type": content_type})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["content_uri"].startswith("mxc://test.local/")
    return str(body["content_uri"]).removeprefix("mxc://")


def media_files(client: TestClient) -> list[Path]:
    root = client.app[CONFIG_KEY].media_store_path
    return [p for p in root.rglob("*") if p.is_file()]


async def test_upload_and_download_byte_identical(client: TestClient, register,
                                                  spec: MatrixSpec) -> None:
    alice = await register("alice")
    data = png()
    resp = await client.post(UPLOAD, data=data, params={"filename": "cat.png"},
                             headers={**alice.auth, "Content-Type": "image/png"})
    body = await resp.json()
    spec.check_response("content-repo", "POST", "/media/v3/upload", resp.status, body)
    mxc = body["content_uri"].removeprefix("mxc://")
    for url, headers in ((f"{AUTHED}/download/{mxc}", alice.auth),
                         (f"{LEGACY}/download/{mxc}", {}),  # deprecated: no auth needed
                         (f"/_matrix/media/r0/download/{mxc}", {})):
        got = await client.get(url, headers=headers)
        assert got.status == 200, url
        assert await got.read() == data
        assert got.headers["Content-Type"] == "image/png"
        assert got.headers["Content-Disposition"] == "inline; filename=cat.png"
        assert got.headers["Content-Security-Policy"].startswith("sandbox;")
        assert got.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
        assert got.headers["Content-Length"] == str(len(data))
    row = await client.app[HS_KEY].db.fetchone(
        "SELECT user_id, content_type, upload_name, size FROM media WHERE media_id = ?",
        (mxc.split("/")[1],))
    assert tuple(row) == (alice.user_id, "image/png", "cat.png", len(data))


async def test_content_disposition_and_type(client: TestClient, register) -> None:
    alice = await register("alice")
    plain = await upload(client, alice, b"hello", "text/plain", "notes.txt")
    resp = await client.get(f"{AUTHED}/download/{plain}", headers=alice.auth)
    assert resp.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert resp.headers["Content-Disposition"] == "inline; filename=notes.txt"
    # Unsafe types are attachments; non-token names use RFC 5987 filename*.
    html = await upload(client, alice, b"<script>alert(1)</script>", "text/html", "pünkt é.html")
    resp = await client.get(f"{AUTHED}/download/{html}", headers=alice.auth)
    assert resp.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename*=utf-8''p%C3%BCnkt%20%C3%A9.html")
    svg = await upload(client, alice, b"<svg/>", "image/svg+xml")
    resp = await client.get(f"{AUTHED}/download/{svg}", headers=alice.auth)
    assert resp.headers["Content-Disposition"] == "attachment"  # no filename given
    # The path's file name overrides the uploaded one.
    resp = await client.get(f"{AUTHED}/download/{plain}/{quote('other name.txt')}",
                            headers=alice.auth)
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == "inline; filename*=utf-8''other%20name.txt"
    # No Content-Type header: application/octet-stream.
    resp = await client.post(UPLOAD, data=b"\x00\x01", headers=alice.auth)
    mxc = (await resp.json())["content_uri"].removeprefix("mxc://")
    resp = await client.get(f"{LEGACY}/download/{mxc}")
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Disposition"] == "attachment"


async def test_same_content_stored_once(client: TestClient, register) -> None:
    alice, bob = await register("alice"), await register("bob")
    data = png(color="blue")
    first = await upload(client, alice, data, filename="a.png")
    second = await upload(client, bob, data, filename="b.png")
    assert first != second
    files = [p for p in media_files(client) if p.parent.name != "tmp"]
    assert len(files) == 1 and files[0].read_bytes() == data
    name = files[0].name
    assert files[0].relative_to(client.app[CONFIG_KEY].media_store_path) == Path(
        name[:2], name[2:4], name)
    resp = await client.get(f"{LEGACY}/download/{second}")
    assert resp.headers["Content-Disposition"] == "inline; filename=b.png"


async def test_thumbnails(client: TestClient, register) -> None:
    alice = await register("alice")
    mxc = await upload(client, alice, png((400, 200)))
    url = f"{AUTHED}/thumbnail/{mxc}"
    resp = await client.get(url, params={"width": "100", "height": "100", "method": "scale"},
                            headers=alice.auth)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Content-Disposition"] == "inline; filename=thumbnail.png"
    assert Image.open(io.BytesIO(await resp.read())).size == (100, 50)  # aspect kept
    resp = await client.get(url, params={"width": "64", "height": "64", "method": "crop",
                                         "animated": "true"}, headers=alice.auth)
    assert Image.open(io.BytesIO(await resp.read())).size == (64, 64)
    # Asked again (also on the deprecated path): served from the cache.
    resp = await client.get(f"{LEGACY}/thumbnail/{mxc}",
                            params={"width": "64", "height": "64", "method": "crop"})
    assert Image.open(io.BytesIO(await resp.read())).size == (64, 64)
    count = await client.app[HS_KEY].db.fetchval("SELECT COUNT(*) FROM media_thumbnails")
    assert count == 2
    # Larger than the image: never upscaled, the original comes back.
    resp = await client.get(url, params={"width": "800", "height": "600"}, headers=alice.auth)
    assert await resp.read() == png((400, 200))


async def test_thumbnail_bad_input(client: TestClient, register) -> None:
    alice = await register("alice")
    mxc = await upload(client, alice, png())
    url = f"{AUTHED}/thumbnail/{mxc}"
    cases = [
        ({"height": "32"}, 400, "M_MISSING_PARAM"),
        ({"width": "32"}, 400, "M_MISSING_PARAM"),
        ({"width": "abc", "height": "32"}, 400, "M_INVALID_PARAM"),
        ({"width": "-5", "height": "32"}, 400, "M_INVALID_PARAM"),
        ({"width": "0", "height": "32"}, 400, "M_INVALID_PARAM"),
        ({"width": "32", "height": "32", "method": "zoom"}, 400, "M_INVALID_PARAM"),
        ({"width": "32", "height": "32", "animated": "maybe"}, 400, "M_INVALID_PARAM"),
        ({"width": "32", "height": "32", "timeout_ms": "soon"}, 400, "M_INVALID_PARAM"),
    ]
    for params, status, errcode in cases:
        await error(await client.get(url, params=params, headers=alice.auth), status, errcode)
    ok = {"width": "32", "height": "32"}
    text = await upload(client, alice, b"just text", "text/plain")
    await error(await client.get(f"{AUTHED}/thumbnail/{text}", params=ok, headers=alice.auth),
                400, "M_UNKNOWN")
    # Claims to be an image but is not one.
    fake = await upload(client, alice, b"not a png at all", "image/png")
    await error(await client.get(f"{AUTHED}/thumbnail/{fake}", params=ok, headers=alice.auth),
                400, "M_UNKNOWN")
    await error(await client.get(f"{AUTHED}/thumbnail/test.local/nope", params=ok,
                                 headers=alice.auth), 404, "M_NOT_FOUND")


async def test_unknown_and_remote_media(client: TestClient, register) -> None:
    alice = await register("alice")
    for path in ("test.local/doesNotExist", "test.local/bad.id", "other.example/abcdef"):
        await error(await client.get(f"{AUTHED}/download/{path}", headers=alice.auth),
                    404, "M_NOT_FOUND")
        await error(await client.get(f"{LEGACY}/download/{path}"), 404, "M_NOT_FOUND")
    resp = await client.get(f"{AUTHED}/download/other.example/abcdef", headers=alice.auth)
    assert "federate" in (await resp.json())["error"]
    await error(await client.get(f"{LEGACY}/download/test.local/x", params={
        "allow_remote": "perhaps"}), 400, "M_INVALID_PARAM")


async def test_missing_auth(client: TestClient, register) -> None:
    alice = await register("alice")
    mxc = await upload(client, alice, png())
    calls = [
        ("GET", f"{AUTHED}/download/{mxc}"),
        ("GET", f"{AUTHED}/download/{mxc}/x.png"),
        ("GET", f"{AUTHED}/thumbnail/{mxc}?width=32&height=32"),
        ("GET", f"{AUTHED}/config"),
        ("GET", f"{AUTHED}/preview_url?url=https://example.org"),
        ("GET", f"{LEGACY}/config"),
        ("POST", UPLOAD),
        ("PUT", f"{LEGACY}/upload/{mxc}"),
        ("POST", "/_matrix/media/v1/create"),
    ]
    for method, url in calls:
        await error(await client.request(method, url, data=b"x"), 401, "M_MISSING_TOKEN")
    await error(await client.get(f"{AUTHED}/config", headers={"Authorization": "Bearer nope"}),
                401, "M_UNKNOWN_TOKEN")


async def test_config_and_preview(client: TestClient, register, spec: MatrixSpec) -> None:
    alice = await register("alice")
    limit = client.app[CONFIG_KEY].max_upload_size
    resp = await client.get(f"{AUTHED}/config", headers=alice.auth)
    body = await resp.json()
    spec.check_response("authed-content-repo", "GET", "/media/config", resp.status, body)
    assert body == {"m.upload.size": limit}
    resp = await client.get(f"{LEGACY}/config", headers=alice.auth)
    assert await resp.json() == {"m.upload.size": limit}
    for prefix in (f"{AUTHED}", LEGACY):
        await error(await client.get(f"{prefix}/preview_url", params={"url": "https://a.b"},
                                     headers=alice.auth), 403, "M_FORBIDDEN")
        await error(await client.get(f"{prefix}/preview_url", headers=alice.auth),
                    400, "M_MISSING_PARAM")
        await error(await client.get(f"{prefix}/preview_url", params={
            "url": "https://a.b", "ts": "yesterday"}, headers=alice.auth), 400, "M_INVALID_PARAM")


async def test_upload_bad_input(client: TestClient, register) -> None:
    alice = await register("alice")
    await error(await client.post(UPLOAD, data=b"x", headers={
        **alice.auth, "Content-Type": "not a media type"}), 400, "M_INVALID_PARAM")
    await error(await client.post(UPLOAD, data=b"x", params={"filename": "a\nb"},
                                  headers=alice.auth), 400, "M_INVALID_PARAM")
    await error(await client.post(UPLOAD, data=b"x", params={"filename": "a" * 300},
                                  headers=alice.auth), 400, "M_INVALID_PARAM")
    count = await client.app[HS_KEY].db.fetchval("SELECT COUNT(*) FROM media")
    assert count == 0
