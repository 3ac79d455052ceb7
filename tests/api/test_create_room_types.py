"""Every field of the /createRoom request schema is type-checked, the ones edgehs does not act
on included, and nothing is written when one is wrong.

https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3createroom
"""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import V3, Env, count, expect

THREEPID = {"id_server": "id.example.org", "id_access_token": "tok", "medium": "email",
            "address": "bob@example.org"}
WRONG: dict[str, list[Any]] = {
    "name": [1, True, [], {}],
    "topic": [1, False, ["t"], {}],
    "invite": ["@bob:test.local", {}, [1], [{}], 5],
    "invite_3pid": [1, "x", {}, [1], [{}], [{**THREEPID, "medium": 1}],
                    [{k: v for k, v in THREEPID.items() if k != "id_access_token"}]],
    "preset": [1, [], {}],
    "visibility": [1, True, []],
    "creation_content": [1, "x", []],
    "initial_state": [1, {}, [1], [{"type": "m.x"}], [{"type": 1, "content": {}}]],
    "power_level_content_override": [1, "x", []],
    "is_direct": [1, "true", []],
    "room_alias_name": [1, [], {}],
    "room_version": [10, [], {}],
}
CASES = [(key, value) for key, values in WRONG.items() for value in values]


@pytest.mark.parametrize("key,value", CASES, ids=[f"{k}={v!r}" for k, v in CASES])
async def test_wrong_type_is_bad_json(client: TestClient, env: Env, key: str,
                                      value: Any) -> None:
    rooms = await count(client, "rooms")
    resp = await client.post(f"{V3}/createRoom", json={key: value}, headers=env.alice.auth)
    await expect(resp, 400, "M_BAD_JSON")
    assert await count(client, "rooms") == rooms


@pytest.mark.parametrize("content", [
    {"type": 5}, {"m.federate": "no"}, {"predecessor": "!old:test.local"},
    {"predecessor": {"room_id": 5}}, {"predecessor": {"event_id": "$e"}},
    {"predecessor": {"room_id": "!old:test.local", "event_id": 1}},
    {"additional_creators": "@bob:test.local"}, {"additional_creators": [5]},
])
async def test_wrong_creation_content_is_bad_json(client: TestClient, env: Env,
                                                  content: dict[str, Any]) -> None:
    resp = await client.post(f"{V3}/createRoom", json={"creation_content": content},
                             headers=env.alice.auth)
    await expect(resp, 400, "M_BAD_JSON")


@pytest.mark.parametrize("key,value", [("visibility", "secret")])
async def test_value_outside_enum_is_invalid_param(client: TestClient, env: Env, key: str,
                                                   value: str) -> None:
    resp = await client.post(f"{V3}/createRoom", json={key: value}, headers=env.alice.auth)
    await expect(resp, 400, "M_INVALID_PARAM")


async def test_third_party_invites_are_refused_not_dropped(client: TestClient,
                                                           env: Env) -> None:
    rooms = await count(client, "rooms")
    resp = await client.post(f"{V3}/createRoom", json={"invite_3pid": [THREEPID]},
                             headers=env.alice.auth)
    await expect(resp, 403, "M_FORBIDDEN")
    assert await count(client, "rooms") == rooms


async def test_well_typed_body_creates_the_room(client: TestClient, env: Env) -> None:
    resp = await client.post(f"{V3}/createRoom", headers=env.alice.auth, json={
        "name": "n", "topic": "t", "invite": [env.bob.user_id], "invite_3pid": [],
        "preset": "private_chat", "visibility": "private", "is_direct": True,
        "creation_content": {"m.federate": False, "type": "m.space"},
        "initial_state": [{"type": "m.room.guest_access", "state_key": "",
                           "content": {"guest_access": "forbidden"}}],
        "power_level_content_override": {"events_default": 10},
        "room_alias_name": "typed", "room_version": "11",
    })
    assert resp.status == 200, await resp.text()
