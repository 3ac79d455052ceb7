"""Fixtures shared by the tests/api files (plain helpers are in tests/support.py)."""

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from spec_schema import MatrixSpec
from support import V3, Env, User

from edgehs.api.keys import CONFIG_KEY


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


@pytest.fixture
def server_errors() -> list[str]:
    """Every 500 an edgehs app answered during the test ("METHOD path")."""
    return []


@pytest.fixture
def aiohttp_client_cls(server_errors: list[str]) -> type[TestClient[Any, Any]]:
    """pytest-aiohttp's client class, recording each 500 an edgehs app answers (fake
    application services and push gateways started by the tests may answer 500 at will)."""

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        if response.status == 500:
            server_errors.append(f"{request.method} {request.path}")

    class CheckedClient(TestClient[Any, Any]):
        async def start_server(self) -> None:
            app = self.server.app if isinstance(self.server, TestServer) else None
            if app is not None and CONFIG_KEY in app:
                app.on_response_prepare.append(record)
            await super().start_server()

    return CheckedClient


@pytest.fixture(autouse=True)
def no_server_errors(server_errors: list[str]) -> Iterator[None]:
    """A 500 is a bug report (DESIGN.md, style 5): fail any test during which one was sent."""
    yield
    if server_errors:
        pytest.fail(f"the server answered 500 to: {', '.join(server_errors)}", pytrace=False)
