"""Shared fixtures: a real config + SQLite file in tmp_path, the app in-process.

Plain helpers (make_config, User, ...) live in support.py: ``from support import ...``.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import User, make_config

from edgehs.app import init_app
from edgehs.config import Config
from edgehs.store.db import Database


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "data")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """An open Database on a fresh SQLite file, every migration applied (store unit tests)."""
    database = Database(tmp_path / "edgehs.db")
    await database.open()
    yield database
    await database.close()


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config
                 ) -> TestClient:
    return await aiohttp_client(init_app(config))


@pytest.fixture
def register(client: TestClient) -> Callable[[str], Awaitable[User]]:
    async def _register(name: str, password: str = "secret-pw") -> User:
        resp = await client.post("/_matrix/client/v3/register", json={
            "username": name, "password": password, "auth": {"type": "m.login.dummy"},
        })
        body = await resp.json()
        assert resp.status == 200, body
        return User(body["user_id"], body["access_token"], body["device_id"])
    return _register


@pytest.fixture
def create_room(client: TestClient) -> Callable[..., Awaitable[str]]:
    async def _create(user: User, **body: Any) -> str:
        resp = await client.post("/_matrix/client/v3/createRoom", json=body, headers=user.auth)
        data = await resp.json()
        assert resp.status == 200, data
        return str(data["room_id"])
    return _create
