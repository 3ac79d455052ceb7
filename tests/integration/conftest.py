"""Integration fixtures: edgehs as a separate process on a loopback port, real clients.

The server is the installed ``edgehs`` script (or ``python -m edgehs``) started with a config made
by ``edgehs generate-config`` and a real SQLite file in ``tmp_path``; its output goes to
``tmp_path/edgehs.log``, whose tail is shown whenever start-up or shutdown goes wrong.
Clients are matrix-nio's ``AsyncClient`` and plain aiohttp sessions for the raw legacy calls.
"""

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import nio
import pytest
import yaml

SERVER_NAME = "test.local"
PASSWORD = "correct horse battery staple"
START_TIMEOUT = 15.0  # seconds until GET /_matrix/client/versions must answer
STOP_TIMEOUT = 20.0  # seconds a SIGTERM may take (the server's own shutdown_timeout is 10)

NIO_CONFIG = nio.AsyncClientConfig(
    encryption_enabled=False,
    store_sync_tokens=False,
    max_timeouts=2,  # a dead server must fail the test, not make nio retry forever
    max_limit_exceeded=0,
    max_timeout_retry_wait_time=1,
    request_timeout=30,
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def as_port() -> int:
    """A free loopback port for an application service under test to listen on."""
    return free_port()


def edgehs_command(*args: str) -> list[str]:
    """The ``edgehs`` script beside this interpreter, else ``python -m edgehs``."""
    script = Path(sys.executable).with_name("edgehs")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "edgehs", *args]


class ServerProcess:
    """One edgehs process on 127.0.0.1:PORT over DIR; restartable on the same data and port."""

    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path / "data"
        self.config_path = self.data_dir / "edgehs.yaml"
        self.log_path = tmp_path / "edgehs.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "edgehs.db"

    def configure(self) -> None:
        """``edgehs generate-config`` as a user would run it, then rate limits off."""
        done = subprocess.run(
            edgehs_command("generate-config", "--server-name", SERVER_NAME, "--data-dir",
                           str(self.data_dir), "--listen", f"127.0.0.1:{self.port}",
                           "--enable-registration"),
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 0, f"generate-config failed:\n{done.stdout}\n{done.stderr}"
        raw = yaml.safe_load(self.config_path.read_text())
        raw["rate_limits"] = {"enabled": False}
        self.config_path.write_text(yaml.safe_dump(raw))

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return "(no log written)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def tracebacks(self) -> str:
        """Every logged traceback (an unhandled error answered as 500), or ''."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return text if "Traceback (most recent call last)" in text else ""

    async def start(self) -> None:
        assert self.proc is None, "edgehs is already running"
        self.runs += 1
        with self.log_path.open("ab") as log:
            log.write(f"===== edgehs run {self.runs} on port {self.port} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                edgehs_command("run", "-c", str(self.config_path)),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        url = f"{self.base_url}/_matrix/client/versions"
        async with aiohttp.ClientSession() as http:
            while True:
                code = self.proc.poll()
                if code is not None:
                    self.proc = None
                    pytest.fail(f"edgehs exited with {code} while starting; log:\n"
                                f"{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status == 200 and "versions" in await resp.json():
                            return
                if loop.time() > deadline:
                    self.kill_now()
                    pytest.fail(f"edgehs did not answer {url} within {START_TIMEOUT}s; log:\n"
                                f"{self.log_tail()}")
                await asyncio.sleep(0.05)

    async def _wait_exit(self) -> int | None:
        assert self.proc is not None
        try:
            return await asyncio.to_thread(self.proc.wait, STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None

    async def stop(self) -> None:
        """SIGTERM and wait: a clean shutdown exits 0 in time."""
        assert self.proc is not None, "edgehs is not running"
        self.proc.send_signal(signal.SIGTERM)
        code = await self._wait_exit()
        if code is None:
            self.kill_now()
            pytest.fail(f"edgehs did not exit within {STOP_TIMEOUT}s of SIGTERM; log:\n"
                        f"{self.log_tail()}")
        self.proc = None
        assert code == 0, f"edgehs exited with {code} after SIGTERM; log:\n{self.log_tail()}"

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a power cut, as far as the database can tell)."""
        assert self.proc is not None, "edgehs is not running"
        self.proc.send_signal(signal.SIGKILL)
        code = await self._wait_exit()
        assert code == -signal.SIGKILL, f"expected death by SIGKILL, got {code}"
        self.proc = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def kill_now(self) -> None:
        """Cleanup for failures: make sure no process outlives the test."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            self.proc = None


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

