"""Membership preconditions hold against concurrent requests: they are checked in the room
lock, on the state the member event is built on, so of two requests that each need the same
membership only one passes.

https://spec.matrix.org/v1.19/client-server-api/#room-membership
"""

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import V3, Env

from edgehs.api.keys import HS_KEY


async def parked(lock: asyncio.Lock, waiters: int) -> None:
    """Wait until ``waiters`` tasks wait for ``lock``."""
    for _ in range(500):
        if len(getattr(lock, "_waiters", None) or ()) >= waiters:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the requests never reached the room lock")


async def member_events(client: TestClient, env: Env, user_id: str) -> list[str]:
    resp = await client.get(f"{V3}/rooms/{env.room_id}/messages",
                            params={"dir": "f", "limit": "100"}, headers=env.alice.auth)
    chunk = (await resp.json())["chunk"]
    return [e["content"]["membership"] for e in chunk
            if e["type"] == "m.room.member" and e["state_key"] == user_id]


@pytest.mark.parametrize("action, before, refusal", [
    ("kick", "join", "is not in the room"),
    ("unban", "ban", "is not banned"),
])
async def test_two_concurrent_requests_one_passes(client: TestClient, env: Env, action: str,
                                                  before: str, refusal: str) -> None:
    bob = env.bob.user_id
    assert (await client.post(f"{V3}/rooms/{env.room_id}/join", json={},
                              headers=env.bob.auth)).status == 200
    if before == "ban":
        assert (await client.post(f"{V3}/rooms/{env.room_id}/ban", json={"user_id": bob},
                                  headers=env.alice.auth)).status == 200
    lock = client.app[HS_KEY].events.room_lock(env.room_id)

    async def request() -> Any:
        resp = await client.post(f"{V3}/rooms/{env.room_id}/{action}", json={"user_id": bob},
                                 headers=env.alice.auth)
        return resp.status, await resp.json()

    async with lock:  # both requests get as far as they can before either writes
        tasks = [asyncio.create_task(request()) for _ in range(2)]
        await parked(lock, 2)
    results = sorted(await asyncio.gather(*tasks), key=lambda r: r[0])
    assert [status for status, _ in results] == [200, 403], results
    assert results[1][1]["errcode"] == "M_FORBIDDEN"
    assert refusal in results[1][1]["error"]
    assert (await member_events(client, env, bob))[-2:] == [before, "leave"]

