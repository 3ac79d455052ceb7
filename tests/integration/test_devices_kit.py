"""The devices kit end to end: a real edgehs process and the kit's echo service
(kit_echo_service.py) as a separate process, talking only over HTTP.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from as_support import call, wait_until
from devices_support import *  # noqa: F403  (the device fixtures)
from devices_support import (
    OWNER,
    SERVER_NAME,
    DeviceProcess,
    DevicesSetup,
    MatrixUser,
    free_port,
    run_module,
)

from devices.common.registration import devices_config, write_devices_config

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
ECHO_ENV = {"PYTHONPATH": os.pathsep.join(
    p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)}
BOX = f"@echo_box:{SERVER_NAME}"
ALIAS = f"#echo_box:{SERVER_NAME}"

StartDevice = Callable[..., Awaitable[DeviceProcess]]
MakeUser = Callable[[str], Awaitable[MatrixUser]]


@pytest.fixture
def device_sections() -> dict[str, dict[str, Any]]:
    return {"echo": {"boxes": ["box"]}}


async def start_echo(device_process: StartDevice, **kwargs: Any) -> DeviceProcess:
    return await device_process("echo", module="kit_echo_service", env=ECHO_ENV, **kwargs)


async def ping(user: MatrixUser, room_id: str) -> str:
    return await user.send_text(room_id, "!ping")


def pong_for(event_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["content"].get("body") == "pong" and e["content"].get(
        "reply_to") == event_id


async def test_room_ping_and_refusal(devices: DevicesSetup, owner: MatrixUser,
                                     make_user: MakeUser, device_process: StartDevice) -> None:
    proc = await start_echo(device_process)
    room_id = await owner.join_when_invited(ALIAS)

    # The room: created by the device user, with the alias, owner at power 50, private.
    power = await owner.state_event(room_id, "m.room.power_levels")
    assert power is not None and power["users"][OWNER] == 50, power
    create = next(e for e in await owner.state(room_id) if e["type"] == "m.room.create")
    assert create["sender"] == BOX  # v12: the creator has infinite power, not in users
    assert (await owner.state_event(room_id, "m.room.canonical_alias")) == {"alias": ALIAS}
    assert (await owner.state_event(room_id, "m.room.name")) == {"name": "Echo box"}
    join_rules = await owner.state_event(room_id, "m.room.join_rules")
    assert join_rules == {"join_rule": "invite"}
    profile = await owner.request("GET", f"/_matrix/client/v3/profile/{BOX}")
    assert profile.get("displayname") == "Echo box"

    ping_id = await ping(owner, room_id)
    pong = await owner.wait_for(room_id, pong_for(ping_id), sender=BOX, type="m.room.message",
                                what="pong to the owner's !ping")
    assert pong["content"]["msgtype"] == "m.text"

    bob = await make_user("bob")
    await owner.request("POST", f"/_matrix/client/v3/rooms/{room_id}/invite",
                        json={"user_id": bob.user_id})
    await bob.join(room_id)
    bob_ping = await ping(bob, room_id)
    notice = await bob.wait_for(room_id, sender=BOX, type="m.room.message", after=bob_ping,
                                predicate=lambda e: e["content"].get("msgtype") == "m.notice")
    assert notice["content"]["body"] == (f"{bob.user_id} may not ping here: needs power 50 "
                                         f"(has 0)")
    assert not [e for e in await owner.messages(room_id) if pong_for(bob_ping)(e)]

    # The device's own "!ping" is its echo: dropped by the kit, never answered.
    as_box = devices.as_client("echo")
    own = (await as_box.request(
        "PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/own1",
        params={"user_id": BOX}, json={"msgtype": "m.text", "body": "!ping"}))["event_id"]
    await as_box.close()
    last = await ping(owner, room_id)
    await owner.wait_for(room_id, pong_for(last), sender=BOX, what="pong after the own ping")
    assert not [e for e in await owner.messages(room_id) if pong_for(own)(e)]
    await proc.stop()
    assert "service ready" in proc.log_text()


async def test_restart_of_the_service_keeps_the_room(devices: DevicesSetup, owner: MatrixUser,
                                                     device_process: StartDevice) -> None:
    first = await start_echo(device_process)
    room_id = await owner.join_when_invited(ALIAS)
    await first.stop()
    second = await start_echo(device_process)
    assert await owner.resolve_alias(ALIAS) == room_id
    ping_id = await ping(owner, room_id)
    await owner.wait_for(room_id, pong_for(ping_id), sender=BOX, what="pong after restart")
    creates = [e for e in await owner.messages(room_id) if e["type"] == "m.room.create"]
    assert len(creates) == 1
    await second.stop()


async def test_as_server_tokens_txn_dedupe_and_queries(
        devices: DevicesSetup, owner: MatrixUser, device_process: StartDevice) -> None:
    await start_echo(device_process)
    room_id = await owner.join_when_invited(ALIAS)
    hs_token = devices.appservice("echo")["hs_token"]

    def txn(event_id: str) -> dict[str, Any]:
        return {"events": [{
            "type": "m.room.message", "room_id": room_id, "sender": OWNER,
            "event_id": event_id, "origin_server_ts": 1, "content": {"msgtype": "m.text",
                                                                     "body": "!ping"}}]}

    good = {"Authorization": f"Bearer {hs_token}"}
    async with aiohttp.ClientSession(base_url=devices.as_url("echo")) as http:
        path = "/_matrix/app/v1/transactions/kit-1"
        await call(http, "PUT", path, 403, "M_FORBIDDEN", json=txn("$a"),
                   headers={"Authorization": "Bearer wrong"})
        await call(http, "PUT", path, 403, "M_FORBIDDEN", json=txn("$a"),
                   params={"access_token": "wrong"})
        await call(http, "PUT", path, 401, "M_UNAUTHORIZED", json=txn("$a"))
        # The same txnId twice is handled once; the legacy path and ?access_token= work.
        assert await call(http, "PUT", path, json=txn("$a"), headers=good) == {}
        assert await call(http, "PUT", path, json=txn("$a"), headers=good) == {}
        assert await call(http, "PUT", "/transactions/kit-2", json=txn("$b"),
                          params={"access_token": hs_token}) == {}
        await call(http, "PUT", "/_matrix/app/v1/transactions/kit-3", 400, "M_NOT_JSON",
                   data=b"{", headers=good)
        # Queries: the echo service creates nothing on demand.
        await call(http, "GET", f"/_matrix/app/v1/users/@echo_nobody:{SERVER_NAME}", 404,
                   "M_NOT_FOUND", headers=good)
        await call(http, "GET", f"/_matrix/app/v1/rooms/%23echo_nothing:{SERVER_NAME}", 404,
                   "M_NOT_FOUND", headers=good)
        await call(http, "GET", f"/_matrix/app/v1/users/@echo_nobody:{SERVER_NAME}", 403,
                   "M_FORBIDDEN", headers={"Authorization": "Bearer wrong"})
        assert await call(http, "POST", "/_matrix/app/v1/ping", json={}, headers=good) == {}
        await call(http, "GET", "/_matrix/app/v1/nothing", 404, "M_UNRECOGNIZED", headers=good)
    # Transactions are handled in order: once $b's pong is there, $a's is final.
    await owner.wait_for(room_id, pong_for("$b"), sender=BOX, what="pong to txn kit-2")
    pongs_a = [e for e in await owner.messages(room_id) if pong_for("$a")(e)]
    assert len(pongs_a) == 1, pongs_a

    # edgehs's own ping of the service (POST /_matrix/client/v1/appservice/{id}/ping).
    as_user = devices.as_client("echo")
    done = await as_user.request(
        "POST", "/_matrix/client/v1/appservice/edgehs_echo/ping", json={"transaction_id": "p"})
    assert isinstance(done.get("duration_ms"), int)
    await as_user.close()


async def test_edgehs_restart_loses_nothing(server: Any, devices: DevicesSetup,
                                            owner: MatrixUser,
                                            device_process: StartDevice) -> None:
    proc = await start_echo(device_process)
    room_id = await owner.join_when_invited(ALIAS)
    before = await ping(owner, room_id)
    await owner.wait_for(room_id, pong_for(before), sender=BOX, what="pong before the outage")

    await server.stop()
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGUSR1)  # the device says "tick 1" while edgehs is down
    await wait_log(proc, "sending tick 1")
    await wait_log(proc, "retrying in")  # the send failed at least once: it really waited
    await server.start()
    tick = await owner.wait_for(room_id, sender=BOX, body="tick 1", what="tick sent in outage")
    await wait_log(proc, "sent tick 1")
    after = await ping(owner, room_id)
    await owner.wait_for(room_id, pong_for(after), sender=BOX, what="pong after the outage")
    ticks = [e for e in await owner.messages(room_id) if e["content"].get("body") == "tick 1"]
    assert [e["event_id"] for e in ticks] == [tick["event_id"]]  # sent once, despite retries


async def wait_log(proc: DeviceProcess, text: str) -> None:
    await wait_until(lambda: text in proc.log_text(),
                     lambda: f"{text!r} not in the log of {proc.module}:\n{proc.log_tail()}")


async def test_sigterm_while_waiting_for_edgehs(tmp_path: Path) -> None:
    """No edgehs at all: the service waits for it, and SIGTERM still ends it with 0."""
    raw = devices_config(SERVER_NAME, f"http://127.0.0.1:{free_port()}", [OWNER],
                         {"echo": {"boxes": ["box"]}})
    raw["echo"]["appservice"]["listen"] = f"127.0.0.1:{free_port()}"
    path = write_devices_config(tmp_path, raw)
    proc = DeviceProcess("kit_echo_service", path, tmp_path / "echo.log", env=ECHO_ENV)
    try:
        await proc.start(log_line="waiting for edgehs")
        await wait_log(proc, "retrying in")
        await proc.stop()
    finally:
        proc.kill_now()


def bad_config(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    raw = devices_config(SERVER_NAME, "http://127.0.0.1:8008", [OWNER],
                         {"echo": {"boxes": ["box"]}})
    change(raw)
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


BAD = {
    "homeserver.url": lambda r: r["homeserver"].update(url="ftp://x"),
    "homeserver.server_name": lambda r: r["homeserver"].pop("server_name"),
    "homeserver.port": lambda r: r["homeserver"].update(port=1),
    "owners[0]": lambda r: r.update(owners=["owner"]),
    "actuate_power": lambda r: r.update(actuate_power="high"),
    "echo.appservice.listen": lambda r: r["echo"]["appservice"].update(listen="9101"),
    "echo.appservice.hs_token": lambda r: r["echo"]["appservice"].update(
        hs_token=r["echo"]["appservice"]["as_token"]),
    "echo.boxes[0]": lambda r: r["echo"].update(boxes=[7]),
    "echo.colour": lambda r: r["echo"].update(colour="red"),
    "echo": lambda r: r.pop("echo"),
    "extra": lambda r: r.update(extra=1),
}


@pytest.mark.parametrize("key", list(BAD))
def test_bad_devices_yaml_exits_2_naming_the_key(tmp_path: Path, key: str) -> None:
    path = bad_config(tmp_path, BAD[key])
    done = subprocess.run([sys.executable, "-m", "kit_echo_service", "-c", str(path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **ECHO_ENV})
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert f"devices.yaml: {key}: " in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_init_refuses_unknown_service_and_overwrite(tmp_path: Path) -> None:
    done = run_module("devices", "init", str(tmp_path), "--server-name", SERVER_NAME,
                      "--homeserver", "http://127.0.0.1:8008", "--services", "nosuch")
    assert done.returncode == 2
    assert "unknown service 'nosuch'" in done.stderr
    assert not (tmp_path / "devices.yaml").exists()
    (tmp_path / "devices.yaml").write_text("keep: me\n")
    done = run_module("devices", "init", str(tmp_path), "--server-name", SERVER_NAME,
                      "--homeserver", "http://127.0.0.1:8008", "--services", "nosuch")
    assert done.returncode == 2 and "refusing to overwrite" in done.stderr
    assert (tmp_path / "devices.yaml").read_text() == "keep: me\n"
