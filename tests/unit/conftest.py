"""Fixtures of the tests/unit files that need edgehs listening (the CLI's live paths)."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from support import free_port, make_config

from edgehs.app import init_app
from edgehs.config import Config


@pytest.fixture
def live_config(tmp_path: Path) -> Config:
    """A config listening on a free loopback port."""
    return make_config(tmp_path / "data", listen=f"127.0.0.1:{free_port()}")


@pytest.fixture
async def live_server(live_config: Config) -> AsyncIterator[TestClient]:
    """edgehs serving on the config's listen address (holding the data dir's lock), and a
    client for it."""
    server = TestServer(init_app(live_config), host="127.0.0.1", port=live_config.listen_port)
    client = TestClient(server)
    await client.start_server()
    yield client
    await client.close()
