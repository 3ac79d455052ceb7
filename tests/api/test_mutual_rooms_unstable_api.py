"""MSC2666's unstable mutual rooms path pages under the MSC's own names (``batch_token`` in,
``next_batch_token`` out), which is what matrix-js-sdk's ``_unstable_getSharedRooms`` follows;
the stable ``v1/mutual_rooms`` keeps ``from`` / ``next_batch``.

https://github.com/matrix-org/matrix-spec-proposals/pull/2666
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mutual_rooms
"""

from typing import Any

from aiohttp.test_utils import TestClient
from support import V3, expect

from edgehs.api.keys import HS_KEY

UNSTABLE = "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms"


async def test_unstable_mutual_rooms_pages_with_batch_token(client: TestClient, register: Any,
                                                            create_room: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    rooms = [await create_room(alice, preset="public_chat") for _ in range(3)]
    for room in rooms:
        resp = await client.post(f"{V3}/join/{room}", json={}, headers=bob.auth)
        assert resp.status == 200, await resp.text()
    client.app[HS_KEY].user_directory.page_size = 2
    resp = await client.get(UNSTABLE, params={"user_id": bob.user_id}, headers=alice.auth)
    first = await resp.json()
    assert resp.status == 200, first
    assert len(first["joined"]) == 2 and "next_batch" not in first
    resp = await client.get(UNSTABLE, headers=alice.auth, params={
        "user_id": bob.user_id, "batch_token": first["next_batch_token"]})
    second = await resp.json()
    assert resp.status == 200, second
    assert len(second["joined"]) == 1 and "next_batch_token" not in second
    assert sorted(first["joined"] + second["joined"]) == sorted(rooms)
    resp = await client.get(UNSTABLE, headers=alice.auth,
                            params={"user_id": bob.user_id, "batch_token": "bogus"})
    await expect(resp, 400, "M_INVALID_PARAM")
