"""Media, profile, typing, receipts and read markers checked against the spec's own schemas.

Companion of test_schema_conformance.py (which covers versions/well-known/capabilities, and
whose neighbours test_as_acting_api.py / test_as_queries_api.py cover appservice ping and the
third-party lookups). Every 200 and the main error responses are validated with
``spec_schema.check_response``; media downloads and thumbnails also get the response headers
the spec marks ``required`` checked against the header schemas
(https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mediadownloadservernamemediaid).
"""

import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from PIL import Image
from spec_schema import MatrixSpec
from support import V3, User, make_config

from edgehs.config import Config

Register = Callable[[str], Awaitable[User]]
CreateRoom = Callable[..., Awaitable[str]]
LIMIT = 64 * 1024
AUTHED = "/_matrix/client/v1"
MEDIA = "/_matrix"  # content-repo.yaml paths start with /media/v3 or /media/v1


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A small upload limit, so that the 413 of an upload can be provoked cheaply."""
    return make_config(tmp_path / "data", max_upload_size=LIMIT)


@pytest.fixture
def call(client: TestClient, spec: MatrixSpec) -> Callable[..., Awaitable[Any]]:
    """``call(spec_file, METHOD, spec_path, status, params, user=, json=, query=, data=,
    headers=, prefix=, errcode=)``: do the request, assert the status (and errcode), validate
    the JSON body against the spec's schema for that operation and status, return it."""
    async def _call(api_file: str, method: str, path: str, status: int,
                    params: dict[str, str] | None = None, *, user: User | None = None,
                    json: Any = None, query: dict[str, str] | None = None,
                    data: bytes | None = None, headers: dict[str, str] | None = None,
                    prefix: str = V3, errcode: str | None = None) -> Any:
        url = prefix + path.format(**{k: quote(v, safe="") for k, v in (params or {}).items()})
        all_headers = {**(user.auth if user is not None else {}), **(headers or {})}
        resp = await client.request(method, url, json=json, data=data, params=query,
                                    headers=all_headers)
        body = await resp.json()
        assert resp.status == status, (method, url, body)
        if errcode is not None:
            assert body["errcode"] == errcode, body
        spec.check_response(api_file, method, path, resp.status, body)
        return body
    return _call


def required_headers(spec: MatrixSpec, api_file: str, method: str, path: str,
                     status: int) -> dict[str, dict[str, Any]]:
    """The headers the spec marks ``required`` for one response: name -> JSON schema."""
    doc = yaml.safe_load((spec.data / "api" / "client-server" / f"{api_file}.yaml").read_text())

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            node = doc
            for part in ref[2:].split("/"):
                node = node[part]
        return node

    responses = doc["paths"][path][method.lower()]["responses"]
    response = resolve(responses.get(str(status), responses.get(status, {})))
    headers = {name: resolve(h) for name, h in response.get("headers", {}).items()}
    return {name: h["schema"] for name, h in headers.items() if h.get("required")}


def check_headers(spec: MatrixSpec, api_file: str, path: str, resp: Any) -> None:
    required = required_headers(spec, api_file, "GET", path, resp.status)
    assert required, f"the spec gives no required headers for GET {path} {resp.status}"
    for name, schema in required.items():
        assert name in resp.headers, f"GET {path}: required header {name} missing"
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(resp.headers[name])]
        assert not errors, (name, resp.headers[name], errors)


def disposition(resp: Any) -> str:
    kind = resp.headers["Content-Disposition"].split(";")[0].strip()
    assert kind in ("inline", "attachment"), resp.headers["Content-Disposition"]
    return kind


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 80), "green").save(out, "PNG")
    return out.getvalue()


# --- media ----------------------------------------------------------------------------------------


async def test_media_upload_create_config(call: Any, register: Register) -> None:
    alice, bob = await register("alice"), await register("bob")
    repo = "content-repo"
    up = await call(repo, "POST", "/media/v3/upload", 200, user=alice, prefix=MEDIA,
                    data=b"hello", headers={"Content-Type": "text/plain"},
                    query={"filename": "a.txt"})
    assert up["content_uri"].startswith("mxc://test.local/")
    await call(repo, "POST", "/media/v3/upload", 413, user=alice, prefix=MEDIA,
               data=b"x" * (LIMIT + 1), errcode="M_TOO_LARGE")
    await call(repo, "POST", "/media/v3/upload", 401, prefix=MEDIA, data=b"x",
               errcode="M_MISSING_TOKEN")
    created = await call(repo, "POST", "/media/v1/create", 200, user=alice, prefix=MEDIA)
    server, media_id = created["content_uri"].removeprefix("mxc://").split("/")
    put = "/media/v3/upload/{serverName}/{mediaId}"
    target = {"serverName": server, "mediaId": media_id}
    await call(repo, "PUT", put, 403, target, user=bob, prefix=MEDIA, data=b"x",
               errcode="M_FORBIDDEN")
    await call(repo, "PUT", put, 404, {**target, "mediaId": "unknownId"}, user=alice,
               prefix=MEDIA, data=b"x", errcode="M_NOT_FOUND")
    await call(repo, "PUT", put, 413, target, user=alice, prefix=MEDIA,
               data=b"x" * (LIMIT + 1), errcode="M_TOO_LARGE")
    assert await call(repo, "PUT", put, 200, target, user=alice, prefix=MEDIA,
                      data=b"late", headers={"Content-Type": "text/plain"}) == {}
    await call(repo, "PUT", put, 409, target, user=alice, prefix=MEDIA, data=b"again",
               errcode="M_CANNOT_OVERWRITE_MEDIA")
    await call(repo, "POST", "/media/v1/create", 401, prefix=MEDIA, errcode="M_MISSING_TOKEN")
    for api_file, path, prefix in (("authed-content-repo", "/media/config", AUTHED),
                                   (repo, "/media/v3/config", MEDIA)):
        assert await call(api_file, "GET", path, 200, user=alice, prefix=prefix) == {
            "m.upload.size": LIMIT}
        await call(api_file, "GET", path, 401, prefix=prefix, errcode="M_MISSING_TOKEN")
    for api_file, path, prefix in (("authed-content-repo", "/media/preview_url", AUTHED),
                                   (repo, "/media/v3/preview_url", MEDIA)):
        await call(api_file, "GET", path, 403, user=alice, prefix=prefix,
                   query={"url": "https://example.org"}, errcode="M_FORBIDDEN")


async def test_media_download_headers(client: TestClient, call: Any, register: Register,
                                      spec: MatrixSpec) -> None:
    alice = await register("alice")
    named = await call("content-repo", "POST", "/media/v3/upload", 200, user=alice,
                       prefix=MEDIA, data=png(), query={"filename": "pic.png"},
                       headers={"Content-Type": "image/png"})
    bare = await call("content-repo", "POST", "/media/v3/upload", 200, user=alice,
                      prefix=MEDIA, data=b"<html></html>", headers={"Content-Type": "text/html"})
    for api_file, base, auth in (("authed-content-repo", "/media", alice.auth),
                                 ("content-repo", "/media/v3", {})):
        prefix = (AUTHED if api_file == "authed-content-repo" else MEDIA) + base
        for upload, expect_name in ((named, "pic.png"), (bare, None)):
            mxc = upload["content_uri"].removeprefix("mxc://")
            resp = await client.get(f"{prefix}/download/{mxc}", headers=auth)
            assert resp.status == 200
            check_headers(spec, api_file, base + "/download/{serverName}/{mediaId}", resp)
            # "If the upload was made with a filename, this header MUST contain the same
            # filename. Otherwise, filename is excluded from the header."
            cd = resp.headers["Content-Disposition"]
            assert ("filename" in cd) == (expect_name is not None), cd
            if expect_name:
                assert expect_name in cd and disposition(resp) == "inline"
            else:
                assert disposition(resp) == "attachment"  # text/html is not safe inline
            resp = await client.get(f"{prefix}/download/{mxc}/asked.bin", headers=auth)
            assert resp.status == 200
            check_headers(spec, api_file,
                          base + "/download/{serverName}/{mediaId}/{fileName}", resp)
            assert "asked.bin" in resp.headers["Content-Disposition"]  # MUST: the path's name
            disposition(resp)
        mxc = named["content_uri"].removeprefix("mxc://")
        resp = await client.get(f"{prefix}/thumbnail/{mxc}", headers=auth,
                                params={"width": "32", "height": "32"})
        assert resp.status == 200
        check_headers(spec, api_file, base + "/thumbnail/{serverName}/{mediaId}", resp)
        assert disposition(resp) == "inline"  # thumbnails: "MUST be inline"


async def test_media_download_errors(call: Any, register: Register) -> None:
    alice = await register("alice")
    text = await call("content-repo", "POST", "/media/v3/upload", 200, user=alice,
                      prefix=MEDIA, data=b"text", headers={"Content-Type": "text/plain"})
    pending = await call("content-repo", "POST", "/media/v1/create", 200, user=alice,
                         prefix=MEDIA)
    for api_file, base, prefix, user in (("authed-content-repo", "/media", AUTHED, alice),
                                         ("content-repo", "/media/v3", MEDIA, None)):
        download = base + "/download/{serverName}/{mediaId}"
        thumb = base + "/thumbnail/{serverName}/{mediaId}"
        unknown = {"serverName": "test.local", "mediaId": "doesNotExist"}
        await call(api_file, "GET", download, 404, unknown, user=user, prefix=prefix,
                   errcode="M_NOT_FOUND")
        server, media_id = pending["content_uri"].removeprefix("mxc://").split("/")
        await call(api_file, "GET", download, 504, {"serverName": server, "mediaId": media_id},
                   user=user, prefix=prefix, query={"timeout_ms": "0"},
                   errcode="M_NOT_YET_UPLOADED")
        server, media_id = text["content_uri"].removeprefix("mxc://").split("/")
        await call(api_file, "GET", thumb, 400, {"serverName": server, "mediaId": media_id},
                   user=user, prefix=prefix, query={"width": "32"}, errcode="M_MISSING_PARAM")
        await call(api_file, "GET", thumb, 404, unknown, user=user, prefix=prefix,
                   query={"width": "32", "height": "32"}, errcode="M_NOT_FOUND")
    await call("authed-content-repo", "GET", "/media/download/{serverName}/{mediaId}", 401,
               {"serverName": "test.local", "mediaId": "x"}, prefix=AUTHED,
               errcode="M_MISSING_TOKEN")


# --- profile --------------------------------------------------------------------------------------


async def test_profile(call: Any, register: Register) -> None:
    alice, bob = await register("alice"), await register("bob")
    me = {"userId": alice.user_id}
    key = "/profile/{userId}/{keyName}"
    for name, value in (("displayname", "Alice"), ("avatar_url", "mxc://test.local/abc"),
                        ("m.tz", "Europe/Paris"), ("org.example.job", {"title": "cook"})):
        assert await call("profile", "PUT", key, 200, {**me, "keyName": name}, user=alice,
                          json={name: value}) == {}
        got = await call("profile", "GET", key, 200, {**me, "keyName": name})
        assert got == {name: value}
    whole = await call("profile", "GET", "/profile/{userId}", 200, me)
    assert whole["displayname"] == "Alice" and whole["m.tz"] == "Europe/Paris"
    await call("profile", "GET", "/profile/{userId}", 404, {"userId": "@ghost:test.local"},
               errcode="M_NOT_FOUND")
    await call("profile", "GET", key, 404, {**me, "keyName": "org.example.unset"},
               errcode="M_NOT_FOUND")
    await call("profile", "GET", key, 404, {"userId": "@ghost:test.local",
                                            "keyName": "displayname"}, errcode="M_NOT_FOUND")
    name = {**me, "keyName": "displayname"}
    await call("profile", "PUT", key, 403, name, user=bob, json={"displayname": "x"},
               errcode="M_FORBIDDEN")
    await call("profile", "PUT", key, 400, name, user=alice, json={"displayname": 5},
               errcode="M_BAD_JSON")
    await call("profile", "PUT", key, 400, name, user=alice, json={"other": "x"},
               errcode="M_MISSING_PARAM")
    long_key = "org." + "a" * 260
    await call("profile", "PUT", key, 400, {**me, "keyName": long_key}, user=alice,
               json={long_key: 1}, errcode="M_KEY_TOO_LARGE")
    await call("profile", "PUT", key, 400, {**me, "keyName": "org.example.big"}, user=alice,
               json={"org.example.big": "x" * 70000}, errcode="M_PROFILE_TOO_LARGE")
    await call("profile", "PUT", key, 401, name, json={"displayname": "x"},
               errcode="M_MISSING_TOKEN")
    job = {**me, "keyName": "org.example.job"}
    assert await call("profile", "DELETE", key, 200, job, user=alice) == {}
    await call("profile", "DELETE", key, 403, job, user=bob, errcode="M_FORBIDDEN")
    await call("profile", "DELETE", key, 400, {**me, "keyName": "Bad.Key"}, user=alice,
               errcode="M_INVALID_PARAM")


# --- typing, receipts, read markers ---------------------------------------------------------------


async def room_with_bob(client: TestClient, register: Register, create_room: CreateRoom
                        ) -> tuple[User, User, User, str, str]:
    alice, bob, carol = await register("alice"), await register("bob"), await register("carol")
    room_id = await create_room(alice, preset="public_chat")
    resp = await client.post(f"{V3}/rooms/{room_id}/join", json={}, headers=bob.auth)
    assert resp.status == 200
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/t1", headers=alice.auth,
                            json={"msgtype": "m.text", "body": "hi"})
    assert resp.status == 200
    return alice, bob, carol, room_id, (await resp.json())["event_id"]


async def test_typing(call: Any, client: TestClient, register: Register,
                      create_room: CreateRoom) -> None:
    alice, bob, carol, room_id, _ = await room_with_bob(client, register, create_room)
    path = "/rooms/{roomId}/typing/{userId}"
    mine = {"roomId": room_id, "userId": alice.user_id}
    assert await call("typing", "PUT", path, 200, mine, user=alice,
                      json={"typing": True, "timeout": 30000}) == {}
    assert await call("typing", "PUT", path, 200, mine, user=alice, json={"typing": False}) == {}
    await call("typing", "PUT", path, 403, mine, user=bob, json={"typing": True},
               errcode="M_FORBIDDEN")
    await call("typing", "PUT", path, 403, {"roomId": room_id, "userId": carol.user_id},
               user=carol, json={"typing": True}, errcode="M_FORBIDDEN")
    await call("typing", "PUT", path, 404, {**mine, "roomId": "!nope:test.local"}, user=alice,
               json={"typing": True}, errcode="M_NOT_FOUND")
    await call("typing", "PUT", path, 400, mine, user=alice, json={"typing": "yes"},
               errcode="M_BAD_JSON")
    await call("typing", "PUT", path, 400, mine, user=alice, json={"timeout": 5},
               errcode="M_MISSING_PARAM")
    await call("typing", "PUT", path, 401, mine, json={"typing": True},
               errcode="M_MISSING_TOKEN")


async def test_receipts_and_read_markers(call: Any, client: TestClient, register: Register,
                                         create_room: CreateRoom) -> None:
    _, bob, carol, room_id, event_id = await room_with_bob(client, register, create_room)
    path = "/rooms/{roomId}/receipt/{receiptType}/{eventId}"
    at = {"roomId": room_id, "eventId": event_id}
    for kind, body in (("m.read", {}), ("m.read.private", {}), ("m.fully_read", {}),
                       ("m.read", {"thread_id": "main"})):
        assert await call("receipts", "POST", path, 200, {**at, "receiptType": kind},
                          user=bob, json=body) == {}
    read = {**at, "receiptType": "m.read"}
    await call("receipts", "POST", path, 400, {**at, "receiptType": "m.unknown"}, user=bob,
               json={}, errcode="M_INVALID_PARAM")
    await call("receipts", "POST", path, 400, read, user=bob, json={"thread_id": ""},
               errcode="M_INVALID_PARAM")
    await call("receipts", "POST", path, 404, {**read, "eventId": "$nope"}, user=bob, json={},
               errcode="M_NOT_FOUND")
    await call("receipts", "POST", path, 403, read, user=carol, json={}, errcode="M_FORBIDDEN")
    await call("receipts", "POST", path, 401, read, json={}, errcode="M_MISSING_TOKEN")
    markers = "/rooms/{roomId}/read_markers"
    room = {"roomId": room_id}
    assert await call("read_markers", "POST", markers, 200, room, user=bob, json={
        "m.fully_read": event_id, "m.read": event_id, "m.read.private": event_id}) == {}
    assert await call("read_markers", "POST", markers, 200, room, user=bob, json={}) == {}
    await call("read_markers", "POST", markers, 400, room, user=bob,
               json={"m.fully_read": 5}, errcode="M_BAD_JSON")
    await call("read_markers", "POST", markers, 404, room, user=bob,
               json={"m.fully_read": "$missing"}, errcode="M_NOT_FOUND")
    await call("read_markers", "POST", markers, 403, room, user=carol,
               json={"m.fully_read": event_id}, errcode="M_FORBIDDEN")
    await call("read_markers", "POST", markers, 401, room, json={"m.read": event_id},
               errcode="M_MISSING_TOKEN")
