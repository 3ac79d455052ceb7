"""Integration fixtures: edgehs as a separate process on a loopback port, real clients.

The server is the installed ``edgehs`` script (or ``python -m edgehs``) started with a config made
by ``edgehs generate-config`` and a real SQLite file in ``tmp_path``; its output goes to
``tmp_path/edgehs.log``, whose tail is shown whenever start-up or shutdown goes wrong.
Clients are matrix-nio's ``AsyncClient`` and plain aiohttp sessions for the raw legacy calls.
"""

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import nio
import pytest
from server_process import (  # noqa: F401 (re-exported for older imports)
    NIO_CONFIG,
    PASSWORD,
    SERVER_NAME,
    ServerProcess,
    edgehs_command,
    free_port,
)


@pytest.fixture
def as_port() -> int:
    """A free loopback port for an application service under test to listen on."""
    return free_port()


@pytest.fixture
def server_prepare() -> Callable[[ServerProcess], None]:
    """Runs after ``configure()`` and before the first start; a test module overrides this
    fixture to prepare the data dir first (e.g. write application service registrations)."""
    return lambda proc: None


@pytest.fixture
async def server(tmp_path: Path,
                 server_prepare: Callable[[ServerProcess], None]) -> AsyncIterator[ServerProcess]:
    """A running edgehs; torn down (SIGTERM, then SIGKILL if needed) even when the test fails.
    Teardown fails the test when the SIGTERM does not give exit code 0 or when the server log
    holds a traceback (an unhandled error answered as 500 is a bug)."""
    proc = ServerProcess(tmp_path)
    code: int | None = 0
    try:
        proc.configure()
        server_prepare(proc)
        await proc.start()
        yield proc
    finally:
        if proc.proc is not None:
            if proc.proc.poll() is None:
                proc.proc.send_signal(signal.SIGTERM)
            code = await proc._wait_exit()
            proc.kill_now()
    print(f"---- edgehs log tail ({proc.log_path}) ----\n{proc.log_tail()}")
    errors = proc.tracebacks()
    if errors:
        pytest.fail(f"edgehs logged unhandled errors:\n{errors[-6000:]}")
    if code != 0:
        pytest.fail(f"edgehs did not shut down cleanly on SIGTERM (exit {code}); log:\n"
                    f"{proc.log_tail()}")


NioFactory = Callable[..., nio.AsyncClient]


@pytest.fixture
async def nio_client(server: ServerProcess) -> AsyncIterator[NioFactory]:
    """Make matrix-nio clients for the server; all are closed at teardown."""
    made: list[nio.AsyncClient] = []

    def make(user: str = "", device_id: str | None = None) -> nio.AsyncClient:
        client = nio.AsyncClient(server.base_url, user, device_id=device_id, config=NIO_CONFIG)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def register_and_login(make: NioFactory, name: str) -> nio.AsyncClient:
    """Register NAME with nio (m.login.dummy), then log in with a fresh client."""
    registrar = make()
    reg = await registrar.register(name, PASSWORD, device_name="registration")
    assert isinstance(reg, nio.RegisterResponse), reg
    assert reg.user_id == f"@{name}:{SERVER_NAME}"
    client = make(f"@{name}:{SERVER_NAME}")
    login = await client.login(PASSWORD, device_name=f"{name}'s nio")
    assert isinstance(login, nio.LoginResponse), login
    assert client.access_token and client.access_token != reg.access_token
    return client


@pytest.fixture
def nio_user(nio_client: NioFactory) -> Callable[[str], Awaitable[nio.AsyncClient]]:
    """``await nio_user("alice")``: a registered, logged-in matrix-nio client."""
    async def _make(name: str) -> nio.AsyncClient:
        return await register_and_login(nio_client, name)
    return _make


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session on the server's base URL (no Matrix library in between)."""
    async with aiohttp.ClientSession(base_url=server.base_url) as session:
        yield session

