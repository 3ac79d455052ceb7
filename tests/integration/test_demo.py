"""``edgehs demo`` end to end: the command as a user runs it, checked with matrix-nio as ``demo``.

One demo process (module fixture) with all three device services. The last test
stops it with SIGTERM. A second demo over its own folder checks that a child dying stops
everything with exit code 1 and that a re-run reuses the folder and the password.
"""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nio
import pytest
from server_process import NIO_CONFIG, free_port

pytestmark = pytest.mark.integration

SERVER_NAME = "demo.test"
READY_TIMEOUT = 120.0  # seconds until demo.json lists the rooms (a deadline, not an assertion)
STOP_TIMEOUT = 60.0
PHRASE_NOTES = [64, 64, 65, 67, 67, 65, 64, 62, 60, 60, 62, 64, 64, 62, 62]  # edgehs.demo.PHRASE


SERVICES = ["midi", "gpio", "camera"]


class Demo:
    """``edgehs demo`` as a child process of the test, output in DIR/../demo.out."""

    def __init__(self, data_dir: Path, services: list[str]) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.out_path = data_dir.parent / f"{data_dir.name}.out"
        self.services = services
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        data_dir = self.data_dir.parent
        with self.out_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edgehs", "demo", "--data-dir", str(self.data_dir),
                 "--listen", f"127.0.0.1:{self.port}", "--server-name", SERVER_NAME,
                 "--services", ",".join(self.services)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=data_dir)

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def wait_ready(self) -> dict[str, Any]:
        """demo.json once it lists the rooms (written when everything is up)."""
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        state = self.data_dir / "demo.json"
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"edgehs demo exited with {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(state.read_text())
                if "rooms" in data and data.get("pid") == self.proc.pid:  # not a previous run's
                    return dict(data)
            if time.monotonic() > deadline:
                pytest.fail(f"demo.json not ready within {READY_TIMEOUT}s:\n{self.output()}")
            time.sleep(0.1)

    def children(self) -> dict[int, str]:
        """pid -> command line of the demo's child processes (from /proc)."""
        assert self.proc is not None
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == self.proc.pid:
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(
                        b"\0", b" ").decode(errors="replace")
        return found

    def wait_exit(self) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"edgehs demo did not exit within {STOP_TIMEOUT}s:\n{self.output()}")

    def kill_all(self, pids: list[int]) -> None:
        """Cleanup whatever is left, whatever happened in the test."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_TIMEOUT)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int, cmdline: str) -> bool:
    """Whether ``pid`` still runs the same command (not a zombie, not a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        now = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and now == cmdline


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, dict[str, Any]]]:
    proc = Demo(tmp_path_factory.mktemp("demo") / "data", SERVICES)
    proc.start()
    pids: list[int] = []
    try:
        state = proc.wait_ready()
        pids = list(proc.children())
        yield proc, state
    finally:
        proc.kill_all(pids)
        print(f"---- edgehs demo output ----\n{proc.output()[-6000:]}")


async def login(state: dict[str, Any]) -> nio.AsyncClient:
    client = nio.AsyncClient(state["homeserver"], state["user"]["user_id"], config=NIO_CONFIG)
    answer = await client.login(state["user"]["password"], device_name="test_demo")
    assert isinstance(answer, nio.LoginResponse), answer
    return client


async def room_events(client: nio.AsyncClient, room_id: str) -> list[dict[str, Any]]:
    """Every event of the room, oldest first (raw dicts)."""
    answer = await client.room_messages(room_id, start="", limit=1000,
                                        direction=nio.MessageDirection.front)
    assert isinstance(answer, nio.RoomMessagesResponse), answer
    return [event.source for event in answer.chunk]


async def test_demo_json_and_rooms(demo: tuple[Demo, dict[str, Any]]) -> None:
    proc, state = demo
    assert state["homeserver"] == f"http://127.0.0.1:{proc.port}"
    assert state["user"]["user_id"] == f"@demo:{SERVER_NAME}"
    assert (proc.data_dir / "demo.json").stat().st_mode & 0o077 == 0  # it holds a password
    assert {key.split("_", 1)[0] for key in state["rooms"]} == set(SERVICES)
    client = await login(state)
    try:
        joined = await client.joined_rooms()
        assert isinstance(joined, nio.JoinedRoomsResponse), joined
        for key, room in state["rooms"].items():
            assert room["alias"] == f"#{key}:{SERVER_NAME}"
            assert room["room_id"] in joined.rooms
            resolved = await client.room_resolve_alias(room["alias"])
            assert isinstance(resolved, nio.RoomResolveAliasResponse), resolved
            assert resolved.room_id == room["room_id"]
            # invited with the power to actuate (the kit's default threshold is 50)
            levels = await client.room_get_state_event(room["room_id"], "m.room.power_levels")
            assert isinstance(levels, nio.RoomGetStateEventResponse), levels
            assert levels.content["users"].get(state["user"]["user_id"], 0) >= 50
    finally:
        await client.close()
    for svc in SERVICES:
        assert (proc.data_dir / "logs" / f"{svc}.log").exists()
    assert "Traceback" not in (proc.data_dir / "logs" / "edgehs.log").read_text()


async def test_midi_phrase_arrived(demo: tuple[Demo, dict[str, Any]]) -> None:
    _, state = demo
    assert Path(state["midi_fifo"]).exists()
    client = await login(state)
    try:
        room_id = state["rooms"]["midi_keys"]["room_id"]
        notes: list[int] = []
        for _ in range(100):  # batching may hold the last notes back for a moment
            contents = [e["content"] for e in await room_events(client, room_id)
                        if e["type"] == "org.edgehs.midi"]
            flat = [m for c in contents for m in c.get("batch", [c])]
            notes = [m["note"] for m in flat if m.get("kind") == "note" and m["state"] == "on"]
            if len(notes) >= len(PHRASE_NOTES):
                break
            await asyncio.sleep(0.1)
        assert notes == PHRASE_NOTES
    finally:
        await client.close()


async def test_gpio_command_is_answered(demo: tuple[Demo, dict[str, Any]]) -> None:
    _, state = demo
    client = await login(state)
    try:
        room_id = state["rooms"]["gpio_board"]["room_id"]
        sent = await client.room_send(room_id, "m.room.message",
                                      {"msgtype": "m.text", "body": "!on porch_light"})
        assert isinstance(sent, nio.RoomSendResponse), sent
        answer: dict[str, Any] | None = None
        for _ in range(100):
            events = await room_events(client, room_id)
            replies = [e for e in events if e["sender"] == f"@gpio_board:{SERVER_NAME}"
                       and e["type"] == "m.room.message"
                       and e["content"].get("m.relates_to", {}).get("m.in_reply_to", {})
                       .get("event_id") == sent.event_id]
            if replies:
                answer = replies[0]
                break
            await asyncio.sleep(0.1)
        assert answer is not None, "the GPIO service did not answer !on porch_light"
        # demo has the power to actuate: the LED is switched, not refused
        assert answer["content"]["msgtype"] == "m.notice"
        assert answer["content"]["body"] == "porch_light is on"
    finally:
        await client.close()


async def test_camera_room(demo: tuple[Demo, dict[str, Any]]) -> None:
    _, state = demo
    assert any(key.startswith("camera_") for key in state["rooms"])


def test_sigterm_stops_everything(demo: tuple[Demo, dict[str, Any]]) -> None:
    """Runs last: SIGTERM -> exit 0, no child left, edgehs's port free again."""
    proc, _ = demo
    children = proc.children()
    assert len(children) == 1 + len(SERVICES), children
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait_exit() == 0, proc.output()
    left = {pid: cmd for pid, cmd in children.items() if alive(pid, cmd)}
    assert not left, f"still running after the demo exited: {left}"
    assert "Demo stopped." in proc.output()


def test_child_death_stops_demo_and_rerun_reuses_the_folder(tmp_path: Path) -> None:
    first = Demo(tmp_path / "data", ["midi"])
    first.start()
    pids: list[int] = []
    try:
        state = first.wait_ready()
        children = first.children()
        pids = list(children)
        midi = next(pid for pid, cmd in children.items() if "devices.midi" in cmd)
        os.kill(midi, signal.SIGKILL)
        assert first.wait_exit() == 1
        assert "midi exited on its own" in first.output()
        assert "last lines of" in first.output()
        assert not [pid for pid, cmd in children.items() if alive(pid, cmd)]

        again = Demo(tmp_path / "data", ["midi"])
        again.port = first.port  # the folder's config says where edgehs listens
        again.out_path = tmp_path / "rerun.out"
        again.start()
        state2 = again.wait_ready()
        pids += list(again.children())
        assert state2["user"] == state["user"]  # the same password, printed again
        assert state2["rooms"] == state["rooms"]
        assert state["user"]["password"] in again.output()
        assert again.proc is not None
        again.proc.send_signal(signal.SIGTERM)
        assert again.wait_exit() == 0
    finally:
        first.kill_all(pids)


def test_bad_services_and_a_changed_listen_address_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    demo = [sys.executable, "-m", "edgehs", "demo", "--data-dir", str(data)]
    done = subprocess.run([*demo, "--services", "midi,toaster"], capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 2
    assert "--services: choose from midi, gpio, camera" in done.stderr
    assert not data.exists()
    port = free_port()
    made = subprocess.run([sys.executable, "-m", "edgehs", "generate-config", "--server-name",
                           SERVER_NAME, "--data-dir", str(data), "--listen",
                           f"127.0.0.1:{port}"], capture_output=True, check=False, timeout=60)
    assert made.returncode == 0
    done = subprocess.run([*demo, "--listen", f"127.0.0.1:{port + 1}"], capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 1
    assert f"listens on 127.0.0.1:{port}, not 127.0.0.1:{port + 1}" in done.stderr
    done = subprocess.run([*demo, "--server-name", "other.test"], capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 1
    assert f"is for server_name {SERVER_NAME}" in done.stderr
    assert not (data / "devices.yaml").exists()
