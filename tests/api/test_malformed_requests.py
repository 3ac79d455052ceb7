"""Malformed requests get the spec's JSON errors: bodies nested too deeply, over-long URLs and
headers, and the plain ``application/json`` content type of every JSON answer.

https://spec.matrix.org/v1.19/client-server-api/#standard-error-response
"""

import pytest
from aiohttp.test_utils import TestClient
from support import V3, Env, expect

from edgehs.service import json_parse


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("depth", [json_parse.MAX_DEPTH + 1, 5_000, 100_000])
@pytest.mark.parametrize("path", [
    "/rooms/{room}/send/m.room.message/deep",
    "/rooms/{room}/state/m.room.topic/deep",
    "/user/{me}/account_data/m.deep",
    "/profile/{me}/displayname",
])
async def test_deeply_nested_body_is_bad_json(client: TestClient, env: Env, path: str,
                                              depth: int) -> None:
    resp = await client.put(env.path(path), data=nested(depth),
                            headers={**env.alice.auth, "Content-Type": "application/json"})
    body = await expect(resp, 400, "M_BAD_JSON")
    assert body["error"] == "Request body is nested too deeply"


async def test_nesting_up_to_the_limit_is_accepted(client: TestClient, env: Env) -> None:
    # The body object is the first level.
    resp = await client.put(env.path("/user/{me}/account_data/m.deep"),
                            data=nested(json_parse.MAX_DEPTH - 1), headers=env.alice.auth)
    assert resp.status == 200, await resp.text()
    resp = await client.get(env.path("/user/{me}/account_data/m.deep"), headers=env.alice.auth)
    assert resp.status == 200


async def test_deeply_nested_query_json_is_bad_json(client: TestClient, env: Env) -> None:
    deep = nested(json_parse.MAX_DEPTH + 1).decode()
    resp = await client.get(env.path("/rooms/{room}/messages"), params={"filter": deep},
                            headers=env.alice.auth)
    await expect(resp, 400, "M_BAD_JSON")
    resp = await client.get(f"{V3}/sync", params={"filter": deep}, headers=env.alice.auth)
    await expect(resp, 400, "M_BAD_JSON")


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": -Infinity}', b"\xff{}", b"{"])
async def test_invalid_json_is_not_json(client: TestClient, env: Env, raw: bytes) -> None:
    resp = await client.put(env.path("/user/{me}/account_data/m.x"), data=raw,
                            headers=env.alice.auth)
    await expect(resp, 400, "M_NOT_JSON")


def test_check_depth_is_iterative() -> None:
    value: object = 1
    for _ in range(100_000):
        value = [value]
    with pytest.raises(json_parse.JsonNestingError):
        json_parse.check_depth(value)
    json_parse.check_depth([[1]], limit=2)


@pytest.mark.parametrize("path", [
    "/rooms/{seg}/state",
    "/profile/@{seg}:test.local",
    "/rooms/{room}/event/{seg}",
    "/directory/room/%23{seg}:test.local",
    "/{seg}",
])
async def test_long_path_segment_gets_a_json_error(client: TestClient, env: Env,
                                                   path: str) -> None:
    url = V3 + path.format(seg="a" * 10_000, room=env.room_id)
    resp = await client.get(url, headers=env.alice.auth)
    assert 400 <= resp.status < 500
    assert resp.headers["Content-Type"] == "application/json"
    body = await resp.json()
    assert isinstance(body["errcode"], str) and isinstance(body["error"], str)


async def test_long_header_is_served(client: TestClient, env: Env) -> None:
    resp = await client.get(f"{V3}/account/whoami",
                            headers={**env.alice.auth, "User-Agent": "x" * 10_000})
    assert resp.status == 200
    assert (await resp.json())["user_id"] == env.alice.user_id


@pytest.mark.parametrize("method,path", [
    ("POST", "/register"),                # 401 with flows
    ("GET", "/account/whoami"),           # 200
    ("GET", "/rooms/!nope:test.local/state"),  # 403/404 error
    ("GET", "/no/such/endpoint"),         # 404 M_UNRECOGNIZED
])
async def test_json_content_type_has_no_charset(client: TestClient, env: Env, method: str,
                                                path: str) -> None:
    resp = await client.request(method, V3 + path, json={}, headers=env.alice.auth)
    assert resp.headers["Content-Type"] == "application/json"
