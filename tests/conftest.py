"""Shared fixtures: a real config + SQLite file in tmp_path, the app in-process, helpers."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from edgehs.app import init_app
from edgehs.cli import main as cli_main
from edgehs.config import Config, load_config


def make_config(data_dir: Path, **overrides: Any) -> Config:
    """Write a config with `edgehs generate-config`, apply overrides, load it."""
    assert cli_main(["generate-config", "--server-name", "test.local", "--data-dir",
                     str(data_dir), "--enable-registration"]) == 0
    path = data_dir / "edgehs.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["rate_limits"] = {"enabled": False}
    raw.update(overrides)
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "data")


@dataclass
class User:
    user_id: str
    token: str
    device_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


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
