"""``edgehs device add`` while edgehs runs: the command asks the running server
(POST /_edgehs/admin/v1/devices) with the secret from DATA_DIR/admin.secret or --admin-token.

The server here is the real application on the config's listen port in this test's event loop;
the command runs in a thread (it uses blocking stdlib HTTP), exactly as from a shell.
tests/integration/test_device_add_live.py does the same against an edgehs process.
"""

import asyncio
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from support import V3

from edgehs.api.keys import HS_KEY
from edgehs.cli import main
from edgehs.config import Config

TOKEN_RE = re.compile(r"access_token=([A-Za-z0-9_\-]+)\"")


async def device_add(capsys: pytest.CaptureFixture[str], config: Config, *argv: str
                     ) -> tuple[int, str, str]:
    capsys.readouterr()
    path = str(config.data_dir / "edgehs.yaml")
    code = await asyncio.to_thread(main, ["device", "add", *argv, "-c", path])
    out, err = capsys.readouterr()
    return code, out, err


def token_of(out: str) -> str:
    found = TOKEN_RE.findall(out)
    assert len(found) == 2 and found[0] == found[1], out
    return str(found[0])


async def test_device_add_goes_through_the_running_server(
    live_server: TestClient, live_config: Config, capsys: pytest.CaptureFixture[str],
) -> None:
    server = live_server.app[HS_KEY]
    await server.users.register("alice", "pw")
    code, out, err = await device_add(capsys, live_config, "greenhouse", "--owner", "alice")
    assert code == 0, err
    assert "Provisioned by the running edgehs" in out and "invited @alice:test.local" in out
    first = token_of(out)
    # The room was made by the running server itself (its stream positions, its caches).
    assert await server.room_store.get_alias("#greenhouse:test.local") is not None
    whoami = await live_server.get(f"{V3}/account/whoami",
                               headers={"Authorization": f"Bearer {first}"})
    assert (await whoami.json())["user_id"] == "@device_greenhouse:test.local"

    code, out, err = await device_add(capsys, live_config, "greenhouse")
    assert code == 0, err
    second = token_of(out)
    assert second != first
    resp = await live_server.get(f"{V3}/account/whoami",
                             headers={"Authorization": f"Bearer {first}"})
    assert (resp.status, (await resp.json())["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_admin_token_instead_of_the_secret_file(
    live_server: TestClient, live_config: Config, capsys: pytest.CaptureFixture[str],
) -> None:
    server = live_server.app[HS_KEY]
    root = await server.users.register("root", "pw", admin=True)
    admin_token, _ = await server.users.login(root, None, None)
    alice = await server.users.register("alice", "pw")
    alice_token, _ = await server.users.login(alice, None, None)
    (live_config.data_dir / "admin.secret").unlink()  # only the token can work now
    code, out, err = await device_add(capsys, live_config, "lamp", "--admin-token", admin_token)
    assert code == 0, err
    assert token_of(out)
    code, _, err = await device_add(capsys, live_config, "lamp", "--admin-token", alice_token)
    assert code == 1 and "(M_FORBIDDEN)" in err
    code, _, err = await device_add(capsys, live_config, "lamp", "--admin-token", "nope")
    assert code == 1 and "(M_UNKNOWN_TOKEN)" in err
    assert "nope" not in err and alice_token not in err
    code, _, err = await device_add(capsys, live_config, "lamp")  # no secret file, no token
    assert code == 1 and "admin.secret" in err and "--admin-token" in err


async def test_errors_of_the_running_server_are_printed(
    live_server: TestClient, live_config: Config, capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = await device_add(capsys, live_config, "Bad Name")
    assert code == 1 and "(M_INVALID_USERNAME)" in err
    code, _, err = await device_add(capsys, live_config, "x", "--owner", "nobody")
    assert code == 1 and "no local user @nobody:test.local" in err
    code, _, err = await device_add(capsys, live_config, "x", "--room", "#x:elsewhere.org")
    assert code == 1 and "(M_INVALID_PARAM)" in err


async def test_a_secret_the_command_may_not_read(
    live_server: TestClient, live_config: Config, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (The tests run as root, who reads any file: the permission error is simulated.)
    def refuse(path: Path) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("edgehs.api.admin.read_secret", refuse)
    code, _, err = await device_add(capsys, live_config, "x")
    assert code == 1 and "permission denied" in err and "sudo -u edgehs" in err
    assert await live_server.app[HS_KEY].user_store.get_user("@device_x:test.local") is None
