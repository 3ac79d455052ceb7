"""PUT /rooms/{roomId}/state/m.room.canonical_alias: the aliases are checked before sending.
M_INVALID_PARAM for invalid syntax, M_BAD_ALIAS for an alias not pointing to the room.

https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidstateeventtypestatekey
https://spec.matrix.org/v1.19/client-server-api/#mroomcanonical_alias
"""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3

PATH = "/rooms/{roomId}/state/{eventType}/{stateKey}"


@pytest.mark.parametrize(("content", "status", "errcode"), [
    ({"alias": "#hall:test.local", "alt_aliases": ["#hall:test.local"]}, 200, None),
    ({"alias": "#hall:test.local", "alt_aliases": ["#other:test.local"]}, 400, "M_BAD_ALIAS"),
    ({"alias": "#hall:test.local", "alt_aliases": ["#NOT-hall:test.local"]}, 400,
     "M_BAD_ALIAS"),
    ({"alias": "#hall:test.local", "alt_aliases": ["%hall:test.local"]}, 400,
     "M_INVALID_PARAM"),
    ({"alias": "hall", "alt_aliases": []}, 400, "M_INVALID_PARAM"),
    ({"alias": "#nowhere:test.local"}, 400, "M_BAD_ALIAS"),
    ({"alias": None, "alt_aliases": ["#hall:test.local"]}, 200, None),
    ({}, 200, None),
])
async def test_canonical_alias_checks(client: TestClient, register: Any, create_room: Any,
                                      spec: MatrixSpec, content: dict[str, Any], status: int,
                                      errcode: str | None) -> None:
    alice = await register("alice")
    room_id = await create_room(alice, room_alias_name="hall")
    await create_room(alice, room_alias_name="other")
    resp = await client.put(f"{V3}/rooms/{room_id}/state/m.room.canonical_alias",
                            json=content, headers=alice.auth)
    body = await resp.json()
    assert (resp.status, body.get("errcode")) == (status, errcode), body
    spec.check_response("room_state", "PUT", PATH, status, body)
