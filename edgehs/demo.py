"""``edgehs demo``: edgehs and the device services on simulated hardware, in one command.

First run over DIR: ``edgehs.yaml`` (open registration: it is a demo), ``python -m devices init``
as a subprocess (edgehs never imports ``devices``), its registrations listed in
``app_service_config_files``, a user ``demo`` whose generated password is kept in ``demo.json``.
Every run: edgehs and each device service as child processes (logs in ``DIR/logs/``, warnings
also on the console), ``demo`` joined to every device room, a MIDI phrase played into the
simulated keyboard's FIFO, ``demo.json`` completed. Ctrl-C/SIGTERM stops the device services,
then edgehs, and exits 0; a child that dies on its own stops everything with exit code 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml

from edgehs.config import ConfigError, load_config, parse_listen
from edgehs.demo_procs import Child, child_env

SERVICES = ("midi", "gpio", "camera")
DEVICE_LISTS = {"midi": "ports", "gpio": "boards", "camera": "cameras"}  # devices.yaml keys
DEFAULT_PORT_BASE = 9101  # the devices kit's default: midi, gpio, camera on N, N+1, N+2
START_TIMEOUT = 60.0  # seconds for edgehs to listen, and for every device room to appear
# "Ode to Joy", first phrase: (note, beats); played at 0.2 s a beat with explicit note offs.
PHRASE = ((64, 1), (64, 1), (65, 1), (67, 1), (67, 1), (65, 1), (64, 1), (62, 1),
          (60, 1), (60, 1), (62, 1), (64, 1), (64, 1.5), (62, 0.5), (62, 2))
BEAT = 0.2


class DemoError(Exception):
    """The demo cannot go on; the message says why and what to do."""


@dataclass
class Setup:
    data_dir: Path
    config_path: Path
    devices_path: Path
    base_url: str
    server_name: str
    user_id: str
    password: str
    services: tuple[str, ...]


def _local_url(host: str, port: int) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _free_port_base() -> int:
    """The kit's default base if its three ports are free, else some free N, N+1, N+2."""
    def free(port: int) -> bool:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True
    for base in (DEFAULT_PORT_BASE, *(secrets.randbelow(20000) + 30000 for _ in range(50))):
        if all(free(base + i) for i in range(3)):
            return base
    raise DemoError("found no three free ports in a row for the device services: --port-base")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically, mode 0600 (it holds the demo user's password)."""
    tmp = path.with_name(path.name + ".tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fd:
        json.dump(data, fd, indent=2)
        fd.write("\n")
    os.replace(tmp, path)


def prepare(data_dir: Path, listen: str | None, server_name: str | None,
            services: tuple[str, ...], port_base: int | None) -> Setup:
    """Everything done once before any process starts (idempotent: a re-run reuses it all)."""
    import argparse

    from edgehs.cli import _listening, cmd_generate_config
    from edgehs.service.appservice.registration_files import add_config_file_entry
    from edgehs.store.writer_lock import DataDirLock, DataDirLocked

    data_dir = data_dir.absolute()
    config_path = data_dir / "edgehs.yaml"
    if not config_path.exists():
        ns = argparse.Namespace(server_name=server_name or "localhost", data_dir=str(data_dir),
                                listen=listen or "127.0.0.1:8008", enable_registration=True)
        if cmd_generate_config(ns) != 0:
            raise DemoError(f"cannot write {config_path}")
    config = load_config(config_path)
    configured = f"{config.listen_host}:{config.listen_port}"
    if listen is not None and parse_listen(listen, "--listen") != (config.listen_host,
                                                                    config.listen_port):
        raise DemoError(f"{config_path} listens on {configured}, not {listen}: edit its "
                        f"`listen`, or run without --listen")
    if server_name is not None and server_name != config.server_name:
        raise DemoError(f"{config_path} is for server_name {config.server_name}, which cannot "
                        f"change: use another --data-dir for {server_name}")
    base_url = _local_url(config.listen_host, config.listen_port)
    user_id = f"@demo:{config.server_name}"
    try:  # the edgehs of a demo (or any edgehs) on this folder holds its lock
        DataDirLock.acquire(config.data_dir).release()
    except DataDirLocked as exc:
        raise DemoError(f"{exc} (a demo still running?)") from None
    if _listening(config.listen_host, config.listen_port):
        raise DemoError(f"something already listens on {base_url} (a demo still running?)")

    devices_path = data_dir / "devices.yaml"
    if not devices_path.exists():
        print(f"Setting up the device services ({', '.join(services)}) in {devices_path}")
        base = port_base if port_base is not None else _free_port_base()
        done = subprocess.run(
            [sys.executable, "-m", "devices", "init", str(data_dir), "--server-name",
             config.server_name, "--homeserver", base_url, "--owner", user_id, "--services",
             ",".join(services), "--port-base", str(base)],
            capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
            env=child_env())
        if done.returncode != 0:
            raise DemoError(f"python -m devices init failed:\n{done.stdout}{done.stderr}")
    raw = yaml.safe_load(devices_path.read_text()) or {}
    listed = {p.resolve() for p in config.app_service_config_files}
    for svc in services:
        section = raw.get(svc)
        if not isinstance(section, dict) or not isinstance(section.get("appservice"), dict):
            raise DemoError(f"{devices_path} has no {svc} service: move it away to set the "
                            f"devices up again, or pick --services")
        registration = (data_dir / section["appservice"]["registration"]).resolve()
        if registration not in listed:
            entry = str(registration.relative_to(config.data_dir.resolve())
                        if registration.is_relative_to(config.data_dir.resolve())
                        else registration)
            text = add_config_file_entry(config_path.read_text(), entry, str(config_path))
            config_path.write_text(text)
            print(f"Added {entry} to app_service_config_files in {config_path}")
    password = asyncio.run(_ensure_demo_user(config_path, user_id, data_dir / "demo.json"))
    _write_json(data_dir / "demo.json", {"homeserver": base_url,
                                         "user": {"user_id": user_id, "password": password}})
    return Setup(data_dir, config_path, devices_path, base_url, config.server_name, user_id,
                 password, services)


async def _ensure_demo_user(config_path: Path, user_id: str, state: Path) -> str:
    """The demo user's password: the one in demo.json when it still works, else a new one
    (the user is registered, or its password reset). edgehs is not running yet."""
    from edgehs.homeserver import HomeServer

    known: str | None = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        known = str(json.loads(state.read_text())["user"]["password"])
    server = HomeServer(load_config(config_path))
    await server.start()
    try:
        if await server.users.is_available("demo"):
            password = known or secrets.token_urlsafe(12)
            await server.users.register("demo", password)
        elif known and await server.users.check_login(user_id, known):
            password = known
        else:
            password = secrets.token_urlsafe(12)
            await server.users.set_password(user_id, password)
    finally:
        await server.stop()
    return password


class Demo:
    """Starts, watches and stops the children (see the module docstring)."""

    def __init__(self, setup: Setup, verbose: bool) -> None:
        self.setup = setup
        self.log_dir = setup.data_dir / "logs"
        python = sys.executable
        self.edgehs = Child("edgehs", [python, "-m", "edgehs", "run", "-c",
                                       str(setup.config_path)], self.log_dir, verbose)
        self.devices = [Child(svc, [python, "-m", f"devices.{svc}", "-c",
                                    str(setup.devices_path)], self.log_dir, verbose)
                        for svc in setup.services]
        self.stopping = asyncio.Event()

    async def run(self) -> int:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        startup = asyncio.create_task(self._start())
        try:
            return await self._watch(startup)
        finally:
            startup.cancel()
            with contextlib.suppress(BaseException):
                await startup
            print("Stopping the device services, then edgehs ...", flush=True)
            await asyncio.gather(*(child.stop() for child in self.devices))
            await self.edgehs.stop()
            print("Demo stopped.", flush=True)

    async def _watch(self, startup: asyncio.Task[None]) -> int:
        """0 on Ctrl-C/SIGTERM; 1 when start-up fails or a child exits on its own."""
        while not self.stopping.is_set():
            await asyncio.sleep(0.2)
            if self.stopping.is_set():
                break
            if startup.done() and startup.exception():
                print(f"Demo start-up failed: {startup.exception()}", file=sys.stderr)
                for child in (self.edgehs, *self.devices):
                    if child.proc is not None:
                        print(f"[{child.name}] {child.report()}", file=sys.stderr)
                return 1
            for child in (self.edgehs, *self.devices):
                if child.exited is not None:
                    print(f"{child.name} exited on its own with code {child.exited}; "
                          f"{child.report()}", file=sys.stderr)
                    return 1
        return 0

    async def _start(self) -> None:
        setup = self.setup
        print(f"Starting edgehs on {setup.base_url} (logs in {self.log_dir})", flush=True)
        await self.edgehs.start()
        async with aiohttp.ClientSession(setup.base_url) as http:
            async def answers() -> bool | None:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get("/_matrix/client/versions") as resp:
                        return True if resp.status == 200 else None
                return None
            await self._until(answers, "edgehs to answer")
            for child in self.devices:
                print(f"Starting the {child.name} service", flush=True)
                await child.start()
            token = await self._login(http)
            auth = {"Authorization": f"Bearer {token}"}
            rooms: dict[str, dict[str, str]] = {}
            for alias_localpart in self._device_rooms():
                alias = f"#{alias_localpart}:{setup.server_name}"
                room_id = await self._until(lambda a=alias: self._join(http, a, auth),
                                            f"room {alias} to exist and invite {setup.user_id}")
                rooms[alias_localpart] = {"alias": alias, "room_id": room_id}
                print(f"Joined {alias} ({room_id})", flush=True)
            await http.post("/_matrix/client/v3/logout", headers=auth)
        fifo = self._midi_fifo()
        state = {"homeserver": setup.base_url,
                 "user": {"user_id": setup.user_id, "password": setup.password},
                 "rooms": rooms, "midi_fifo": str(fifo) if fifo else None, "pid": os.getpid()}
        if fifo is not None:
            await self._play(fifo)
        _write_json(setup.data_dir / "demo.json", state)
        self._announce(state)

    async def _until(self, attempt: Any, what: str) -> Any:
        """Retry ``attempt()`` until it returns something, for START_TIMEOUT seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while (result := await attempt()) is None:
            if loop.time() > deadline:
                raise DemoError(f"waited {START_TIMEOUT:.0f} s for {what}")
            await asyncio.sleep(0.25)
        return result

    async def _login(self, http: aiohttp.ClientSession) -> str:
        body = {"type": "m.login.password", "password": self.setup.password,
                "identifier": {"type": "m.id.user", "user": self.setup.user_id},
                "initial_device_display_name": "edgehs demo"}
        async with http.post("/_matrix/client/v3/login", json=body) as resp:
            answer = await resp.json()
            if resp.status != 200:
                raise DemoError(f"cannot log in as {self.setup.user_id}: {answer}")
            return str(answer["access_token"])

    @staticmethod
    async def _join(http: aiohttp.ClientSession, alias: str,
                    auth: dict[str, str]) -> str | None:
        """The room id once the alias resolves and the join succeeds (the device service
        invites the owners when it creates the room), else None."""
        path = f"/_matrix/client/v3/directory/room/{quote(alias, safe='')}"
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(path, headers=auth) as resp:
                if resp.status != 200:
                    return None
                room_id = str((await resp.json())["room_id"])
            async with http.post(f"/_matrix/client/v3/join/{quote(room_id, safe='')}",
                                 json={}, headers=auth) as resp:
                return room_id if resp.status == 200 else None
        return None

    def _items(self, svc: str) -> list[dict[str, Any]]:
        """The devices of ``svc`` listed in devices.yaml (ports, boards or cameras)."""
        if svc not in self.setup.services:
            return []
        raw = yaml.safe_load(self.setup.devices_path.read_text()) or {}
        items = (raw.get(svc) or {}).get(DEVICE_LISTS[svc]) or []
        return [item for item in items if isinstance(item, dict) and "name" in item]

    def _device_rooms(self) -> list[str]:
        """The alias localpart ``svc_name`` of every device of the started services."""
        return [f"{svc}_{item['name']}" for svc in SERVICES for item in self._items(svc)]

    def _midi_fifo(self) -> Path | None:
        """The first MIDI port whose input is a FIFO (the simulated keyboard), if any."""
        for port in self._items("midi"):
            source = port.get("input")
            if isinstance(source, dict) and source.get("kind") == "fifo" and source.get("path"):
                return self.setup.devices_path.parent / str(source["path"])
        return None

    async def _play(self, fifo: Path) -> None:
        """Write the phrase into the FIFO once the MIDI service reads it (real-time pacing)."""
        async def open_writer() -> int | None:
            try:
                return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader yet; ENOENT: not created yet
                return None
        fd = await self._until(open_writer, f"the MIDI service to read {fifo}")
        print(f"Playing a short MIDI phrase into {fifo}", flush=True)
        try:
            for note, beats in PHRASE:
                os.write(fd, bytes((0x90, note, 80)))
                await asyncio.sleep(beats * BEAT * 0.9)
                os.write(fd, bytes((0x80, note, 64)))
                await asyncio.sleep(beats * BEAT * 0.1)
        finally:
            os.close(fd)

    def _announce(self, state: dict[str, Any]) -> None:
        setup = self.setup
        lines = ["", "edgehs demo is running. Log in with any Matrix client:",
                 f"  homeserver  {setup.base_url}\n  user        {setup.user_id}",
                 f"  password    {setup.password}",
                 "Device rooms (already joined, with the power to actuate):"]
        lines += [f"  {room['alias']}  ({room['room_id']})" for room in state["rooms"].values()]
        if state["midi_fifo"]:
            lines.append(f"Play more MIDI: write raw MIDI bytes into {state['midi_fifo']}")
        lines += [f"Everything is in {setup.data_dir / 'demo.json'}. Ctrl-C stops it all.", ""]
        print("\n".join(lines), flush=True)


def run_demo(data_dir: Path, listen: str | None, server_name: str | None,
             services: tuple[str, ...], port_base: int | None, verbose: bool) -> int:
    """``edgehs demo``: 0 after a clean stop, 1 when something failed, 2 for bad input."""
    unknown = [s for s in services if s not in SERVICES]
    if unknown or not services:
        print(f"--services: choose from {', '.join(SERVICES)}", file=sys.stderr)
        return 2
    try:
        setup = prepare(data_dir, listen, server_name, services, port_base)
    except (DemoError, ConfigError) as exc:
        print(f"edgehs demo: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130
    print(f"Demo user {setup.user_id}, password {setup.password}", flush=True)
    return asyncio.run(Demo(setup, verbose).run())
