"""``edgehs device add`` against a running edgehs process: the command asks the server
(POST /_edgehs/admin/v1/devices, authenticated by DATA_DIR/admin.secret), so users and rooms
can be created while it runs and a replaced token is refused at once, not after a restart.
The device then posts the 2015 way: ``curl -XPOST -d '{...}' .../api/v1/rooms/ROOM/send/TYPE
?access_token=TOKEN``.
"""

import asyncio
import json
import re
import shlex
import stat
import subprocess
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from as_support import edgehs_cli

if TYPE_CHECKING:  # never imported at run time: see tests/support.py
    from server_process import ServerProcess

pytestmark = pytest.mark.integration

CURL_RE = re.compile(r"""^curl -XPOST -d (?P<body>'[^']*') "(?P<url>http://[^"]+)"$""")
CURL_FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what curl -d sends
DEVICES = "/_edgehs/admin/v1/devices"


async def device_add(server: "ServerProcess", *argv: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(edgehs_cli, "device", "add", *argv, "-c",
                                   str(server.config_path))


def curl_posts(out: str) -> list[tuple[str, str]]:
    """(url, body) of each printed curl line."""
    posts = [(m["url"], shlex.split(m["body"])[0]) for line in out.splitlines()
             if (m := CURL_RE.match(line))]
    assert len(posts) == 2, out
    return posts


async def curl(url: str, body: str) -> tuple[int, dict[str, Any]]:
    """What the printed curl line does: a form-typed POST of the JSON text."""
    async with aiohttp.ClientSession() as http, http.post(url, data=body,
                                                          headers=CURL_FORM) as resp:
        return resp.status, await resp.json()


async def test_device_add_while_edgehs_runs(server: "ServerProcess") -> None:
    secret_file = server.data_dir / "admin.secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()

    first = await device_add(server, "greenhouse")
    assert first.returncode == 0, first.stderr
    assert "@device_greenhouse:test.local" in first.stdout
    assert "#greenhouse:test.local" in first.stdout
    old_posts = curl_posts(first.stdout)
    for url, body in old_posts:
        status, answer = await curl(url, body)
        assert status == 200 and answer["event_id"].startswith("$"), answer

    # Again: a new token, and the old one is refused at once (no restart).
    second = await device_add(server, "greenhouse")
    assert second.returncode == 0, second.stderr
    new_posts = curl_posts(second.stdout)
    assert new_posts[0][0] != old_posts[0][0]
    status, answer = await curl(*old_posts[0])
    assert (status, answer["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, answer = await curl(*new_posts[1])
    assert status == 200, answer

    log = server.log_path.read_text()
    assert "device @device_greenhouse:test.local provisioned" in log
    assert secret not in log  # the secret is never logged

    # Stopped cleanly: the secret file is gone, and `device add` writes the database itself.
    await server.stop()
    assert not secret_file.exists()
    offline = await device_add(server, "greenhouse")
    assert offline.returncode == 0, offline.stderr
    await server.start()
    assert secret_file.read_text().strip() != secret  # a new secret at every start
    status, answer = await curl(*curl_posts(offline.stdout)[0])
    assert status == 200, answer
    status, answer = await curl(*new_posts[0])
    assert (status, answer["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_admin_endpoint_refuses_bad_credentials(server: "ServerProcess",
                                                      http: aiohttp.ClientSession) -> None:
    secret = (server.data_dir / "admin.secret").read_text().strip()
    body = json.dumps({"name": "intruder"})
    cases: list[tuple[dict[str, str], int, str]] = [
        ({}, 401, "M_MISSING_TOKEN"),
        ({"Authorization": "Bearer wrong-secret"}, 401, "M_UNKNOWN_TOKEN"),
        ({"Authorization": f"Bearer {secret}x"}, 401, "M_UNKNOWN_TOKEN"),
        ({"Authorization": f"Token {secret}"}, 401, "M_MISSING_TOKEN"),
    ]
    for headers, status, errcode in cases:
        async with http.post(DEVICES, data=body, headers=headers) as resp:
            answer = await resp.json()
            assert (resp.status, answer["errcode"]) == (status, errcode), answer
    # A normal user's access token is valid, but not an admin's.
    async with http.post("/_matrix/client/v3/register", json={
            "username": "mallory", "password": "pw", "auth": {"type": "m.login.dummy"}}) as resp:
        token = (await resp.json())["access_token"]
    async with http.post(DEVICES, data=body,
                         headers={"Authorization": f"Bearer {token}"}) as resp:
        answer = await resp.json()
        assert (resp.status, answer["errcode"]) == (403, "M_FORBIDDEN"), answer
    # Nothing was provisioned, and the right secret still works.
    async with http.post(DEVICES, json={"name": "ok"},
                         headers={"Authorization": f"Bearer {secret}"}) as resp:
        assert resp.status == 200, await resp.text()
    result = await device_add(server, "Bad Name")
    assert result.returncode == 1 and "(M_INVALID_USERNAME)" in result.stderr
