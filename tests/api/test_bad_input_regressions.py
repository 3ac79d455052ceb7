"""Known 500s and half-written rows from bad input (moved from test_bad_input.py).

Each case asserts the status AND the errcode, and that nothing was half-written.
"""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import AUTH_PW, REG, V3, Env, count, expect

# --- known 500s and half-written rows -------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    pytest.param(b'{"body": 1e999}'),
    pytest.param(b'{"body": "\\ud800"}'),
    pytest.param(b'{"body": 1.5}'),
    pytest.param(b'{"body": 9007199254740992}'),
])
async def test_event_content_outside_canonical_json(client: TestClient, env: Env,
                                                    raw: bytes) -> None:
    before = await count(client, "events")
    resp = await client.put(env.path("/rooms/{room}/send/m.room.message/c1"), data=raw,
                            headers={**env.alice.auth, "Content-Type": "application/json"})
    await expect(resp, 400, "M_BAD_JSON")
    assert await count(client, "events") == before


@pytest.mark.parametrize("body", [
    pytest.param({"power_level_content_override": {"users_default": "abc"}}),
    pytest.param({"power_level_content_override": {"users": {"@alice:test.local": 5}}}),
    pytest.param({"initial_state": [{"type": "m.room.member", "state_key": "@bob:test.local",
                                     "content": {"membership": "join"}}]}),
    pytest.param({"initial_state": [{"type": "m.room.power_levels", "content": {"users": 5}}]}),
    pytest.param({"invite": ["@alice:test.local"]}),
])
async def test_create_room_is_all_or_nothing(client: TestClient, env: Env,
                                             body: dict[str, Any]) -> None:
    rooms, events = await count(client, "rooms"), await count(client, "events")
    resp = await client.post(f"{V3}/createRoom", json=body, headers=env.alice.auth)
    assert resp.status == 400, await resp.json()
    assert (await resp.json())["errcode"] in ("M_BAD_JSON", "M_INVALID_ROOM_STATE",
                                              "M_INVALID_PARAM")
    assert (await count(client, "rooms"), await count(client, "events")) == (rooms, events)


@pytest.mark.parametrize("key", [
    pytest.param("initial_state"),
    pytest.param("invite"),
    pytest.param("room_version"),
    "name", "topic", "preset", "creation_content", "is_direct",
    "room_alias_name", "power_level_content_override",
])
async def test_create_room_null_fields(client: TestClient, env: Env, key: str) -> None:
    rooms = await count(client, "rooms")
    resp = await client.post(f"{V3}/createRoom", json={key: None}, headers=env.alice.auth)
    body = await resp.json()
    assert (resp.status, body.get("errcode")) in ((200, None), (400, "M_BAD_JSON")), body
    assert await count(client, "rooms") == rooms + (resp.status == 200)


@pytest.mark.parametrize("extra", [
    pytest.param({"inhibit_login": "yes"}),
    pytest.param({"device_id": 7}),
    pytest.param({"initial_device_display_name": []}),
])
async def test_register_is_all_or_nothing(client: TestClient, extra: dict[str, Any]) -> None:
    body = {"username": "half", **REG, **extra}
    resp = await client.post(f"{V3}/register", json=body)
    await expect(resp, 400, "M_BAD_JSON")
    assert await count(client, "users") == 0


async def test_deactivate_checks_erase_type(client: TestClient, env: Env) -> None:
    resp = await client.post(f"{V3}/account/deactivate", headers=env.alice.auth,
                             json={"erase": "yes", "auth": AUTH_PW})
    await expect(resp, 400, "M_BAD_JSON")
