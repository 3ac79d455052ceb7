"""edgehs as a separate process on a loopback port: ``ServerProcess`` and its helpers.

A plain module (not a conftest): tests import it by name (``from server_process import ...``),
because ``from conftest import`` picks whichever conftest.py pytest imported last. The fixtures
built on it are in tests/integration/conftest.py.
"""

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import nio
import pytest
import yaml
from support import free_port

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
