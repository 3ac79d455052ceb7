"""Plain test helpers (no fixtures): import them as ``from support import ...``.

``tests/`` is on ``sys.path`` because it holds the root ``conftest.py`` (the same way
``spec_schema`` is imported). Never ``from conftest import ...``: tests/integration has its own
conftest.py, so ``import conftest`` gives whichever one pytest imported last.
"""

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestClient

from edgehs.cli import main as cli_main
from edgehs.config import Config, load_config

V3 = "/_matrix/client/v3"


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class User:
    user_id: str
    token: str
    device_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


# --- bad-input tests (tests/api/test_bad_input*.py; the `env` fixture is in tests/api) -----------

AUTH_PW = {"type": "m.login.password", "password": "secret-pw", "user": "@alice:test.local"}
REG = {"password": "pw", "auth": {"type": "m.login.dummy"}}


@dataclass
class Env:
    alice: User
    bob: User
    room_id: str  # public, alice joined, one message
    event_id: str

    def path(self, template: str, room: str | None = None) -> str:
        """The URL of ``template`` (its query, after "?", is left as it is)."""
        path, sep, query = template.partition("?")
        return V3 + path.format(room=room or self.room_id, event=self.event_id,
                                device=self.alice.device_id, me=self.alice.user_id) + sep + query


async def expect(resp: Any, status: int, errcode: str) -> dict[str, Any]:
    body = await resp.json()
    assert (resp.status, body.get("errcode")) == (status, errcode), body
    assert isinstance(body.get("error"), str), body
    return dict(body)


async def get_sync(client: TestClient, user: Any, since: str | None = None,
               timeout: int = 0) -> dict[str, Any]:
    """GET /sync for ``user`` (initial, or incremental from ``since``), asserting a 200."""
    params = {"timeout": str(timeout), **({"since": since} if since else {})}
    resp = await client.get(f"{V3}/sync", params=params, headers=user.auth)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def count(client: TestClient, table: str) -> int:
    from edgehs.api.keys import HS_KEY
    return int(await client.app[HS_KEY].db.fetchval(f"SELECT COUNT(*) FROM {table}"))


async def parked(client: TestClient, n: int = 1) -> None:
    """Wait until ``n`` long-polls are parked on the server's notifier (a bounded loop, so
    that a request that never parks fails the test instead of hanging it)."""
    import asyncio

    from edgehs.api.keys import HS_KEY
    notifier = client.app[HS_KEY].notifier
    for _ in range(1000):
        if notifier.waiting >= n:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{notifier.waiting} long-polls parked, expected {n}")


def write_fifo(path: Path, data: bytes, *, nonblock: bool = False) -> None:
    """What a MIDI source does: open the FIFO for writing, write everything, close. The open
    waits for a reader unless ``nonblock`` (then it fails with ENXIO when there is none)."""
    fd = os.open(path, os.O_WRONLY | (os.O_NONBLOCK if nonblock else 0))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
