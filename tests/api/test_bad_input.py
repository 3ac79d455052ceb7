"""Bad input never gets past the API as anything but the spec's error, and never as a 500.

For every endpoint of the modules that exist (discovery, account, devices, rooms and
membership, events, sync and filters): missing/unknown token, non-JSON and non-object bodies,
wrong field types, unknown rooms, oversized bodies and events, unknown paths and methods, rate
limits. Every case asserts the status AND the errcode.
Known 500s and half-written rows are in test_bad_input_regressions.py; seeded random bodies (a
property test) that must never give a 500 or a half-written row are in test_bad_input_fuzz.py.
The `env` and `spec` fixtures are in tests/api/conftest.py; Env, expect, count in support.py.
"""

import json
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import AUTH_PW, REG, V3, Env, count, expect, make_config

from edgehs.config import Config

FAKE_ROOM = "!nope:test.local"

# Every authenticated endpoint: (method, path). {room} {event} {device} {me} are filled in.
AUTHED = [
    ("GET", "/capabilities"),
    ("POST", "/logout"),
    ("POST", "/logout/all"),
    ("GET", "/account/whoami"),
    ("POST", "/account/password"),
    ("POST", "/account/deactivate"),
    ("GET", "/devices"),
    ("GET", "/devices/{device}"),
    ("PUT", "/devices/{device}"),
    ("DELETE", "/devices/{device}"),
    ("POST", "/delete_devices"),
    ("POST", "/createRoom"),
    ("POST", "/join/{room}"),
    ("POST", "/rooms/{room}/join"),
    ("POST", "/rooms/{room}/invite"),
    ("POST", "/rooms/{room}/leave"),
    ("POST", "/rooms/{room}/forget"),
    ("POST", "/rooms/{room}/kick"),
    ("POST", "/rooms/{room}/ban"),
    ("POST", "/rooms/{room}/unban"),
    ("GET", "/joined_rooms"),
    ("GET", "/rooms/{room}/members"),
    ("GET", "/rooms/{room}/joined_members"),
    ("PUT", "/rooms/{room}/send/m.room.message/t1"),
    ("POST", "/rooms/{room}/send/m.room.message"),
    ("PUT", "/rooms/{room}/state/m.room.topic"),
    ("PUT", "/rooms/{room}/state/m.room.topic/key"),
    ("GET", "/rooms/{room}/state/m.room.topic"),
    ("GET", "/rooms/{room}/state/m.room.topic/key"),
    ("GET", "/rooms/{room}/state"),
    ("PUT", "/rooms/{room}/redact/{event}/t1"),
    ("POST", "/rooms/{room}/redact/{event}"),
    ("GET", "/rooms/{room}/event/{event}"),
    ("GET", "/sync"),
    ("POST", "/user/{me}/filter"),
    ("GET", "/user/{me}/filter/0"),
]
# Endpoints that read a JSON body (the body is read right after authentication).
BODY = [ep for ep in AUTHED if ep[0] in ("PUT", "POST", "DELETE")
        and ep[1] not in ("/logout", "/logout/all", "/rooms/{room}/forget")]
UNAUTHED_BODY = [("POST", "/register"), ("POST", "/login")]


@pytest.fixture
def config(tmp_path: Any, request: pytest.FixtureRequest) -> Config:
    """The default test config, or one with overrides given by indirect parametrisation."""
    return make_config(tmp_path / "data", **getattr(request, "param", {}))


# --- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), AUTHED)
async def test_missing_token(client: TestClient, method: str, path: str) -> None:
    url = V3 + path.format(room=FAKE_ROOM, event="$e", device="D", me="@a:test.local")
    await expect(await client.request(method, url, json={}), 401, "M_MISSING_TOKEN")


@pytest.mark.parametrize(("method", "path"), AUTHED)
async def test_unknown_token(client: TestClient, method: str, path: str) -> None:
    url = V3 + path.format(room=FAKE_ROOM, event="$e", device="D", me="@a:test.local")
    body = await expect(await client.request(
        method, url, json={}, headers={"Authorization": "Bearer nope"}), 401, "M_UNKNOWN_TOKEN")
    assert body["soft_logout"] is False


async def test_token_forms(client: TestClient, env: Env) -> None:
    whoami = f"{V3}/account/whoami"
    await expect(await client.get(whoami, params={"access_token": "nope"}), 401,
                 "M_UNKNOWN_TOKEN")
    await expect(await client.get(whoami, headers={"Authorization": "Basic abc"}), 401,
                 "M_MISSING_TOKEN")
    resp = await client.get(whoami, params={"access_token": env.alice.token})
    assert resp.status == 200
    logged_out = await client.post(f"{V3}/logout", headers=env.bob.auth)
    assert logged_out.status == 200
    await expect(await client.get(whoami, headers=env.bob.auth), 401, "M_UNKNOWN_TOKEN")


# --- bodies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), BODY + UNAUTHED_BODY)
async def test_not_json_body(client: TestClient, env: Env, method: str, path: str) -> None:
    for raw in (b"{not json", b'{"a": NaN}', b'{"a": 1} trailing', b"\xff\xfe"):
        resp = await client.request(method, env.path(path), data=raw, headers={
            **env.alice.auth, "Content-Type": "application/json"})
        await expect(resp, 400, "M_NOT_JSON")


@pytest.mark.parametrize(("method", "path"), BODY + UNAUTHED_BODY)
async def test_non_object_body(client: TestClient, env: Env, method: str, path: str) -> None:
    for value in ([], [1, 2], "text", 5, None, True):
        resp = await client.request(method, env.path(path), data=json.dumps(value).encode(),
                                    headers={**env.alice.auth,
                                             "Content-Type": "application/json"})
        await expect(resp, 400, "M_BAD_JSON")


@pytest.mark.parametrize("path", ["/rooms/{room}/send/m.room.message/t9",
                                  "/rooms/{room}/state/m.room.topic",
                                  "/user/{me}/filter"])
async def test_empty_body_where_one_is_required(client: TestClient, env: Env,
                                                path: str) -> None:
    method = "POST" if path.endswith("filter") else "PUT"
    resp = await client.request(method, env.path(path), data=b"", headers=env.alice.auth)
    await expect(resp, 400, "M_NOT_JSON")


LOGIN = {"type": "m.login.password", "password": "secret-pw"}

# (who, method, path, body, status, errcode). "who": alice, bob or "-" (no token).
WRONG_TYPES: list[Any] = [
    ("-", "POST", "/register", {**REG, "username": 1}, 400, "M_BAD_JSON"),
    ("-", "POST", "/register", {**REG, "username": "x1", "password": 1}, 400, "M_BAD_JSON"),
    ("-", "POST", "/register", {**REG, "username": "Bad Name"}, 400, "M_INVALID_USERNAME"),
    ("-", "POST", "/register", {"username": "x5", "auth": {"type": "m.login.dummy"}}, 400,
     "M_MISSING_PARAM"),
    ("-", "POST", "/register?kind=admin", {}, 400, "M_INVALID_PARAM"),
    ("-", "POST", "/login", {**LOGIN, "identifier": {"type": "m.id.user", "user": "alice"},
                             "password": 1}, 400, "M_BAD_JSON"),
    ("-", "POST", "/login", {**LOGIN, "user": "alice", "device_id": 5}, 400, "M_BAD_JSON"),
    ("-", "POST", "/login", {**LOGIN, "user": "alice", "initial_device_display_name": 3}, 400,
     "M_BAD_JSON"),
    ("-", "POST", "/login", {"type": 1}, 400, "M_UNKNOWN"),
    pytest.param("-", "POST", "/login", {**LOGIN, "identifier": {"type": "m.id.user",
                                                                 "user": 1}},
                 400, "M_BAD_JSON"),
    pytest.param("-", "POST", "/login", {**LOGIN, "identifier": "alice"}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/account/password", {"new_password": 1, "auth": AUTH_PW}, 400,
     "M_BAD_JSON"),
    ("alice", "POST", "/account/password", {"new_password": "pw", "logout_devices": "no",
                                            "auth": AUTH_PW}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/account/password", {"auth": AUTH_PW}, 400, "M_MISSING_PARAM"),
    ("alice", "PUT", "/devices/{device}", {"display_name": 1}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/delete_devices", {"devices": "X"}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/delete_devices", {"devices": [1]}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/delete_devices", {}, 400, "M_MISSING_PARAM"),
    ("alice", "POST", "/createRoom", {"name": 1}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/createRoom", {"topic": {"x": 1}}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/createRoom", {"invite": "x"}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/createRoom", {"invite": [1]}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/createRoom", {"invite": ["@x"]}, 400, "M_INVALID_PARAM"),
    ("alice", "POST", "/createRoom", {"visibility": "x"}, 400, "M_INVALID_PARAM"),
    ("alice", "POST", "/createRoom", {"preset": "x"}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/createRoom", {"room_version": 12}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/createRoom", {"room_version": "13"}, 400, "M_UNSUPPORTED_ROOM_VERSION"),
    ("alice", "POST", "/createRoom", {"creation_content": "x"}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/createRoom", {"initial_state": ["x"]}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/createRoom", {"initial_state": [{"type": 1, "content": {}}]}, 400,
     "M_BAD_JSON"),
    ("alice", "POST", "/createRoom", {"is_direct": "yes"}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/createRoom", {"power_level_content_override": []}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/createRoom", {"room_alias_name": "bad alias"}, 400, "M_INVALID_PARAM"),
    ("alice", "POST", "/createRoom", {"room_alias_name": "a:b"}, 400, "M_INVALID_PARAM"),
    ("bob", "POST", "/join/{room}", {"reason": 1}, 400, "M_BAD_JSON"),
    ("bob", "POST", "/rooms/{room}/join", {"reason": 1}, 400, "M_BAD_JSON"),
    ("bob", "POST", "/join/notaroom", {}, 400, "M_INVALID_PARAM"),
    ("alice", "POST", "/rooms/{room}/invite", {"user_id": 1}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/rooms/{room}/invite", {"user_id": "bob"}, 400, "M_INVALID_PARAM"),
    ("alice", "POST", "/rooms/{room}/invite", {}, 400, "M_MISSING_PARAM"),
    ("alice", "POST", "/rooms/{room}/invite", {"user_id": "@c:test.local", "reason": 1}, 400,
     "M_BAD_JSON"),
    ("alice", "POST", "/rooms/{room}/leave", {"reason": 1}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/rooms/{room}/kick", {"user_id": 1}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/rooms/{room}/kick", {}, 400, "M_MISSING_PARAM"),
    ("alice", "POST", "/rooms/{room}/ban", {"user_id": 1}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/rooms/{room}/ban", {"user_id": "@x:y", "reason": 1}, 400,
     "M_BAD_JSON"),
    ("alice", "POST", "/rooms/{room}/unban", {"user_id": 1}, 400, "M_BAD_JSON"),
    ("alice", "PUT", "/rooms/{room}/send/m.room.redaction/t2", {}, 400, "M_INVALID_PARAM"),
    ("alice", "PUT", "/rooms/{room}/send/" + "t" * 256 + "/t3", {}, 400, "M_INVALID_PARAM"),
    ("alice", "PUT", "/rooms/{room}/state/m.room.canonical_alias", {"alt_aliases": "x"}, 400,
     "M_BAD_JSON"),
    ("alice", "PUT", "/rooms/{room}/state/m.room.canonical_alias", {"alias": 5}, 400,
     "M_BAD_JSON"),
    ("alice", "PUT", "/rooms/{room}/redact/{event}/r1", {"reason": 1}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/user/{me}/filter", {"room": "x"}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/user/{me}/filter", {"room": {"timeline": {"limit": "5"}}}, 400,
     "M_BAD_JSON"),
    ("alice", "POST", "/user/{me}/filter", {"room": {"timeline": {"limit": -1}}}, 400,
     "M_BAD_JSON"),
    ("alice", "POST", "/user/{me}/filter", {"room": {"timeline": {"types": "m.x"}}}, 400,
     "M_BAD_JSON"),
    ("alice", "POST", "/user/{me}/filter", {"room": {"rooms": [1]}}, 400, "M_BAD_JSON"),
    ("alice", "POST", "/user/{me}/filter", {"account_data": 5}, 400, "M_BAD_JSON"),
    pytest.param("alice", "POST", "/user/{me}/filter", {"event_format": "x"}, 400,
                 "M_BAD_JSON"),
    pytest.param("alice", "POST", "/user/{me}/filter", {"event_fields": "x"}, 400,
                 "M_BAD_JSON"),
    pytest.param("alice", "POST", "/user/{me}/filter", {"room": {"include_leave": "x"}}, 400,
                 "M_BAD_JSON"),
    ("alice", "GET", "/sync?timeout=abc", None, 400, "M_INVALID_PARAM"),
    ("alice", "GET", "/sync?full_state=yes", None, 400, "M_INVALID_PARAM"),
    ("alice", "GET", "/sync?since=garbage", None, 400, "M_INVALID_PARAM"),
    ("alice", "GET", "/sync?since=s999999_0", None, 400, "M_INVALID_PARAM"),
    ("alice", "GET", "/sync?filter=[]", None, 400, "M_INVALID_PARAM"),
    ("alice", "GET", "/sync?filter=77", None, 400, "M_INVALID_PARAM"),
    ("alice", "GET", '/sync?filter={"room":5}', None, 400, "M_BAD_JSON"),
    ("alice", "GET", "/sync?filter={bad", None, 400, "M_NOT_JSON"),
    ("alice", "GET", "/user/{me}/filter/abc", None, 404, "M_NOT_FOUND"),
    ("bob", "POST", "/user/{me}/filter", {}, 403, "M_FORBIDDEN"),
    ("bob", "GET", "/user/{me}/filter/0", None, 403, "M_FORBIDDEN"),
    pytest.param("alice", "GET", "/user/{me}/filter/99999999999999999999999", None, 404,
                 "M_NOT_FOUND"),
    pytest.param("alice", "GET", "/sync?filter=99999999999999999999999", None, 400,
                 "M_INVALID_PARAM"),
    pytest.param("alice", "GET", "/rooms/{room}/members?membership=5", None, 400,
                 "M_INVALID_PARAM"),
]


@pytest.mark.parametrize(("who", "method", "path", "body", "status", "errcode"), WRONG_TYPES)
async def test_wrong_field_types(client: TestClient, env: Env, who: str, method: str,
                                 path: str, body: Any, status: int, errcode: str) -> None:
    headers = {"alice": env.alice.auth, "bob": env.bob.auth, "-": {}}[who]
    before = await count(client, "events")
    kwargs = {} if body is None else {"json": body}
    url, _, query = env.path(path).partition("?")
    resp = await client.request(method, url, params=parse_qsl(query), headers=headers,
                                **kwargs)
    await expect(resp, status, errcode)
    assert await count(client, "events") == before


# --- unknown rooms --------------------------------------------------------------------------------
# An unknown room is 404 M_NOT_FOUND ("No resource was found for this request") except where
# the handler first finds that the target is not a member (kick, unban): 403 M_FORBIDDEN, the
# status the spec documents for those endpoints.
UNKNOWN_ROOM = [
    ("POST", "/join/{room}", {}, 404, "M_NOT_FOUND"),
    ("POST", "/join/%23nope:test.local", {}, 404, "M_NOT_FOUND"),
    ("POST", "/rooms/{room}/join", {}, 404, "M_NOT_FOUND"),
    ("POST", "/rooms/{room}/invite", {"user_id": "@bob:test.local"}, 404, "M_NOT_FOUND"),
    ("POST", "/rooms/{room}/leave", {}, 404, "M_NOT_FOUND"),
    ("POST", "/rooms/{room}/forget", {}, 404, "M_NOT_FOUND"),
    ("POST", "/rooms/{room}/kick", {"user_id": "@bob:test.local"}, 403, "M_FORBIDDEN"),
    ("POST", "/rooms/{room}/ban", {"user_id": "@bob:test.local"}, 404, "M_NOT_FOUND"),
    ("POST", "/rooms/{room}/unban", {"user_id": "@bob:test.local"}, 403, "M_FORBIDDEN"),
    ("GET", "/rooms/{room}/members", None, 404, "M_NOT_FOUND"),
    ("GET", "/rooms/{room}/joined_members", None, 404, "M_NOT_FOUND"),
    ("GET", "/rooms/{room}/state", None, 404, "M_NOT_FOUND"),
    ("GET", "/rooms/{room}/state/m.room.name", None, 404, "M_NOT_FOUND"),
    ("GET", "/rooms/{room}/state/m.room.name/x", None, 404, "M_NOT_FOUND"),
    ("PUT", "/rooms/{room}/state/m.room.name", {"name": "x"}, 404, "M_NOT_FOUND"),
    ("PUT", "/rooms/{room}/send/m.room.message/u1", {"body": "x"}, 404, "M_NOT_FOUND"),
    ("POST", "/rooms/{room}/send/m.room.message", {"body": "x"}, 404, "M_NOT_FOUND"),
    ("PUT", "/rooms/{room}/redact/{event}/u2", {}, 404, "M_NOT_FOUND"),
    ("GET", "/rooms/{room}/event/{event}", None, 404, "M_NOT_FOUND"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "errcode"), UNKNOWN_ROOM)
async def test_unknown_room(client: TestClient, env: Env, method: str, path: str, body: Any,
                            status: int, errcode: str) -> None:
    kwargs = {} if body is None else {"json": body}
    resp = await client.request(method, env.path(path, FAKE_ROOM), headers=env.alice.auth,
                                **kwargs)
    await expect(resp, status, errcode)


async def test_unknown_event_and_device(client: TestClient, env: Env) -> None:
    await expect(await client.get(env.path("/rooms/{room}/event/$nope"), headers=env.alice.auth),
                 404, "M_NOT_FOUND")
    await expect(await client.put(env.path("/rooms/{room}/redact/$nope/r"), json={},
                                  headers=env.alice.auth), 404, "M_NOT_FOUND")
    for method in ("GET", "PUT", "DELETE"):
        await expect(await client.request(method, f"{V3}/devices/NOPE", json={},
                                          headers=env.alice.auth), 404, "M_NOT_FOUND")


# --- sizes ----------------------------------------------------------------------------------------

SMALL = {"max_request_body_size": 1024}


@pytest.mark.parametrize("config", [SMALL], indirect=True)
@pytest.mark.parametrize(("method", "path"), BODY + UNAUTHED_BODY)
async def test_body_over_limit(client: TestClient, env: Env, method: str, path: str) -> None:
    big = {"padding": "x" * 2048}
    resp = await client.request(method, env.path(path), json=big, headers=env.alice.auth)
    await expect(resp, 413, "M_TOO_LARGE")


@pytest.mark.parametrize("config", [SMALL], indirect=True)
async def test_body_limit_without_content_length(client: TestClient, env: Env) -> None:
    async def chunks() -> Any:
        for _ in range(8):
            yield b'{"name": "' + b"x" * 200
        yield b'"}'

    before = await count(client, "rooms")
    resp = await client.post(f"{V3}/createRoom", data=chunks(), headers=env.alice.auth)
    await expect(resp, 413, "M_TOO_LARGE")
    fits = await client.post(f"{V3}/createRoom", json={"name": "x" * 900},
                             headers=env.alice.auth)
    assert fits.status == 200
    assert await count(client, "rooms") == before + 1


@pytest.mark.parametrize("path", ["/rooms/{room}/send/m.room.message/big",
                                  "/rooms/{room}/state/m.room.topic"])
async def test_event_over_65536_bytes(client: TestClient, env: Env, path: str) -> None:
    before = await count(client, "events")
    resp = await client.put(env.path(path), json={"body": "x" * 65536},
                            headers=env.alice.auth)
    await expect(resp, 413, "M_TOO_LARGE")
    assert await count(client, "events") == before


# --- paths and methods ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/_matrix/client/v3/nope", "/_matrix/client/v3/rooms",
                                  "/_matrix/client/v4/sync", "/_matrix/nope", "/",
                                  "/.well-known/x"])
async def test_unknown_path(client: TestClient, path: str) -> None:
    await expect(await client.get(path), 404, "M_UNRECOGNIZED")
    await expect(await client.post(path, json={}), 404, "M_UNRECOGNIZED")


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/createRoom"), ("GET", "/register"), ("PUT", "/sync"), ("POST", "/joined_rooms"),
    ("GET", "/rooms/!r:x/send/m.room.message/t"), ("DELETE", "/account/whoami"),
    ("PUT", "/login"), ("POST", "/devices"), ("GET", "/rooms/!r:x/invite"),
])
async def test_wrong_method(client: TestClient, method: str, path: str) -> None:
    await expect(await client.request(method, V3 + path), 405, "M_UNRECOGNIZED")


# --- rate limits ----------------------------------------------------------------------------------

LIMITED = {"rate_limits": {"enabled": True, "message": {"per_second": 0.001, "burst_count": 2},
                           "login": {"per_second": 0.001, "burst_count": 2}}}


@pytest.mark.parametrize("config", [LIMITED], indirect=True)
async def test_message_rate_limit(client: TestClient, env: Env, spec: MatrixSpec) -> None:
    # env already sent one message: one more fits in the bucket of two.
    ok = await client.put(env.path("/rooms/{room}/send/m.room.message/r1"),
                          json={"body": "1"}, headers=env.alice.auth)
    assert ok.status == 200
    before = await count(client, "events")
    resp = await client.put(env.path("/rooms/{room}/send/m.room.message/r2"),
                            json={"body": "2"}, headers=env.alice.auth)
    body = await expect(resp, 429, "M_LIMIT_EXCEEDED")
    assert isinstance(body["retry_after_ms"], int) and body["retry_after_ms"] > 0
    assert int(resp.headers["Retry-After"]) >= 1
    rate_limited = spec.uri("api/client-server/definitions/errors/rate_limited.yaml")
    assert not list(spec.validator(rate_limited).iter_errors(body))
    assert await count(client, "events") == before
    # other users have their own bucket
    join = await client.post(env.path("/rooms/{room}/join"), json={}, headers=env.bob.auth)
    assert join.status == 200
    other = await client.put(env.path("/rooms/{room}/send/m.room.message/b1"),
                             json={"body": "b"}, headers=env.bob.auth)
    assert other.status == 200


@pytest.mark.parametrize("config", [LIMITED], indirect=True)
async def test_login_rate_limit(client: TestClient, spec: MatrixSpec) -> None:
    login = {"type": "m.login.password", "user": "nobody", "password": "x"}
    for _ in range(2):
        await expect(await client.post(f"{V3}/login", json=login), 403, "M_FORBIDDEN")
    resp = await client.post(f"{V3}/login", json=login)
    body = await expect(resp, 429, "M_LIMIT_EXCEEDED")
    spec.check_response("login", "POST", "/login", 429, body)
