"""``edgehs device add``: a user, a room and a room-limited token for a plain-HTTP device."""

import asyncio
import json
import os
import re
import shlex
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import V3, free_port, make_config

from edgehs.app import init_app
from edgehs.cli import main
from edgehs.config import Config
from edgehs.homeserver import HomeServer
from edgehs.service.devices import curl_lines
from edgehs.store.writer_lock import DataDirLock

Client = Callable[..., Awaitable[TestClient]]
CURL_RE = re.compile(r"""^curl -XPOST -d (?P<body>'[^']*') "(?P<url>http://[^"]+)"$""")


@pytest.fixture
def dev_config(tmp_path: Path) -> Config:
    # A port nothing listens on: `device add` looks there for a running edgehs.
    return make_config(tmp_path / "data", listen=f"127.0.0.1:{free_port()}")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def add_device(capsys: pytest.CaptureFixture[str], config: Config, name: str,
               *extra: str) -> dict[str, Any]:
    """Run `device add` (not inside an event loop: it runs its own); what it printed, parsed."""
    code, out, err = cli(capsys, "device", "add", name, "-c", str(config.data_dir / "edgehs.yaml"),
                         *extra)
    assert code == 0, err
    posts = []
    for line in out.splitlines():
        m = CURL_RE.match(line)
        if m:
            url = m["url"]
            assert url.startswith(f"http://127.0.0.1:{config.listen_port}/_matrix/client/api/v1/")
            posts.append((url.split(str(config.listen_port), 1)[1],
                          json.loads(shlex.split(m["body"])[0])))
    assert len(posts) == 2, out
    token = posts[0][0].rsplit("access_token=", 1)[1]
    room_id = re.search(r"\((![^)]+)\)", out)
    assert room_id is not None, out
    return {"posts": posts, "token": token, "room_id": room_id[1], "out": out}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: TestClient, user: str, password: str) -> str:
    resp = await client.post(f"{V3}/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
        "password": password})
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["access_token"])


async def expect(resp: Any, status: int, errcode: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = await resp.json()
    assert resp.status == status, body
    if errcode is not None:
        assert body["errcode"] == errcode
    return body


@contextmanager
def listening(config: Config) -> Iterator[None]:
    """Something accepting connections on the listen address: edgehs looks as if it runs."""
    with socket.socket() as sock:
        sock.bind((config.listen_host, config.listen_port))
        sock.listen()
        yield


async def test_device_token_posts_only_into_its_room(
    dev_config: Config, aiohttp_client: Client, capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(dev_config.data_dir / "edgehs.yaml")
    assert (await asyncio.to_thread(cli, capsys, "register-user", "-c", path, "alice",
                                    "--password", "pw"))[0] == 0
    dev = await asyncio.to_thread(add_device, capsys, dev_config, "greenhouse",
                                  "--owner", "alice")
    assert "@device_greenhouse:test.local" in dev["out"]
    assert "#greenhouse:test.local" in dev["out"]
    client = await aiohttp_client(init_app(dev_config))

    # Both printed lines work as printed (legacy api/v1 path, ?access_token=).
    (text_path, text), (sensor_path, sensor) = dev["posts"]
    assert text == {"msgtype": "m.text", "body": "hello"}
    assert "/send/org.edgehs.sensor?" in sensor_path and sensor["value"] == "21.5"
    await expect(await client.post(text_path, json=text), 200)
    await expect(await client.post(sensor_path, json=sensor), 200)
    # a float is refused by the canonical-JSON rules, as the help text says
    await expect(await client.post(sensor_path, json={"value": 21.5}), 400, "M_BAD_JSON")

    # The owner was invited with power 50 and can read the readings.
    alice = await login(client, "alice", "pw")
    room_id = dev["room_id"]
    await expect(await client.post(f"{V3}/rooms/{room_id}/join", headers=auth(alice)), 200)
    power = await expect(await client.get(
        f"{V3}/rooms/{room_id}/state/m.room.power_levels", headers=auth(alice)), 200)
    assert power["users"]["@alice:test.local"] == 50
    messages = await expect(await client.get(
        f"{V3}/rooms/{room_id}/messages?dir=b", headers=auth(alice)), 200)
    assert sensor in [e["content"] for e in messages["chunk"]]

    # Anywhere else the device's token is refused.
    token = auth(dev["token"])
    other = (await expect(await client.post(f"{V3}/createRoom", headers=auth(alice),
                                            json={"preset": "public_chat"}), 200))["room_id"]
    await expect(await client.post(text_path.replace(room_id.replace("!", "%21").replace(
        ":", "%3A"), other), json=text), 403, "M_FORBIDDEN")
    await expect(await client.put(f"{V3}/rooms/{other}/send/m.room.message/t1", headers=token,
                                  json=text), 403, "M_FORBIDDEN")
    await expect(await client.post(f"{V3}/join/{other}", headers=token), 403, "M_FORBIDDEN")
    await expect(await client.post(f"{V3}/createRoom", headers=token, json={}), 403,
                 "M_FORBIDDEN")
    for read in ("state", "state/m.room.create", "members", "joined_members",
                 "messages?dir=b"):
        await expect(await client.get(f"{V3}/rooms/{other}/{read}", headers=token), 403,
                     "M_FORBIDDEN")
    # ... but it may read its own room, sync and list its rooms.
    await expect(await client.get(f"{V3}/rooms/{room_id}/state", headers=token), 200)
    joined = await expect(await client.get(f"{V3}/joined_rooms", headers=token), 200)
    assert joined["joined_rooms"] == [room_id]
    await expect(await client.get(f"{V3}/sync?timeout=0", headers=token), 200)


async def test_device_add_again_revokes_the_old_token(
    dev_config: Config, aiohttp_client: Client, capsys: pytest.CaptureFixture[str],
) -> None:
    first = await asyncio.to_thread(add_device, capsys, dev_config, "meter")
    second = await asyncio.to_thread(add_device, capsys, dev_config, "meter")
    assert second["room_id"] == first["room_id"] and second["token"] != first["token"]
    client = await aiohttp_client(init_app(dev_config))
    old_path, body = first["posts"][0]
    await expect(await client.post(old_path, json=body), 401, "M_UNKNOWN_TOKEN")
    new_path, body = second["posts"][0]
    await expect(await client.post(new_path, json=body), 200)
    whoami = await expect(await client.get(f"{V3}/account/whoami",
                                           headers=auth(second["token"])), 200)
    assert whoami["user_id"] == "@device_meter:test.local"


async def public_room(config: Config, creator: str, alias_name: str) -> str:
    """A public room with an alias, made by another HomeServer on the same data dir."""
    server = HomeServer(config)
    await server.start()
    try:
        await server.users.register(creator, "pw")
        room_id, _ = await server.rooms.create_room(
            f"@{creator}:test.local", {"preset": "public_chat", "room_alias_name": alias_name})
        return room_id
    finally:
        await server.stop()


async def test_any_room_token_in_an_existing_room(
    dev_config: Config, aiohttp_client: Client, capsys: pytest.CaptureFixture[str],
) -> None:
    room_id = await asyncio.to_thread(asyncio.run, public_room(dev_config, "bob", "lobby"))
    # joined to the existing room (by full alias), the token not limited to it
    free = await asyncio.to_thread(add_device, capsys, dev_config, "b", "--any-room",
                                   "--room", "#lobby:test.local", "--owner", "bob")
    assert free["room_id"] == room_id and "invited" not in free["out"]  # bob is in it
    client = await aiohttp_client(init_app(dev_config))
    token = auth(free["token"])
    await expect(await client.post(f"{V3}/createRoom", headers=token, json={}), 200)
    path, body = free["posts"][0]
    await expect(await client.post(path, json=body), 200)


def test_device_add_bad_input(dev_config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(dev_config.data_dir / "edgehs.yaml")
    code, _, err = cli(capsys, "device", "add", "Bad Name", "-c", path)
    assert code == 1 and "cannot add device" in err
    code, _, err = cli(capsys, "device", "add", "x", "--owner", "nobody", "-c", path)
    assert code == 1 and "no local user @nobody:test.local" in err
    code, _, err = cli(capsys, "device", "add", "x", "--room", "#x:elsewhere.org", "-c", path)
    assert code == 1 and "this server" in err
    with pytest.raises(SystemExit):
        main(["device", "add", "x"])  # no -c


def test_device_add_cannot_join_a_private_room(
    dev_config: Config, capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(dev_config.data_dir / "edgehs.yaml")
    assert cli(capsys, "device", "add", "one", "-c", path)[0] == 0
    # #one is invite-only: a second device cannot join it without an invite.
    code, _, err = cli(capsys, "device", "add", "two", "--room", "one", "-c", path)
    assert code == 1 and "invite it" in err


def test_device_add_while_something_else_listens(
    dev_config: Config, capsys: pytest.CaptureFixture[str],
) -> None:
    """While edgehs runs (it holds DATA_DIR/edgehs.lock), `device add` asks it
    (tests/unit/test_cli_device_live.py). A listener that holds no lock on this data dir is
    not this data dir's edgehs: the command writes the database itself."""
    path = str(dev_config.data_dir / "edgehs.yaml")
    with listening(dev_config):
        assert cli(capsys, "device", "add", "lamp", "-c", path)[0] == 0


def test_device_add_while_another_command_holds_the_lock(
    dev_config: Config, capsys: pytest.CaptureFixture[str],
) -> None:
    """The lock is held by a process that serves nothing (another command writing, or an
    edgehs still starting): a clean error naming the holder, and nothing written beside."""
    path = str(dev_config.data_dir / "edgehs.yaml")
    lock = DataDirLock.acquire(dev_config.data_dir)
    try:
        code, _, err = cli(capsys, "device", "add", "lamp", "-c", path)
        assert code == 1 and f"(pid {os.getpid()}) holds {dev_config.data_dir}" in err
        assert "admin.secret" in err and "--admin-token" in err
        code, _, err = cli(capsys, "device", "add", "lamp", "--admin-token", "t", "-c", path)
        assert code == 1 and "did not answer" in err and len(err.splitlines()) == 1
    finally:
        lock.release()
    assert cli(capsys, "device", "add", "lamp", "-c", path)[0] == 0  # released: direct


def test_curl_lines_quote_the_room_id() -> None:
    lines = curl_lines("https://pi.example.org/", "!abc:pi.example.org", "syt_T")
    assert lines[0] == (
        """curl -XPOST -d '{"msgtype":"m.text","body":"hello"}' "https://pi.example.org"""
        """/_matrix/client/api/v1/rooms/%21abc%3Api.example.org/send/m.room.message"""
        """?access_token=syt_T\"""")
    assert "org.edgehs.sensor" in lines[1] and '"value":"21.5"' in lines[1]
