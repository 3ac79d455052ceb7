"""One writer per data dir, against an edgehs process: DATA_DIR/edgehs.lock turns a second
``edgehs run`` (or ``edgehs demo``) on the same data dir away at once, and
``edgehs register-user`` asks the running server (POST /_edgehs/admin/v1/users) instead of
opening the database beside it.
"""

import asyncio
import subprocess
import sys
from typing import TYPE_CHECKING

import aiohttp
import pytest
from as_support import edgehs_cli

if TYPE_CHECKING:  # never imported at run time: see tests/support.py
    from server_process import ServerProcess

pytestmark = pytest.mark.integration

LOGIN = "/_matrix/client/v3/login"


async def login(http: aiohttp.ClientSession, user: str, password: str) -> int:
    async with http.post(LOGIN, json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password}) as resp:
        return resp.status


async def test_a_second_run_on_the_same_data_dir_exits_at_once(
        server: "ServerProcess", http: aiohttp.ClientSession) -> None:
    assert server.proc is not None
    secret = (server.data_dir / "admin.secret").read_text()
    second = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "edgehs", "run", "-c", str(server.config_path)],
        capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode == 1, second
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert str(server.data_dir) in lines[0] and f"pid {server.proc.pid}" in lines[0]
    assert second.stdout == ""

    # The first keeps serving, with its own admin secret.
    assert server.proc.poll() is None
    assert (server.data_dir / "admin.secret").read_text() == secret
    async with http.get("/_matrix/client/versions") as resp:
        assert resp.status == 200
    async with http.post("/_matrix/client/v3/register", json={
            "username": "eve", "password": "pw", "auth": {"type": "m.login.dummy"}}) as resp:
        assert resp.status == 200, await resp.text()

    # So does edgehs demo, before it touches anything.
    demo = await asyncio.to_thread(edgehs_cli, "demo", "--data-dir", str(server.data_dir))
    assert demo.returncode == 1 and f"pid {server.proc.pid}" in demo.stderr, demo
    assert not (server.data_dir / "devices.yaml").exists()

    # Stopped, the lock is free: the same command starts.
    await server.stop()
    await server.start()
    assert await login(http, "eve", "pw") == 200


async def test_register_user_while_edgehs_runs(server: "ServerProcess",
                                              http: aiohttp.ClientSession) -> None:
    config = str(server.config_path)
    done = await asyncio.to_thread(edgehs_cli, "register-user", "-c", config, "alice",
                                   "--password", "pw-alice")
    assert done.returncode == 0, done.stderr
    assert "Registered @alice:test.local (by the running edgehs)" in done.stdout
    assert await login(http, "alice", "pw-alice") == 200
    assert "user @alice:test.local registered by the local admin secret" in \
        server.log_path.read_text()

    # A taken name fails cleanly: one line, the spec's errcode, the password unchanged.
    taken = await asyncio.to_thread(edgehs_cli, "register-user", "-c", config, "alice",
                                    "--password", "other")
    assert taken.returncode == 1
    assert taken.stderr.strip().splitlines() == [
        "cannot register alice: That user name is already taken (M_USER_IN_USE)"]
    assert await login(http, "alice", "pw-alice") == 200
    assert await login(http, "alice", "other") == 403

    # A server admin, too.
    admin = await asyncio.to_thread(edgehs_cli, "register-user", "-c", config, "root",
                                    "--password", "pw-root", "--admin")
    assert admin.returncode == 0, admin.stderr

    # Stopped: the command writes the database itself, and the server sees it at start.
    await server.stop()
    offline = await asyncio.to_thread(edgehs_cli, "register-user", "-c", config, "bob",
                                      "--password", "pw-bob")
    assert offline.returncode == 0, offline.stderr
    assert "by the running edgehs" not in offline.stdout
    await server.start()
    assert await login(http, "bob", "pw-bob") == 200
