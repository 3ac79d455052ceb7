"""``edgehs run`` under a (fake) systemd: READY=1 once it listens, WATCHDOG=1 pings, STOPPING=1.

The test plays the service manager: it binds the unix datagram socket named in
``$NOTIFY_SOCKET`` and reads what the edgehs process sends.
"""

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path

import aiohttp
import pytest
from server_process import ServerProcess, edgehs_command

pytestmark = pytest.mark.integration


async def _receive(sock: socket.socket, proc: subprocess.Popen[bytes], log: Path) -> str:
    """The next datagram; fails the test if edgehs exits first."""
    loop = asyncio.get_running_loop()
    for _ in range(300):  # 300 x 0.1 s
        try:
            return (await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.1)).decode()
        except TimeoutError:
            if proc.poll() is not None:
                pytest.fail(f"edgehs exited with {proc.returncode}; log:\n{log.read_text()}")
    pytest.fail(f"no notification from edgehs; log:\n{log.read_text()}")


async def test_run_notifies_ready_after_listening_and_pings_the_watchdog(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    server.configure()
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.setblocking(False)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"}
    env.pop("WATCHDOG_PID", None)
    with server.log_path.open("wb") as log:
        proc = subprocess.Popen(edgehs_command("run", "-c", str(server.config_path)), env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        messages: list[str] = []
        while not any(m.startswith("READY=1") for m in messages):
            messages.append(await _receive(sock, proc, server.log_path))
            if messages[-1].startswith("READY=1"):
                # READY=1 means listening: the server answers right now, without waiting.
                async with aiohttp.ClientSession() as http, \
                        http.get(f"{server.base_url}/_matrix/client/versions") as resp:
                    assert resp.status == 200
        ready = next(m for m in messages if m.startswith("READY=1"))
        assert f"STATUS=listening on http://127.0.0.1:{server.port}" in ready.split("\n")
        # WATCHDOG_USEC=0.4 s: pings every 0.2 s keep coming while it serves.
        pings = [await _receive(sock, proc, server.log_path) for _ in range(3)]
        assert pings == ["WATCHDOG=1"] * 3
        proc.send_signal(signal.SIGTERM)
        rest: list[str] = []
        while "STOPPING=1" not in rest:
            rest.append(await _receive(sock, proc, server.log_path))
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sock.close()

