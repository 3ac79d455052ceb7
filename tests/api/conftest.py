"""Fixtures shared by the tests/api files (plain helpers are in tests/support.py)."""

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, Env, User


@pytest.fixture(scope="module")
def spec() -> MatrixSpec:
    return MatrixSpec.load()


@pytest.fixture
async def env(client: TestClient, register: Callable[[str], Awaitable[User]],
              create_room: Callable[..., Awaitable[str]]) -> Env:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/first",
                            json={"msgtype": "m.text", "body": "hi"}, headers=alice.auth)
    assert resp.status == 200
    return Env(alice, bob, room_id, (await resp.json())["event_id"])
