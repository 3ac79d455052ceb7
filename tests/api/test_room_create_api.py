"""POST /createRoom: https://spec.matrix.org/v1.19/client-server-api/#creation"""

import asyncio

import pytest
from aiohttp.test_utils import TestClient
from support import V3

from edgehs.api.keys import HS_KEY
from edgehs.service import events as events_service


async def test_concurrent_identical_creates_make_distinct_rooms(
    client: TestClient, register, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In v12 the room id is the hash of the create event: several identical requests by one
    user in the same millisecond must still make distinct rooms, never a 500."""
    alice = await register("alice")
    monkeypatch.setattr(events_service, "now_ms", lambda: 1_800_000_000_000)
    resps = await asyncio.gather(*(
        client.post(f"{V3}/createRoom", json={"room_version": "12"}, headers=alice.auth)
        for _ in range(6)
    ))
    bodies = [await r.json() for r in resps]
    assert [r.status for r in resps] == [200] * 6, bodies
    assert len({b["room_id"] for b in bodies}) == 6
    for body in bodies:
        resp = await client.get(f"{V3}/rooms/{body['room_id']}/state/m.room.create/",
                                headers=alice.auth)
        assert resp.status == 200


async def test_create_after_restart_with_clock_set_back(
    client: TestClient, register, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create event identical to a stored room's (a restart with the clock set back) is
    built again later instead of failing on the stored room id."""
    alice = await register("alice")
    monkeypatch.setattr(events_service, "now_ms", lambda: 1_800_000_000_000)
    first = await client.post(f"{V3}/createRoom", json={}, headers=alice.auth)
    client.app[HS_KEY].events._last_create_ts = 0  # what a new process remembers
    second = await client.post(f"{V3}/createRoom", json={}, headers=alice.auth)
    assert (first.status, second.status) == (200, 200), await second.text()
    assert (await first.json())["room_id"] != (await second.json())["room_id"]
