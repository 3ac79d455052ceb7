"""``edgehs register-user`` while edgehs runs: the command asks the running server
(POST /_edgehs/admin/v1/users) instead of opening the database beside it.

The server here is the real application on the config's listen port in this test's event loop;
the command runs in a thread (it uses blocking stdlib HTTP), exactly as from a shell.
tests/integration/test_one_writer.py does the same against an edgehs process.
"""

import asyncio

import pytest
from aiohttp.test_utils import TestClient
from support import V3

from edgehs.api.keys import HS_KEY
from edgehs.cli import main
from edgehs.config import Config


async def register_user(capsys: pytest.CaptureFixture[str], config: Config, *argv: str
                        ) -> tuple[int, str, str]:
    capsys.readouterr()
    path = str(config.data_dir / "edgehs.yaml")
    code = await asyncio.to_thread(main, ["register-user", "-c", path, *argv])
    out, err = capsys.readouterr()
    return code, out, err


async def test_register_user_goes_through_the_running_server(
    live_server: TestClient, live_config: Config, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = await register_user(capsys, live_config, "alice", "--password", "pw-a")
    assert code == 0, err
    assert "Registered @alice:test.local (by the running edgehs)" in out
    resp = await live_server.post(f"{V3}/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "pw-a"})
    assert resp.status == 200, await resp.text()

    code, _, err = await register_user(capsys, live_config, "alice", "--password", "other")
    assert code == 1 and "cannot register alice" in err and "(M_USER_IN_USE)" in err
    assert len(err.splitlines()) == 1
    code, _, err = await register_user(capsys, live_config, "Bad Name", "--password", "x")
    assert code == 1 and "(M_INVALID_USERNAME)" in err

    code, _, err = await register_user(capsys, live_config, "root", "--password", "pw",
                                       "--admin")
    assert code == 0, err
    root = await live_server.app[HS_KEY].user_store.get_user("@root:test.local")
    assert root is not None and root.get("admin")


async def test_register_user_with_an_admin_token(
    live_server: TestClient, live_config: Config, capsys: pytest.CaptureFixture[str],
) -> None:
    server = live_server.app[HS_KEY]
    root = await server.users.register("root", "pw", admin=True)
    admin_token, _ = await server.users.login(root, None, None)
    (live_config.data_dir / "admin.secret").unlink()  # only the token can work now
    code, _, err = await register_user(capsys, live_config, "bob", "--password", "pw")
    assert code == 1 and "admin.secret" in err and "--admin-token" in err
    code, out, err = await register_user(capsys, live_config, "bob", "--password", "pw",
                                         "--admin-token", admin_token)
    assert code == 0 and "@bob:test.local" in out, err
    assert await server.user_store.get_user("@bob:test.local") is not None
